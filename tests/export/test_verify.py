"""`mmzoo verify` fails, with a clear report, on what TF Serving would not
load or should not run.

Tiny `tf.Module`s saved with `tf.saved_model.save` stand in for exports
(fast; no Keras model needed). Each check runs the real verification
process.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from mmzoo import cli
from mmzoo.export.verify import (
    persistent_worker,
    verify,
    verify_exports,
    write_examples,
)
from mmzoo.export.warmup import WARMUP_FILE, write_warmup_requests

SPEC = tf.TensorSpec([None], tf.float32, name="x")
X = np.array([0.5, 1.0, 2.0], np.float32)


class Doubler(tf.Module):
    @tf.function(input_signature=[SPEC])
    def serve(self, x):
        return {"y": 2.0 * x}


class ReadsFile(tf.Module):
    @tf.function(input_signature=[SPEC])
    def serve(self, x):
        data = tf.io.read_file("/etc/hostname")
        return {"y": x + tf.cast(tf.strings.length(data), tf.float32)}


class Prints(tf.Module):
    @tf.function(input_signature=[SPEC])
    def serve(self, x):
        tf.print("x =", x)
        return {"y": 2.0 * x}


class Compiled(tf.Module):
    @tf.function(input_signature=[SPEC], jit_compile=True)
    def serve(self, x):
        return {"y": 2.0 * x}


class Logs(tf.Module):
    @tf.function(input_signature=[SPEC])
    def serve(self, x):
        return {"y": tf.math.log(x)}


def _save(module, path, examples=True, warmup=True, outputs=None):
    """Saves `module.serve` as `serving_default` with recorded examples
    (`outputs`, default: the module's own) and warmup requests."""
    path = str(path)
    tf.saved_model.save(
        module, path, signatures={"serving_default": module.serve}
    )
    if examples:
        if outputs is None:
            outputs = {
                k: v.numpy() for k, v in module.serve(tf.constant(X)).items()
            }
        write_examples(path, {"serving_default": ({"x": X}, outputs)})
    if warmup:
        write_warmup_requests(path, "toy", {"x": X})
    return path


def _errors(report):
    return "\n".join(report.errors)


def _unregistered_op(path):
    """Renames every Mul in the export's functions to an op nobody has."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(path, "saved_model.pb")
    proto = saved_model_pb2.SavedModel.FromString(open(pb, "rb").read())
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Mul":
                node.op = "MmzooCustomMul"
                renamed += 1
    assert renamed
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())


def _corrupt_warmup(path):
    with open(os.path.join(path, "assets.extra", WARMUP_FILE), "wb") as f:
        f.write(b"not a tfrecord file")


# Each case: (module, _save options, what is done to the export after).
CASES = {
    "clean": (Doubler, {}, None),
    "reads_file": (ReadsFile, {}, None),
    "prints": (Prints, {}, None),
    "xla": (Compiled, {}, None),
    "unregistered_op": (Doubler, {}, _unregistered_op),
    # The recorded examples are fine (log of positives); a warmup request
    # with x = 0 gives -inf.
    "non_finite_warmup": (
        Logs,
        {"warmup": False},
        lambda p: write_warmup_requests(
            p, "toy", {"x": np.zeros(2, np.float32)}
        ),
    ),
    "differs": (Doubler, {"outputs": {"y": 2.0 * X + 1.0}}, None),
    "unknown_input": (
        Doubler,
        {"warmup": False},
        lambda p: write_warmup_requests(p, "toy", {"z": X}),
    ),
    "corrupt_warmup": (Doubler, {"warmup": False}, _corrupt_warmup),
    "no_warmup": (Doubler, {"warmup": False}, None),
    "no_warmup_asked": (Doubler, {"warmup": False}, lambda p: _metadata(p)),
}


def _metadata(path, warmup=False):
    """The export metadata of `export_model(..., warmup=False)`."""
    import json

    with open(os.path.join(path, "assets.extra", "mmzoo.json"), "w") as f:
        json.dump({"model": "toy", "warmup": warmup}, f)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Every case's export, verified by one fresh process (`verify_exports`;
    a process per export would cost its TensorFlow import each time)."""
    paths = {}
    for case, (module, options, then) in CASES.items():
        path = _save(module(), tmp_path_factory.mktemp(case) / "1", **options)
        if then:
            then(path)
        paths[case] = path
    verified = verify_exports(list(paths.values()))
    assert [r.path for r in verified] == list(paths.values())
    return dict(zip(paths, verified))


def test_clean_export_passes_and_replays_warmup(reports):
    report = reports["clean"]
    assert report.ok, report.table()
    assert report.examples == 3
    assert report.details["warmup_requests"] == 2  # batch 1 and 3
    assert "warmup requests replayed: 2" in report.table()
    assert report.signatures["serving_default"]["inputs"] == {
        "x": ["float32", [None]]
    }


@pytest.mark.parametrize(
    "case, error",
    [
        ("reads_file", "forbidden op ReadFile"),
        ("prints", "forbidden op PrintV2"),
        ("xla", "XLA-compiled function"),
        ("unregistered_op", "op MmzooCustomMul"),
        ("unregistered_op", "not registered"),
        ("non_finite_warmup", "output y not finite"),
        ("differs", "differs from the recorded Keras output"),
        ("unknown_input", "do not match the signature"),
        ("corrupt_warmup", WARMUP_FILE),
    ],
)
def test_bad_export_fails_naming_the_problem(reports, case, error):
    report = reports[case]
    assert not report.ok
    assert error in _errors(report)
    # One export's failure is its own: the other reports do not carry it.
    assert error not in _errors(reports["clean"])


def test_missing_saved_model_pb_fails(tmp_path):
    path = _save(Doubler(), tmp_path / "1")
    os.remove(os.path.join(path, "saved_model.pb"))
    report = verify(path)
    assert not report.ok
    assert "no saved_model.pb" in _errors(report)
    with pytest.raises(RuntimeError, match="no saved_model.pb"):
        verify(path, raise_on_error=True)


def test_missing_warmup_fails_unless_asked_for(reports):
    # An export that should have warmup records (a plain `pip install`
    # once silently wrote none) fails; one made with --no-warmup warns.
    missing = reports["no_warmup"]
    assert not missing.ok
    assert "no assets.extra/tf_serving_warmup_requests" in _errors(missing)
    assert "--no-warmup" in _errors(missing)
    asked = reports["no_warmup_asked"]
    assert asked.ok, asked.table()
    assert "warning: no assets.extra/tf_serving_warmup_requests" in (
        asked.table()
    )


def test_cli_checks_every_export_and_fails_if_one_fails(reports, capsys):
    # In-process (`mmzoo.cli.main`, what the console script calls; the
    # console script itself is tests/test_cli.py's).
    good, bad = reports["clean"].path, reports["reads_file"].path
    code = cli.main(["verify", good, bad])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"export: {good}" in out
    assert f"export: {bad}" in out
    assert out.count("\nOK") == 1
    assert "FAILED:" in out
    assert "forbidden op ReadFile" in out


def test_persistent_worker_reuses_its_process_and_restarts_after_a_crash(
    reports,
):
    path = reports["clean"].path
    with persistent_worker() as worker:
        assert verify(path).ok
        pid = worker.proc.pid
        assert verify(path).ok
        assert worker.proc.pid == pid  # the same TensorFlow-only process
        worker.proc.kill()
        worker.proc.wait()
        assert verify(path).ok  # a new one
        assert worker.proc.pid != pid
    assert worker.proc is None  # closed with the context
