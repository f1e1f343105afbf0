"""DeepFM speed: mmzoo vs DeepCTR on the same synthetic CTR data.

Measures, with both libraries pinned to the same intra/inter-op threads:

(a) training examples/s of `model.fit` over a fixed number of steps after a
    warm-up (tracing excluded): mmzoo's DeepFM fed by its `tf.data` pipeline
    (raw strings → vocabulary lookup, tokenization, padding per batch),
    the same mmzoo model fed pre-computed ids (model cost alone), and
    DeepCTR 0.9.4's DeepFM (tf-keras, own process, `TF_USE_LEGACY_KERAS=1`)
    fed the same pre-computed ids;
(b) served-signature latency (median and p90 over N calls after warm-up) at
    batch 1 and 256: mmzoo's SavedModel called with raw strings and floats,
    DeepCTR's SavedModel (`tf.saved_model.save`) called with ids. Both are
    loaded with `tf.saved_model.load` in a fresh TensorFlow-only process.

Same data, sizes and features for both: ids come from mmzoo's preprocessor
(so vocabulary sizes match), `tags` is a VarLenSparseFeat, and `title`
(text, which DeepCTR cannot take) is tokenized to word ids by mmzoo and fed
to DeepCTR as a VarLenSparseFeat too. Numeric features reach DeepCTR
standardized with the same train statistics, NaN → 0.

Usage (from the repository root):
    .venv/bin/python benchmarks/deepfm.py --quick
    .venv/bin/python benchmarks/deepfm.py

Prints a table, then ONE JSON line with every figure.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _machine import run_header

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_deepctr_worker.py")
BENCHMARK_DEPS = ("deepctr==0.9.4", "tf-keras>=2.21,<2.22")
LATENCY_BATCH_SIZES = (1, 256)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="DeepFM speed: mmzoo vs DeepCTR."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny variant, 20k rows, few steps and calls (a smoke run)",
    )
    parser.add_argument("--rows", type=int, help="synthetic rows (200000)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--train-steps",
        type=int,
        help="timed training steps (default: two epochs of the train split)",
    )
    parser.add_argument("--warmup-steps", type=int, help="untimed steps (20)")
    parser.add_argument("--calls", type=int, help="timed calls per batch size")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        help="defaults to --threads",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-deepctr",
        action="store_true",
        help="measure mmzoo only (no DeepCTR install or run)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (ids, SavedModels) and print it",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="fail instead of installing missing benchmark dependencies",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.variant = "tiny" if quick else "base"
    args.rows = args.rows or (20_000 if quick else 200_000)
    args.warmup_steps = args.warmup_steps or (5 if quick else 20)
    args.calls = args.calls or (30 if quick else 500)
    args.latency_warmup = 5 if quick else 20
    args.inter_op_threads = args.inter_op_threads or args.threads
    if quick and args.train_steps is None:
        args.train_steps = 40
    return args


def ensure_deepctr(no_install):
    """Installs deepctr and tf-keras into this interpreter if missing,
    without touching the installed TensorFlow."""
    missing = [
        dep
        for dep, module in zip(BENCHMARK_DEPS, ("deepctr", "tf_keras"))
        if importlib.util.find_spec(module) is None
    ]
    if not missing:
        return
    if no_install:
        raise SystemExit(
            f"missing benchmark dependencies {missing}; run "
            f'{sys.executable} -m pip install -e ".[benchmark]"'
        )
    from importlib.metadata import version

    before = version("tensorflow")
    print(f"installing {missing} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", *missing], check=True
    )
    after = version("tensorflow")
    if after != before:
        raise SystemExit(
            f"installing {missing} changed tensorflow {before} → {after}"
        )


def run_json(command, env=None):
    """Runs `command`; returns the JSON object on its last stdout line."""
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"{' '.join(command[:3])} ... failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if not args.skip_deepctr:
        ensure_deepctr(args.no_install)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    # Before any op runs; the worker processes get the same numbers.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    import keras
    import numpy as np

    import mmzoo
    from mmzoo.data import ctr, tabular
    from mmzoo.export import export_model
    from mmzoo.tasks import get_task
    from mmzoo.tasks.base import Prepared

    work = tempfile.mkdtemp(prefix="mmzoo-bench-deepfm-")
    load_before = os.getloadavg()[0]
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    # ---- data: what `task.prepare` does, at the benchmark's row count --
    started = time.perf_counter()
    task = get_task("deepfm")
    data = ctr.make_synthetic_ctr(num_examples=args.rows, seed=args.seed)
    assets = os.path.join(work, "preprocessing")
    features = tabular.fit_features(data, assets)
    config = mmzoo.get_config("deepfm", args.variant, features=features)
    prepared = Prepared(
        config, task.make_preprocessor(config, assets), data.splits, assets
    )
    # mmzoo's ids of every split (DeepCTR's inputs; mmzoo's "ids" run).
    arrays = {}
    for split in ("train", "test"):
        parts = []
        for raw, label in data.splits[split].batch(8192):
            ids = prepared.preprocessor(raw)
            parts.append(({k: v.numpy() for k, v in ids.items()}, label))
        for name in parts[0][0]:
            arrays[f"{split}/{name}"] = np.concatenate(
                [p[0][name] for p in parts]
            )
        arrays[f"{split}/label"] = np.concatenate([p[1] for p in parts])
    ids_path = os.path.join(work, "ids.npz")
    np.savez(ids_path, **arrays)
    num_train = len(arrays["train/label"])
    batch = args.batch_size
    steps = args.train_steps or 2 * (num_train // batch)
    log(
        f"data: {args.rows} rows ({num_train} train) prepared in "
        f"{time.perf_counter() - started:.1f}s; timing {steps} steps after "
        f"{args.warmup_steps} warm-up steps"
    )

    def timed_fit(model, dataset):
        marks = {}

        class Timer(keras.callbacks.Callback):
            # With `steps_per_execution` N, Keras reports every N-th step:
            # the clock starts at the first report after the warm-up.
            def on_train_batch_end(self, step, logs=None):
                if "start" not in marks and step >= args.warmup_steps - 1:
                    marks["start"] = time.perf_counter()
                    marks["first"] = step + 1

            def on_train_end(self, logs=None):
                marks["end"] = time.perf_counter()

        total = args.warmup_steps + steps
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=total,
            callbacks=[Timer()],
            shuffle=False,
            verbose=0,
        )
        seconds = marks["end"] - marks["start"]
        return (total - marks["first"]) * batch / seconds, seconds

    # ---- (a) mmzoo training: the tf.data pipeline from raw strings -----
    keras.utils.set_random_seed(args.seed)
    model = mmzoo.build("deepfm", config=config)
    task.compile(model, config)
    pipeline = task.pipeline(
        prepared, "train", batch, training=True, seed=args.seed
    ).repeat()
    mm_rate, mm_seconds = timed_fit(model, pipeline)
    log(f"mmzoo (tf.data from raw): {mm_rate:,.0f} examples/s")
    mm_eval = task.evaluate(model, prepared, "test", 1024)

    # ---- mmzoo training on pre-computed ids (the model alone) ----------
    keras.utils.set_random_seed(args.seed)
    ids_model = mmzoo.build("deepfm", config=config)
    task.compile(ids_model, config)
    names = [f.name for f in config.features]
    ids_data = (
        tf.data.Dataset.from_tensor_slices(
            (
                {n: arrays[f"train/{n}"] for n in names},
                arrays["train/label"],
            )
        )
        .shuffle(50_000, seed=args.seed)
        .repeat()
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    ids_rate, ids_seconds = timed_fit(ids_model, ids_data)
    log(f"mmzoo (pre-computed ids): {ids_rate:,.0f} examples/s")
    ids_eval = ids_model.evaluate(
        tf.data.Dataset.from_tensor_slices(
            ({n: arrays[f"test/{n}"] for n in names}, arrays["test/label"])
        ).batch(1024),
        return_dict=True,
        verbose=0,
    )
    del ids_model, ids_data

    # ---- (b) mmzoo export, served from raw values -----------------------
    export = export_model(
        model, task, config, prepared.preprocessor, os.path.join(work, "mm")
    )
    raw = task.raw_examples(prepared, "test", max(LATENCY_BATCH_SIZES))
    latency_inputs = {}
    for size in LATENCY_BATCH_SIZES:
        for name, values in raw.items():
            values = values[:size]
            if values.dtype == object:  # bytes; saved without pickle
                values = values.astype(bytes)
            latency_inputs[f"{size}/{name}"] = values
    mm_inputs = os.path.join(work, "mm_latency.npz")
    np.savez(mm_inputs, **latency_inputs)

    threads = [
        f"--intra-op-threads={args.threads}",
        f"--inter-op-threads={args.inter_op_threads}",
    ]
    latency_command = [
        sys.executable,
        WORKER,
        "latency",
        f"--calls={args.calls}",
        f"--warmup={args.latency_warmup}",
        *threads,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    mm_latency = run_json([*latency_command, export, mm_inputs], env=env)
    # The same trained model exported bare (Keras' `model.export`), called
    # with ids: separates the model's serving cost from preprocessing's.
    bare = os.path.join(work, "mm_ids_saved_model")
    model.export(bare, format="tf_saved_model", verbose=False)
    bare_inputs = os.path.join(work, "mm_ids_latency.npz")
    np.savez(
        bare_inputs,
        **{
            f"{size}/{n}": arrays[f"test/{n}"][:size]
            for size in LATENCY_BATCH_SIZES
            for n in names
        },
    )
    mm_ids_latency = run_json([*latency_command, bare, bare_inputs], env=env)
    results = {
        "mmzoo": {
            "train_examples_per_s": mm_rate,
            "train_seconds": mm_seconds,
            "train_examples_per_s_ids": ids_rate,
            "train_seconds_ids": ids_seconds,
            "parameters": int(model.count_params()),
            "test_auc": mm_eval["auc"],
            "test_logloss": mm_eval["logloss"],
            "test_auc_ids": float(ids_eval["auc"]),
            "serving": mm_latency,
            "serving_inputs": "raw strings and floats",
            "serving_ids": mm_ids_latency,
        }
    }

    # ---- DeepCTR, own processes -----------------------------------------
    if not args.skip_deepctr:
        dc_inputs = os.path.join(work, "dc_latency.npz")
        spec = {
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "vocabulary_size": f.vocabulary_size,
                    "max_length": f.max_length,
                    "mean": f.mean,
                    "std": f.std,
                }
                for f in config.features
            ],
            "embedding_dim": config.embedding_dim,
            "mlp_units": list(config.mlp_units),
            "batch_size": batch,
            "train_steps": steps,
            "warmup_steps": args.warmup_steps,
            "seed": args.seed,
            "intra_op_threads": args.threads,
            "inter_op_threads": args.inter_op_threads,
            "ids": ids_path,
            "export_dir": os.path.join(work, "deepctr_saved_model"),
            "latency_inputs": dc_inputs,
            "latency_batch_sizes": list(LATENCY_BATCH_SIZES),
        }
        spec_path = os.path.join(work, "deepctr_spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        legacy = dict(env, TF_USE_LEGACY_KERAS="1")
        dc = run_json([sys.executable, WORKER, "train", spec_path], legacy)
        log(f"DeepCTR (pre-computed ids): {dc['train_examples_per_s']:,.0f}")
        dc["serving"] = run_json(
            [*latency_command, spec["export_dir"], dc_inputs], env=env
        )
        dc["serving_inputs"] = "pre-computed ids"
        results["deepctr"] = dc
        spe = int(config.steps_per_execution)
        if spe > 1:
            # DeepCTR as shipped runs one step per call; the same setting
            # as mmzoo's config, for a like-for-like training loop.
            with open(spec_path, "w") as f:
                json.dump(
                    {**spec, "steps_per_execution": spe, "train_only": True},
                    f,
                )
            same = run_json(
                [sys.executable, WORKER, "train", spec_path], legacy
            )
            same["steps_per_execution"] = spe
            log(
                f"DeepCTR, steps_per_execution={spe}: "
                f"{same['train_examples_per_s']:,.0f}"
            )
            results["deepctr_same_steps_per_execution"] = same

    summary = {
        **run_header("deepfm", load_before),
        "settings": {
            "rows": args.rows,
            "train_rows": num_train,
            "variant": args.variant,
            "embedding_dim": config.embedding_dim,
            "mlp_units": list(config.mlp_units),
            "batch_size": batch,
            "steps_per_execution": int(config.steps_per_execution),
            "optimizer": config.optimizer,
            "warmup_steps": args.warmup_steps,
            "timed_steps": steps,
            "latency_calls": args.calls,
            "intra_op_threads": args.threads,
            "inter_op_threads": args.inter_op_threads,
            "features": {f.name: f.kind for f in config.features},
        },
        **results,
    }
    if args.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(table(summary))
    print(json.dumps(summary), flush=True)
    return 0


def table(summary):
    """Markdown table of the figures in `summary`."""
    s = summary["settings"]
    mm = summary["mmzoo"]
    dc = summary.get("deepctr")
    na = "n/a"

    def lat(serving, size, key):
        return f"{serving[str(size)][key]:.2f}" if serving else na

    def rate(result, key):
        return f"{result[key]:,.0f}" if result else na

    def auc(result, key):
        return f"{result[key]:.4f}" if result else na

    rows = [
        (
            "train examples/s (`model.fit`)",
            rate(mm, "train_examples_per_s"),
            rate(mm, "train_examples_per_s_ids"),
            rate(dc, "train_examples_per_s"),
        ),
        (
            "test AUC after the timed steps",
            auc(mm, "test_auc"),
            auc(mm, "test_auc_ids"),
            auc(dc, "test_auc"),
        ),
        (
            "parameters",
            rate(mm, "parameters"),
            rate(mm, "parameters"),
            rate(dc, "parameters"),
        ),
    ]
    for size in LATENCY_BATCH_SIZES:
        for key, label in (("median_ms", "median"), ("p90_ms", "p90")):
            rows.append(
                (
                    f"serving_default, batch {size}, {label} ms",
                    lat(mm["serving"], size, key),
                    lat(mm["serving_ids"], size, key),
                    lat(dc and dc["serving"], size, key),
                )
            )
    version = dc["deepctr_version"] if dc else ""
    header = (
        f"DeepFM, {s['rows']:,} synthetic rows ({s['train_rows']:,} train), "
        f"embedding {s['embedding_dim']}, MLP "
        f"{'-'.join(map(str, s['mlp_units']))}, batch {s['batch_size']}, "
        f"{s['timed_steps']} timed steps, {s['latency_calls']} calls, "
        f"{s['intra_op_threads']} intra / {s['inter_op_threads']} inter-op "
        f"threads, {summary['machine']['cpu_cores']} CPU cores, "
        f"TF {summary['machine']['tensorflow']}, 1-min load average "
        "{} → {}".format(*summary["machine"]["load_average_1m"])
    )
    lines = [
        header,
        "",
        f"| | mmzoo {mmzoo_version()}, raw values in | mmzoo, ids in "
        f"| DeepCTR {version}, ids in |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    same = summary.get("deepctr_same_steps_per_execution")
    lines.append(
        f"\nmmzoo trains with optimizer `{s['optimizer']}` "
        f"(`mmzoo.optimizers.Adam`) and steps_per_execution "
        f"{s['steps_per_execution']} (its config); DeepCTR as shipped "
        "(tf.keras Adam, one step per call)."
    )
    if dc:
        ratio = mm["train_examples_per_s_ids"] / dc["train_examples_per_s"]
        lines.append(f"mmzoo / DeepCTR training, ids in: {ratio:.2f}x")
    if same:
        ratio = mm["train_examples_per_s_ids"] / same["train_examples_per_s"]
        lines.append(
            f"DeepCTR with steps_per_execution {same['steps_per_execution']}"
            f": {same['train_examples_per_s']:,.0f} examples/s "
            f"(mmzoo / DeepCTR at the same setting: {ratio:.2f}x)"
        )
    lines.append(
        "\nraw values in: the tf.data pipeline (training) and the exported "
        "signature (serving) take raw strings and floats and preprocess "
        "them; ids in: mmzoo's ids, computed once beforehand (the mmzoo "
        "model exported bare with `model.export`)."
    )
    return "\n".join(lines)


def mmzoo_version():
    import mmzoo

    return mmzoo.__version__


if __name__ == "__main__":
    sys.exit(main())
