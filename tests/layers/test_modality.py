"""Tests for mmzoo.layers.modality: ModalityDropout and mask helpers."""

import keras
import numpy as np
import pytest

from mmzoo.layers import AttentionFusion, ModalityDropout
from mmzoo.layers.modality import masked_softmax, resolve_modality_mask


def _inputs(batch=512, num_modalities=3):
    return [np.ones((batch, 2), "float32")] * num_modalities


def test_modality_dropout_keeps_at_least_one_present_modality():
    layer = ModalityDropout(0.9, seed=3)
    mask = np.ones((512, 3), "float32")
    mask[:100, 0] = 0.0
    mask[100:110] = [0.0, 0.0, 1.0]
    out = np.asarray(layer(_inputs(), modality_mask=mask, training=True))
    assert out.shape == (512, 3)
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert np.all(out.sum(axis=1) >= 1)
    assert np.all(out <= mask)  # Never revives a missing modality.
    np.testing.assert_array_equal(out[100:110], mask[100:110])


def test_modality_dropout_rate_is_respected():
    out = np.asarray(ModalityDropout(0.3, seed=0)(_inputs(), training=True))
    # Each modality kept with prob 0.7 (plus rare rescues).
    assert 0.64 < out.mean() < 0.76
    assert not np.all(out == 1.0)


def test_modality_dropout_is_identity_at_inference():
    layer = ModalityDropout(0.5, seed=0)
    mask = np.array([[1, 0, 1], [0, 0, 0]], "bool")
    inputs = _inputs(batch=2)
    np.testing.assert_array_equal(
        np.asarray(layer(inputs, modality_mask=mask)), mask.astype("float32")
    )
    np.testing.assert_array_equal(
        np.asarray(layer(inputs, training=False)), np.ones((2, 3))
    )
    # An all-missing row stays all-missing even in training.
    out = np.asarray(layer(inputs, modality_mask=mask, training=True))
    np.testing.assert_array_equal(out[1], 0.0)


def test_modality_dropout_in_a_model_drives_a_fusion(tmp_path):
    inputs = [keras.Input((2,), name="a"), keras.Input((2,), name="b")]
    mask = ModalityDropout(0.5, seed=1)(inputs)
    fused = AttentionFusion(3)(inputs, modality_mask=mask)
    model = keras.Model(inputs, fused)
    data = _inputs(batch=8, num_modalities=2)
    expected = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected)
    config = model.layers[2].get_config()
    assert config["rate"] == 0.5 and config["seed"] == 1


def test_modality_dropout_rejects_bad_rate():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\); .* 1.0"):
        ModalityDropout(1.0)


def test_resolve_modality_mask_accepts_bool_and_float():
    tensors = _inputs(batch=2, num_modalities=2)
    ones = resolve_modality_mask(None, tensors, "float32")
    np.testing.assert_array_equal(np.asarray(ones), np.ones((2, 2)))
    bools = resolve_modality_mask([[True, False]] * 2, tensors, "float32")
    np.testing.assert_array_equal(np.asarray(bools), [[1, 0], [1, 0]])
    floats = resolve_modality_mask([[0.9, 0.2], [0, 1]], tensors, "float32")
    np.testing.assert_array_equal(np.asarray(floats), [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]"):
        resolve_modality_mask(np.ones((2, 3)), tensors, "float32", "here")


def test_masked_softmax_all_masked_is_zero_not_nan():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], "float32")
    mask = np.array([[1, 0, 1], [0, 0, 0]], "float32")
    weights = np.asarray(masked_softmax(logits, mask))
    e = np.exp([1.0, 3.0])
    np.testing.assert_allclose(weights[0], [e[0] / e.sum(), 0, e[1] / e.sum()])
    np.testing.assert_array_equal(weights[1], 0.0)
