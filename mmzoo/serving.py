"""Clients of TF Serving: request bodies, responses as NumPy, a small client.

TF Serving answers on two ports: REST (JSON, default 8501) and gRPC
(`PredictionService`, default 8500). This module builds what each expects
from a dict of input name to array-like (what `Task.raw_examples` returns)
and turns the answers back into a dict of output name to NumPy array:

- `rest_body` / `parse_rest_response`: the JSON of TF Serving's REST API,
  row (`"instances"`) and columnar (`"inputs"`) forms. Byte strings travel
  as `{"b64": ...}`, text as JSON strings; NaN and ±inf as the `NaN`,
  `Infinity` and `-Infinity` tokens that the server's parser (and Python's
  `json`) accepts; mmzoo models read a non-finite number as missing.
- `grpc_request` / `parse_grpc_response`: `PredictRequest` and
  `PredictResponse` of the `tensorflow-serving-api` protos. Tensors are
  converted with NumPy only (`make_tensor_proto`, `make_ndarray`).
- `Client`: REST over `urllib` (no extra dependency) and gRPC over the
  generated `PredictionServiceStub`.

The REST path needs only the standard library and NumPy; the gRPC path
imports `tensorflow_serving.apis` (and `grpc`) when first used.

Example:

>>> from mmzoo.serving import Client
>>> client = Client("localhost")
>>> client.predict("deepfm", {"user_id": ["u1"], "price": [19.9], ...})
{'probability': array([0.73], dtype=float32)}
"""

import base64
import json
import urllib.error
import urllib.request

import numpy as np

SERVING_KEY = "serving_default"

# TensorFlow `DataType` enum values (tensorflow/core/framework/types.proto).
_DT_STRING = 7
_TF_DTYPES = {
    np.dtype(np.float32): 1,
    np.dtype(np.float64): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.uint8): 4,
    np.dtype(np.int16): 5,
    np.dtype(np.int8): 6,
    np.dtype(np.complex64): 8,
    np.dtype(np.int64): 9,
    np.dtype(np.bool_): 10,
    np.dtype(np.uint16): 17,
    np.dtype(np.complex128): 18,
    np.dtype(np.float16): 19,
    np.dtype(np.uint32): 22,
    np.dtype(np.uint64): 23,
}
_NP_DTYPES = {v: k for k, v in _TF_DTYPES.items()}
# The repeated field a TensorProto may hold its values in, per dtype, when
# `tensor_content` is empty (TF Serving answers this way by default).
_VALUE_FIELDS = {
    1: "float_val",
    2: "double_val",
    3: "int_val",
    4: "int_val",
    5: "int_val",
    6: "int_val",
    8: "scomplex_val",
    9: "int64_val",
    10: "bool_val",
    17: "int_val",
    18: "dcomplex_val",
    19: "half_val",
    22: "uint32_val",
    23: "uint64_val",
}


class ServingError(RuntimeError):
    """A request TF Serving refused or failed.

    Attributes:
        code: the HTTP status (REST) or the gRPC status name, e.g.
            `"INVALID_ARGUMENT"`; None for an error body without one.
    """

    def __init__(self, message, code=None):
        super().__init__(message if code is None else f"{code}: {message}")
        self.code = code


# ----------------------------------------------------------------- inputs --


def _first_leaf(value):
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value


def as_array(value, name="input"):
    """Converts an array-like input value to a NumPy array.

    Strings (`str` or `bytes`, in lists or NumPy `S`/`U` arrays) become
    object arrays, so that bytes with trailing zeros stay intact; a
    `tf.Tensor` is read with `.numpy()`. NumPy arrays keep their dtype;
    Python numbers convert as `tf.constant` converts them (float32, int32),
    which is what mmzoo signatures take.

    Raises:
        TypeError: naming `name` for an object array that holds anything
            but `str` and `bytes`.
    """
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(_first_leaf(value), (str, bytes)):
        array = np.asarray(value, dtype=object)
    else:
        # Python numbers follow TensorFlow's conversion (what
        # `tf.constant` does): float → float32, int → int32 when it fits.
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype == np.int64:
            info = np.iinfo(np.int32)
            if not array.size or info.min <= array.min() <= array.max() <= (
                info.max
            ):
                array = array.astype(np.int32)
    if array.dtype.kind in "SU":
        array = array.astype(object)
    if array.dtype == object:
        bad = [v for v in array.flat if not isinstance(v, (str, bytes))]
        if bad:
            raise TypeError(
                f"input '{name}': expected numbers or str/bytes values, got "
                f"{type(bad[0]).__name__} {bad[0]!r:.60}"
            )
    return array


def _arrays(inputs):
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(
            "inputs must be a non-empty dict of input name to values, got "
            f"{type(inputs).__name__}"
        )
    return {name: as_array(value, name) for name, value in inputs.items()}


# ------------------------------------------------------------------- REST --


def _json_value(array, name, allow_nan):
    if array.dtype == object:

        def encode(value):
            if isinstance(value, bytes):
                return {"b64": base64.b64encode(value).decode("ascii")}
            return value

        return np.vectorize(encode, otypes=[object])(array).tolist()
    if array.dtype.kind == "f" and not allow_nan:
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"input '{name}' holds NaN or infinite values, which strict "
                "JSON cannot carry; pass allow_nan=True (TF Serving accepts "
                "NaN/Infinity tokens)"
            )
    if array.dtype.kind == "c":
        raise TypeError(f"input '{name}': complex values have no JSON form")
    return array.tolist()


def rest_body(inputs, form="instances", signature_name=None, allow_nan=True):
    """Builds the JSON body of a TF Serving REST `:predict` request.

    Args:
        inputs: dict of input name to array-like; leading axis = batch.
        form: str. `"instances"` (row form: one object per example; every
            input must have the same batch size) or `"inputs"` (columnar
            form: one nested list per input). Defaults to `"instances"`.
        signature_name: str or None. Added as `"signature_name"` when set;
            the server uses `serving_default` otherwise.
        allow_nan: bool. Write NaN and ±inf as the `NaN` / `Infinity` /
            `-Infinity` tokens of TF Serving's JSON (and Python's `json`);
            if False, non-finite numbers raise `ValueError`. Defaults to
            True.

    Returns:
        A JSON-ready dict; serialize it with `json.dumps` (which writes the
        NaN tokens).

    Raises:
        ValueError: for an unknown `form`, or for row form with inputs of
            different batch sizes (naming them).

    Example:

    >>> rest_body({"image": [b"\\xff\\xd8..."], "report": ["no finding"]})
    {'instances': [{'image': {'b64': '/9g...'}, 'report': 'no finding'}]}
    """
    arrays = _arrays(inputs)
    body = {}
    if signature_name:
        body["signature_name"] = signature_name
    if form == "inputs":
        body["inputs"] = {
            name: _json_value(array, name, allow_nan)
            for name, array in arrays.items()
        }
        return body
    if form != "instances":
        raise ValueError(
            f"unknown REST form '{form}'; valid: instances, inputs"
        )
    sizes = {}
    for name, array in arrays.items():
        if array.ndim == 0:
            raise ValueError(
                f"input '{name}' is a scalar; the row form needs a batch "
                "axis (use form='inputs')"
            )
        sizes[name] = array.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"row form needs one batch size for every input, got {sizes}; "
            "use form='inputs'"
        )
    columns = {
        name: _json_value(array, name, allow_nan)
        for name, array in arrays.items()
    }
    size = next(iter(sizes.values()))
    body["instances"] = [
        {name: column[i] for name, column in columns.items()}
        for i in range(size)
    ]
    return body


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _is_named(value):
    return isinstance(value, dict) and not _is_b64(value)


def _from_json(value, dtype=None):
    def leaves(v):
        if isinstance(v, list):
            for item in v:
                yield from leaves(item)
        else:
            yield v

    def decode(v):
        if isinstance(v, list):
            return [decode(item) for item in v]
        if _is_b64(v):
            return base64.b64decode(v["b64"])
        if isinstance(v, str):
            return v.encode("utf-8")
        return v

    kinds = {type(leaf) for leaf in leaves(value)}
    if kinds & {str, dict}:
        return np.asarray(decode(value), dtype=object)
    if dtype is None:
        if kinds <= {bool}:
            dtype = np.bool_ if kinds else np.float32
        elif kinds <= {int}:
            dtype = np.int64
        else:
            dtype = np.float32
    return np.asarray(value, dtype=dtype)


def parse_rest_response(body, dtypes=None, output_name=None):
    """Parses a TF Serving REST `:predict` response into NumPy.

    Both response forms are read: `{"predictions": ...}` (answer to the row
    form: a list of objects for several outputs, a plain list for one) and
    `{"outputs": ...}` (columnar: an object for several outputs, a value for
    one). `{"b64": ...}` values (outputs named `*_bytes`) and strings become
    `bytes` in object arrays.

    Args:
        body: the response as `str`, `bytes` or an already parsed dict.
        dtypes: optional dict of output name to NumPy dtype. JSON has no
            float width: numbers default to float32 (int64 when every value
            is an integer, bool for booleans).
        output_name: str or None. Key for a single unnamed output (the
            server drops the name when a signature has one output).
            Defaults to `"predictions"` / `"outputs"`.

    Returns:
        dict of output name to NumPy array.

    Raises:
        ServingError: for an `{"error": ...}` body.
        ValueError: for a body with neither `predictions` nor `outputs`.
    """
    if isinstance(body, (str, bytes, bytearray)):
        body = json.loads(body)
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    if "error" in body:
        raise ServingError(body["error"])
    dtypes = dtypes or {}
    if "predictions" in body:
        rows = body["predictions"]
        if isinstance(rows, list) and rows and all(map(_is_named, rows)):
            names = list(rows[0])
            columns = {name: [row[name] for row in rows] for name in names}
        else:
            columns = {output_name or "predictions": rows}
    elif "outputs" in body:
        outputs = body["outputs"]
        if _is_named(outputs):
            columns = outputs
        else:
            columns = {output_name or "outputs": outputs}
    else:
        raise ValueError(
            "expected 'predictions' or 'outputs' in the response, got "
            f"keys {sorted(body)}"
        )
    return {
        name: _from_json(value, dtypes.get(name))
        for name, value in columns.items()
    }


# ------------------------------------------------------------------- gRPC --


def make_tensor_proto(value, name="input"):
    """Converts an array-like to a `tensorflow.TensorProto` (NumPy only).

    Numbers travel in `tensor_content` (little-endian), strings in
    `string_val` (`str` encoded as UTF-8).
    """
    from tensorflow.core.framework import tensor_pb2

    array = as_array(value, name)
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == object:
        proto.dtype = _DT_STRING
        proto.string_val.extend(
            v.encode("utf-8") if isinstance(v, str) else v for v in array.flat
        )
        return proto
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _TF_DTYPES:
        raise TypeError(f"input '{name}': unsupported dtype {array.dtype}")
    proto.dtype = _TF_DTYPES[dtype]
    proto.tensor_content = np.ascontiguousarray(
        array, dtype=dtype.newbyteorder("<")
    ).tobytes()
    return proto


def make_ndarray(proto):
    """Converts a `tensorflow.TensorProto` to a NumPy array (NumPy only).

    Reads `tensor_content` or the typed value fields, with TensorFlow's
    rule that a shorter value list repeats its last value.
    """
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == _DT_STRING:
        values = list(proto.string_val)
        array = np.empty(size, dtype=object)
        if values:
            array[: len(values)] = values[:size]
            array[len(values) :] = values[-1]
        else:
            array[:] = b""
        return array.reshape(shape)
    if proto.dtype not in _NP_DTYPES:
        raise TypeError(f"unsupported TensorProto dtype {proto.dtype}")
    dtype = _NP_DTYPES[proto.dtype]
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype.newbyteorder("<"))
        return array.astype(dtype).reshape(shape)
    values = list(getattr(proto, _VALUE_FIELDS[proto.dtype]))
    if proto.dtype == 19:  # half: int32 fields holding the float16 bits
        values = np.asarray(values, np.uint16).view(np.float16)
    elif proto.dtype in (8, 18):  # complex: interleaved real, imag
        values = np.asarray(values, dtype.type(0).real.dtype)
        values = values[0::2] + 1j * values[1::2]
    values = np.asarray(values).astype(dtype)
    array = np.zeros(size, dtype=dtype)
    if len(values):
        array[: len(values)] = values[:size]
        array[len(values) :] = values[-1]
    return array.reshape(shape)


def grpc_request(model_name, inputs, signature_name=SERVING_KEY, version=None):
    """Builds a TF Serving gRPC `PredictRequest`.

    Args:
        model_name: str. `model_spec.name` (the `models.config` name).
        inputs: dict of input name to array-like.
        signature_name: str. Defaults to `"serving_default"`.
        version: int or None. A model version; None lets the server pick
            the latest.

    Returns:
        `tensorflow_serving.apis.predict_pb2.PredictRequest`.
    """
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, array in _arrays(inputs).items():
        request.inputs[name].CopyFrom(make_tensor_proto(array, name))
    return request


def parse_grpc_response(response):
    """Turns a `PredictResponse` into a dict of output name to NumPy array
    (strings as `bytes` in object arrays)."""
    return {name: make_ndarray(t) for name, t in response.outputs.items()}


# ----------------------------------------------------------------- client --


class Client:
    """A TF Serving client: REST via `urllib`, gRPC via the generated stub.

    Args:
        host: str. Server host. Defaults to `"localhost"`.
        rest_port: int. REST port (`--rest_api_port`). Defaults to 8501.
        grpc_port: int. gRPC port (`--port`). Defaults to 8500.
        timeout: float. Seconds per request. Defaults to 30.
        max_message_bytes: int. gRPC message size limit both ways (images
            exceed gRPC's 4 MiB default quickly). Defaults to 64 MiB.

    Example:

    >>> with Client("localhost") as client:
    ...     client.predict("deepfm", examples)                # gRPC
    ...     client.predict("deepfm", examples, protocol="rest")
    """

    def __init__(
        self,
        host="localhost",
        rest_port=8501,
        grpc_port=8500,
        timeout=30.0,
        max_message_bytes=64 << 20,
    ):
        self.host = host
        self.rest_port = rest_port
        self.grpc_port = grpc_port
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._channel = None
        self._stub = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the gRPC channel, if one was opened."""
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    # REST
    def _url(self, model, version=None, verb=""):
        path = f"/v1/models/{model}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return f"http://{self.host}:{self.rest_port}{path}{verb}"

    def _http(self, url, data=None):
        request = urllib.request.Request(
            url,
            data=data,
            headers={"Content-Type": "application/json"} if data else {},
            method="POST" if data is not None else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text or error.reason
            raise ServingError(message, code=error.code) from None

    def predict_rest(
        self,
        model,
        inputs,
        signature_name=None,
        version=None,
        form="inputs",
        dtypes=None,
    ):
        """POSTs `/v1/models/<model>[/versions/<v>]:predict`; returns a dict
        of NumPy arrays. `form` is `"inputs"` (columnar, the default: keeps
        output names even for one output) or `"instances"`."""
        body = rest_body(inputs, form=form, signature_name=signature_name)
        answer = self._http(
            self._url(model, version, ":predict"),
            json.dumps(body).encode("utf-8"),
        )
        return parse_rest_response(answer, dtypes=dtypes)

    def status(self, model, version=None):
        """The model status JSON (`GET /v1/models/<model>`)."""
        return json.loads(self._http(self._url(model, version)))

    # gRPC
    def _grpc_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            options = [
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ]
            self._channel = grpc.insecure_channel(
                f"{self.host}:{self.grpc_port}", options=options
            )
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
                self._channel
            )
        return self._stub

    def predict_grpc(
        self, model, inputs, signature_name=SERVING_KEY, version=None
    ):
        """Calls `PredictionService.Predict`; returns a dict of NumPy
        arrays. A refused request raises `ServingError` whose `code` is the
        gRPC status name (e.g. `INVALID_ARGUMENT`)."""
        import grpc

        request = grpc_request(model, inputs, signature_name, version)
        try:
            response = self._grpc_stub().Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.details(), code=error.code().name) from (
                None
            )
        return parse_grpc_response(response)

    def predict(
        self,
        model,
        inputs,
        signature_name=SERVING_KEY,
        version=None,
        protocol="grpc",
    ):
        """Predicts with `protocol` `"grpc"` (default) or `"rest"`."""
        if protocol == "grpc":
            return self.predict_grpc(model, inputs, signature_name, version)
        if protocol == "rest":
            return self.predict_rest(model, inputs, signature_name, version)
        raise ValueError(f"unknown protocol '{protocol}'; valid: grpc, rest")
