"""One contract every registered model meets (STYLE.md §8).

Parametrized over `mmzoo.list_models()`, so a new model gets it for free:
build the tiny variant on its synthetic data, one `fit` step on the real
tf.data pipeline, `.keras` save/load with equal outputs, a SavedModel export
whose `serving_default` gives the Keras outputs from raw inputs at two batch
sizes, a load in a process that imports only TensorFlow, and the same
build/forward/fit under the JAX backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.export import export_model
from mmzoo.export.verify import verify
from tests.tiny import tiny_model

MODELS = mmzoo.list_models()


@pytest.fixture(scope="module", params=MODELS)
def trained(request, tmp_path_factory):
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    task, prepared, model, history = tiny_model(name, str(tmp), 4)
    return name, task, prepared, model, history, tmp


def _serve(task, model, prepared, raw):
    tensors = {k: tf.constant(v) for k, v in raw.items()}
    return {
        k: np.asarray(v)
        for k, v in task.serve(model, prepared.preprocessor, tensors).items()
    }


def _assert_outputs_equal(got, want):
    assert set(got) == set(want)
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        assert a.shape == b.shape, key
        if b.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_fit_step_gives_finite_loss(trained):
    _, _, _, _, history, _ = trained
    assert np.isfinite(history.history["loss"][0])


def test_inputs_and_outputs_are_named(trained):
    _, task, prepared, model, _, _ = trained
    assert all(not i.name.startswith("input_layer") for i in model.inputs)
    signature = task.serving_signature(prepared.config)
    assert signature and all(s.shape[0] is None for s in signature.values())


def test_keras_save_load_gives_equal_outputs(trained):
    name, task, prepared, model, _, tmp = trained
    path = str(tmp / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    inputs = prepared.preprocessor(
        {
            k: tf.constant(v)
            for k, v in task.raw_examples(prepared, "test", 3).items()
        }
    )
    _assert_outputs_equal(
        {"out": keras.tree.flatten(reloaded(inputs))[0]},
        {"out": keras.tree.flatten(model(inputs))[0]},
    )


def test_saved_model_serves_keras_outputs_from_raw_inputs(trained):
    name, task, prepared, model, _, tmp = trained
    raw = task.raw_examples(prepared, "test", 7)
    path = export_model(
        model,
        task,
        prepared.config,
        prepared.preprocessor,
        str(tmp / "export"),
        examples=raw,
    )
    assert path.endswith(os.path.join(name, "1"))
    loaded = tf.saved_model.load(path)
    serving = loaded.signatures["serving_default"]
    for size in (1, 7):
        batch = {k: v[:size] for k, v in raw.items()}
        served = serving(**{k: tf.constant(v) for k, v in batch.items()})
        served = {k: v.numpy() for k, v in served.items()}
        _assert_outputs_equal(served, _serve(task, model, prepared, batch))
    # A second export is a new version; the first is left alone.
    again = export_model(
        model, task, prepared.config, prepared.preprocessor, str(tmp / "export")
    )
    assert again.endswith(os.path.join(name, "2"))
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    with open(tmp / "export" / "models.config") as f:
        assert f'name: "{name}"' in f.read()
    # TF Serving's view: a process that imports only TensorFlow.
    report = verify(path)
    assert report.ok, report.table()
    assert report.examples == 7


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    import mmzoo
    from mmzoo.tasks import get_task
    name, assets = sys.argv[1], sys.argv[2]
    task = get_task(name)
    keras.utils.set_random_seed(0)
    config = mmzoo.get_config(name, "tiny", **task.contract_overrides)
    prepared = task.prepare(config, "synthetic", None, assets, 0)
    model = mmzoo.build(name, config=prepared.config)
    task.compile(model, prepared.config)
    x, y = next(iter(task.pipeline(prepared, "train", 4, training=True)))
    to_np = lambda t: keras.tree.map_structure(lambda v: np.asarray(v), t)
    x, y = to_np(x), to_np(y)
    out = keras.tree.flatten(model(x))[0]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "finite": bool(np.all(np.isfinite(np.asarray(out)))),
        "loss": float(history.history["loss"][0]),
    }))
    """
)


@pytest.mark.parametrize("name", MODELS)
def test_build_forward_fit_on_jax_backend(name, tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, name, str(tmp_path / "assets")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["finite"] and np.isfinite(result["loss"])
