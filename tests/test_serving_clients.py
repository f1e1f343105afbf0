"""`mmzoo.serving`: TF Serving request bodies, responses and clients.

REST bodies are checked against the documented JSON of TF Serving's REST
API (tensorflow_serving/g3doc/api_rest.md). gRPC runs end to end: the test
starts a `PredictionService` on loopback, built on the generated stubs of
tensorflow-serving-api and the exported SavedModel, and the client's
`PredictRequest` goes through a real channel. A small loopback HTTP server
that answers the documented REST forms exercises the REST client.
"""

import base64
import concurrent.futures
import http.server
import json
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mmzoo import serving
from tests.tiny import export_tiny, tiny_model

# ------------------------------------------------------------ REST bodies --


def test_row_form_matches_the_documented_example():
    # api_rest.md, "Specifying input tensors in row format".
    body = serving.rest_body(
        {
            "tag": ["foo", "bar"],
            "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
            "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
        }
    )
    assert body == {
        "instances": [
            {
                "tag": "foo",
                "signal": [1, 2, 3, 4, 5],
                "sensor": [[1, 2], [3, 4]],
            },
            {
                "tag": "bar",
                "signal": [3, 4, 1, 2, 5],
                "sensor": [[4, 5], [6, 8]],
            },
        ]
    }


def test_columnar_form_matches_the_documented_example():
    # api_rest.md, "Specifying input tensors in column format".
    body = serving.rest_body(
        {
            "tag": np.array(["foo", "bar"]),
            "signal": np.array([[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]]),
            "sensor": np.array([[[1, 2], [3, 4]], [[4, 5], [6, 8]]]),
        },
        form="inputs",
        signature_name="serving_default",
    )
    assert body == {
        "signature_name": "serving_default",
        "inputs": {
            "tag": ["foo", "bar"],
            "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
            "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
        },
    }


def test_bytes_travel_as_b64_objects():
    # api_rest.md, "Encoding binary values": {"b64": <base64 string>}.
    image = b"\xff\xd8\xff\xe0 not utf-8 \x80\x00"
    body = serving.rest_body(
        {"image": np.array([image], object), "caption": ["seaside"]}
    )
    (row,) = body["instances"]
    assert row == {
        "image": {"b64": base64.b64encode(image).decode("ascii")},
        "caption": "seaside",
    }
    assert base64.b64decode(row["image"]["b64"]) == image
    columnar = serving.rest_body({"image": [image, b"x"]}, form="inputs")
    assert columnar["inputs"]["image"][1] == {"b64": "eA=="}


def test_non_finite_numbers_use_the_documented_tokens():
    # api_rest.md, "JSON conformance": NaN, Infinity and -Infinity.
    body = serving.rest_body(
        {"x": np.array([1.5, np.nan, np.inf, -np.inf], np.float32)},
        form="inputs",
    )
    text = json.dumps(body)
    assert text == '{"inputs": {"x": [1.5, NaN, Infinity, -Infinity]}}'
    with pytest.raises(ValueError, match="input 'x'.*NaN"):
        serving.rest_body({"x": [np.nan]}, allow_nan=False)


def test_float32_values_round_trip_exactly():
    x = np.array([0.1, 1 / 3, 3.4e38, -1e-30], np.float32)
    text = json.dumps(serving.rest_body({"x": x}, form="inputs"))
    back = np.asarray(json.loads(text)["inputs"]["x"], np.float32)
    np.testing.assert_array_equal(back, x)


def test_row_form_rejects_unequal_batch_sizes_and_bad_values():
    with pytest.raises(ValueError, match="one batch size"):
        serving.rest_body({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="input 'a' is a scalar"):
        serving.rest_body({"a": 1.0})
    with pytest.raises(ValueError, match="unknown REST form"):
        serving.rest_body({"a": [1]}, form="rows")
    with pytest.raises(TypeError, match="input 'a'"):
        serving.rest_body({"a": np.array(["x", None], object)})
    # The columnar form carries unequal batch sizes (the server decides).
    body = serving.rest_body({"a": [1, 2], "b": [1]}, form="inputs")
    assert body["inputs"] == {"a": [1, 2], "b": [1]}


# --------------------------------------------------------- REST responses --


def test_parse_predictions_of_several_outputs():
    # Row form answer with several outputs: a list of objects.
    parsed = serving.parse_rest_response(
        '{"predictions": [{"caption": "a dog", "score": -1.5},'
        ' {"caption": "two cats", "score": NaN}]}'
    )
    np.testing.assert_array_equal(
        parsed["caption"], np.array([b"a dog", b"two cats"], object)
    )
    assert parsed["score"].dtype == np.float32
    np.testing.assert_array_equal(parsed["score"], [-1.5, np.nan])


def test_parse_single_output_forms():
    # One output: the server drops its name.
    parsed = serving.parse_rest_response(
        {"predictions": [0.25, 0.5]}, output_name="probability"
    )
    np.testing.assert_array_equal(parsed["probability"], [0.25, 0.5])
    parsed = serving.parse_rest_response('{"outputs": [[1, 2], [3, 4]]}')
    assert parsed["outputs"].dtype == np.int64
    assert parsed["outputs"].shape == (2, 2)
    parsed = serving.parse_rest_response(
        b'{"outputs": [0.5]}', dtypes={"outputs": np.float64}
    )
    assert parsed["outputs"].dtype == np.float64


def test_parse_columnar_outputs_and_b64():
    parsed = serving.parse_rest_response(
        {
            "outputs": {
                "probabilities": [[0.1, 0.9], [float("inf"), 0.0]],
                "thumbnail_bytes": [{"b64": "AAE="}, {"b64": "/w=="}],
            }
        }
    )
    assert parsed["probabilities"].shape == (2, 2)
    assert np.isinf(parsed["probabilities"][1, 0])
    np.testing.assert_array_equal(
        parsed["thumbnail_bytes"], np.array([b"\x00\x01", b"\xff"], object)
    )


def test_parse_error_body_raises():
    with pytest.raises(serving.ServingError, match="Servable not found"):
        serving.parse_rest_response(
            '{ "error": "Servable not found for request: Latest(half)" }'
        )
    with pytest.raises(ValueError, match="'predictions' or 'outputs'"):
        serving.parse_rest_response("{}")


# ------------------------------------------------------------ TensorProto --

ARRAYS = [
    np.array([0.5, np.nan, -np.inf], np.float32),
    np.arange(6, dtype=np.float64).reshape(2, 3),
    np.array([[1, -2]], np.int32),
    np.array([2**40, -1], np.int64),
    np.array([0, 255], np.uint8),
    np.array([True, False]),
    np.array([1.5, -2.0], np.float16),
    np.zeros((0, 3), np.float32),
    np.array([b"a", b"\xff\x00\x00", b""], object),
    np.array([["x", "\u00e9"]], object),
    np.array([], object),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_tensor_proto_agrees_with_tensorflow(array):
    proto = serving.make_tensor_proto(array)
    want = np.asarray(array)
    if want.dtype == object:
        want = np.array(
            [v.encode() if isinstance(v, str) else v for v in want.flat],
            object,
        ).reshape(want.shape)
    got = tf.make_ndarray(proto)  # TensorFlow reads what we wrote
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    # ... and we read what TensorFlow writes.
    back = serving.make_ndarray(tf.make_tensor_proto(array))
    assert back.shape == want.shape and back.dtype == want.dtype
    np.testing.assert_array_equal(back, want)


def test_make_ndarray_reads_value_fields_and_repeats_the_last():
    # TF Serving fills float_val etc.; a short list repeats its last value.
    proto = tf.make_tensor_proto(1.5, dtype=tf.float32, shape=[2, 2])
    assert not proto.tensor_content
    np.testing.assert_array_equal(
        serving.make_ndarray(proto), np.full((2, 2), 1.5)
    )
    proto = tf.make_tensor_proto("s", shape=[3])
    np.testing.assert_array_equal(
        serving.make_ndarray(proto), np.array([b"s"] * 3, object)
    )
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=tf.float16.as_datatype_enum)
    proto.tensor_shape.dim.add().size = 2
    proto.half_val.extend(np.array([0.5, -2], np.float16).view(np.uint16))
    np.testing.assert_array_equal(serving.make_ndarray(proto), [0.5, -2])


def test_grpc_request_fields():
    request = serving.grpc_request(
        "deepfm",
        {"price": [1.0, 2.0], "title": ["a b", b"\xff"]},
        signature_name="greedy",
        version=3,
    )
    assert isinstance(request, predict_pb2.PredictRequest)
    assert request.model_spec.name == "deepfm"
    assert request.model_spec.signature_name == "greedy"
    assert request.model_spec.version.value == 3
    assert request.inputs["price"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_array_equal(
        tf.make_ndarray(request.inputs["title"]),
        np.array([b"a b", b"\xff"], object),
    )
    assert not serving.grpc_request("m", {"x": [1.0]}).model_spec.HasField(
        "version"
    )


# ------------------------------------------------ end to end on loopback --


@pytest.fixture(scope="module")
def deepfm_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients")
    task, prepared, model, _ = tiny_model("deepfm", str(tmp), 16)
    raw = task.raw_examples(prepared, "test", 5)
    path = export_tiny(task, prepared, model, str(tmp), raw)
    keras_out = {
        k: np.asarray(v)
        for k, v in task.serve(
            model,
            prepared.preprocessor,
            {k: tf.constant(v) for k, v in raw.items()},
        ).items()
    }
    return path, raw, keras_out


class _Predictor(prediction_service_pb2_grpc.PredictionServiceServicer):
    """What TF Serving does for Predict, on TensorFlow's own converters."""

    def __init__(self, name, version, path):
        self.name, self.version = name, version
        self.loaded = tf.saved_model.load(path)
        self.lock = threading.Lock()

    def Predict(self, request, context):  # the gRPC method's name
        spec = request.model_spec
        if spec.name != self.name or (
            spec.HasField("version") and spec.version.value != self.version
        ):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {spec.name}")
        key = spec.signature_name or "serving_default"
        if key not in self.loaded.signatures:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no {key}")
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            with self.lock:
                outputs = self.loaded.signatures[key](**inputs)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e)[-1500:])
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(spec)
        response.model_spec.version.value = self.version
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope="module")
def grpc_server(deepfm_export):
    path = deepfm_export[0]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _Predictor("deepfm", 1, path), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    assert port
    server.start()
    yield port
    server.stop(grace=None).wait(timeout=10)


def _assert_close(got, want):
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0)


def test_grpc_end_to_end_equals_keras(deepfm_export, grpc_server):
    _, raw, keras_out = deepfm_export
    with serving.Client("127.0.0.1", grpc_port=grpc_server, timeout=60) as c:
        got = c.predict("deepfm", raw)
        _assert_close(got, keras_out)
        assert got["probability"].dtype == np.float32
        one = c.predict_grpc(
            "deepfm", {k: v[:1] for k, v in raw.items()}, version=1
        )
        _assert_close(one, {k: v[:1] for k, v in keras_out.items()})


def test_grpc_errors_carry_status_and_message(deepfm_export, grpc_server):
    _, raw, keras_out = deepfm_export
    bad = {**raw, "price": raw["price"][:2]}
    with serving.Client("127.0.0.1", grpc_port=grpc_server, timeout=60) as c:
        with pytest.raises(serving.ServingError) as error:
            c.predict("deepfm", bad)
        assert error.value.code == "INVALID_ARGUMENT"
        assert "need one batch size" in str(error.value)
        assert "price=2" in str(error.value)
        with pytest.raises(serving.ServingError) as error:
            c.predict("nope", raw)
        assert error.value.code == "NOT_FOUND"
        # The server survives: the next good request gets the right answer.
        _assert_close(c.predict("deepfm", raw), keras_out)


def _decode_json_inputs(value):
    """Server side of api_rest.md: {"b64": ...} → bytes, nested lists."""
    if isinstance(value, list):
        return [_decode_json_inputs(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value.encode() if isinstance(value, str) else value


class _RestHandler(http.server.BaseHTTPRequestHandler):
    loaded = None

    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/v1/models/deepfm":
            return self._reply(404, {"error": "Servable not found"})
        self._reply(
            200,
            {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]},
        )

    def do_POST(self):
        if self.path != "/v1/models/deepfm:predict":
            return self._reply(
                404, {"error": f"Servable not found for {self.path}"}
            )
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        signature = self.loaded.signatures[
            body.get("signature_name", "serving_default")
        ]
        _, specs = signature.structured_input_signature
        if "instances" in body:
            rows = body["instances"]
            columns = {k: [row[k] for row in rows] for k in rows[0]}
        else:
            columns = body["inputs"]
        inputs = {
            k: tf.constant(_decode_json_inputs(v), dtype=specs[k].dtype)
            for k, v in columns.items()
        }
        try:
            outputs = {k: v.numpy() for k, v in signature(**inputs).items()}
        except tf.errors.InvalidArgumentError as error:
            return self._reply(400, {"error": error.message})
        as_json = {k: v.tolist() for k, v in outputs.items()}
        if "instances" in body:
            size = len(next(iter(as_json.values())))
            rows = [{k: v[i] for k, v in as_json.items()} for i in range(size)]
            if len(as_json) == 1:
                rows = next(iter(as_json.values()))
            return self._reply(200, {"predictions": rows})
        self._reply(200, {"outputs": as_json})


@pytest.fixture(scope="module")
def rest_server(deepfm_export):
    handler = type("Handler", (_RestHandler,), {})
    handler.loaded = tf.saved_model.load(deepfm_export[0])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_rest_end_to_end_equals_keras(deepfm_export, rest_server):
    _, raw, keras_out = deepfm_export
    client = serving.Client("127.0.0.1", rest_port=rest_server, timeout=60)
    assert client.status("deepfm")["model_version_status"][0]["state"] == (
        "AVAILABLE"
    )
    _assert_close(client.predict("deepfm", raw, protocol="rest"), keras_out)
    rows = client.predict_rest("deepfm", raw, form="instances")
    np.testing.assert_allclose(
        rows["predictions"], keras_out["probability"], atol=1e-5
    )
    with pytest.raises(serving.ServingError) as error:
        client.predict_rest("deepfm", {**raw, "price": raw["price"][:1]})
    assert error.value.code == 400
    assert "need one batch size" in str(error.value)
    assert "price=1" in str(error.value)
    with pytest.raises(serving.ServingError, match="Servable not found"):
        client.predict_rest("other", raw)
