"""Tests for mmzoo.layers.attention (contract tests live in test_fusion)."""

import keras
import numpy as np
import pytest

from mmzoo.layers import AttentionPooling, CrossModalAttention


def _sequences(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(batch, 4, 6)).astype("float32"),
        rng.normal(size=(batch, 5, 8)).astype("float32"),
    ]


@pytest.mark.parametrize("units", [None, 4])
def test_attention_pooling_over_a_sequence_with_token_mask(units):
    keras.utils.set_random_seed(0)
    layer = AttentionPooling(units, return_weights=True)
    tokens = _sequences()[0]
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], "bool")
    pooled, weights = layer(tokens, mask=mask)
    weights = np.asarray(weights)
    assert tuple(pooled.shape) == (3, 6)
    assert np.all(weights[~mask] == 0)
    np.testing.assert_allclose(weights.sum(1), [1, 1, 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(pooled)[2], 0.0)
    changed = tokens.copy()
    changed[0, 2:] = np.nan
    again, _ = layer(changed, mask=mask)
    np.testing.assert_allclose(np.asarray(again), np.asarray(pooled))


def test_attention_pooling_uses_keras_propagated_mask():
    ids = keras.Input(shape=(4,), dtype="int32")
    embedded = keras.layers.Embedding(6, 3, mask_zero=True)(ids)
    model = keras.Model(ids, AttentionPooling()(embedded))
    a = model.predict(np.array([[1, 2, 0, 0]]), verbose=0)
    b = model.predict(np.array([[1, 2, 0, 0]]), verbose=0)
    np.testing.assert_allclose(a, b)
    embedding = model.layers[1].get_weights()[0]
    # With one valid token, pooling returns that token's embedding.
    single = model.predict(np.array([[4, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(single[0], embedding[4], rtol=1e-6)


def test_attention_pooling_list_needs_equal_widths():
    with pytest.raises(ValueError, match="same width"):
        AttentionPooling()([np.zeros((2, 3)), np.zeros((2, 4))])


def test_attention_pooling_save_load_sequence(tmp_path):
    tokens = keras.Input(shape=(4, 6), name="tokens")
    mask = keras.Input(shape=(4,), name="token_mask")
    model = keras.Model([tokens, mask], AttentionPooling(5)(tokens, mask=mask))
    data = [_sequences()[0], np.array([[1, 1, 0, 0]] * 3, "float32")]
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "pool.keras")
    loaded = keras.saving.load_model(tmp_path / "pool.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected)


def test_cross_modal_attention_output_width():
    text, image = _sequences()
    assert tuple(CrossModalAttention(2, 4)([text, image]).shape) == (3, 14)
    layer = CrossModalAttention(2, 4, units=5)
    assert tuple(layer([text, image]).shape) == (3, 10)


def test_cross_modal_attention_ignores_padding_tokens():
    keras.utils.set_random_seed(0)
    layer = CrossModalAttention(2, 4, units=5)
    text, image = _sequences()
    masks = [
        np.array([[1, 1, 1, 0]] * 3, "float32"),
        np.array([[1, 1, 0, 0, 0]] * 3, "bool"),
    ]
    out = np.asarray(layer([text, image], token_masks=masks))
    text[:, 3] = 9.0
    image[:, 2:] = np.nan
    again = np.asarray(layer([text, image], token_masks=masks))
    np.testing.assert_allclose(again, out, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(out))


def test_cross_modal_attention_missing_modality_falls_back():
    keras.utils.set_random_seed(0)
    layer = CrossModalAttention(2, 4)
    text, image = _sequences()
    out = np.asarray(layer([text, image], modality_mask=[[1, 0]] * 3))
    # The image half is zeros; the text half is LayerNorm(text) pooled,
    # i.e. text did not attend to the missing image.
    np.testing.assert_array_equal(out[:, 6:], 0.0)
    own = np.asarray(layer.text_norm(text)).mean(axis=1)
    np.testing.assert_allclose(out[:, :6], own, rtol=1e-5, atol=1e-6)
    # With both present the text half does change.
    both = np.asarray(layer([text, image]))
    assert not np.allclose(both[:, :6], own)


def test_cross_modal_attention_needs_two_sequences():
    with pytest.raises(ValueError, match="exactly 2 modalities"):
        CrossModalAttention(2, 4)(_sequences() + [np.zeros((3, 2, 6))])
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        CrossModalAttention(2, 4)([np.zeros((3, 6)), np.zeros((3, 8))])


def test_cross_modal_attention_token_masks_in_saved_model(tmp_path):
    text = keras.Input((4, 6), name="text")
    image = keras.Input((5, 8), name="image")
    text_mask = keras.Input((4,), name="text_mask")
    modality_mask = keras.Input((2,), name="modality_mask")
    out = CrossModalAttention(2, 4, units=6, dropout=0.1)(
        [text, image],
        modality_mask=modality_mask,
        token_masks=[text_mask, None],
    )
    model = keras.Model([text, image, text_mask, modality_mask], out)
    data = [
        *_sequences(),
        np.array([[1, 1, 0, 0]] * 3, "float32"),
        np.array([[1, 1], [0, 1], [1, 0]], "float32"),
    ]
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "xattn.keras")
    loaded = keras.saving.load_model(tmp_path / "xattn.keras", safe_mode=True)
    np.testing.assert_allclose(
        loaded.predict(data, verbose=0), expected, rtol=1e-5, atol=1e-6
    )


def test_cross_modal_attention_uses_keras_propagated_masks():
    ids = keras.Input((4,), dtype="int32")
    image = keras.Input((3, 5))
    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(ids)
    layer = CrossModalAttention(2, 3)
    model = keras.Model([ids, image], layer([embedded, image]))
    pixels = np.random.default_rng(0).random((1, 3, 5)).astype("float32")
    auto = model.predict([np.array([[1, 2, 0, 0]]), pixels], verbose=0)
    tokens = model.layers[1](np.array([[1, 2, 0, 0]]))
    explicit = layer([tokens, pixels], token_masks=[[[1, 1, 0, 0]], None])
    np.testing.assert_allclose(auto, np.asarray(explicit), atol=1e-6)
