"""One contract every registered model meets (STYLE.md §8), through the
shipped harness `mmzoo.testing`.

Parametrized over `mmzoo.list_models()`, so a new model gets it for free:
the tiny variant on spec-derived dummy values (no dataset), one `fit`
step on the real tf.data pipeline, `.keras` save/load with every output
equal, a SavedModel export whose every signature gives the Python-side
outputs from raw inputs at batch 1 and 7, and a load in a process that
imports only TensorFlow. The same build/forward/fit under the JAX backend
is `test_contract_jax.py`, a file of its own so that the pytest-xdist
workers run the two side by side.
"""

import os

import numpy as np
import pytest

import mmzoo
from mmzoo import registry
from mmzoo.testing import check_model

MODELS = mmzoo.list_models()


@pytest.mark.parametrize("name", MODELS)
def test_contract(name, tmp_path):
    report = check_model(name, str(tmp_path))
    assert np.isfinite(report.loss)
    assert "serving_default" in report.signatures
    assert report.export.endswith(os.path.join(name, "1"))


def test_registry_entries_are_complete():
    for name in MODELS:
        entry = registry.get_entry(name)
        assert entry.description, name
        assert entry.datasets and entry.datasets[0] == "synthetic", name
        config = mmzoo.get_config(name, "tiny")
        specs = entry.inputs(config)
        assert specs and len({s.name for s in specs}) == len(specs), name
