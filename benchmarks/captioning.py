"""Captioner speed: training throughput and served latency per image.

Measures, pinned to the given intra/inter-op threads:

(a) training examples/s (one example = one image-caption pair) of
    `model.fit` after a warm-up (tracing excluded): fed by the task's
    `tf.data` pipeline (file bytes decoded once and cached, pairs
    shuffled, captions tokenized per batch), and fed one pre-built batch
    over and over (the model's cost alone);
(b) served latency of the exported SavedModel, loaded with
    `tf.saved_model.load` in a fresh process that imports only TensorFlow,
    called with JPEG bytes: `greedy` and `serving_default` (beam search,
    width 3) at batch 1 and 16; median and p90 over N calls after a
    warm-up, reported per request and per image.

Usage (from the repository root):
    .venv/bin/python benchmarks/captioning.py --quick
    .venv/bin/python benchmarks/captioning.py

Prints a table, then ONE JSON line with every figure.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _machine import run_header

BATCH_SIZES = (1, 16)
SIGNATURES = (("greedy", "greedy"), ("beam 3", "serving_default"))

# Runs in a fresh process: only TensorFlow and NumPy, as TF Serving.
LATENCY_WORKER = """
import json, sys, time
import numpy as np
import tensorflow as tf
path, inputs, calls, warmup, intra, inter = sys.argv[1:7]
tf.config.threading.set_intra_op_parallelism_threads(int(intra))
tf.config.threading.set_inter_op_parallelism_threads(int(inter))
loaded = tf.saved_model.load(path)
data = np.load(inputs)
results = {}
for name in sys.argv[7:]:
    fn = loaded.signatures[name]
    for key in data.files:
        images = tf.constant(data[key])
        for _ in range(int(warmup)):
            fn(image=images)
        times = []
        for _ in range(int(calls)):
            start = time.perf_counter()
            out = fn(image=images)
            captions = out["caption"].numpy()
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1e3
        results[f"{name}/{key}"] = {
            "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)),
            "calls": int(calls),
            "mean_words": float(np.mean([len(c.split()) for c in captions])),
        }
print(json.dumps(results))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Captioner speed.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="300 scenes, few steps and calls (a smoke run)",
    )
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--images", type=int, help="synthetic scenes (1000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, help="timed steps (100)")
    parser.add_argument("--warmup-steps", type=int, help="untimed steps (10)")
    parser.add_argument("--calls", type=int, help="timed calls (50)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--inter-op-threads", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    args.images = args.images or (300 if quick else 1000)
    args.train_steps = args.train_steps or (30 if quick else 100)
    args.warmup_steps = args.warmup_steps or (5 if quick else 10)
    args.calls = args.calls or (20 if quick else 50)
    args.latency_warmup = 3 if quick else 10
    args.inter_op_threads = args.inter_op_threads or args.threads
    return args


def table(summary):
    train = summary["training"]
    lines = [
        f"vit_lstm_captioner ({summary['settings']['variant']}, "
        f"{summary['settings']['image_encoder']} encoder, "
        f"{summary['settings']['image_size']} px, "
        f"{summary['machine']['cpu_cores']} CPUs, "
        f"{summary['settings']['intra_op_threads']} threads)",
        "",
        f"{'training':<34} {'examples/s':>12}",
        f"{'tf.data pipeline (bytes → pairs)':<34} "
        f"{train['examples_per_s']:>12,.0f}",
        f"{'one cached batch (model only)':<34} "
        f"{train['examples_per_s_model']:>12,.0f}",
        "",
        f"{'serving':<10} {'batch':>5} {'median ms':>10} {'p90 ms':>8} "
        f"{'ms/image':>9} {'p90/image':>9} {'words':>6}",
    ]
    for row in summary["serving"]:
        lines.append(
            f"{row['decoding']:<10} {row['batch']:>5} "
            f"{row['median_ms']:>10.1f} {row['p90_ms']:>8.1f} "
            f"{row['median_ms_per_image']:>9.2f} "
            f"{row['p90_ms_per_image']:>9.2f} {row['mean_words']:>6.1f}"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    import keras
    import numpy as np

    import mmzoo
    from mmzoo.export import export_model
    from mmzoo.tasks import get_task

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    work = tempfile.mkdtemp(prefix="mmzoo-bench-captioning-")
    load_before = os.getloadavg()[0]

    task = get_task("vit_lstm_captioner")
    task.synthetic_images = args.images
    keras.utils.set_random_seed(args.seed)
    config = mmzoo.get_config("vit_lstm_captioner", args.variant)
    started = time.perf_counter()
    prepared = task.prepare(
        config, "synthetic", None, os.path.join(work, "pre"), args.seed
    )
    config = prepared.config
    log(
        f"prepared {args.images} scenes in {time.perf_counter() - started:.1f}s"
    )
    batch = args.batch_size

    def timed_fit(model, dataset):
        marks = {}

        class Timer(keras.callbacks.Callback):
            def on_train_batch_end(self, step, logs=None):
                if step == args.warmup_steps - 1:
                    marks["start"] = time.perf_counter()

            def on_train_end(self, logs=None):
                marks["end"] = time.perf_counter()

        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=args.warmup_steps + args.train_steps,
            callbacks=[Timer()],
            shuffle=False,
            verbose=0,
        )
        seconds = marks["end"] - marks["start"]
        return args.train_steps * batch / seconds, seconds

    # ---- (a) training ---------------------------------------------------
    model = mmzoo.build("vit_lstm_captioner", config=config)
    task.compile(model, config)
    pipeline = task.pipeline(
        prepared, "train", batch, training=True, seed=args.seed
    ).repeat()
    rate, seconds = timed_fit(model, pipeline)
    log(f"training (tf.data): {rate:,.0f} examples/s")
    one_batch = next(iter(task.pipeline(prepared, "train", batch)))
    model_only = tf.data.Dataset.from_tensors(one_batch).repeat()
    rate_model, seconds_model = timed_fit(model, model_only)
    log(f"training (one cached batch): {rate_model:,.0f} examples/s")

    # ---- (b) serving ----------------------------------------------------
    export = export_model(
        model, task, config, prepared.preprocessor, os.path.join(work, "e")
    )
    paths = prepared.data["test"].image_paths
    jpegs = []
    for i in range(max(BATCH_SIZES)):
        with open(paths[i % len(paths)], "rb") as f:
            pixels = tf.io.decode_png(f.read(), channels=3)
        jpegs.append(tf.io.encode_jpeg(pixels, quality=95).numpy())
    inputs = os.path.join(work, "latency.npz")
    np.savez(
        inputs,
        **{
            str(size): np.array(jpegs[:size], dtype=object).astype(bytes)
            for size in BATCH_SIZES
        },
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LATENCY_WORKER,
            export,
            inputs,
            str(args.calls),
            str(args.latency_warmup),
            str(args.threads),
            str(args.inter_op_threads),
            *(signature for _, signature in SIGNATURES),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit("latency worker failed")
    latency = json.loads(proc.stdout.strip().splitlines()[-1])
    serving = []
    for label, signature in SIGNATURES:
        for size in BATCH_SIZES:
            figures = latency[f"{signature}/{size}"]
            serving.append(
                {
                    "decoding": label,
                    "signature": signature,
                    "batch": size,
                    **figures,
                    "median_ms_per_image": figures["median_ms"] / size,
                    "p90_ms_per_image": figures["p90_ms"] / size,
                }
            )

    summary = {
        **run_header("captioning", load_before),
        "settings": {
            "variant": args.variant,
            "image_encoder": config.image_encoder,
            "image_size": config.image_size,
            "max_length": config.max_length,
            "vocabulary_size": config.vocabulary_size,
            "beam_width": config.beam_width,
            "scenes": args.images,
            "batch_size": batch,
            "warmup_steps": args.warmup_steps,
            "timed_steps": args.train_steps,
            "latency_calls": args.calls,
            "intra_op_threads": args.threads,
            "inter_op_threads": args.inter_op_threads,
        },
        "training": {
            "examples_per_s": rate,
            "seconds": seconds,
            "examples_per_s_model": rate_model,
            "seconds_model": seconds_model,
            "parameters": int(model.count_params()),
        },
        "serving": serving,
    }
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(table(summary))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
