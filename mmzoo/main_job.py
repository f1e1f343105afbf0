"""The main job: train every registered model on its synthetic data,
export it for serving, verify the export and print a summary table."""

import json
import time

from mmzoo import registry


def run_main_job(export_dir="export", logdir="logs", seed=0, models=None):
    """Runs the main job; returns 0 when every export verifies.

    Every model trains its `tiny` variant, whose training settings
    (epochs, batch size, learning rate) are sized to finish on 2 CPU cores
    within minutes.
    """
    from mmzoo.export.verify import verify_exports
    from mmzoo.training import train

    rows = []
    for name in models or registry.list_models():
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
        metric, value = next(iter(result["metrics"]["test"].items()))
        for key in task.headline_metrics:
            if key in result["metrics"]["test"]:
                metric, value = key, result["metrics"]["test"][key]
                break
        rows.append(
            {
                "model": name,
                "dataset": "synthetic",
                "metric": metric,
                "value": value,
                "export": result["export"],
                "seconds": round(time.time() - start, 1),
            }
        )
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
    header = (
        f"{'model':<{width}} {'dataset':<10} {'test metric':<22} "
        f"{'verified':<9} "
    )
    print(header + f"{'time':>7}  export")
    for row in rows:
        metric = f"{row['metric']}={row['value']:.4f}"
        print(
            f"{row['model']:<{width}} {row['dataset']:<10} {metric:<22} "
            f"{'yes' if row['verified'] else 'NO':<9} {row['seconds']:>6}s  "
            f"{row['export']}"
        )
    print(json.dumps({"main_job": rows}))
    return 0 if all(row["verified"] for row in rows) else 1
