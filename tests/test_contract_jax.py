"""Every registered model builds, runs forward and fits one step under the
JAX backend (STYLE.md §8: model code uses `keras.ops` only), plus a few
configurations the registered defaults do not reach, in one JAX process
for all: its start-up (importing JAX, Keras and TensorFlow for tf.data)
is paid once.
"""

import json
import textwrap

import numpy as np
import pytest

import mmzoo
from tests.jax_backend import run_on_jax

MODELS = mmzoo.list_models()


# Every registered model as registered, plus configurations whose layers
# the defaults do not reach: (case id, model, config overrides).
CASES = [(name, name, {}) for name in MODELS] + [
    (
        "lstnet_diagnosis-late-gmu",
        "lstnet_diagnosis",
        {
            "fusion": "gmu",
            "fusion_level": "late",
            "modality_dropout": 0.3,
            "text_encoder": "bilstm",
            "reconstruction_weight": 0.5,
        },
    ),
]

JAX_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import keras, numpy as np
    from mmzoo.testing import prepare_model
    directory, cases = sys.argv[1], json.loads(sys.argv[2])
    results = {}
    for case, name, overrides in cases:
        task, prepared, model, _ = prepare_model(
            name, os.path.join(directory, case), **overrides
        )
        x, y = next(iter(task.pipeline(prepared, "train", 4, training=True)))
        to_np = lambda t: keras.tree.map_structure(lambda v: np.asarray(v), t)
        x, y = to_np(x), to_np(y)
        outputs = keras.tree.flatten(model.predict_on_batch(x))
        history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        finite = [bool(np.isfinite(np.asarray(o)).all()) for o in outputs]
        results[case] = {
            "finite": all(finite),
            "loss": float(history.history["loss"][0]),
        }
    print(json.dumps({"backend": keras.backend.backend(), "models": results}))
    """
)


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory):
    # One JAX process for every model: its start-up (importing JAX, Keras
    # and TensorFlow for tf.data) is paid once.
    directory = str(tmp_path_factory.mktemp("jax"))
    stdout = run_on_jax(JAX_SCRIPT, directory, json.dumps(CASES), timeout=1200)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    return result["models"]


@pytest.mark.parametrize("case", [case for case, _, _ in CASES])
def test_build_forward_fit_on_jax_backend(case, jax_results):
    result = jax_results[case]
    assert result["finite"] and np.isfinite(result["loss"])
