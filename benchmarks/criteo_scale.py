"""Criteo-scale data path: where a DeepFM epoch's time goes, and whether
cost grows linearly with rows and memory stays flat.

Generates Criteo-format TSV files (label, I1..I13, C1..C26; no header) of N
rows whose categorical columns follow the Kaggle set's cardinalities
(`CARDINALITIES`, 45M rows; a column's values are drawn from a Zipf-like
law over that many ids, so a file of N rows holds about as many distinct
values as N rows of the real log) and whose integer columns are mostly
small counts with the real set's missing rates; the label (about 26%
clicks) depends on a few columns. Then, for each size, in a fresh process
(so its peak memory is its own), it times:

1. **bare parse**: `TextLineDataset` → batch 4096 → `decode_csv` of all 40
   fields: the floor of reading the file with TensorFlow;
2. **prepare**: `task.prepare` (reading, split assignment, vocabularies
   and statistics of the train split), rows of the whole file per second;
3. **pipeline alone**: `task.pipeline(train, training=True)` drawn without
   a model, preprocessed batches (ids), train rows per second, and the
   process's CPU time per row (user + system, all threads: what the
   pipeline takes from the model on a small machine);
4. **fit**: `model.fit` on that pipeline, after warm-up steps;
5. **model alone**: `train_on_batch` on batches drawn beforehand and held
   in memory (the model's cost without input);

and the process's peak resident memory. `fit ≥ 0.9 × model alone` means the
input pipeline hides behind the model.

Usage (from the repository root):
    .venv/bin/python benchmarks/criteo_scale.py --quick      # 100k rows
    .venv/bin/python benchmarks/criteo_scale.py              # 1M and 4M

Options: `--rows 1000000,4000000`, `--variant base|tiny`, `--batch-size`
(1024), `--fit-steps` (steps timed in fit and model-alone, 200),
`--pipeline-rows` (cap on rows drawn in the pipeline-alone stage; default
the whole train split), `--data-dir` (where the files are generated and
kept; default a temporary folder, removed).

Prints a table, then ONE JSON line with every figure.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Distinct values of C1..C26 in Criteo Kaggle's 45,840,617 training rows.
CARDINALITIES = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683,
    8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15,
    286181, 105, 142572,
)  # fmt: skip
# Share of empty cells of I1..I13 and C1..C26 in the Kaggle set (rounded).
MISSING_INT = (
    0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.77,
    0.22,
)  # fmt: skip
MISSING_CAT = (
    0.0, 0.0, 0.03, 0.03, 0.0, 0.12, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.0,
    0.0, 0.0, 0.03, 0.0, 0.0, 0.44, 0.44, 0.03, 0.76, 0.0, 0.03, 0.44, 0.44,
)  # fmt: skip
KAGGLE_ROWS = 45_840_617


def generate(path, rows, seed=0, chunk=200_000):
    """Writes `rows` Criteo-format lines to `path` (TensorFlow string ops,
    vectorized per chunk)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            columns = []
            logit = np.full(n, -1.3)
            for i, missing in enumerate(MISSING_INT):
                values = np.floor(rng.lognormal(1.0 + 0.2 * i, 1.2, n))
                logit += 0.05 * np.log1p(values) * (i % 3 - 1)
                text = tf.strings.as_string(values.astype(np.int64))
                columns.append(tf.where(rng.random(n) < missing, "", text))
            for i, (card, missing) in enumerate(
                zip(CARDINALITIES, MISSING_CAT, strict=True)
            ):
                # Zipf-like: id = card * u^3 puts most rows on a few ids and
                # leaves a long tail, as in the real log.
                ids = np.floor(card * rng.random(n) ** 3).astype(np.int64)
                if i < 4:
                    logit += 0.3 * np.sin(ids * (i + 1.7))
                hashed = tf.strings.to_hash_bucket_fast(
                    tf.strings.as_string(ids + 1_000_003 * i), 2**31 - 1
                )
                text = tf.strings.as_string(hashed, width=8, fill="0")
                text = tf.strings.substr(text, 0, 8)
                columns.append(tf.where(rng.random(n) < missing, "", text))
            labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
            columns.insert(0, tf.strings.as_string(labels))
            lines = tf.strings.reduce_join(
                tf.stack(columns, axis=1), axis=1, separator="\t"
            )
            f.write(b"\n".join(lines.numpy().tolist()) + b"\n")


def _rate(rows, seconds):
    return rows / seconds if seconds > 0 else float("nan")


def measure(path, rows, variant, batch_size, fit_steps, pipeline_rows):
    """Runs every stage on `path` in this process; returns a dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    import mmzoo
    import mmzoo.registry
    from mmzoo.data.ctr import _CRITEO_FIELDS

    out = {"rows": rows}
    defaults = [[""]] * _CRITEO_FIELDS
    start = time.perf_counter()
    parsed = (
        tf.data.TextLineDataset(path)
        .batch(4096)
        .map(
            lambda lines: tf.io.decode_csv(lines, defaults, field_delim="\t"),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    counted = sum(int(tf.shape(batch[0])[0]) for batch in parsed)
    out["bare_parse_rows_per_s"] = _rate(counted, time.perf_counter() - start)

    task = mmzoo.registry.get_task("deepfm")
    config = mmzoo.get_config("deepfm", variant, batch_size=batch_size)
    work = tempfile.mkdtemp(prefix="criteo-scale-")
    try:
        start = time.perf_counter()
        prepared = task.prepare(config, "criteo", path, work, 0)
        out["prepare_s"] = time.perf_counter() - start
        out["prepare_rows_per_s"] = _rate(rows, out["prepare_s"])
        out["vocabulary_sizes"] = {
            f.name: f.vocabulary_size or f.hash_buckets
            for f in prepared.config.features
            if f.kind != "numeric"
        }

        train = task.pipeline(prepared, "train", batch_size, training=True)
        drawn, start, cpu = 0, time.perf_counter(), _cpu_seconds()
        for features, _ in train:
            drawn += int(tf.shape(next(iter(features.values())))[0])
            if pipeline_rows and drawn >= pipeline_rows:
                break
        out["pipeline_rows"] = drawn
        out["pipeline_rows_per_s"] = _rate(drawn, time.perf_counter() - start)
        out["pipeline_cpu_us_per_row"] = (_cpu_seconds() - cpu) / drawn * 1e6

        keras.utils.set_random_seed(0)
        model = mmzoo.build("deepfm", config=prepared.config)
        task.compile(model, prepared.config)
        warmup = 10

        class Clock(keras.callbacks.Callback):
            # With `steps_per_execution` N, Keras reports every N-th step:
            # the clock starts at the first report after the warm-up.
            def on_train_batch_end(self, batch, logs=None):
                if not hasattr(self, "start") and batch >= warmup - 1:
                    self.start = time.perf_counter()
                    self.timed = warmup + fit_steps - (batch + 1)

            def on_train_end(self, logs=None):
                self.seconds = time.perf_counter() - self.start

        clock = Clock()
        model.fit(
            task.pipeline(
                prepared, "train", batch_size, training=True
            ).repeat(),
            steps_per_epoch=warmup + fit_steps,
            epochs=1,
            callbacks=[clock],
            verbose=0,
        )
        out["fit_rows_per_s"] = _rate(clock.timed * batch_size, clock.seconds)

        batches = [
            ({k: v.numpy() for k, v in x.items()}, y.numpy())
            for x, y in train.take(min(fit_steps, 50))
        ]
        for x, y in batches[:warmup]:
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for step in range(fit_steps):
            x, y = batches[step % len(batches)]
            loss = model.train_on_batch(x, y)
        float(np.asarray(loss).reshape(-1)[0])
        out["model_alone_rows_per_s"] = _rate(
            fit_steps * batch_size, time.perf_counter() - start
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["peak_rss_mb"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return out


def _cpu_seconds():
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,4000000")
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--variant", default="base")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--fit-steps", type=int, default=200)
    parser.add_argument("--pipeline-rows", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # one size, in its own process
        path, rows = args.child.rsplit(":", 1)
        result = measure(
            path,
            int(rows),
            args.variant,
            args.batch_size,
            args.fit_steps,
            args.pipeline_rows,
        )
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    load_before = os.getloadavg()[0]
    sizes = [100_000] if args.quick else [int(r) for r in args.rows.split(",")]
    if args.quick:
        args.fit_steps = min(args.fit_steps, 50)
    folder = args.data_dir or tempfile.mkdtemp(prefix="criteo-files-")
    os.makedirs(folder, exist_ok=True)
    results = []
    try:
        for rows in sizes:
            path = os.path.join(folder, f"criteo_{rows}.txt")
            if not os.path.exists(path):
                start = time.perf_counter()
                generate(f"{path}.tmp", rows)
                os.replace(f"{path}.tmp", path)
                print(
                    f"generated {rows:,} rows in "
                    f"{time.perf_counter() - start:.0f} s: {path}",
                    file=sys.stderr,
                )
            child = [
                sys.executable, os.path.abspath(__file__),
                "--child", f"{path}:{rows}", "--variant", args.variant,
                "--batch-size", str(args.batch_size),
                "--fit-steps", str(args.fit_steps),
                "--pipeline-rows", str(args.pipeline_rows),
            ]  # fmt: skip
            done = subprocess.run(
                child, capture_output=True, text=True, check=False
            )
            lines = [
                line for line in done.stdout.splitlines()
                if line.startswith("RESULT ")
            ]  # fmt: skip
            if done.returncode or not lines:
                print(done.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"the {rows}-row run failed")
            results.append(json.loads(lines[-1][len("RESULT ") :]))
    finally:
        if not args.data_dir:
            shutil.rmtree(folder, ignore_errors=True)

    from _machine import run_header

    header = (
        "rows", "bare parse", "prepare", "pipeline", "pipeline CPU µs/row",
        "fit", "model alone", "fit/model", "prepare/parse", "peak MB",
    )  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        cells = [
            f"{r['rows']:,}",
            f"{r['bare_parse_rows_per_s']:,.0f}",
            f"{r['prepare_rows_per_s']:,.0f}",
            f"{r['pipeline_rows_per_s']:,.0f}",
            f"{r['pipeline_cpu_us_per_row']:.1f}",
            f"{r['fit_rows_per_s']:,.0f}",
            f"{r['model_alone_rows_per_s']:,.0f}",
            f"{r['fit_rows_per_s'] / r['model_alone_rows_per_s']:.2f}",
            f"{r['prepare_rows_per_s'] / r['bare_parse_rows_per_s']:.2f}",
            f"{r['peak_rss_mb']:,.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print("(rates in rows/s; pipeline and fit count train rows)")
    summary = {
        **run_header("criteo_scale", load_before),
        "variant": args.variant,
        "batch_size": args.batch_size,
        "fit_steps": args.fit_steps,
        "results": results,
    }
    if len(results) > 1:
        summary["memory_ratio_last_first"] = (
            results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
