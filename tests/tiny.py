"""The setup many tests share: a registered model's tiny variant on its
synthetic data, optionally fitted one step, and its export (a thin layer
over the shipped harness, `mmzoo.testing`)."""

import os

from mmzoo.export import export_model
from mmzoo.testing import prepare_model


def tiny_model(name, directory, fit_batch_size=None, seed=0, **overrides):
    """Returns `(task, prepared, model, history)` for model `name` on its
    `synthetic` dataset (see `mmzoo.testing.prepare_model`)."""
    return prepare_model(
        name,
        directory,
        dataset="synthetic",
        fit_batch_size=fit_batch_size,
        seed=seed,
        **overrides,
    )


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
