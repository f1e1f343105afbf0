"""Every registered model builds, runs forward and fits one step under the
JAX backend (STYLE.md §8: model code uses `keras.ops` only), in one JAX
process for all models: its start-up (importing JAX, Keras and TensorFlow
for tf.data) is paid once.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mmzoo

MODELS = mmzoo.list_models()


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


@pytest.mark.parametrize("name", MODELS)
def test_build_forward_fit_on_jax_backend(name, jax_results):
    result = jax_results[name]
    assert result["finite"] and np.isfinite(result["loss"])
