"""Loads an export the way TF Serving does and checks it; run as a script.

This file must import nothing but the standard library, NumPy and
TensorFlow (+ TF Text, which TF Serving links): it runs in a fresh process
so that ops registered by keras-hub or mmzoo cannot hide a missing one.
Prints one JSON report on stdout.
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


def main(path):
    report = {"path": path, "errors": [], "signatures": {}, "examples": 0}
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
    loaded = tf.saved_model.load(path, tags=["serve"])
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
    examples = os.path.join(path, "assets.extra", EXAMPLES_FILE)
    if os.path.exists(examples):
        data = np.load(examples, allow_pickle=False)
        for key in sorted(loaded.signatures):
            prefix_in, prefix_out = f"{key}/in/", f"{key}/out/"
            inputs = {
                k[len(prefix_in) :]: tf.constant(_decode(data[k]))
                for k in data.files
                if k.startswith(prefix_in)
            }
            if not inputs:
                continue
            outputs = loaded.signatures[key](**inputs)
            for k in data.files:
                if not k.startswith(prefix_out):
                    continue
                name = k[len(prefix_out) :]
                got, want = outputs[name].numpy(), _decode(data[k])
                if want.dtype.kind in "fc":
                    if not np.all(np.isfinite(got)):
                        report["errors"].append(f"{key}: {name} not finite")
                    diff = float(np.max(np.abs(got - want))) if got.size else 0
                    report.setdefault("max_abs_diff", {})[f"{key}/{name}"] = (
                        diff
                    )
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
            report["examples"] += len(next(iter(inputs.values())))
    else:
        report["errors"].append(f"no assets.extra/{EXAMPLES_FILE} to replay")
    report["modules"] = sorted(
        m
        for m in sys.modules
        if m.split(".")[0] in ("keras_hub", "keras_nlp", "mmzoo")
    )
    if report["modules"]:
        report["errors"].append(
            f"verification process imported {report['modules'][:3]}"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
