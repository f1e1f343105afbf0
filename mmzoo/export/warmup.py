"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays the `PredictionLog` records of this TFRecord file when
it loads a version, before the version is marked available, so the first
client requests do not pay for graph initialisation (table loading, kernel
selection, allocator growth). The records are real examples of the
training data; `mmzoo verify` replays them too and checks the outputs.
"""

import os

import numpy as np

from mmzoo.export.saved_model import SERVING_KEY

WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving reads at most this many records (servables/tensorflow/
# saved_model_warmup_util: kMaxNumRecords).
MAX_RECORDS = 1000


def _batches(examples, batch_sizes):
    size = len(next(iter(examples.values())))
    seen = set()
    for batch in batch_sizes:
        batch = size if batch is None else min(int(batch), size)
        if batch < 1 or batch in seen:
            continue
        seen.add(batch)
        yield {name: value[:batch] for name, value in examples.items()}


def warmup_records(
    model_name, examples, signature_names=(SERVING_KEY,), batch_sizes=(1, None)
):
    """Builds the `PredictionLog` protos of a warmup file.

    Args:
        model_name: str. `model_spec.name` of every request (the name in
            `models.config`).
        examples: dict of raw input name to a NumPy array of real examples,
            leading axis = batch.
        signature_names: sequence of str (one set of requests per
            signature, each with every input), or dict of signature name to
            the input names it takes. Defaults to `("serving_default",)`.
        batch_sizes: sequence of int or None (None = every example). One
            request per batch size; each takes the leading examples.
            Defaults to `(1, None)`.

    Returns:
        list of `tensorflow_serving.apis.prediction_log_pb2.PredictionLog`.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    from mmzoo.serving import grpc_request

    examples = {k: np.asarray(v) for k, v in examples.items()}
    if not isinstance(signature_names, dict):
        signature_names = dict.fromkeys(signature_names, tuple(examples))
    records = []
    for signature, inputs in signature_names.items():
        taken = {k: examples[k] for k in inputs}
        for batch in _batches(taken, batch_sizes):
            request = grpc_request(model_name, batch, signature)
            records.append(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
            )
    if len(records) > MAX_RECORDS:
        raise ValueError(
            f"{len(records)} warmup records; TF Serving reads at most "
            f"{MAX_RECORDS}"
        )
    return records


def write_warmup_requests(
    version_dir,
    model_name,
    examples,
    signature_names=(SERVING_KEY,),
    batch_sizes=(1, None),
):
    """Writes `assets.extra/tf_serving_warmup_requests` into an export.

    Args:
        version_dir: str. The (staged) SavedModel folder.
        model_name: str. The model's name in `models.config`.
        examples: dict of raw input name to NumPy array (real examples).
        signature_names: sequence of str, or dict of signature name to its
            input names. Signatures to warm up (see `warmup_records`).
        batch_sizes: sequence of int or None. See `warmup_records`.

    Returns:
        The path of the file.

    Raises:
        ImportError: `tensorflow-serving-api` (a dependency) is missing.
    """
    try:
        records = warmup_records(
            model_name, examples, signature_names, batch_sizes
        )
    except ImportError as error:
        # A dependency of mmzoo: without it the export would silently lack
        # its warmup file, and TF Serving's first requests would be slow.
        raise ImportError(
            f"cannot write the TF Serving warmup requests of {model_name}: "
            f"tensorflow-serving-api is not importable ({error}); it is a "
            "dependency of mmzoo, reinstall with `pip install mmzoo`"
        ) from error
    import tensorflow as tf

    extra = os.path.join(version_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(version_dir):
    """Reads the warmup file of an export.

    Returns:
        list of `(model name, signature name, inputs)` with inputs a dict
        of name to NumPy array; empty when the export has no warmup file.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from mmzoo.serving import make_ndarray

    path = os.path.join(version_dir, "assets.extra", WARMUP_FILE)
    if not os.path.exists(path):
        return []
    requests = []
    for data in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(data)
        request = log.predict_log.request
        requests.append(
            (
                request.model_spec.name,
                request.model_spec.signature_name or SERVING_KEY,
                {k: make_ndarray(v) for k, v in request.inputs.items()},
            )
        )
    return requests
