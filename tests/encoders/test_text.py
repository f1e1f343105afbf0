"""Tests for mmzoo.encoders.text: pooled vector, token sequence, mask."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.encoders import TEXT_ENCODERS, MaskedMean, build_text_encoder

IDS = np.array(
    [[5, 6, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 9]], "int32"
)


def _encoder(kind, **kwargs):
    return build_text_encoder(
        kind, vocabulary_size=10, max_length=6, embedding_dim=4, units=3,
        **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind, width", [("lstm", 3), ("bilstm", 6), ("bag", 4)]
)
def test_shapes_and_mask(kind, width):
    pooled, sequence, mask = _encoder(kind)(IDS)
    assert tuple(pooled.shape) == (3, width)
    assert tuple(sequence.shape) == (3, 6, width)
    np.testing.assert_array_equal(np.asarray(mask), IDS != 0)


@pytest.mark.parametrize("kind", TEXT_ENCODERS)
def test_all_padding_row_is_finite_zeros(kind):
    pooled, _, mask = _encoder(kind)(IDS)
    pooled = np.asarray(pooled)
    assert np.all(np.isfinite(pooled))
    np.testing.assert_array_equal(pooled[1], 0.0)
    assert not np.asarray(mask)[1].any()


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


def test_keras_round_trip(tmp_path):
    encoder = _encoder("bilstm", dropout=0.1)
    path = str(tmp_path / "text.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for got, want in zip(loaded(IDS), encoder(IDS)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown kind 'gru'.*lstm"):
        build_text_encoder("gru")
    with pytest.raises(ValueError, match="vocabulary_size must be >= 2"):
        build_text_encoder("lstm", vocabulary_size=1)
