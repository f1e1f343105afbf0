"""How the size of a gallery inside a `dual_encoder` export bounds its memory
and latency (brute-force search: one matmul and a top-k per query).

For each gallery size (default 10,000 and 100,000 items; `--sizes`), a
`dual_encoder` (the `tiny` towers with `--dim`-wide embeddings, default
256 as in `base`: the search's cost depends on the gallery and the width,
not on the towers) is exported with a `Gallery` of random unit vectors and
file-name keys (`export_model(..., gallery=...)`, the path of `mmzoo export
--gallery`), then one fresh TensorFlow-only process per size loads it and
measures:

- the export's size on disk (`variables/` holds the embeddings and keys);
- load time (`tf.saved_model.load`) and the process's peak resident
  memory after load and after the calls (`ru_maxrss`), against a baseline
  process that only imports TensorFlow;
- latency of `search_by_text` (tower + search) and of `embed_text` (the
  tower alone) at batch 1 and 32, median and p90 over `--calls` calls
  after 10 warm-up calls; their difference is the search's cost.

Usage (from the repository root):
    .venv/bin/python benchmarks/retrieval_gallery.py
    .venv/bin/python benchmarks/retrieval_gallery.py --sizes 1000 --calls 50

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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

MEASURE_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
import tensorflow as tf

path, calls = sys.argv[1], int(sys.argv[2])
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if path == "-":
    print(json.dumps({"peak_rss_mb": peak_mb()}))
    sys.exit()
start = time.perf_counter()
loaded = tf.saved_model.load(path)
load_s = time.perf_counter() - start
after_load = peak_mb()
out = {"load_s": load_s, "peak_rss_after_load_mb": after_load}
for signature in ("search_by_text", "embed_text"):
    fn = loaded.signatures[signature]
    for batch in (1, 32):
        text = tf.constant(["a small red circle on the left"] * batch)
        for _ in range(10):
            fn(text=text)
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            fn(text=text)
            times.append(time.perf_counter() - t)
        out[f"{signature}@{batch}"] = {
            "median_ms": 1e3 * float(np.median(times)),
            "p90_ms": 1e3 * float(np.percentile(times, 90)),
        }
out["peak_rss_mb"] = peak_mb()
print(json.dumps(out))
"""


def _measure(path, calls):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, path, str(calls)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np
    from _machine import run_header

    import mmzoo
    from mmzoo.export import export_model
    from mmzoo.tasks import get_task
    from mmzoo.tasks.retrieval import Gallery

    work = tempfile.mkdtemp(prefix="mmzoo-gallery-bench-")
    task = get_task("dual_encoder")
    keras.utils.set_random_seed(0)
    config = mmzoo.get_config("dual_encoder", "tiny", projection_dim=args.dim)
    prepared = task.prepare(
        config, "dummy", None, os.path.join(work, "assets"), 0
    )
    model = mmzoo.build("dual_encoder", config=prepared.config)
    examples = task.raw_examples(prepared, "train", 4)
    baseline = _measure("-", 0)["peak_rss_mb"]
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(size)
        vectors = rng.normal(size=(size, args.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        keys = tuple(f"images/{i:07d}.jpg" for i in range(size))
        start = time.perf_counter()
        preprocessor = task.make_preprocessor(
            prepared.config, prepared.directory
        )
        path = export_model(
            model,
            task,
            prepared.config,
            preprocessor,
            os.path.join(work, f"export-{size}"),
            examples=examples,
            gallery=Gallery(keys, vectors),
            top_k=args.top_k,
        )
        export_s = time.perf_counter() - start
        measured = _measure(path, args.calls)
        rows.append(
            {
                "gallery_size": size,
                "export_s": export_s,
                "export_mb": _folder_bytes(path) / 2**20,
                "variables_mb": _folder_bytes(os.path.join(path, "variables"))
                / 2**20,
                "embeddings_mb": vectors.nbytes / 2**20,
                **measured,
                "rss_over_tensorflow_mb": measured["peak_rss_mb"] - baseline,
            }
        )
    header = run_header("retrieval_gallery", load_before)
    print(
        f"\ndual_encoder gallery search, D={args.dim}, top-{args.top_k}, "
        f"{args.calls} calls ({header['machine']['cpu_cores']} cores)\n"
    )
    print(
        "| gallery | export MB | load s | peak RSS MB (over TF) | "
        "search b1 ms | embed b1 ms | search b32 ms | embed b32 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['gallery_size']:,} | {r['export_mb']:.1f} | "
            f"{r['load_s']:.2f} | {r['peak_rss_mb']:.0f} "
            f"(+{r['rss_over_tensorflow_mb']:.0f}) | "
            f"{r['search_by_text@1']['median_ms']:.2f} | "
            f"{r['embed_text@1']['median_ms']:.2f} | "
            f"{r['search_by_text@32']['median_ms']:.2f} | "
            f"{r['embed_text@32']['median_ms']:.2f} |"
        )
    print(
        json.dumps(
            {
                **header,
                "settings": {
                    "dim": args.dim,
                    "top_k": args.top_k,
                    "calls": args.calls,
                    "tensorflow_only_peak_rss_mb": baseline,
                },
                "rows": rows,
            }
        )
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
