"""Tests for mmzoo.encoders.text: pooled vector, token sequence, mask."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.encoders import (
    TEXT_ENCODERS,
    MaskedMean,
    ZeroMissing,
    build_text_encoder,
    text_encoder_from_config,
)
from mmzoo.specs import TextSpec

IDS = np.array(
    [[5, 6, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 9]], "int32"
)
SMALL = {
    "vocabulary_size": 10,
    "max_length": 6,
    "embedding_dim": 4,
    "units": 3,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_dim": 8,
}
WIDTHS = {"lstm": 3, "bilstm": 6, "bag": 4, "transformer": 4, "bert": 4}


def _encoder(kind, **kwargs):
    return build_text_encoder(kind, **{**SMALL, **kwargs})


def test_registry_lists_every_kind():
    assert tuple(TEXT_ENCODERS) == (
        "lstm",
        "bilstm",
        "bag",
        "transformer",
        "bert",
    )
    assert set(WIDTHS) == set(TEXT_ENCODERS)


@pytest.mark.parametrize("kind", tuple(TEXT_ENCODERS))
def test_shapes_and_mask(kind):
    encoder = _encoder(kind)
    assert encoder.inputs[0].name == "token_ids"
    pooled, sequence, mask = encoder(IDS)
    width = WIDTHS[kind]
    assert tuple(pooled.shape) == (3, width)
    assert tuple(sequence.shape) == (3, 6, width)
    np.testing.assert_array_equal(np.asarray(mask), IDS != 0)


@pytest.mark.parametrize("kind", tuple(TEXT_ENCODERS))
def test_all_padding_row_is_finite_zeros(kind):
    pooled, sequence, mask = _encoder(kind, dropout=0.1)(IDS)
    pooled, sequence = np.asarray(pooled), np.asarray(sequence)
    assert np.all(np.isfinite(pooled)) and np.all(np.isfinite(sequence))
    np.testing.assert_array_equal(pooled[1], 0.0)
    assert not np.asarray(mask)[1].any()
    if kind != "bag":  # bag's sequence is the raw embeddings.
        np.testing.assert_array_equal(sequence[1], 0.0)
    if kind in ("transformer", "bert"):  # Padded positions too.
        np.testing.assert_array_equal(sequence[0, 3:], 0.0)
    assert np.abs(pooled[0]).sum() > 0


@pytest.mark.parametrize("kind", ["transformer", "bert"])
def test_transformer_gradients_are_finite_on_padding_rows(kind):
    encoder = _encoder(kind)
    ids = tf.constant(IDS)
    with tf.GradientTape() as tape:
        pooled, sequence, _ = encoder(ids, training=True)
        loss = tf.reduce_sum(pooled) + tf.reduce_sum(sequence)
    gradients = tape.gradient(loss, encoder.trainable_weights)
    gradients = [tf.convert_to_tensor(g) for g in gradients if g is not None]
    assert gradients and all(
        np.isfinite(np.asarray(g)).all() for g in gradients
    )


def test_transformer_pooled_is_masked_mean_of_sequence():
    pooled, sequence, _ = _encoder("transformer")(IDS)
    np.testing.assert_allclose(
        pooled[0], np.mean(sequence[0, :3], axis=0), atol=1e-6
    )


def test_lstm_pooled_is_state_after_last_real_token():
    pooled, sequence, _ = _encoder("lstm")(IDS)
    np.testing.assert_allclose(pooled[0], sequence[0, 2], atol=1e-6)
    np.testing.assert_allclose(pooled[2], sequence[2, 5], atol=1e-6)


def test_masked_mean_ignores_padding_and_has_finite_gradient():
    values = tf.constant(np.arange(12, dtype="float32").reshape(2, 3, 2))
    mask = tf.constant([[True, True, False], [False, False, False]])
    layer = MaskedMean()
    with tf.GradientTape() as tape:
        tape.watch(values)
        out = layer(values, mask=mask)
    np.testing.assert_allclose(out, [[1.0, 2.0], [0.0, 0.0]])
    gradient = tape.gradient(out, values).numpy()
    assert np.all(np.isfinite(gradient))


def test_zero_missing_zeros_padding_and_empty_rows():
    mask = np.array([[True, False], [False, False]])
    sequence = np.ones((2, 2, 3), "float32")
    out = np.asarray(ZeroMissing()(sequence, token_mask=mask))
    np.testing.assert_array_equal(out[:, :, 0], [[1, 0], [0, 0]])
    pooled = np.asarray(ZeroMissing()(np.ones((2, 3), "float32"), mask))
    np.testing.assert_array_equal(pooled[:, 0], [1, 0])


def test_bert_trainable_false_freezes_the_backbone():
    encoder = _encoder("bert", trainable=False)
    assert encoder.trainable_weights == []
    assert encoder.get_layer("bert_backbone").non_trainable_weights


@pytest.mark.parametrize("kind", ["bilstm", "transformer", "bert"])
def test_keras_round_trip(kind, tmp_path):
    encoder = _encoder(kind, dropout=0.1)
    path = str(tmp_path / "text.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for got, want in zip(loaded(IDS), encoder(IDS)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_from_config_reads_standard_fields_and_spec():
    config = types.SimpleNamespace(
        text_encoder="transformer",
        vocabulary_size=50,
        max_text_length=9,
        embedding_dim=8,
        text_num_layers=1,
        text_num_heads=4,
        text_intermediate_dim=16,
    )
    encoder = text_encoder_from_config(config)
    assert encoder.name == "text_encoder"
    assert tuple(encoder.outputs[1].shape) == (None, 9, 8)
    spec = TextSpec(name="report", max_length=6, vocabulary_size=10)
    encoder = text_encoder_from_config(config, spec=spec, kind="bag")
    assert tuple(encoder.inputs[0].shape) == (None, 6)
    assert encoder.get_layer("token_embedding").input_dim == 10


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown kind 'gru'.*lstm"):
        build_text_encoder("gru")
    with pytest.raises(ValueError, match="vocabulary_size must be >= 2"):
        build_text_encoder("lstm", vocabulary_size=1)
    with pytest.raises(ValueError, match="lstm has no pretrained.*preset="):
        build_text_encoder("lstm", preset="bert_base_en_uncased")
    with pytest.raises(ValueError, match="bag has no pretrained.*trainable"):
        build_text_encoder("bag", trainable=False)
    with pytest.raises(ValueError, match="embedding_dim divisible by"):
        build_text_encoder("transformer", embedding_dim=6, num_heads=4)
