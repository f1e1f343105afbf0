"""Tests for the ViT + BERT vision-language classifier
(mmzoo/models/vision_language_classifier.py)."""

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.layers import CrossModalAttention
from mmzoo.models.multimodal import modality_specs, output_losses
from mmzoo.specs import ImageSpec, TextSpec, dummy_inputs

NAME = "vision_language_classifier"


def _compile(model, config):
    losses = output_losses(config)
    model.compile(
        optimizer="adamw",
        loss={k: loss for k, (loss, _) in losses.items()},
        loss_weights={k: weight for k, (_, weight) in losses.items()},
        run_eagerly=True,
    )


def test_tiny_builds_before_data_with_the_reference_parts():
    config = mmzoo.get_config(NAME, "tiny")
    assert (config.image_encoder, config.text_encoder) == ("vit", "bert")
    assert config.text_tokenizer == "wordpiece" and config.head_from_data
    assert config.optimizer == "adamw" and config.learning_rate == 1e-3
    base = mmzoo.get_config(NAME, "base")
    assert (base.image_size, base.patch_size, base.max_text_length) == (
        224,
        16,
        128,
    )
    assert base.learning_rate == 1e-4
    model = mmzoo.build(NAME, "tiny")
    shapes = {i.name: tuple(i.shape) for i in model.inputs}
    assert shapes == {"image": (None, 32, 32, 3), "text": (None, 32)}
    image_encoder = model.get_layer("image_encoder")
    assert image_encoder.get_layer("vit_backbone") is not None
    assert isinstance(model.get_layer("fusion"), CrossModalAttention)
    out = model(dummy_inputs(modality_specs(config), 2))
    assert tuple(out.shape) == (2, 3)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, atol=1e-5)


def test_score_is_in_target_units_and_fitted_specs_drive_inputs():
    specs = (
        ImageSpec("image", size=32),
        TextSpec(
            "text", max_length=12, vocabulary_size=90, tokenizer="wordpiece"
        ),
    )
    config = mmzoo.get_config(
        NAME,
        "tiny",
        specs=specs,
        num_labels=4,
        num_targets=1,
        target_mean=(0.5,),
        target_std=(0.2,),
    )
    model = mmzoo.build(NAME, config=config)
    assert {i.name: tuple(i.shape) for i in model.inputs}["text"] == (None, 12)
    inputs = dummy_inputs(specs, 3)
    out = model(inputs)
    assert out["probabilities"].shape == (3, 4)
    z = keras.Model(model.inputs, model.get_layer("score_standardized").output)
    np.testing.assert_allclose(
        out["score"], np.asarray(z(inputs)) * 0.2 + 0.5, atol=1e-5
    )


def test_stack_logits_trains_one_step_with_missing_targets():
    config = mmzoo.get_config(
        NAME,
        "tiny",
        fusion="stack_logits",
        num_targets=1,
        regression_weight=0.5,
    )
    assert config.fusion_level == "late"
    model = mmzoo.build(NAME, config=config)
    assert model.get_layer("image_logits") and model.get_layer("text_logits")
    _compile(model, config)
    inputs = dummy_inputs(modality_specs(config), 4)
    targets = {
        "probabilities": np.eye(3, dtype="float32")[[0, 1, 2, 1]],
        "score": np.array([[0.3], [np.nan], [0.9], [np.nan]], "float32"),
    }
    history = model.fit(inputs, targets, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert np.isfinite(history["score_loss"][0])


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_keras_round_trip(tmp_path, head):
    config = mmzoo.get_config(
        NAME,
        "tiny",
        head=head,
        num_targets=1,
        target_mean=(2.0,),
        target_std=(3.0,),
    )
    model = mmzoo.build(NAME, config=config)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = dummy_inputs(modality_specs(config), 3)
    want, got = model(inputs), loaded(inputs)
    assert set(got) == set(want) == {"probabilities", "score"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
