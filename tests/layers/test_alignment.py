"""Tests for mmzoo.layers.alignment (contract tests live in test_fusion)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.layers import (
    AdversarialAlignment,
    GradientReversal,
    MaxAlignment,
    ProductAlignment,
    WeightedAlignment,
)


def _inputs(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(batch, 3)).astype("float32"),
        rng.normal(size=(batch, 5)).astype("float32"),
    ]


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_gradient_reversal_is_identity_with_flipped_scaled_gradient(scale):
    layer = GradientReversal(scale=scale)
    x = tf.constant([[0.1, -2.0, 3.3], [1e-8, 7.0, -0.3]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    grad = np.asarray(tape.gradient(loss, x))
    np.testing.assert_allclose(grad, -scale * np.array([[1.0, 2, 3]] * 2))


def test_gradient_reversal_config_and_mask_propagation():
    layer = GradientReversal(scale=0.3, name="grl")
    assert GradientReversal.from_config(layer.get_config()).scale == 0.3
    tokens = keras.Input(shape=(4,), dtype="int32")
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(tokens)
    reversed_ = layer(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(reversed_)
    model = keras.Model(tokens, pooled)
    ids = np.array([[1, 2, 0, 0]])
    embedding = model.layers[1].get_weights()[0]
    np.testing.assert_allclose(
        model.predict(ids, verbose=0), embedding[[1, 2]].mean(0, keepdims=1)
    )


def test_max_alignment_is_max_of_present_projections():
    layer = MaxAlignment(4)
    inputs = _inputs()
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    out = np.asarray(layer(inputs, modality_mask=mask))
    projected = [
        x @ np.asarray(d.kernel) + np.asarray(d.bias)
        for d, x in zip(layer.projections, inputs)
    ]
    expected = np.maximum(projected[0], projected[1])
    expected[1] = projected[0][1]
    expected[2] = projected[1][2]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_product_alignment_multiplies_present_tanh_projections():
    layer = ProductAlignment(4)
    inputs = _inputs()
    mask = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], "float32")
    out = np.asarray(layer(inputs, modality_mask=mask))
    projected = [
        np.tanh(x @ np.asarray(d.kernel) + np.asarray(d.bias))
        for d, x in zip(layer.projections, inputs)
    ]
    expected = projected[0] * projected[1]
    expected[1] = projected[0][1]
    expected[2] = projected[1][2]
    expected[3] = 0.0
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_weighted_alignment_starts_uniform_and_learns_logits():
    layer = WeightedAlignment(4, return_weights=True)
    mask = np.array([[1, 1], [0, 1]], "float32")
    _, weights = layer(_inputs(batch=2), modality_mask=mask)
    np.testing.assert_allclose(np.asarray(weights), [[0.5, 0.5], [0, 1]])
    layer.modality_logits.assign([np.log(3.0), 0.0])
    _, weights = layer(_inputs(batch=2), modality_mask=mask)
    np.testing.assert_allclose(
        np.asarray(weights), [[0.75, 0.25], [0, 1]], rtol=1e-6
    )


def test_adversarial_alignment_adds_exactly_one_loss():
    layer = AdversarialAlignment(4, discriminator_units=(5, 3), loss_weight=0.5)
    out = layer(_inputs())
    assert tuple(out.shape) == (4, 4)
    assert len(layer.losses) == 1
    loss = float(layer.losses[0])
    # Cross-entropy of a 2-way discriminator near its random init.
    assert 0.5 * 0.3 < loss < 0.5 * 1.5
    layer(_inputs(seed=1))
    assert len(layer.losses) == 1


def test_adversarial_alignment_loss_ignores_masked_modalities():
    layer = AdversarialAlignment(4, loss_weight=1.0)
    inputs = _inputs(batch=2)
    layer(inputs, modality_mask=[[1, 0], [1, 0]])
    loss = float(layer.losses[0])
    changed = [inputs[0], inputs[1] * 50.0]
    layer(changed, modality_mask=[[1, 0], [1, 0]])
    assert float(layer.losses[0]) == pytest.approx(loss)
    layer(inputs, modality_mask=[[0, 0], [0, 0]])
    assert float(layer.losses[0]) == 0.0


def test_adversarial_alignment_in_a_model_trains_with_reversed_gradient():
    keras.utils.set_random_seed(0)
    layer = AdversarialAlignment(4, loss_weight=1.0)
    inputs = [tf.constant(x) for x in _inputs()]
    layer(inputs)
    with tf.GradientTape() as tape:
        layer(inputs)
        loss = layer.losses[0]
    logits_kernel = layer.discriminator_logits.kernel
    projection_kernel = layer.projections[0].kernel
    grads = tape.gradient(loss, [logits_kernel, projection_kernel])
    # Both get gradients: the discriminator descends, the projections
    # (through GradientReversal) ascend the discriminator loss.
    assert all(np.any(np.asarray(g) != 0) for g in grads)
    with tf.GradientTape() as tape:
        hidden = layer._project(layer._prepare(inputs, None)[0])
        for dense in layer.discriminator:
            hidden = dense(hidden)
        logits = layer.discriminator_logits(hidden)
        plain = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                tf.constant([[0, 1]] * 4), logits, from_logits=True
            )
        )
    plain_grad = tape.gradient(plain, projection_kernel)
    np.testing.assert_allclose(
        np.asarray(grads[1]), -np.asarray(plain_grad), rtol=1e-4, atol=1e-6
    )

    tokens = [keras.Input((3,), name="a"), keras.Input((5,), name="b")]
    model = keras.Model(tokens, AdversarialAlignment(4)(tokens))
    model(_inputs())
    assert len(model.losses) == 1


def test_bad_units_are_rejected():
    with pytest.raises(ValueError, match="units must be a positive int"):
        MaxAlignment(0)
