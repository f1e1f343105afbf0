"""Contract tests run on every fusion method, plus fusion.py specifics."""

import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.layers import (
    FUSION_METHODS,
    SEQUENCE_FUSIONS,
    WEIGHTED_FUSIONS,
    ConcatFusion,
    GatedFusion,
    LowRankFusion,
    get_fusion,
)
from tests.jax_backend import run_on_jax

BATCH = 4
KWARGS = {
    "concat": {},
    "attention": {"units": 6},
    "attention_pooling": {"units": 3},
    "max_alignment": {"units": 6},
    "product": {"units": 6},
    "weighted_alignment": {"units": 6},
    "adversarial_alignment": {"units": 6},
    "cross_attention": {"num_heads": 2, "key_dim": 3},
    "gmu": {"units": 6},
    "lmf": {"units": 6, "rank": 3},
}
# Output width per method for the inputs made by `make_inputs`.
WIDTHS = {
    "concat": 9,
    "attention_pooling": 4,
    "cross_attention": 9,
}


def make_inputs(name, seed=0, batch=BATCH):
    """Two modalities: widths 4 and 5 (same width 4 for attention pooling)."""
    rng = np.random.default_rng(seed)
    if name in SEQUENCE_FUSIONS:
        shapes = [(batch, 3, 4), (batch, 2, 5)]
    elif name == "attention_pooling":
        shapes = [(batch, 4), (batch, 4)]
    else:
        shapes = [(batch, 4), (batch, 5)]
    return [rng.normal(size=shape).astype("float32") for shape in shapes]


def make_layer(name, **overrides):
    keras.utils.set_random_seed(1)
    return get_fusion(name, **{**KWARGS[name], **overrides})


def fused(outputs):
    return np.asarray(outputs[0] if isinstance(outputs, tuple) else outputs)


def test_fusion_method_names():
    assert FUSION_METHODS == tuple(KWARGS)
    assert set(SEQUENCE_FUSIONS) <= set(FUSION_METHODS)
    assert set(WEIGHTED_FUSIONS) <= set(FUSION_METHODS)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_output_shape(name):
    layer = make_layer(name)
    out = layer(make_inputs(name))
    assert tuple(out.shape) == (BATCH, WIDTHS.get(name, 6))


@pytest.mark.parametrize("name", WEIGHTED_FUSIONS)
def test_return_weights(name):
    layer = make_layer(name, return_weights=True)
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    out, weights = layer(make_inputs(name), modality_mask=mask)
    weights = np.asarray(weights)
    assert tuple(out.shape) == (BATCH, WIDTHS.get(name, 6))
    assert weights.shape == (BATCH, 2)
    assert np.all(weights[mask == 0] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_masked_modality_values_change_nothing(name):
    layer = make_layer(name)
    inputs = make_inputs(name)
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 0]], "float32")
    before = fused(layer(inputs, modality_mask=mask))
    changed = [x.copy() for x in inputs]
    changed[1][1] = 100.0
    changed[1][3] = np.nan
    changed[0][2] = -7.0
    after = fused(layer(changed, modality_mask=mask))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    # Present modalities do matter.
    changed[0][0] += 1.0
    assert not np.allclose(
        fused(layer(changed, modality_mask=mask))[0], before[0]
    )


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_all_masked_is_finite(name):
    layer = make_layer(name)
    inputs = make_inputs(name)
    inputs[0][:] = np.nan
    mask = np.zeros((BATCH, 2), "bool")
    out = fused(layer(inputs, modality_mask=mask))
    assert np.all(np.isfinite(out))
    # All-masked rows do not depend on the example.
    np.testing.assert_allclose(out, np.broadcast_to(out[:1], out.shape))


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_dict_inputs_use_sorted_keys(name):
    layer = make_layer(name)
    first, second = make_inputs(name)
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    from_list = fused(layer([first, second], modality_mask=mask))
    from_dict = fused(layer({"b": second, "a": first}, modality_mask=mask))
    np.testing.assert_allclose(from_dict, from_list, rtol=1e-6)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_config_round_trip(name):
    layer = make_layer(name)
    inputs = make_inputs(name)
    expected = fused(layer(inputs))
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(fused(clone(inputs)), expected, rtol=1e-5)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_keras_save_load(name, tmp_path):
    arrays = make_inputs(name)
    inputs = [
        keras.Input(shape=a.shape[1:], name=f"modality_{i}")
        for i, a in enumerate(arrays)
    ]
    mask_input = keras.Input(shape=(2,), name="modality_mask")
    kwargs = {"return_weights": True} if name in WEIGHTED_FUSIONS else {}
    outputs = make_layer(name, **kwargs)(inputs, modality_mask=mask_input)
    model = keras.Model([*inputs, mask_input], outputs)
    mask = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], "float32")
    expected = model.predict([*arrays, mask], verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    actual = loaded.predict([*arrays, mask], verbose=0)
    for want, got in zip(
        keras.tree.flatten(expected), keras.tree.flatten(actual), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FUSION_METHODS)
def test_gradients_flow(name):
    layer = make_layer(name)
    inputs = [tf.constant(x) for x in make_inputs(name)]
    mask = tf.constant([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    layer(inputs, modality_mask=mask)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = layer(inputs, modality_mask=mask)
        out = out[0] if isinstance(out, tuple) else out
        loss = tf.reduce_sum(tf.square(out)) + sum(layer.losses)
    variables = layer.trainable_variables
    grads = tape.gradient(loss, [*inputs, *variables])
    for grad in grads[:2]:
        assert grad is not None
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad))
        assert np.any(grad != 0)
    # Masked rows get no gradient.
    assert np.all(np.asarray(grads[1])[1] == 0)
    assert np.all(np.asarray(grads[0])[2] == 0)
    for variable, grad in zip(variables, grads[2:], strict=True):
        assert grad is not None, variable.path
        assert np.all(np.isfinite(np.asarray(grad))), variable.path


def test_get_fusion_unknown_name():
    with pytest.raises(ValueError, match="'gated'.*valid: concat, attention"):
        get_fusion("gated")


def test_get_fusion_rejects_return_weights_for_unweighted_method():
    with pytest.raises(ValueError, match="'concat' does not return weights"):
        get_fusion("concat", return_weights=True)


def test_get_fusion_bad_arguments_list_valid_ones():
    with pytest.raises(ValueError, match="it takes units, rank"):
        get_fusion("lmf", rank=2)


def test_concat_zeroes_masked_modality():
    first = np.ones((2, 2), "float32")
    second = np.full((2, 3), 2.0, "float32")
    out = ConcatFusion()([first, second], modality_mask=[[1, 0], [1, 1]])
    np.testing.assert_array_equal(
        np.asarray(out), [[1, 1, 0, 0, 0], [1, 1, 2, 2, 2]]
    )


def test_concat_rejects_sequences():
    with pytest.raises(ValueError, match=r"modality 0 must have shape \[B, D"):
        ConcatFusion()([np.zeros((2, 3, 4)), np.zeros((2, 4))])


def test_wrong_mask_width_is_rejected():
    with pytest.raises(ValueError, match=r"modality_mask must have shape"):
        ConcatFusion()(make_inputs("concat"), modality_mask=np.ones((BATCH, 3)))


def test_gmu_with_two_modalities_is_the_bimodal_gmu():
    layer = GatedFusion(5, return_weights=True)
    first, second = make_inputs("gmu")
    out, _ = layer([first, second])
    h = [
        np.tanh(x @ np.asarray(d.kernel))
        for d, x in zip(layer.hidden, (first, second))
    ]
    logits = np.concatenate([first, second], -1) @ np.asarray(
        layer.gate.kernel
    ) + np.asarray(layer.gate.bias)
    logits = logits.reshape(BATCH, 2, 5)
    z = 1.0 / (1.0 + np.exp(-(logits[:, 0] - logits[:, 1])))
    np.testing.assert_allclose(
        np.asarray(out), z * h[0] + (1 - z) * h[1], rtol=1e-4, atol=1e-5
    )


def test_lmf_masked_modality_is_its_bias_factor():
    layer = LowRankFusion(3, rank=2)
    first, second = make_inputs("lmf")
    out = np.asarray(layer([first, second], modality_mask=[[1, 0]] * BATCH))
    factors = [np.asarray(f) for f in layer.factors]
    z0 = np.concatenate([first, np.ones((BATCH, 1))], -1)
    z1 = np.concatenate([np.zeros_like(second), np.ones((BATCH, 1))], -1)
    product = np.einsum("bd,rdu->bru", z0, factors[0]) * np.einsum(
        "bd,rdu->bru", z1, factors[1]
    )
    expected = np.einsum(
        "bru,r->bu", product, np.asarray(layer.rank_weights)[0]
    ) + np.asarray(layer.bias)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, keras, numpy as np
    assert keras.backend.backend() == "jax"
    from mmzoo.layers import (FUSION_METHODS, SEQUENCE_FUSIONS, get_fusion,
        GradientReversal, ModalityDropout, AttentionPooling)
    kwargs, widths = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    rng = np.random.default_rng(0)
    def make_inputs(name):
        if name in SEQUENCE_FUSIONS:
            shapes = [(4, 3, 4), (4, 2, 5)]
        elif name == "attention_pooling":
            shapes = [(4, 4), (4, 4)]
        else:
            shapes = [(4, 4), (4, 5)]
        return [rng.normal(size=s).astype("float32") for s in shapes]
    mask = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], "float32")
    for name in FUSION_METHODS:
        out = get_fusion(name, **kwargs[name])(
            make_inputs(name), modality_mask=mask)
        assert out.shape == (4, widths.get(name, 6)), (name, out.shape)
        assert np.all(np.isfinite(np.asarray(out))), name
    tokens = np.ones((4, 3, 4), "float32")
    assert AttentionPooling()(tokens, mask=np.ones((4, 3))).shape == (4, 4)
    grl = GradientReversal(scale=0.5)
    x = jax.numpy.arange(3.0)
    assert np.array_equal(np.asarray(grl(x)), np.asarray(x))
    grad = jax.grad(lambda v: grl(v).sum())(x)
    assert np.allclose(grad, -0.5), grad
    kept = ModalityDropout(0.9, seed=0)(make_inputs("gmu"), training=True)
    assert np.all(np.asarray(kept).sum(1) >= 1)
    print("JAX_OK")
    """
)


def test_every_layer_runs_on_jax():
    stdout = run_on_jax(JAX_SCRIPT, json.dumps(KWARGS), json.dumps(WIDTHS))
    assert "JAX_OK" in stdout


def test_get_fusion_passes_the_layer_name_through():
    layer = get_fusion("gmu", units=8, name="my_fusion")
    assert layer.name == "my_fusion"
    assert isinstance(layer, GatedFusion)
