"""Subprocess half of `benchmarks/deepfm.py`. Not a public script.

Two modes, each printing one JSON line last on stdout:

`train SPEC_JSON`: trains DeepCTR's DeepFM on the pre-computed ids that
    `deepfm.py` wrote, times `model.fit`, evaluates test AUC and exports a
    SavedModel. Runs under `TF_USE_LEGACY_KERAS=1` (DeepCTR 0.9.4 needs
    tf-keras), which is why it lives in its own process.
`latency SAVED_MODEL INPUTS_NPZ`: loads any SavedModel with
    `tf.saved_model.load` (TensorFlow only, as TF Serving does), calls its
    `serving_default` on the batches of INPUTS_NPZ and reports median / p90
    milliseconds per call. Both models are timed by this mode, so both run
    in a fresh process under the same thread settings.
"""

import argparse
import json
import os
import sys
import time


def _set_threads(intra, inter):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return tf


def _import_deepctr():
    # `import deepctr` starts a non-daemon thread that asks PyPI for a newer
    # release; the benchmark makes no network calls, so make it fail fast.
    import requests

    get = requests.get

    def offline(*args, **kwargs):
        raise requests.ConnectionError("benchmark: offline")

    requests.get = offline
    try:
        import deepctr
        from deepctr.feature_column import (
            DenseFeat,
            SparseFeat,
            VarLenSparseFeat,
        )
        from deepctr.models import DeepFM
    finally:
        requests.get = get
    return deepctr.__version__, DenseFeat, SparseFeat, VarLenSparseFeat, DeepFM


def _deepctr_inputs(spec, arrays, prefix):
    """Model inputs from mmzoo's ids: sparse `[N, 1]`, dense `[N, 1]`
    (standardized like mmzoo's NumericEmbedding, NaN → 0: DeepCTR has no
    missing-value handling), var-length `[N, L]` (0 = padding)."""
    import numpy as np

    inputs = {}
    for feature in spec["features"]:
        values = arrays[f"{prefix}/{feature['name']}"]
        if feature["kind"] == "numeric":
            z = (values - feature["mean"]) / feature["std"]
            z = np.where(np.isfinite(z), np.clip(z, -10, 10), 0.0)
            inputs[feature["name"]] = z.astype(np.float32)[:, None]
        elif feature["kind"] == "categorical":
            inputs[feature["name"]] = values.astype(np.int32)[:, None]
        else:
            inputs[feature["name"]] = values.astype(np.int32)
    return inputs


def _timed_fit(tf, model, dataset, warmup, steps, batch_size):
    """Fits `warmup + steps` steps; returns examples/s over the last
    `steps` (tracing and pipeline warm-up excluded)."""
    marks = {}

    class Timer(tf.keras.callbacks.Callback):
        # With `steps_per_execution` N, Keras reports every N-th step: the
        # clock starts at the first report after the warm-up.
        def on_train_batch_end(self, batch, logs=None):
            if "start" not in marks and batch >= warmup - 1:
                marks["start"] = time.perf_counter()
                marks["first"] = batch + 1

        def on_train_end(self, logs=None):
            marks["end"] = time.perf_counter()

    history = model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=warmup + steps,
        callbacks=[Timer()],
        verbose=0,
    )
    seconds = marks["end"] - marks["start"]
    timed = warmup + steps - marks["first"]
    return timed * batch_size / seconds, seconds, history.history


def train(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    tf = _set_threads(spec["intra_op_threads"], spec["inter_op_threads"])
    import numpy as np

    version, DenseFeat, SparseFeat, VarLenSparseFeat, DeepFM = _import_deepctr()
    tf.keras.utils.set_random_seed(spec["seed"])
    dim = spec["embedding_dim"]
    columns = []
    for feature in spec["features"]:
        name, kind = feature["name"], feature["kind"]
        if kind == "numeric":
            columns.append(DenseFeat(name, 1))
        elif kind == "categorical":
            columns.append(
                SparseFeat(name, feature["vocabulary_size"], embedding_dim=dim)
            )
        else:  # multi_value, and text tokenized to word ids by mmzoo
            columns.append(
                VarLenSparseFeat(
                    SparseFeat(
                        name, feature["vocabulary_size"], embedding_dim=dim
                    ),
                    maxlen=feature["max_length"],
                    combiner="mean",
                )
            )
    model = DeepFM(
        columns,
        columns,
        dnn_hidden_units=tuple(spec["mlp_units"]),
        l2_reg_linear=0.0,  # mmzoo: no L2 (DeepCTR's default is 1e-5)
        l2_reg_embedding=0.0,
        dnn_dropout=0.0,
        dnn_use_bn=False,
        seed=spec["seed"],
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC(name="auc")],
        steps_per_execution=spec.get("steps_per_execution", 1),
    )
    with np.load(spec["ids"]) as data:
        arrays = {k: data[k] for k in data.files}
    train_x = _deepctr_inputs(spec, arrays, "train")
    test_x = _deepctr_inputs(spec, arrays, "test")
    batch_size = spec["batch_size"]
    dataset = (
        tf.data.Dataset.from_tensor_slices((train_x, arrays["train/label"]))
        .shuffle(50_000, seed=spec["seed"])
        .repeat()
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    rate, seconds, _ = _timed_fit(
        tf,
        model,
        dataset,
        spec["warmup_steps"],
        spec["train_steps"],
        batch_size,
    )
    test = tf.data.Dataset.from_tensor_slices(
        (test_x, arrays["test/label"])
    ).batch(1024)
    results = model.evaluate(test, verbose=0, return_dict=True)
    if spec.get("train_only"):
        print(
            json.dumps(
                {
                    "train_examples_per_s": rate,
                    "train_seconds": seconds,
                    "test_auc": float(results["auc"]),
                }
            )
        )
        return
    export = spec["export_dir"]
    tf.saved_model.save(model, export)
    # Latency inputs: the first test rows, as a client holding ids sends
    # them.
    batches = {}
    for size in spec["latency_batch_sizes"]:
        for name, values in test_x.items():
            batches[f"{size}/{name}"] = values[:size]
    np.savez(spec["latency_inputs"], **batches)
    print(
        json.dumps(
            {
                "deepctr_version": version,
                "train_examples_per_s": rate,
                "train_seconds": seconds,
                "parameters": int(model.count_params()),
                "test_auc": float(results["auc"]),
                "test_logloss": float(results["loss"]),
            }
        )
    )


def latency(saved_model, inputs_path, calls, warmup, intra, inter):
    tf = _set_threads(intra, inter)
    import numpy as np

    try:  # Ops TF Serving links; unused by these models, loaded for parity.
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    serving = tf.saved_model.load(saved_model).signatures["serving_default"]
    with np.load(inputs_path) as data:
        arrays = {k: data[k] for k in data.files}
    sizes = sorted({int(k.split("/", 1)[0]) for k in arrays})
    report = {}
    for size in sizes:
        inputs = {
            key.split("/", 1)[1]: tf.constant(value)
            for key, value in arrays.items()
            if key.startswith(f"{size}/")
        }
        for _ in range(warmup):
            serving(**inputs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            outputs = serving(**inputs)
            for value in outputs.values():
                value.numpy()
            times.append((time.perf_counter() - start) * 1e3)
        report[str(size)] = {
            "median_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)),
            "calls": calls,
        }
    print(json.dumps(report))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("train")
    p.add_argument("spec")
    p = sub.add_parser("latency")
    p.add_argument("saved_model")
    p.add_argument("inputs")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--intra-op-threads", type=int, default=os.cpu_count())
    p.add_argument("--inter-op-threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    if args.mode == "train":
        train(args.spec)
    else:
        latency(
            args.saved_model,
            args.inputs,
            args.calls,
            args.warmup,
            args.intra_op_threads,
            args.inter_op_threads,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
