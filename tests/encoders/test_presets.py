"""Tests for pretrained starting points: tiny keras-hub presets saved to a
temporary folder load offline into the encoders."""

import os
import shutil

import keras
import keras_hub
import numpy as np
import pytest

from mmzoo.encoders import (
    DEFAULT_VOCABULARY,
    build_image_encoder,
    build_text_encoder,
    image_encoder_from_config,
    preset_image_size,
    preset_pixel_normalization,
    save_tiny_preset,
    text_encoder_from_config,
)

IDS = np.array([[2, 20, 21, 3, 0, 0, 0, 0], [0] * 8], "int32")


def _images(batch=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def test_tiny_vit_preset_loads_offline(vit_preset):
    assert sorted(os.listdir(vit_preset)) >= ["config.json"]
    backbone = keras_hub.models.Backbone.from_preset(vit_preset)
    assert isinstance(backbone, keras_hub.models.ViTBackbone)
    converter = keras_hub.layers.ImageConverter.from_preset(vit_preset)
    assert tuple(converter.image_size) == (32, 32)
    assert preset_image_size(vit_preset) == 32
    scale, offset = preset_pixel_normalization(vit_preset)
    assert (scale, offset) == (pytest.approx(1 / 127.5), -1.0)


def test_tiny_bert_preset_loads_offline(bert_preset):
    backbone = keras_hub.models.Backbone.from_preset(bert_preset)
    assert isinstance(backbone, keras_hub.models.BertBackbone)
    assert backbone.vocabulary_size == len(DEFAULT_VOCABULARY)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(bert_preset)
    assert tokenizer.token_to_id("[PAD]") == 0
    ids = np.asarray(tokenizer("Left lobe opacity!"))
    assert tokenizer.token_to_id("[UNK]") not in ids
    assert preset_image_size(bert_preset) is None


def test_vit_preset_encoder_is_the_preset_on_normalized_pixels(vit_preset):
    encoder = build_image_encoder("vit", 32, preset=vit_preset)
    images = _images()
    pooled, regions = encoder(images)
    assert tuple(pooled.shape) == (2, 16)
    assert tuple(regions.shape) == (2, 16, 16)
    backbone = keras_hub.models.Backbone.from_preset(vit_preset)
    tokens = np.asarray(backbone(images / 127.5 - 1.0))
    np.testing.assert_allclose(pooled, tokens[:, 0], atol=1e-5)
    np.testing.assert_allclose(regions, tokens[:, 1:], atol=1e-5)


def test_vit_preset_size_comes_from_the_preset(vit_preset):
    encoder = build_image_encoder(
        "vit", None, preset=vit_preset, return_regions=False
    )
    assert tuple(encoder.inputs[0].shape) == (None, 32, 32, 3)
    assert tuple(encoder.outputs[0].shape) == (None, 16)
    with pytest.raises(ValueError, match="takes 32x32 images.*=64"):
        build_image_encoder("vit", 64, preset=vit_preset)


def test_preset_trainable_false_freezes_backbones(vit_preset, bert_preset):
    image = build_image_encoder("vit", 32, preset=vit_preset, trainable=False)
    assert image.trainable_weights == [] and image.non_trainable_weights
    text = build_text_encoder(
        "bert", max_length=8, preset=bert_preset, trainable=False
    )
    assert text.trainable_weights == [] and text.non_trainable_weights
    # The caller's projection on top still trains.
    head = keras.layers.Dense(3)
    model = keras.Model(image.input, head(image.output[0]))
    assert len(model.trainable_weights) == 2


def test_bert_preset_encoder_feeds_mask_and_segments(bert_preset):
    encoder = build_text_encoder("bert", max_length=8, preset=bert_preset)
    pooled, sequence, mask = encoder(IDS)
    assert tuple(pooled.shape) == (2, 16)
    assert tuple(sequence.shape) == (2, 8, 16)
    np.testing.assert_array_equal(np.asarray(mask), IDS != 0)
    backbone = keras_hub.models.Backbone.from_preset(bert_preset)
    want = backbone(
        {
            "token_ids": IDS,
            "padding_mask": (IDS != 0).astype("int32"),
            "segment_ids": np.zeros_like(IDS),
        }
    )
    np.testing.assert_allclose(pooled[0], want["pooled_output"][0], atol=1e-5)
    np.testing.assert_allclose(
        sequence[0, :4], want["sequence_output"][0, :4], atol=1e-5
    )
    # A missing text (all padding) is finite zeros.
    assert np.all(np.isfinite(np.asarray(sequence)))
    np.testing.assert_array_equal(np.asarray(pooled)[1], 0.0)


def test_preset_encoders_from_config(vit_preset, bert_preset):
    config = type(
        "Config",
        (),
        {
            "image_encoder": "vit",
            "image_size": 32,
            "image_preset": vit_preset,
            "image_trainable": False,
            "text_encoder": "bert",
            "text_preset": bert_preset,
            "max_text_length": 8,
        },
    )()
    image = image_encoder_from_config(config)
    assert image.trainable_weights == []
    text = text_encoder_from_config(config)
    assert tuple(text.outputs[0].shape) == (None, 16)
    # An overriding kind (early fusion) leaves the pretrained options out.
    patches = image_encoder_from_config(config, kind="patches")
    assert patches.trainable_weights
    bag = text_encoder_from_config(config, kind="bag")
    assert bag.get_layer("token_embedding").input_dim == 20000
    # Without image_size, a preset sets it.
    sized = image_encoder_from_config(
        type("Config", (), {"image_encoder": "vit", "image_preset": vit_preset})
    )
    assert tuple(sized.inputs[0].shape) == (None, 32, 32, 3)


def test_preset_errors_name_the_value(vit_preset, bert_preset, tmp_path):
    with pytest.raises(ValueError, match="takes at most 16 tokens"):
        build_text_encoder("bert", max_length=32, preset=bert_preset)
    with pytest.raises(ValueError, match="not an image backbone"):
        build_image_encoder("vit", 32, preset=bert_preset)
    with pytest.raises(ValueError, match="not a token-id text backbone"):
        build_text_encoder("bert", max_length=8, preset=vit_preset)
    with pytest.raises(ValueError, match="unknown kind 'gpt'.*vit, bert"):
        save_tiny_preset("gpt", str(tmp_path / "gpt"))
    with pytest.raises(ValueError, match=r"vocabulary\[0\] must be '\[PAD\]'"):
        save_tiny_preset("bert", str(tmp_path / "b"), vocabulary=["a"])
    with pytest.raises(ValueError, match="lacks \\[MASK\\]"):
        save_tiny_preset(
            "bert",
            str(tmp_path / "b"),
            vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"],
        )


def test_model_with_preset_encoders_reloads_without_the_preset(
    vit_preset, bert_preset, tmp_path
):
    # Copies, deleted before loading: the .keras file needs no preset.
    vit_copy = shutil.copytree(vit_preset, tmp_path / "vit")
    bert_copy = shutil.copytree(bert_preset, tmp_path / "bert")
    image_encoder = build_image_encoder("vit", 32, preset=str(vit_copy))
    text_encoder = build_text_encoder(
        "bert", max_length=8, preset=str(bert_copy)
    )
    image = keras.Input((32, 32, 3), name="image")
    report = keras.Input((8,), dtype="int32", name="report")
    image_pooled, _ = image_encoder(image)
    text_pooled, _, _ = text_encoder(report)
    fused = keras.layers.Concatenate()([image_pooled, text_pooled])
    outputs = keras.layers.Dense(2, name="logits")(fused)
    model = keras.Model({"image": image, "report": report}, outputs)
    inputs = {"image": _images(), "report": IDS}
    want = np.asarray(model(inputs))
    path = str(tmp_path / "model.keras")
    model.save(path)
    shutil.rmtree(vit_copy)
    shutil.rmtree(bert_copy)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(inputs), want, atol=1e-5)
