"""One contract every registered model meets (STYLE.md §8), through the
shipped harness `mmzoo.testing`.

Parametrized over `mmzoo.list_models()`, so a new model gets it for free:
the tiny variant on spec-derived dummy values (no dataset), one `fit`
step on the real tf.data pipeline, `.keras` save/load with every output
equal, a SavedModel export whose every signature gives the Python-side
outputs from raw inputs at batch 1 and 7, and a load in a process that
imports only TensorFlow (one process for every model's export). The same
build/forward/fit under the JAX backend is `test_contract_jax.py`, a file
of its own so that the pytest-xdist workers run the two side by side.
"""

import os

import numpy as np
import pytest

import mmzoo
from mmzoo import registry
from mmzoo.export.verify import verify_exports
from mmzoo.testing import check_model

MODELS = mmzoo.list_models()


@pytest.fixture(scope="module")
def exports():
    """Model name -> its contract export, filled by `test_contract`."""
    return {}


@pytest.mark.parametrize("name", MODELS)
def test_contract(name, tmp_path, exports):
    report = check_model(name, str(tmp_path), verify_export=False)
    assert np.isfinite(report.loss)
    assert "serving_default" in report.signatures
    assert report.export.endswith(os.path.join(name, "1"))
    exports[name] = report.export


def test_every_export_loads_in_a_tensorflow_only_process(exports):
    # After the contract tests of this file (pytest runs a file's tests in
    # order): one fresh process checks every export (`verify_exports`), so
    # its TensorFlow start-up is paid once, not per model.
    if not exports:
        pytest.skip("no contract test ran")
    reports = verify_exports(list(exports.values()))
    failed = [report.table() for report in reports if not report.ok]
    assert not failed, "\n\n".join(failed)


def test_registry_entries_are_complete():
    for name in MODELS:
        entry = registry.get_entry(name)
        assert entry.description, name
        assert entry.datasets and entry.datasets[0] == "synthetic", name
        config = mmzoo.get_config(name, "tiny")
        specs = entry.inputs(config)
        assert specs and len({s.name for s in specs}) == len(specs), name
