"""The setup many tests share: a registered model's tiny variant on its
synthetic data, optionally fitted one step, and its export."""

import os

import keras
import tensorflow as tf

import mmzoo
from mmzoo.export import export_model
from mmzoo.tasks import get_task


def tiny_model(name, directory, fit_batch_size=None, seed=0, **overrides):
    """Returns `(task, prepared, model, history)` for model `name`.

    The tiny variant with the task's `contract_overrides` (and
    `overrides`), prepared on `synthetic` data under `directory`, compiled;
    with `fit_batch_size`, fitted one step on one training batch (`history`
    is None otherwise).
    """
    task = get_task(name)
    keras.utils.set_random_seed(seed)
    config = mmzoo.get_config(
        name, "tiny", **{**task.contract_overrides, **overrides}
    )
    prepared = task.prepare(
        config, "synthetic", None, os.path.join(directory, "assets"), seed
    )
    model = mmzoo.build(name, config=prepared.config)
    task.compile(model, prepared.config)
    history = None
    if fit_batch_size:
        batch = next(
            iter(
                task.pipeline(prepared, "train", fit_batch_size, training=True)
            )
        )
        history = model.fit(
            tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0
        )
    return task, prepared, model, history


def export_tiny(task, prepared, model, directory, examples=None):
    """Exports to `directory/export/<model>/<version>/`; returns the path."""
    return export_model(
        model,
        task,
        prepared.config,
        prepared.preprocessor,
        os.path.join(directory, "export"),
        examples=examples,
    )
