"""The main job: train every registered model on its synthetic data,
export it for serving, verify the export and print a summary table."""

import concurrent.futures
import json
import multiprocessing
import os
import time

from mmzoo import registry


def _train_one(name, export_dir, logdir, seed):
    """Trains, evaluates and exports one model; returns its summary row
    (plain values: it crosses a process boundary)."""
    from mmzoo.training import train

    task = registry.get_task(name)
    start = time.time()
    result = train(
        name,
        dataset="synthetic",
        variant="tiny",
        seed=seed,
        logdir=logdir,
        export_dir=export_dir,
        verbose=2,
    )
    test = result["metrics"]["test"]
    metric = next(
        (key for key in task.headline_metrics if key in test), next(iter(test))
    )
    return {
        "model": name,
        "dataset": "synthetic",
        "metric": metric,
        "value": float(test[metric]),
        "export": result["export"],
        "seconds": round(time.time() - start, 1),
    }


def default_jobs():
    """Models trained at once: one per 2 CPU cores would leave cores idle
    (a tiny model's training is mostly single-threaded tracing and small
    ops), so one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def run_main_job(
    export_dir="export", logdir="logs", seed=0, models=None, jobs=None
):
    """Runs the main job; returns 0 when every export verifies.

    Every model trains its `tiny` variant, whose training settings
    (epochs, batch size, learning rate) are sized to finish on 2 CPU cores
    within minutes. `jobs` models train at once, each in a process of its
    own (default `default_jobs()`; 1 trains them one after the other in
    this process). Their Keras logs interleave; the table at the end is
    in model order.
    """
    from mmzoo.export.verify import verify_exports

    names = list(models or registry.list_models())
    jobs = min(jobs or default_jobs(), len(names))
    if jobs <= 1:
        rows = [_train_one(n, export_dir, logdir, seed) for n in names]
    else:
        # Spawned, not forked: TensorFlow's runtime does not survive a fork.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=context
        ) as pool:
            futures = [
                pool.submit(_train_one, n, export_dir, logdir, seed)
                for n in names
            ]
            rows = [future.result() for future in futures]
    # One fresh TensorFlow process checks every export (its start is paid
    # once, not per model).
    start = time.time()
    reports = verify_exports([row["export"] for row in rows])
    for row, report in zip(rows, reports):
        print(report.table(), flush=True)
        row["verified"] = report.ok
    print(f"verified {len(rows)} exports in {time.time() - start:.1f}s")
    print()
    width = max([len("model")] + [len(row["model"]) for row in rows])
    metrics = [f"{row['metric']}={row['value']:.4f}" for row in rows]
    # As wide as the longest metric ("text_to_image_recall@5=0.9804").
    metric_width = max([len("test metric")] + [len(m) for m in metrics])
    header = (
        f"{'model':<{width}} {'dataset':<10} {'test metric':<{metric_width}} "
        f"{'verified':<9} "
    )
    print(header + f"{'time':>7}  export")
    for row, metric in zip(rows, metrics):
        print(
            f"{row['model']:<{width}} {row['dataset']:<10} "
            f"{metric:<{metric_width}} "
            f"{'yes' if row['verified'] else 'NO':<9} {row['seconds']:>6}s  "
            f"{row['export']}"
        )
    print(json.dumps({"main_job": rows}))
    return 0 if all(row["verified"] for row in rows) else 1
