"""Loads an export the way TF Serving does and checks it; run as a script.

This file must import nothing but the standard library, NumPy and
TensorFlow (+ TF Text, which TF Serving links): it runs in a fresh process
so that ops registered by keras-hub or mmzoo cannot hide a missing one.
Prints a JSON list of reports, one per export path, on stdout.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

try:  # TF Serving links TF Text, so its ops count as registered.
    import tensorflow_text  # noqa: F401
except ImportError:
    pass
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

# Ops a serving function must not run: file system and debugging side
# effects (asset tables are initialised by their own ops, not these).
FORBIDDEN_OPS = {
    "ReadFile", "WriteFile", "MatchingFiles", "PrintV2", "Print",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "Save", "SaveV2",
    "Restore", "RestoreV2", "MergeV2Checkpoints", "SaveSlices",
    "ShardedFilename",
}  # fmt: skip
XLA_OPS = {"XlaLaunch", "_XlaCompile", "_XlaRun", "XlaCallModule"}
EXAMPLES_FILE = "mmzoo_examples.npz"
# TF Serving's warmup file and its record limit (kept in step with
# mmzoo/export/warmup.py, which this file must not import).
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


# Every SavedModel carries checkpoint save/restore functions; TF Serving
# never calls them, so their file ops are not the serving path's.
_CHECKPOINT_FUNCTIONS = ("_traced_save_", "_traced_restore_")


def _graph_ops(path):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    ops, xla_functions = {}, []
    for node in graph.node:
        if node.op in (
            "SaveV2",
            "RestoreV2",
            "MergeV2Checkpoints",
            "ShardedFilename",
        ):
            continue  # the saver of the top-level graph
        ops.setdefault(node.op, "graph")
    for function in graph.library.function:
        name = function.signature.name
        if any(marker in name for marker in _CHECKPOINT_FUNCTIONS):
            continue
        attr = function.attr.get("_XlaMustCompile")
        if attr is not None and attr.b:
            xla_functions.append(name)
        for node in function.node_def:
            ops.setdefault(node.op, name)
            must = node.attr.get("_XlaMustCompile")
            if must is not None and must.b:
                xla_functions.append(f"{name}/{node.name}")
    return ops, xla_functions


def _decode(array):
    proto = tensor_pb2.TensorProto.FromString(array.tobytes())
    return tf.make_ndarray(proto)


def _float_kind(array):
    return np.asarray(array).dtype.kind in "fc"


def _same(got, want, atol):
    """Whether outputs `got` match `want` (floats within `atol`)."""
    if got.shape != want.shape:
        return False, f"shape {got.shape} vs {want.shape}"
    if _float_kind(want):
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        return diff <= atol, f"max |diff| {diff:.3g}"
    return bool(np.array_equal(got, want)), "values differ"


def _replay_examples(path, loaded, report):
    """Replays `assets.extra/mmzoo_examples.npz`; returns the recorded
    `{signature: (inputs, outputs)}` as NumPy dicts."""
    recorded = {}
    examples = os.path.join(path, "assets.extra", EXAMPLES_FILE)
    if not os.path.exists(examples):
        report["errors"].append(f"no assets.extra/{EXAMPLES_FILE} to replay")
        return recorded
    data = np.load(examples, allow_pickle=False)
    for key in sorted(loaded.signatures):
        prefix_in, prefix_out = f"{key}/in/", f"{key}/out/"
        inputs = {
            k[len(prefix_in) :]: _decode(data[k])
            for k in data.files
            if k.startswith(prefix_in)
        }
        if not inputs:
            continue
        wanted = {
            k[len(prefix_out) :]: _decode(data[k])
            for k in data.files
            if k.startswith(prefix_out)
        }
        recorded[key] = (inputs, wanted)
        try:
            outputs = loaded.signatures[key](
                **{k: tf.constant(v) for k, v in inputs.items()}
            )
        except Exception as error:  # reported, not raised
            report["errors"].append(
                f"{key}: recorded examples fail: {_first_line(error)}"
            )
            continue
        for name, want in wanted.items():
            if name not in outputs:
                report["errors"].append(f"{key}: no output {name}")
                continue
            got = outputs[name].numpy()
            if _float_kind(want):
                if not np.all(np.isfinite(got)):
                    report["errors"].append(f"{key}: {name} not finite")
                diff = float(np.max(np.abs(got - want))) if got.size else 0
                report.setdefault("max_abs_diff", {})[f"{key}/{name}"] = diff
                if got.shape != want.shape or diff > 1e-5:
                    report["errors"].append(
                        f"{key}: output {name} differs from the Keras "
                        f"model by {diff:.3g} (shape {got.shape} vs "
                        f"{want.shape})"
                    )
            elif got.shape != want.shape or not np.array_equal(got, want):
                report["errors"].append(
                    f"{key}: output {name} differs from the Keras model"
                )
        # The same recorded examples go through every signature: count them
        # once.
        report["examples"] = max(
            report["examples"], len(next(iter(inputs.values())))
        )
    return recorded


def _first_line(error):
    text = str(error).strip()
    # TF errors carry "Graph execution error:" and a stack before the
    # message that matters; keep the lines that name the problem.
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.startswith(("Graph execution error", "Detected at"))
        and "stack traces unavailable" not in line
    ]
    return f"{type(error).__name__}: " + " ".join(lines)[:500]


def _leading_rows(request, recorded_inputs):
    """The number of leading recorded examples `request` equals, or 0."""
    if set(request) != set(recorded_inputs):
        return 0
    sizes = {len(v) if np.ndim(v) else -1 for v in request.values()}
    if len(sizes) != 1 or -1 in sizes:
        return 0
    rows = sizes.pop()
    for name, value in request.items():
        want = recorded_inputs[name]
        if rows > len(want) or value.shape[1:] != want.shape[1:]:
            return 0
        a, b = value, want[:rows]
        if a.dtype.kind in "fc":
            same = np.array_equal(a, b, equal_nan=True)
        else:
            same = np.array_equal(a, b)
        if not same:
            return 0
    return rows


def _metadata(path):
    """The export's `assets.extra/mmzoo.json` ({} when missing)."""
    import json

    metadata = os.path.join(path, "assets.extra", "mmzoo.json")
    if not os.path.exists(metadata):
        return {}
    with open(metadata) as f:
        return json.load(f)


def _replay_warmup(path, loaded, recorded, report):
    """Replays TF Serving's warmup records through their signatures."""
    report["warmup_requests"] = 0
    warmup = os.path.join(path, "assets.extra", WARMUP_FILE)
    if not os.path.exists(warmup):
        message = (
            f"no assets.extra/{WARMUP_FILE}: TF Serving will not warm up "
            "this model"
        )
        if _metadata(path).get("warmup") is False:
            # Exported without warmup on purpose (`--no-warmup`).
            report["warnings"].append(message + " (exported with --no-warmup)")
        else:
            report["errors"].append(
                message + "; re-export it (tensorflow-serving-api writes "
                "the records), or export with --no-warmup to mean it"
            )
        return
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        report["warnings"].append(
            "tensorflow-serving-api is not installed: warmup records not "
            "replayed"
        )
        return
    try:
        records = [r.numpy() for r in tf.data.TFRecordDataset(warmup)]
    except Exception as error:
        report["errors"].append(
            f"{WARMUP_FILE} is not a readable TFRecord file: "
            f"{_first_line(error)}"
        )
        return
    if len(records) > MAX_WARMUP_RECORDS:
        report["errors"].append(
            f"{WARMUP_FILE} holds {len(records)} records; TF Serving reads "
            f"at most {MAX_WARMUP_RECORDS}"
        )
    for index, data in enumerate(records):
        where = f"warmup record {index}"
        try:
            log = prediction_log_pb2.PredictionLog.FromString(data)
        except Exception as error:
            report["errors"].append(f"{where}: not a PredictionLog: {error}")
            continue
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            report["errors"].append(
                f"{where}: a {kind} record; mmzoo signatures take predict "
                "requests"
            )
            continue
        request = log.predict_log.request
        key = request.model_spec.signature_name or "serving_default"
        where += f" ({key})"
        if key not in loaded.signatures:
            report["errors"].append(f"{where}: no signature {key}")
            continue
        signature = loaded.signatures[key]
        _, specs = signature.structured_input_signature
        if set(request.inputs) != set(specs):
            report["errors"].append(
                f"{where}: inputs {sorted(request.inputs)} do not match the "
                f"signature's {sorted(specs)}"
            )
            continue
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = signature(
                **{k: tf.constant(v) for k, v in inputs.items()}
            )
        except Exception as error:
            report["errors"].append(f"{where}: {_first_line(error)}")
            continue
        report["warmup_requests"] += 1
        batch = {len(v) for v in inputs.values() if np.ndim(v)}
        for name, tensor in outputs.items():
            got = tensor.numpy()
            if _float_kind(got) and not np.all(np.isfinite(got)):
                report["errors"].append(f"{where}: output {name} not finite")
            if batch and (got.ndim == 0 or {len(got)} != batch):
                report["errors"].append(
                    f"{where}: output {name} has shape {got.shape}, not the "
                    f"request's batch size {sorted(batch)}"
                )
        if key not in recorded:
            continue
        rows = _leading_rows(inputs, recorded[key][0])
        if not rows:
            continue
        for name, want in recorded[key][1].items():
            if name not in outputs:
                continue
            same, detail = _same(outputs[name].numpy(), want[:rows], 1e-5)
            if not same:
                report["errors"].append(
                    f"{where}: output {name} differs from the recorded "
                    f"Keras output ({detail})"
                )


def verify_one(path):
    """The report (a JSON-able dict) of the export at `path`."""
    report = {
        "path": path,
        "errors": [],
        "warnings": [],
        "signatures": {},
        "examples": 0,
    }
    try:
        _check(path, report)
    except Exception as error:  # the report says it
        report["errors"].append(f"verification stopped: {_first_line(error)}")
    return report


def main(paths):
    """Prints a JSON list with one report per export path."""
    print(json.dumps(verify_all(paths)))


def serve():
    """Verifies requests until stdin closes: each stdin line is a JSON list
    of export paths, answered by one stdout line, the JSON list of their
    reports (`mmzoo.export.verify.persistent_worker`)."""
    for line in sys.stdin:
        print(json.dumps(verify_all(json.loads(line))), flush=True)


def verify_all(paths):
    """One report per export path; each says which mmzoo / keras-hub
    modules this process had imported (none is allowed)."""
    reports = [verify_one(path) for path in paths]
    modules = sorted(
        m
        for m in sys.modules
        if m.split(".")[0] in ("keras_hub", "keras_nlp", "mmzoo")
    )
    for report in reports:
        report["modules"] = modules
        if modules:
            report["errors"].append(
                f"verification process imported {modules[:3]}"
            )
    return reports


def _check(path, report):
    ops, xla = _graph_ops(path)
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    functions = {
        f.signature.name
        for f in proto.meta_graphs[0].graph_def.library.function
    }
    for op, where in sorted(ops.items()):
        if op in functions:
            continue
        if op_def_registry.get(op) is None:
            report["errors"].append(
                f"op {op} (in {where}) is not registered by stock "
                "TensorFlow/TF Text"
            )
        if op in FORBIDDEN_OPS:
            report["errors"].append(f"forbidden op {op} in {where}")
        if op in XLA_OPS:
            report["errors"].append(f"XLA op {op} in {where}")
    for name in xla:
        report["errors"].append(f"XLA-compiled function {name}")
    report["num_ops"] = len(ops)
    try:
        loaded = tf.saved_model.load(path, tags=["serve"])
    except Exception as error:
        report["errors"].append(
            f"tf.saved_model.load failed: {_first_line(error)}"
        )
        return
    for key, fn in loaded.signatures.items():
        _, inputs = fn.structured_input_signature
        report["signatures"][key] = {
            "inputs": {
                k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()
            },
            "outputs": {
                k: [v.dtype.name, v.shape.as_list()]
                for k, v in fn.structured_outputs.items()
            },
        }
    if "serving_default" not in loaded.signatures:
        report["errors"].append("no serving_default signature")
    recorded = _replay_examples(path, loaded, report)
    _replay_warmup(path, loaded, recorded, report)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main(sys.argv[1:])
