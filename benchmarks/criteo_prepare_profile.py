"""Where the Criteo prepare stage's time goes, on this machine.

Times each step of fitting DeepFM's vocabularies and statistics
(`mmzoo.data.tabular.fit_features` over `read_criteo`'s `fit_batches`) on
one chunk of 8,192 lines, single-threaded, as its own compiled function
(best of `--repeats` runs of 30 calls): split assignment, the line check,
`decode_csv`, stripping the 26 categorical columns, their distinct values
(`StreamingCounter.distinct`) and the merge into the counters' hash
tables; then, on the whole file with the usual threads, reading the lines
alone (`TextLineDataset(path).enumerate().batch()`, the reader before
2026-12-02, and `textfile.line_blocks`, the reader's now),
`fit_batches` alone and `fit_features`, and loading the fitted
vocabularies into the serving preprocessor's lookup tables.

    .venv/bin/python benchmarks/criteo_prepare_profile.py
        [--rows 1000000] [--data-dir DIR] [--repeats 3]

The file is `criteo_scale.py`'s (generated when missing). Prints a table
and ONE JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHUNK = 8192


def _chunk_costs(path, repeats):
    """ms per chunk of each step, single-threaded."""
    import tensorflow as tf

    from mmzoo.data import ctr
    from mmzoo.data.vocab import StreamingCounter

    lines = next(iter(tf.data.TextLineDataset(path).batch(CHUNK)))
    numbers = tf.range(CHUNK, dtype=tf.int64)
    files = tf.constant([path])
    categorical = list(ctr.CRITEO_CATEGORICAL)
    features, _ = ctr._decode_criteo_lines(lines)
    stripped = {c: tf.strings.strip(features[c]) for c in categorical}
    distinct = {c: StreamingCounter.distinct(stripped[c]) for c in categorical}
    counters = {c: StreamingCounter(400_000, 2) for c in categorical}

    def check(file_indices, numbers, lines):
        with tf.control_dependencies(
            [ctr._check_criteo_lines(files, file_indices, numbers, lines)]
        ):
            return tf.constant(0)

    steps = {
        "split assignment": (
            lambda n: ctr._split_of(tf.constant(path), n, 0),
            numbers,
        ),
        "line check (regex)": (
            check,
            tf.zeros([CHUNK], tf.int32),
            numbers,
            lines,
        ),
        "decode_csv (40 fields)": (ctr._decode_criteo_lines, lines),
        "strip (26 columns)": (
            lambda f: [tf.strings.strip(f[c]) for c in categorical],
            features,
        ),
        "distinct values (26)": (
            lambda f: [StreamingCounter.distinct(f[c]) for c in categorical],
            stripped,
        ),
        # The same chunk again and again: a warm, small table (a real
        # pass merges into cold, growing tables).
        "merge into tables (26)": (
            lambda d: [counters[c].merge(*d[c]) for c in categorical],
            distinct,
        ),
    }
    costs = {}
    for name, (step, *args) in steps.items():
        function = tf.function(step, autograph=False)
        function(*args)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(30):
                function(*args)
            best = min(best, (time.perf_counter() - start) / 30)
        costs[name] = best * 1000
    return costs


def _pass_seconds(path):
    """Seconds of whole-file passes with the usual threads."""
    import tensorflow as tf

    from mmzoo.data import ctr, tabular, textfile

    data = ctr.read_criteo(path, seed=0)
    out = {}
    start = time.perf_counter()
    lines = tf.data.TextLineDataset(path).enumerate().batch(CHUNK)
    for _ in lines.prefetch(2):
        pass
    out["read numbered lines (TextLineDataset, the old reader)"] = (
        time.perf_counter() - start
    )
    start = time.perf_counter()
    size = tf.io.gfile.stat(path).length
    for _ in textfile.line_blocks(path, size).prefetch(2):
        pass
    out["read numbered lines (line_blocks, the reader)"] = (
        time.perf_counter() - start
    )
    start = time.perf_counter()
    for _ in data.fit_batches(CHUNK).prefetch(2):
        pass
    out["fit_batches (read, check, parse)"] = time.perf_counter() - start
    start = time.perf_counter()
    directory = tempfile.mkdtemp(prefix="criteo-profile-")
    features = tabular.fit_features(data, directory)
    out["fit_features"] = time.perf_counter() - start
    start = time.perf_counter()
    tabular.TabularPreprocessor(features, directory)
    out["load vocabularies (TabularPreprocessor)"] = time.perf_counter() - start
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        # The per-step costs, in their own process: TensorFlow's thread
        # counts are fixed once it has started.
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        print("RESULT " + json.dumps(_chunk_costs(args.child, args.repeats)))
        return 0
    load_before = os.getloadavg()[0]

    import subprocess

    from _machine import run_header
    from criteo_scale import generate

    folder = args.data_dir or os.path.join(
        tempfile.gettempdir(), "mmzoo-criteo-scale"
    )
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"criteo_{args.rows}.txt")
    if not os.path.exists(path):
        generate(path, args.rows)
    child = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            path,
            "--repeats",
            str(args.repeats),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = [x for x in child.stdout.splitlines() if x.startswith("RESULT ")]
    costs = json.loads(result[-1][len("RESULT ") :])
    passes = _pass_seconds(path)

    print(f"per chunk of {CHUNK:,} lines, one thread (ms):")
    print("| step | ms | µs per line |\n|---|---|---|")
    for name, ms in costs.items():
        print(f"| {name} | {ms:.2f} | {ms * 1000 / CHUNK:.2f} |")
    print(f"\nwhole file, {args.rows:,} rows, usual threads:")
    print("| pass | s | rows/s |\n|---|---|---|")
    for name, seconds in passes.items():
        # Loading the vocabularies does not read the rows.
        rate = "-" if name.startswith("load") else f"{args.rows / seconds:,.0f}"
        print(f"| {name} | {seconds:.2f} | {rate} |")
    print(
        json.dumps(
            {
                **run_header("criteo_prepare_profile", load_before),
                "rows": args.rows,
                "chunk_ms": costs,
                "pass_seconds": passes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
