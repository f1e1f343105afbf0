"""Mixed precision (`dtype_policy`) on every registered model.

`mmzoo.build(name, variant, dtype_policy="mixed_bfloat16")` builds under
that Keras global policy and restores the previous one (`mmzoo.registry`).
Every model, on its tiny variant and the `dummy` dataset: builds with its
compute-heavy layers in bfloat16, float32 weights and float32 outputs,
trains a finite `fit` step, and keeps each layer's policy through a
`.keras` save and load. For representative models: `mixed_float16`
compiles with a `LossScaleOptimizer` (also after a reload) and trains a
finite step; a mixed model's outputs stay close to the same weights run in
float32; raw numbers (numeric features, log-mel, sensor readings) are
standardized in float32; an export of a mixed captioner (beam and greedy
decoding loops) serves float32 and replays its recorded examples (what
`mmzoo verify` checks) exactly.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import registry
from mmzoo.encoders.sensor import build_sensor_encoder
from mmzoo.export import export_model
from mmzoo.export.saved_model import float32_outputs
from mmzoo.export.verify import read_examples
from mmzoo.specs import SensorSpec
from mmzoo.testing import prepare_model
from mmzoo.training_config import DTYPE_POLICIES, build_for_data

MODELS = mmzoo.list_models()
BFLOAT16 = "mixed_bfloat16"
FLOAT16 = "mixed_float16"
# Layers that carry the arithmetic; most of them must run in 16 bits.
HEAVY = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.LSTMCell,
    keras.layers.GRUCell,
)


def _layers(model):
    # Every layer, nested models' and custom layers' sublayers included
    # (a decoder's LSTM cell); Keras has no public walk for them.
    return list(model._flatten_layers(include_self=False, recursive=True))


def _policies(model):
    """Sorted `(layer class, policy)` of the layers that compute (inputs
    and nested models take the global policy at load, and compute
    nothing; auto-named sublayers get new names)."""
    return sorted(
        (type(x).__name__, x.dtype_policy.name)
        for x in _layers(model)
        if not isinstance(x, keras.layers.InputLayer | keras.Model)
    )


def _as_dict(outputs):
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    return {"output": np.asarray(outputs)}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """`mixed(name)` -> `(task, prepared, model, loss)`: the tiny model
    under `mixed_bfloat16` after one `fit` step, made on first use."""
    cache = {}

    def get(name):
        if name not in cache:
            directory = str(tmp_path_factory.mktemp(f"mixed-{name}"))
            task, prepared, model, history = prepare_model(
                name, directory, fit_batch_size=4, dtype_policy=BFLOAT16
            )
            cache[name] = (task, prepared, model, history.history["loss"][0])
        return cache[name]

    return get


def _test_batch(task, prepared, size=4):
    inputs, _ = next(iter(task.pipeline(prepared, "test", size)))
    return inputs


@pytest.mark.parametrize("name", MODELS)
def test_mixed_bfloat16_builds_trains_and_reloads(name, mixed, tmp_path):
    task, prepared, model, loss = mixed(name)
    assert keras.config.dtype_policy().name == "float32"
    assert prepared.config.dtype_policy == BFLOAT16
    assert np.isfinite(loss), f"{name}: the fit step's loss is {loss}"

    layers = _layers(model)
    heavy = [layer for layer in layers if isinstance(layer, HEAVY)]
    half = [layer for layer in heavy if layer.compute_dtype == "bfloat16"]
    assert heavy and len(half) * 2 >= len(heavy), (
        f"{name}: {len(half)} of {len(heavy)} Dense/Conv/RNN layers compute "
        "in bfloat16"
    )
    assert {v.dtype for v in model.weights} == {"float32"}
    assert {t.dtype for t in model.outputs} == {"float32"}, {
        t.name: t.dtype for t in model.outputs
    }
    inputs = _test_batch(task, prepared)
    before = _as_dict(model(inputs, training=False))
    for key, value in before.items():
        assert value.dtype == np.float32, (key, value.dtype)
        assert np.all(np.isfinite(value)), key

    # A `.keras` reload under the float32 global policy keeps every layer's
    # policy (`mmzoo export RUN_DIR` reloads models so) and the outputs.
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert _policies(reloaded) == _policies(model)
    after = _as_dict(reloaded(inputs, training=False))
    for key, value in before.items():
        np.testing.assert_allclose(after[key], value, atol=1e-5, err_msg=key)


@pytest.mark.parametrize(
    "name, output, atol",
    [
        ("deepfm", None, 5e-2),
        ("lstnet_diagnosis", "probabilities", 5e-2),
        # Next-token probabilities of the captioner's float32 logits.
        ("vit_lstm_captioner", None, 5e-2),
    ],
)
def test_mixed_outputs_close_to_float32(name, output, atol, mixed):
    task, prepared, model, _ = mixed(name)
    config = dataclasses.replace(prepared.config, dtype_policy="float32")
    full = registry.build(name, config=config)
    assert {x.compute_dtype for x in _layers(full)} == {"float32"}
    full.set_weights(model.get_weights())
    inputs = _test_batch(task, prepared)
    got = _as_dict(model(inputs, training=False))
    want = _as_dict(full(inputs, training=False))
    key = output or next(iter(want))
    got, want = got[key], want[key]
    if task.entry.problem == "captioning":
        got, want = (np.asarray(tf.nn.softmax(x)) for x in (got, want))
    assert np.abs(got - want).max() > 0, f"{name}: no bfloat16 arithmetic"
    np.testing.assert_allclose(got, want, atol=atol, rtol=0)


@pytest.mark.parametrize("name", ["deepfm", "vit_lstm_captioner"])
def test_mixed_float16_scales_the_loss(name, tmp_path):
    task, prepared, model, _ = prepare_model(
        name, str(tmp_path), dtype_policy=FLOAT16
    )
    assert keras.config.dtype_policy().name == "float32"
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    # `compile_model` builds the optimizer's variables before the first
    # trace (its slots and the loss scale), so the step creates none.
    assert optimizer.built and optimizer.inner_optimizer.built
    variables = len(optimizer.variables)
    assert variables > 2
    heavy = [x for x in _layers(model) if isinstance(x, HEAVY)]
    assert any(x.compute_dtype == "float16" for x in heavy)
    batch = next(iter(task.pipeline(prepared, "train", 4, training=True)))
    dataset = tf.data.Dataset.from_tensors(batch)
    build_for_data(model, dataset)
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert len(optimizer.variables) == variables
    assert len(traces) == 1, "the train step was traced again"
    assert np.isfinite(float(optimizer.dynamic_scale))
    assert {v.dtype for v in model.weights} == {"float32"}
    assert {t.dtype for t in model.outputs} == {"float32"}

    # A reloaded model's own policy is the global one at load (float32);
    # compiling it with its config still scales the loss.
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    task.compile(reloaded, prepared.config)
    assert isinstance(reloaded.optimizer, keras.optimizers.LossScaleOptimizer)


def test_raw_numbers_stay_float32(mixed):
    # Numeric features, the audio log-mel front end and sensor readings
    # are standardized in float32 (bfloat16 holds 1000.3 as 1000).
    layers = _layers(mixed("deepfm")[2]) + _layers(mixed("av_monitor")[2])
    float32 = {type(x).__name__ for x in layers if x.compute_dtype == "float32"}
    assert {"NumericEmbedding", "MelSpectrogram", "Decibels"} <= float32
    keras.config.set_dtype_policy(BFLOAT16)
    try:
        encoder = build_sensor_encoder(
            SensorSpec(dimension=1, mean=(1000.0,), std=(0.5,)), units=4
        )
    finally:
        keras.config.set_dtype_policy("float32")
    assert encoder.get_layer("dense_0").compute_dtype == "bfloat16"
    scaled = encoder.get_layer("standardize")(np.array([[1000.3]], "float32"))
    np.testing.assert_allclose(np.asarray(scaled), [[0.6]], atol=1e-3)


def test_mixed_export_serves_float32(mixed, tmp_path):
    # The captioner's signatures run greedy and beam-search decoding
    # (`keras.ops.while_loop`) over bfloat16 states and float32 scores.
    name = "vit_lstm_captioner"
    task, prepared, model, _ = mixed(name)
    config = prepared.config
    raw = task.raw_examples(prepared, "test", 4)
    version = export_model(
        model,
        task,
        config,
        prepared.preprocessor,
        str(tmp_path / "export"),
        examples=raw,
    )
    loaded = tf.saved_model.load(version)
    # What `mmzoo verify` replays: the exported functions' own outputs
    # (eager runs round differently in 16 bits), so they replay exactly.
    recorded = read_examples(version)
    assert {"serving_default", "greedy"} <= set(recorded)
    for key, (inputs, outputs) in recorded.items():
        served = loaded.signatures[key](
            **{k: tf.constant(v) for k, v in inputs.items()}
        )
        floating = [k for k, v in served.items() if v.dtype.is_floating]
        assert floating, f"{key}: no floating outputs"
        for output in floating:
            value = served[output]
            assert value.dtype == tf.float32, (key, output, value.dtype)
            assert np.all(np.isfinite(value.numpy())), (key, output)
        for output, want in outputs.items():
            np.testing.assert_array_equal(served[output].numpy(), want)


def test_export_casts_half_precision_outputs():
    outputs = float32_outputs(
        {
            "half": tf.constant([0.5], tf.bfloat16),
            "float16": tf.constant([0.5], tf.float16),
            "ids": tf.constant([3], tf.int32),
            "text": tf.constant(["a"]),
        }
    )
    assert {k: v.dtype for k, v in outputs.items()} == {
        "half": tf.float32,
        "float16": tf.float32,
        "ids": tf.int32,
        "text": tf.string,
    }


def test_unknown_policy_lists_the_valid_ones():
    assert DTYPE_POLICIES == ("float32", "mixed_bfloat16", "mixed_float16")
    message = (
        "unknown dtype_policy 'bfloat16'; valid: float32, mixed_bfloat16, "
        "mixed_float16"
    )
    with pytest.raises(ValueError, match=message):
        mmzoo.build("deepfm", "tiny", dtype_policy="bfloat16")


def test_build_restores_the_global_policy(monkeypatch):
    # A float32 config builds float32 layers under another global policy,
    # which is back afterwards.
    keras.config.set_dtype_policy(FLOAT16)
    try:
        model = mmzoo.build("deepfm", "tiny")
        assert keras.config.dtype_policy().name == FLOAT16
    finally:
        keras.config.set_dtype_policy("float32")
    assert {x.compute_dtype for x in _layers(model)} == {"float32"}

    # A builder that fails leaves the policy as it found it.
    entry = registry.get_entry("deepfm")

    def failing(config):
        assert keras.config.dtype_policy().name == BFLOAT16
        raise RuntimeError("builder failed")

    monkeypatch.setitem(
        registry._MODELS, "deepfm", dataclasses.replace(entry, builder=failing)
    )
    with pytest.raises(RuntimeError, match="builder failed"):
        mmzoo.build("deepfm", "tiny", dtype_policy=BFLOAT16)
    assert keras.config.dtype_policy().name == "float32"
