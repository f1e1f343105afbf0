"""Does XLA (`jit_compile=True`) speed up DeepFM training on this machine?

Trains mmzoo's DeepFM `base` on cached, preprocessed batches of the
synthetic CTR data with `jit_compile` off and on, and prints a table and
one JSON line. The export never uses XLA (TF Serving runs without it); this
only decides the training default.

    .venv/bin/python benchmarks/deepfm_jit.py [--steps 400] [--threads 2]
"""

import argparse
import json
import os
import tempfile
import time

import keras
import tensorflow as tf

import mmzoo
from mmzoo.tasks import get_task


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    task = get_task("deepfm")
    with tempfile.TemporaryDirectory() as directory:
        prepared = task.prepare(
            mmzoo.get_config("deepfm", "base"), "synthetic", None, directory, 0
        )
        data = task.pipeline(prepared, "train", args.batch_size, training=True)
        data = data.cache().repeat()
        results = {}
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            model = mmzoo.build("deepfm", config=prepared.config)
            task.compile(model, prepared.config)
            model.compile(
                optimizer=model.optimizer,
                loss=model.loss,
                metrics=["auc"],
                jit_compile=jit,
            )
            model.fit(data, steps_per_epoch=20, epochs=1, verbose=0)
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            seconds = time.perf_counter() - start
            results[f"jit_{str(jit).lower()}"] = (
                args.steps * args.batch_size / seconds
            )
    print("| jit_compile | train examples/s |")
    print("| --- | ---: |")
    for key, value in results.items():
        print(f"| {key[4:]} | {value:,.0f} |")
    print(
        json.dumps(
            {
                "benchmark": "deepfm_jit",
                "steps": args.steps,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "examples_per_s": results,
                "load_average_1m": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
