"""Where a DeepFM training step's time goes, on this machine.

Times mmzoo's DeepFM (`base` by default) on preprocessed batches of the
synthetic CTR data, each part as its own compiled function over the same
batches: the forward pass, forward + backward (gradients), a whole step
with Keras's `keras.optimizers.Adam` and with `mmzoo.optimizers.Adam`
(fused kernel per variable; `lazy` row-sparse), then `model.fit` per step
with `steps_per_execution` 1 and the config's. The differences are the
parts: backward = (forward+backward) − forward, optimizer = step −
(forward+backward), Keras's loop = fit − step.

    .venv/bin/python benchmarks/deepfm_profile.py [--variant base]
        [--batch-size 256] [--steps 300] [--repeats 3]

Prints a table (best of the repeats, ms per step) and ONE JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="base")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]

    import keras
    import tensorflow as tf
    from _machine import run_header

    import mmzoo
    from mmzoo.optimizers import Adam
    from mmzoo.registry import get_task

    task = get_task("deepfm")
    config = mmzoo.get_config("deepfm", args.variant)
    prepared = task.prepare(config, "synthetic", None, tempfile.mkdtemp(), 0)
    config = prepared.config
    batches = list(
        task.pipeline(prepared, "train", args.batch_size, training=True).take(
            50
        )
    )
    data = tf.data.Dataset.from_tensors(batches[0]).repeat()
    loss_fn = keras.losses.BinaryCrossentropy()

    def fresh(optimizer=None):
        keras.utils.set_random_seed(0)
        model = mmzoo.build("deepfm", config=config)
        if optimizer is not None:
            optimizer.build(model.trainable_variables)
        return model

    def forward(model):
        return tf.function(lambda x, y: loss_fn(y, model(x, training=True)))

    def gradients(model):
        def run(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            return tape.gradient(loss, model.trainable_variables)

        return tf.function(run)

    def step(model, optimizer):
        def run(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        return tf.function(run)

    def time_function(function):
        for x, y in batches[:5]:
            function(x, y)
        start = time.perf_counter()
        for i in range(args.steps):
            x, y = batches[i % len(batches)]
            result = function(x, y)
        for value in tf.nest.flatten(result, expand_composites=True):
            value.numpy()  # wait for the last step
        return (time.perf_counter() - start) / args.steps * 1e3

    def time_fit(steps_per_execution):
        model = fresh()
        task.compile(model, config)
        model.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            steps_per_execution=steps_per_execution,
        )
        model.fit(data, steps_per_epoch=64, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return (time.perf_counter() - start) / args.steps * 1e3

    parts = {
        "forward": lambda: forward(fresh()),
        "forward + backward": lambda: gradients(fresh()),
        "step, keras Adam": lambda: step(
            fresh(opt := keras.optimizers.Adam(1e-3)), opt
        ),
        "step, mmzoo Adam (fused)": lambda: step(fresh(opt := Adam(1e-3)), opt),
        "step, mmzoo Adam (lazy)": lambda: step(
            fresh(opt := Adam(1e-3, lazy=True)), opt
        ),
    }
    spe = int(config.steps_per_execution)
    results = {}
    for _ in range(args.repeats):
        for name, make in parts.items():
            ms = time_function(make())
            results[name] = min(results.get(name, ms), ms)
        for value in sorted({1, spe}):
            name = f"fit, steps_per_execution {value} (config's Adam)"
            ms = time_fit(value)
            results[name] = min(results.get(name, ms), ms)
    print(
        f"DeepFM {args.variant}, batch {args.batch_size}, "
        f"{len(prepared.config.features)} features, "
        f"{sum(v.shape.num_elements() for v in fresh().trainable_variables):,}"
        f" parameters in {len(fresh().trainable_variables)} variables; best "
        f"of {args.repeats} × {args.steps} steps\n"
    )
    print("| part | ms / step | examples/s |")
    print("| --- | ---: | ---: |")
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} | {args.batch_size / ms * 1e3:,.0f} |")
    print(
        json.dumps(
            {
                **run_header("deepfm_profile", load_before),
                "variant": args.variant,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "ms_per_step": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
