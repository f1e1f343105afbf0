"""Train a registered model on a dataset, evaluate it and export it.

The one training loop behind `mmzoo train` and the main job; it holds no
per-model code (that lives in the model's task).
"""

import json
import os
import time

import keras

from mmzoo import registry
from mmzoo.training_config import build_for_data


def train(
    model_name,
    dataset="synthetic",
    data_dir=None,
    variant="base",
    epochs=None,
    batch_size=None,
    seed=0,
    overrides=None,
    logdir="logs",
    export_dir="export",
    steps_per_epoch=None,
    verbose="auto",
):
    """Fits `model_name` on `dataset`, evaluates, saves and exports it.

    Args:
        model_name: str. A registered model.
        dataset: str. A dataset name the model's task reads.
        data_dir: str or None. Where the dataset's files are.
        variant: str. Model variant. Defaults to `"base"`.
        epochs: int or None. Defaults to the config's `epochs` (set per
            variant).
        batch_size: int or None. Defaults to the config's `batch_size`.
        seed: int. Seeds weights, shuffling and the data split.
        overrides: dict of config overrides (strict).
        logdir: str. Run folders (TensorBoard logs, `model.keras`, config,
            preprocessing assets, `metrics.json` (the returned metrics),
            the task's text reports on the test split such as
            `classification_report.txt`) go to
            `logdir/<model>/<time>/`.
        export_dir: str or None. Export base folder; None skips the export.
        steps_per_epoch: int or None. Cap on training steps per epoch.
        verbose: Keras `fit` verbosity (progress bar by default).

    Returns:
        dict with `model`, `dataset`, `metrics` (`val`, `test`), `export`,
        `run_dir`, and the Keras model under `keras_model`.
    """
    task = registry.get_task(model_name)
    task.check_dataset(dataset, data_dir)
    overrides = dict(overrides or {})
    if epochs:
        overrides["epochs"] = epochs
    if batch_size:
        overrides["batch_size"] = batch_size
    keras.utils.set_random_seed(seed)
    config = registry.get_config(model_name, variant, **overrides)
    run_dir = os.path.join(
        logdir, model_name, time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    )
    assets_dir = os.path.join(run_dir, "preprocessing")
    prepared = task.prepare(config, dataset, data_dir, assets_dir, seed)
    config = prepared.config
    model = registry.build(model_name, config=config)
    task.compile(model, config)
    epochs = config.epochs
    batch_size = config.batch_size
    train_data = task.pipeline(
        prepared, "train", batch_size, training=True, seed=seed
    )
    if steps_per_epoch:
        train_data = train_data.repeat()
    build_for_data(model, train_data)
    model.fit(
        train_data,
        validation_data=task.pipeline(prepared, "val", batch_size),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,
        callbacks=[keras.callbacks.TensorBoard(run_dir)],
        verbose=verbose,
    )
    metrics = {
        split: task.evaluate(model, prepared, split, batch_size)
        for split in ("val", "test")
    }
    examples = task.raw_examples(prepared, "test", 8)
    save_run(run_dir, model_name, model, config, examples)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    for filename, text in task.reports(model, prepared, "test").items():
        with open(os.path.join(run_dir, filename), "w") as f:
            f.write(text)
    export_path = None
    if export_dir:
        from mmzoo.export import export_model

        export_path = export_model(
            model,
            task,
            config,
            prepared.preprocessor,
            export_dir,
            examples=examples,
        )
    return {
        "model": model_name,
        "dataset": dataset,
        "metrics": metrics,
        "export": export_path,
        "run_dir": run_dir,
        "keras_model": model,
        "prepared": prepared,
    }


def save_run(run_dir, model_name, model, config, examples):
    """Saves what `mmzoo export RUN_DIR` needs to re-export a model."""
    import numpy as np

    from mmzoo.export.saved_model import config_to_dict
    from mmzoo.export.verify import encode_arrays

    os.makedirs(run_dir, exist_ok=True)
    np.savez(os.path.join(run_dir, "examples.npz"), **encode_arrays(examples))
    model.save(os.path.join(run_dir, "model.keras"))
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump({"model": model_name, "config": config_to_dict(config)}, f)


def load_run(run_dir):
    """Loads a run folder of `train`: returns (model name, model, config,
    preprocessor, examples)."""
    import numpy as np

    from mmzoo.export.verify import decode_arrays

    with open(os.path.join(run_dir, "run.json")) as f:
        run = json.load(f)
    name = run["model"]
    config = registry.config_from_dict(name, run["config"])
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    preprocessor = registry.get_task(name).make_preprocessor(
        config, os.path.join(run_dir, "preprocessing")
    )
    with np.load(os.path.join(run_dir, "examples.npz")) as data:
        examples = decode_arrays(data)
    return name, model, config, preprocessor, examples
