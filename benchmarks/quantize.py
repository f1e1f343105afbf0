"""Keras 3 `model.quantize("int8")` before export: size, latency, metric.

Trains DeepFM (default: the `base` variant, embedding 10, MLP 400-400-400)
on the synthetic CTR data, then compares the float32 model with an int8
copy (`keras.saving.load_model` of the saved float model, then
`quantize("int8")`: Dense and Embedding kernels become int8 with per-channel
float scales; custom layers keep float weights):

- size of the exported SavedModel's `variables/` and of the whole version;
- test AUC and logloss of the Keras models, and AUC of the served
  signatures over the whole test split (the export must keep the change);
- served latency of `serving_default` at batch 256 (raw strings and
  floats in), median and p90 over N calls after warm-up, both exports
  loaded with `tf.saved_model.load` in one fresh TensorFlow-only process
  and called alternately so that load on the machine hits both alike;
- `mmzoo verify` of the int8 export (stock ops only, no XLA).

Usage (from the repository root):
    .venv/bin/python benchmarks/quantize.py
    .venv/bin/python benchmarks/quantize.py --variant tiny --epochs 1

Prints a table, then ONE JSON line with every figure.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))

LATENCY_SCRIPT = r"""
import json, sys, time
import numpy as np
import tensorflow as tf

paths, batch_size, calls = json.loads(sys.argv[1])
data = np.load(sys.argv[2], allow_pickle=True)
raw = {k: tf.constant(data[k][:batch_size]) for k in data.files}
functions = [tf.saved_model.load(p).signatures["serving_default"]
             for p in paths]
for fn in functions:
    for _ in range(10):
        fn(**raw)
times = [[] for _ in functions]
for _ in range(calls):
    for fn, out in zip(functions, times):
        start = time.perf_counter()
        fn(**raw)
        out.append(time.perf_counter() - start)
print(json.dumps([
    {"median_ms": 1e3 * float(np.median(t)),
     "p90_ms": 1e3 * float(np.percentile(t, 90))}
    for t in times
]))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--variant", default="base")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--latency-batch", type=int, default=256)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        default=None,
        help="where models and exports go (kept); default: a temporary "
        "folder, removed at the end",
    )
    return parser.parse_args(argv)


def _size(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _served_auc(path, prepared, task, batch_size=1024):
    import keras
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(path).signatures["serving_default"]
    auc = keras.metrics.AUC()
    for raw, label in prepared.splits["test"].batch(batch_size):
        outputs = fn(**raw)
        (probability,) = outputs.values()
        auc.update_state(np.asarray(label), np.asarray(probability))
    return float(auc.result())


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Layers without int8 support (activations, FM, pooled embeddings) say
    # so one by one; the table lists the layers that were quantized.
    warnings.filterwarnings("ignore", message=".*does not have a `quantize`")
    work = args.workdir or tempfile.mkdtemp(prefix="mmzoo-quantize-")
    try:
        return _run(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, work):
    import keras
    import numpy as np

    import mmzoo
    from mmzoo.export import export_model
    from mmzoo.export.verify import verify
    from mmzoo.tasks import get_task

    task = get_task(args.model)
    keras.utils.set_random_seed(args.seed)
    config = mmzoo.get_config(args.model, args.variant)
    prepared = task.prepare(
        config, "synthetic", None, os.path.join(work, "assets"), args.seed
    )
    config = prepared.config
    model = mmzoo.build(args.model, config=config)
    task.compile(model, config)
    start = time.time()
    model.fit(
        task.pipeline(prepared, "train", args.batch_size, True, args.seed),
        epochs=args.epochs,
        verbose=0,
    )
    train_s = time.time() - start
    float_path = os.path.join(work, "float.keras")
    model.save(float_path)
    quantized = keras.saving.load_model(float_path)
    quantized.quantize("int8")
    task.compile(quantized, config)
    int8_layers = sorted(
        layer.name
        for layer in quantized._flatten_layers()
        if getattr(layer, "quantization_mode", None) == "int8"
    )

    examples = task.raw_examples(prepared, "test", 8)
    results = {}
    for label, keras_model in (("float32", model), ("int8", quantized)):
        metrics = task.evaluate(keras_model, prepared, "test", 1024)
        path = export_model(
            keras_model,
            task,
            config,
            prepared.preprocessor,
            os.path.join(work, "export"),
            name=f"{args.model}_{label}",
            examples=examples,
        )
        results[label] = {
            "export": path,
            "variables_bytes": _size(os.path.join(path, "variables")),
            "saved_model_bytes": _size(path),
            "keras_test": metrics,
            "served_test_auc": _served_auc(path, prepared, task),
        }
    report = verify(results["int8"]["export"])
    results["int8"]["verify_ok"] = report.ok
    results["int8"]["verify_errors"] = report.errors

    # Latency: both exports in one fresh TensorFlow-only process.
    data = task.raw_examples(prepared, "test", args.latency_batch)
    npz = os.path.join(work, "latency_inputs.npz")
    np.savez(npz, **data)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LATENCY_SCRIPT,
            json.dumps(
                [
                    [results["float32"]["export"], results["int8"]["export"]],
                    args.latency_batch,
                    args.calls,
                ]
            ),
            npz,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=True,
    )
    latency = json.loads(proc.stdout.strip().splitlines()[-1])
    for label, figures in zip(("float32", "int8"), latency):
        results[label]["latency_ms"] = figures

    summary = {
        "model": args.model,
        "variant": args.variant,
        "epochs": args.epochs,
        "train_seconds": round(train_s, 1),
        "latency_batch": args.latency_batch,
        "calls": args.calls,
        "int8_layers": int8_layers,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "keras": keras.__version__,
        },
        **results,
    }
    f32, i8 = results["float32"], results["int8"]
    print(f"{'':<22}{'float32':>14}{'int8':>14}{'change':>12}")
    rows = [
        ("variables/ (MB)", "variables_bytes", 1e-6),
        ("SavedModel (MB)", "saved_model_bytes", 1e-6),
    ]
    for title, key, scale in rows:
        a, b = f32[key] * scale, i8[key] * scale
        print(f"{title:<22}{a:>14.3f}{b:>14.3f}{(b / a - 1):>12.1%}")
    for metric in task.headline_metrics + ("logloss",):
        if metric in f32["keras_test"]:
            a, b = f32["keras_test"][metric], i8["keras_test"][metric]
            print(f"{'test ' + metric:<22}{a:>14.4f}{b:>14.4f}{b - a:>+12.4f}")
    a, b = f32["served_test_auc"], i8["served_test_auc"]
    print(f"{'served test auc':<22}{a:>14.4f}{b:>14.4f}{b - a:>+12.4f}")
    for stat in ("median_ms", "p90_ms"):
        a, b = f32["latency_ms"][stat], i8["latency_ms"][stat]
        title = f"latency b{args.latency_batch} {stat[:-3]}"
        print(f"{title + ' (ms)':<22}{a:>14.2f}{b:>14.2f}{(b / a - 1):>12.1%}")
    print(f"int8 layers: {', '.join(int8_layers)}")
    print(f"int8 export verified: {i8['verify_ok']} {i8['verify_errors']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
