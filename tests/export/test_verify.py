"""`mmzoo verify` fails, with a clear report, on what TF Serving would not
load or should not run.

Tiny `tf.Module`s saved with `tf.saved_model.save` stand in for exports
(fast; no Keras model needed). Each check runs the real verification
process.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.export.verify import verify, write_examples
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


def test_clean_export_passes_and_replays_warmup(tmp_path):
    report = verify(_save(Doubler(), tmp_path / "1"))
    assert report.ok, report.table()
    assert report.examples == 3
    assert report.details["warmup_requests"] == 2  # batch 1 and 3
    assert "warmup requests replayed: 2" in report.table()
    assert report.signatures["serving_default"]["inputs"] == {
        "x": ["float32", [None]]
    }


def test_read_file_op_fails(tmp_path):
    report = verify(_save(ReadsFile(), tmp_path / "1"))
    assert not report.ok
    assert "forbidden op ReadFile" in _errors(report)


def test_print_op_fails(tmp_path):
    report = verify(_save(Prints(), tmp_path / "1"))
    assert not report.ok
    assert "forbidden op PrintV2" in _errors(report)


def test_xla_compiled_function_fails(tmp_path):
    report = verify(_save(Compiled(), tmp_path / "1"))
    assert not report.ok
    assert "XLA-compiled function" in _errors(report)


def test_missing_saved_model_pb_fails(tmp_path):
    path = _save(Doubler(), tmp_path / "1")
    os.remove(os.path.join(path, "saved_model.pb"))
    report = verify(path)
    assert not report.ok
    assert "no saved_model.pb" in _errors(report)
    with pytest.raises(RuntimeError, match="no saved_model.pb"):
        verify(path, raise_on_error=True)


def test_unregistered_op_fails_with_a_report(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    path = _save(Doubler(), tmp_path / "1")
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
    report = verify(path)
    assert not report.ok
    assert "op MmzooCustomMul" in _errors(report)
    assert "not registered" in _errors(report)


def test_non_finite_warmup_output_fails(tmp_path):
    module = Logs()
    # The recorded examples are fine (log of positives); a warmup request
    # with x = 0 gives -inf.
    path = _save(module, tmp_path / "1", warmup=False)
    write_warmup_requests(path, "toy", {"x": np.zeros(2, np.float32)})
    report = verify(path)
    assert not report.ok
    assert "output y not finite" in _errors(report)


def test_warmup_output_differing_from_recorded_fails(tmp_path):
    wrong = {"y": 2.0 * X + 1.0}
    report = verify(_save(Doubler(), tmp_path / "1", outputs=wrong))
    assert not report.ok
    assert "differs from the recorded Keras output" in _errors(report)


def test_warmup_with_unknown_input_fails(tmp_path):
    path = _save(Doubler(), tmp_path / "1", warmup=False)
    write_warmup_requests(path, "toy", {"z": X})
    report = verify(path)
    assert not report.ok
    assert "do not match the signature" in _errors(report)


def test_corrupt_warmup_file_fails(tmp_path):
    path = _save(Doubler(), tmp_path / "1", warmup=False)
    with open(os.path.join(path, "assets.extra", WARMUP_FILE), "wb") as f:
        f.write(b"not a tfrecord file")
    report = verify(path)
    assert not report.ok
    assert WARMUP_FILE in _errors(report)


def test_missing_warmup_is_a_warning(tmp_path):
    report = verify(_save(Doubler(), tmp_path / "1", warmup=False))
    assert report.ok, report.table()
    assert "warning: no assets.extra/tf_serving_warmup_requests" in (
        report.table()
    )


@pytest.mark.parametrize("module", [ReadsFile, Doubler])
def test_cli_exit_status(module, tmp_path):
    path = _save(module(), tmp_path / "1")
    proc = subprocess.run(
        [sys.executable, "-m", "mmzoo.cli", "verify", path],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    if module is Doubler:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip().endswith("OK")
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "FAILED:" in proc.stdout
        assert "forbidden op ReadFile" in proc.stdout
