"""One contract every registered model meets (STYLE.md §8), through the
shipped harness `mmzoo.testing`.

Parametrized over `mmzoo.list_models()`, so a new model gets it for free:
the tiny variant on spec-derived dummy values (no dataset), one `fit`
step on the real tf.data pipeline, `.keras` save/load with every output
equal, a SavedModel export whose every signature gives the Python-side
outputs from raw inputs at batch 1 and 7, a load in a process that imports
only TensorFlow, and the same build/forward/fit under the JAX backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mmzoo
from mmzoo import registry
from mmzoo.testing import check_model

# Each test stands alone (tests/conftest.py): spread them over the
# pytest-xdist workers.
XDIST_SPREAD = True

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


JAX_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import keras, numpy as np
    from mmzoo.testing import prepare_model
    directory, names = sys.argv[1], sys.argv[2:]
    results = {}
    for name in names:
        task, prepared, model, _ = prepare_model(
            name, os.path.join(directory, name)
        )
        x, y = next(iter(task.pipeline(prepared, "train", 4, training=True)))
        to_np = lambda t: keras.tree.map_structure(lambda v: np.asarray(v), t)
        x, y = to_np(x), to_np(y)
        out = keras.tree.flatten(model(x))[0]
        history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        results[name] = {
            "finite": bool(np.all(np.isfinite(np.asarray(out)))),
            "loss": float(history.history["loss"][0]),
        }
    print(json.dumps({"backend": keras.backend.backend(), "models": results}))
    """
)


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory):
    # One JAX process for every model: its start-up (importing JAX, Keras
    # and TensorFlow for tf.data) is paid once.
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    directory = str(tmp_path_factory.mktemp("jax"))
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, directory, *MODELS],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    return result["models"]


@pytest.mark.xdist_group("jax-contract")  # one JAX process for all
@pytest.mark.parametrize("name", MODELS)
def test_build_forward_fit_on_jax_backend(name, jax_results):
    result = jax_results[name]
    assert result["finite"] and np.isfinite(result["loss"])
