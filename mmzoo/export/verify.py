"""`mmzoo verify`: check an export as TF Serving would load it."""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

from mmzoo.export import _verify_worker

# Run as a script, so that it imports nothing of mmzoo or keras-hub.
_WORKER = _verify_worker.__file__


@dataclasses.dataclass
class VerifyReport:
    """Result of `verify`: `ok` is True when `errors` is empty."""

    path: str
    errors: list
    signatures: dict
    examples: int
    details: dict

    @property
    def ok(self):
        return not self.errors

    def table(self):
        """Human-readable signature table and verdict."""
        lines = [f"export: {self.path}", ""]
        lines.append(f"{'signature':<18} {'tensor':<28} {'dtype':<8} shape")
        for key, spec in sorted(self.signatures.items()):
            for kind in ("inputs", "outputs"):
                for name, (dtype, shape) in sorted(spec[kind].items()):
                    arrow = "in " if kind == "inputs" else "out"
                    lines.append(
                        f"{key:<18} {arrow} {name:<24} {dtype:<8} {shape}"
                    )
        lines.append("")
        lines.append(
            f"ops walked: {self.details.get('num_ops')}; examples replayed: "
            f"{self.examples}; max |served - keras|: "
            f"{max(self.details.get('max_abs_diff', {0: 0}).values()):.2e}; "
            "warmup requests replayed: "
            f"{self.details.get('warmup_requests', 0)}"
        )
        lines += [f"warning: {w}" for w in self.details.get("warnings", [])]
        if self.ok:
            lines.append("OK")
        else:
            lines.append("FAILED:")
            lines += [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


def encode_arrays(arrays):
    """Dict of NumPy arrays → dict of `uint8` arrays holding TensorProtos.

    TensorProto bytes keep string tensors (image bytes with NUL bytes
    included) exact and load with `np.load(allow_pickle=False)`; the verify
    worker decodes them with TensorFlow alone.
    """
    import tensorflow as tf

    return {
        name: np.frombuffer(
            tf.make_tensor_proto(np.asarray(value)).SerializeToString(),
            np.uint8,
        )
        for name, value in arrays.items()
    }


def decode_arrays(encoded):
    """Inverse of `encode_arrays` (accepts a loaded `.npz` too)."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    return {
        name: tf.make_ndarray(
            tensor_pb2.TensorProto.FromString(encoded[name].tobytes())
        )
        for name in (
            encoded.files if hasattr(encoded, "files") else list(encoded)
        )
    }


def write_examples(version_dir, signature_examples):
    """Records inputs and expected outputs per signature for `verify`.

    Args:
        version_dir: the (staged) export folder.
        signature_examples: dict of signature name to `(inputs, outputs)`,
            each a dict of name to NumPy array.
    """
    arrays = {}
    for key, (inputs, outputs) in signature_examples.items():
        arrays.update({f"{key}/in/{k}": v for k, v in inputs.items()})
        arrays.update({f"{key}/out/{k}": v for k, v in outputs.items()})
    extra = os.path.join(version_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    np.savez(
        os.path.join(extra, _verify_worker.EXAMPLES_FILE),
        **encode_arrays(arrays),
    )


def read_examples(version_dir):
    """The recorded examples of an export: dict of signature name to
    `(inputs, outputs)` (inverse of `write_examples`; {} without any)."""
    path = os.path.join(
        version_dir, "assets.extra", _verify_worker.EXAMPLES_FILE
    )
    if not os.path.exists(path):
        return {}
    with np.load(path, allow_pickle=False) as data:
        arrays = decode_arrays(data)
    out = {}
    for name, value in arrays.items():
        key, direction, tensor = name.split("/", 2)
        inputs, outputs = out.setdefault(key, ({}, {}))
        (inputs if direction == "in" else outputs)[tensor] = value
    return out


def verify(path, raise_on_error=False):
    """Loads export `path` in a process that imports only TensorFlow.

    Checks: every op is registered by stock TensorFlow / TF Text; no file
    system, debug or XLA ops; `serving_default` exists; the recorded
    examples give the recorded (Keras) outputs within 1e-5 and are finite;
    every TF Serving warmup record (`assets.extra/
    tf_serving_warmup_requests`) runs through its signature with finite,
    batch-shaped outputs, equal to the recorded ones where the request is
    (a leading slice of) the recorded examples. A missing warmup file is a
    warning, not an error.

    Args:
        path: str. A version folder (`<export_dir>/<model>/<version>`).
        raise_on_error: bool. Raise `RuntimeError` with the report's table
            when a check fails.

    Returns:
        `VerifyReport`.
    """
    return verify_exports([path], raise_on_error)[0]


def verify_exports(paths, raise_on_error=False):
    """`verify` for several exports in one fresh process: its start
    (importing TensorFlow, seconds) is paid once, not per export.

    Returns:
        list of `VerifyReport`, in the order of `paths`.
    """
    paths = [os.fspath(p) for p in paths]
    loadable = [
        p for p in paths if os.path.isfile(os.path.join(p, "saved_model.pb"))
    ]
    raw = {}
    if loadable and _PERSISTENT:
        raw = _PERSISTENT[-1].verify(loadable)
    elif loadable:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(
            [sys.executable, _WORKER, *loadable],
            capture_output=True,
            text=True,
            env=env,
        )
        try:
            reports = json.loads(proc.stdout.strip().splitlines()[-1])
            raw = {r["path"]: r for r in reports}
        except (IndexError, json.JSONDecodeError, KeyError, TypeError):
            failure = (
                f"verification process failed (exit {proc.returncode}): "
                + proc.stderr.strip()[-2000:]
            )
            raw = {p: {"errors": [failure]} for p in loadable}
    results = []
    for path in paths:
        if path not in raw:
            report = VerifyReport(
                path, [f"no saved_model.pb in {path}"], {}, 0, {}
            )
        else:
            found = raw[path]
            report = VerifyReport(
                path,
                found.get("errors", []),
                found.get("signatures", {}),
                found.get("examples", 0),
                found,
            )
        results.append(report)
    failed = [r for r in results if not r.ok]
    if raise_on_error and failed:
        raise RuntimeError("\n\n".join(r.table() for r in failed))
    return results


# Workers of `persistent_worker` contexts, innermost last.
_PERSISTENT = []


class _Worker:
    """A TensorFlow-only verification process that answers requests until
    closed (`_verify_worker.serve`); restarted after a crash."""

    def __init__(self):
        self.proc = None

    def _start(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def verify(self, paths):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps(paths) + "\n")
            self.proc.stdin.flush()
            reports = json.loads(self.proc.stdout.readline())
            return {r["path"]: r for r in reports}
        except (OSError, ValueError, KeyError, TypeError):
            code = self.proc.poll()
            self.close()
            failure = f"verification process failed (exit {code})"
            return {p: {"errors": [failure]} for p in paths}

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


@contextlib.contextmanager
def persistent_worker():
    """Within this context, `verify` and `verify_exports` send their
    exports to one long-lived TensorFlow-only process instead of starting
    a fresh one per call (importing TensorFlow costs seconds a call).

    The process still never imports mmzoo or keras-hub (each report
    checks), so an export that needs their ops still fails; it only keeps
    TensorFlow imported between exports. For test suites and batch jobs.

    Example:
    >>> with persistent_worker():
    ...     for path in paths:
    ...         verify(path, raise_on_error=True)
    """
    worker = _Worker()
    _PERSISTENT.append(worker)
    try:
        yield worker
    finally:
        _PERSISTENT.remove(worker)
        worker.close()
