"""Tests for the image + text multitask classifier
(mmzoo/models/image_text_multitask.py)."""

import keras
import numpy as np
import tensorflow as tf

import mmzoo
from mmzoo.heads.classification import MatchingLoss
from mmzoo.models.multimodal import modality_specs, output_losses
from mmzoo.specs import dummy_inputs

NAME = "image_text_multitask"


def _compile(model, config):
    losses = output_losses(config)
    model.compile(
        optimizer="adam",
        loss={k: loss for k, (loss, _) in losses.items()},
        loss_weights={k: weight for k, (_, weight) in losses.items()},
        run_eagerly=True,
    )


def _targets(inputs, labels):
    return {
        "probabilities": np.eye(3, dtype="float32")[labels],
        "reconstruction": inputs["image"] / 255.0,
    }


def test_tiny_builds_before_data_with_alpha_and_beta():
    config = mmzoo.get_config(
        NAME, "tiny", reconstruction_weight=0.3, classification_weight=2.0
    )
    assert (config.image_encoder, config.text_encoder) == ("cnn", "lstm")
    assert config.serve_reconstruction and config.head_from_data
    model = mmzoo.build(NAME, config=config)
    out = model(dummy_inputs(modality_specs(config), 2))
    assert set(out) == {"probabilities", "reconstruction"}
    assert out["probabilities"].shape == (2, 3)
    assert out["reconstruction"].shape == (2, 32, 32, 3)
    losses = output_losses(config)
    assert losses["reconstruction"][1] == 0.3
    assert losses["probabilities"][1] == 2.0
    assert isinstance(
        losses["probabilities"][0], keras.losses.CategoricalCrossentropy
    )
    # alpha = 0 keeps the served reconstruction (untrained).
    zero = mmzoo.get_config(NAME, "tiny", reconstruction_weight=0.0)
    assert output_losses(zero)["reconstruction"][1] == 0.0


def test_matching_loss_is_finite_and_has_a_gradient():
    config = mmzoo.get_config(NAME, "tiny", text_loss="matching")
    model = mmzoo.build(NAME, config=config)
    assert not model.get_layer("logits").use_bias
    loss = output_losses(config)["probabilities"][0]
    assert isinstance(loss, MatchingLoss)
    inputs = dummy_inputs(modality_specs(config), 6)
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 2, 1, 0]]
    kernel = model.get_layer("logits").kernel
    with tf.GradientTape() as tape:
        value = loss(labels, model(inputs, training=True)["probabilities"])
    gradient = tape.gradient(value, kernel)
    assert np.isfinite(float(value))
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_stack_logits_trains_one_step():
    config = mmzoo.get_config(NAME, "tiny", fusion="stack_logits")
    model = mmzoo.build(NAME, config=config)
    _compile(model, config)
    inputs = dummy_inputs(modality_specs(config), 4)
    history = model.fit(
        inputs, _targets(inputs, [0, 1, 2, 0]), epochs=1, verbose=0
    ).history
    assert np.isfinite(history["loss"][0])
    assert np.isfinite(history["reconstruction_loss"][0])


def test_keras_round_trip(tmp_path):
    config = mmzoo.get_config(NAME, "tiny", text_loss="matching")
    model = mmzoo.build(NAME, config=config)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = dummy_inputs(modality_specs(config), 3)
    want, got = model(inputs), loaded(inputs)
    assert set(got) == set(want) == {"probabilities", "reconstruction"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
