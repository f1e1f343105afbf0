"""TF Serving warmup records and the batching parameters file.

The warmup file must be what TF Serving reads at load time: a TFRecord of
`PredictionLog` protos with `predict_log.request` set. Each record must run
through the export's signature (the server fails the load otherwise).
"""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from mmzoo.export.batching import (
    BATCHING_FILE,
    CPU_DEFAULTS,
    GENERATED,
    batching_parameters,
    write_batching_parameters,
)
from mmzoo.export.verify import verify
from mmzoo.export.warmup import (
    WARMUP_FILE,
    read_warmup_requests,
    warmup_records,
    write_warmup_requests,
)
from tests.tiny import export_tiny, tiny_model

EXAMPLES = {
    # Bytes that are not UTF-8 and end in NUL must survive unchanged.
    "image": np.array([b"\xff\xd8\xff\x00", b"\x89PNG\x00\x00"], object),
    "report": np.array(["no finding", "effusion"], object),
    "age": np.array([31.0, np.nan], np.float32),
    "vector": np.arange(6, dtype=np.float32).reshape(2, 3),
}


def _served_form(value):
    # str travels as its UTF-8 bytes (TF strings are bytes).
    if value.dtype == object:
        return np.array(
            [v.encode() if isinstance(v, str) else v for v in value], object
        )
    return value


def _raw_records(path):
    data = tf.data.TFRecordDataset(path).as_numpy_iterator()
    return [prediction_log_pb2.PredictionLog.FromString(d) for d in data]


def test_records_are_predict_logs_of_batch_one_and_all():
    records = warmup_records("diagnosis", EXAMPLES)
    assert len(records) == 2
    for record, size in zip(records, (1, 2)):
        assert record.WhichOneof("log_type") == "predict_log"
        request = record.predict_log.request
        assert request.model_spec.name == "diagnosis"
        assert request.model_spec.signature_name == "serving_default"
        assert not request.model_spec.HasField("version")
        assert set(request.inputs) == set(EXAMPLES)
        for name, value in EXAMPLES.items():
            got = tf.make_ndarray(request.inputs[name])  # TF's own reader
            np.testing.assert_array_equal(got, _served_form(value)[:size])
        assert request.inputs["image"].dtype == tf.string.as_datatype_enum
        assert request.inputs["age"].dtype == tf.float32.as_datatype_enum


def test_signatures_and_batch_sizes():
    records = warmup_records(
        "m", EXAMPLES, ("serving_default", "greedy"), (1, 1, 5, None)
    )
    # 5 > 2 examples clips to 2 = None: duplicates are dropped.
    shapes = [
        (
            r.predict_log.request.model_spec.signature_name,
            r.predict_log.request.inputs["age"].tensor_shape.dim[0].size,
        )
        for r in records
    ]
    assert shapes == [
        ("serving_default", 1),
        ("serving_default", 2),
        ("greedy", 1),
        ("greedy", 2),
    ]


def test_write_and_read_round_trip(tmp_path):
    path = write_warmup_requests(str(tmp_path), "diagnosis", EXAMPLES)
    assert path == os.path.join(str(tmp_path), "assets.extra", WARMUP_FILE)
    assert len(_raw_records(path)) == 2
    requests = read_warmup_requests(str(tmp_path))
    assert [(m, s) for m, s, _ in requests] == [
        ("diagnosis", "serving_default")
    ] * 2
    _, _, inputs = requests[1]
    for name, value in EXAMPLES.items():
        np.testing.assert_array_equal(inputs[name], _served_form(value))
    assert inputs["image"][0] == b"\xff\xd8\xff\x00"


def test_without_tensorflow_serving_api_the_export_fails_loudly(
    tmp_path, monkeypatch
):
    # A plain `pip install` brings it; a broken environment must not give
    # an export that silently lacks its warmup file.
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(ImportError, match="tensorflow-serving-api"):
        write_warmup_requests(str(tmp_path), "m", EXAMPLES)
    assert not os.path.exists(tmp_path / "assets.extra" / WARMUP_FILE)


# --------------------------------------------------- a real export (DeepFM) --


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warmup")
    task, prepared, model, _ = tiny_model("deepfm", str(tmp))
    raw = task.raw_examples(prepared, "test", 6)
    path = export_tiny(task, prepared, model, str(tmp), raw)
    return path, task, prepared, model, raw


def test_export_writes_warmup_that_the_signature_answers(exported):
    path, task, prepared, model, raw = exported
    requests = read_warmup_requests(path)
    assert [len(inputs["price"]) for _, _, inputs in requests] == [1, 6]
    assert {m for m, _, _ in requests} == {"deepfm"}
    loaded = tf.saved_model.load(path)
    for _, signature, inputs in requests:
        served = loaded.signatures[signature](
            **{k: tf.constant(v) for k, v in inputs.items()}
        )
        size = len(inputs["price"])
        keras_out = task.serve(
            model,
            prepared.preprocessor,
            {k: tf.constant(v[:size]) for k, v in raw.items()},
        )
        for name, value in keras_out.items():
            np.testing.assert_allclose(
                served[name].numpy(), np.asarray(value), atol=1e-5
            )


def test_verify_replays_the_export_warmup(exported):
    path = exported[0]
    report = verify(path)
    assert report.ok, report.table()
    assert report.details["warmup_requests"] == 2
    assert not report.details["warnings"]


# ------------------------------------------------------ batching parameters --

# Fields of TF Serving's BatchingParameters (session_bundle_config.proto).
_WRAPPED = {
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "thread_pool_name",
}
_PLAIN = {"allowed_batch_sizes", "pad_variable_length_inputs"}


def _parse(text):
    fields = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        wrapped = re.fullmatch(r"(\w+) \{ value: (\d+) \}", line)
        plain = re.fullmatch(r"(\w+): (\w+)", line)
        assert wrapped or plain, line
        if wrapped:
            assert wrapped[1] in _WRAPPED, line
            fields[wrapped[1]] = int(wrapped[2])
        else:
            assert plain[1] in _PLAIN, line
            fields.setdefault(plain[1], []).append(plain[2])
    return fields


def test_batching_defaults_are_valid_text_proto():
    fields = _parse(batching_parameters())
    assert fields["max_batch_size"] == CPU_DEFAULTS["max_batch_size"]
    assert fields["batch_timeout_micros"] == 0
    assert fields["num_batch_threads"] == os.cpu_count()
    assert fields["max_enqueued_batches"] >= 1
    assert fields["pad_variable_length_inputs"] == ["true"]


def test_batching_overrides_and_errors():
    fields = _parse(
        batching_parameters(
            max_batch_size=64, num_batch_threads=4, allowed_batch_sizes=[8, 64]
        )
    )
    assert fields["max_batch_size"] == 64
    assert fields["num_batch_threads"] == 4
    assert fields["allowed_batch_sizes"] == ["8", "64"]
    with pytest.raises(ValueError, match="max_batch_sise"):
        batching_parameters(max_batch_sise=8)
    with pytest.raises(ValueError, match="allowed_batch_sizes"):
        batching_parameters(max_batch_size=64, allowed_batch_sizes=[8, 32])
    with pytest.raises(ValueError, match="max_batch_size=0"):
        batching_parameters(max_batch_size=0)


def test_batching_file_kept_in_step_with_the_export_tree(exported, tmp_path):
    base = os.path.dirname(os.path.dirname(exported[0]))
    path = os.path.join(base, BATCHING_FILE)
    with open(path) as f:
        assert f.readline().strip() == GENERATED
    # A hand-edited file (no mmzoo header) is the user's: left alone.
    custom = tmp_path / BATCHING_FILE
    custom.write_text("max_batch_size { value: 8 }\n")
    write_batching_parameters(str(tmp_path))
    assert custom.read_text() == "max_batch_size { value: 8 }\n"
    generated = tmp_path / "other"
    generated.mkdir()
    write_batching_parameters(str(generated), max_batch_size=32)
    write_batching_parameters(str(generated))
    assert (
        _parse((generated / BATCHING_FILE).read_text())["max_batch_size"]
        == (CPU_DEFAULTS["max_batch_size"])
    )
