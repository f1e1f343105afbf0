"""Tests for mmzoo.encoders.image: every kind returns pooled + regions."""

import types

import keras
import numpy as np
import pytest

from mmzoo.encoders import (
    IMAGE_ENCODERS,
    CaffePreprocessing,
    PixelNormalization,
    build_image_encoder,
    image_encoder_from_config,
)

TINY = {
    "cnn_filters": (4, 8),
    "patch_size": 8,
    "patch_dim": 8,
    "vit_num_layers": 1,
    "vit_num_heads": 2,
    "vit_hidden_dim": 8,
    "vit_mlp_dim": 16,
}
# kind → (pooled width, number of regions, region width) at 32 pixels.
SHAPES = {
    "cnn": (8 * 8 * 8, 64, 8),
    "patches": (4 * 4 * 8, 16, 8),
    "vit": (8, 16, 8),
    "resnet50": (2048, 1, 2048),
    "efficientnetb0": (1280, 1, 1280),
}


def _images(batch=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def test_registry_lists_every_kind():
    assert tuple(IMAGE_ENCODERS) == (
        "cnn",
        "patches",
        "resnet50",
        "efficientnetb0",
        "vit",
    )
    assert set(SHAPES) == set(IMAGE_ENCODERS)
    assert all(callable(builder) for builder in IMAGE_ENCODERS.values())


@pytest.mark.parametrize("kind", tuple(IMAGE_ENCODERS))
def test_encoder_returns_pooled_vector_and_regions(kind):
    encoder = build_image_encoder(kind, 32, **TINY)
    pooled, regions = encoder(_images())
    width, count, depth = SHAPES[kind]
    assert tuple(pooled.shape) == (2, width)
    assert tuple(regions.shape) == (2, count, depth)
    assert np.all(np.isfinite(np.asarray(pooled)))
    assert encoder.inputs[0].name == "image"


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_return_regions_false_gives_pooled_only(kind):
    encoder = build_image_encoder(kind, 32, return_regions=False, **TINY)
    pooled = encoder(_images())
    assert tuple(pooled.shape) == (2, SHAPES[kind][0])
    assert len(encoder.outputs) == 1


def test_cnn_rescales_raw_pixels_inside():
    encoder = build_image_encoder("cnn", 32, **TINY)
    assert encoder.get_layer("rescaling").scale == pytest.approx(1 / 255)


def test_caffe_preprocessing_flips_channels_and_centres():
    pixels = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    out = np.asarray(CaffePreprocessing()(pixels))
    np.testing.assert_allclose(
        out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6
    )


def test_pixel_normalization_global_and_per_channel():
    pixels = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    layer = PixelNormalization(1 / 127.5, -1.0)
    np.testing.assert_allclose(layer(pixels)[0, 0, 0], [-1, 0, 1], atol=1e-6)
    layer = PixelNormalization([1.0, 2.0, 0.5], [0.0, 1.0, -1.0])
    np.testing.assert_allclose(layer(pixels)[0, 0, 0], [0, 256, 126.5])
    clone = PixelNormalization.from_config(layer.get_config())
    assert (clone.scale, clone.offset) == (layer.scale, layer.offset)


def test_regions_carry_their_position():
    # A uniform image gives the same CNN features everywhere but the
    # interior; the position embedding makes every region distinct.
    encoder = build_image_encoder("patches", 32, **TINY)
    _, regions = encoder(np.full((1, 32, 32, 3), 128.0, "float32"))
    regions = np.asarray(regions)[0]
    assert len({tuple(np.round(r, 5)) for r in regions}) == len(regions)


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_keras_round_trip(kind, tmp_path):
    encoder = build_image_encoder(kind, 32, **TINY)
    path = str(tmp_path / f"{kind}.keras")
    encoder.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = _images()
    for got, want in zip(loaded(images), encoder(images)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_resnet50_loads_a_local_weights_file_and_freezes(tmp_path):
    first = build_image_encoder("resnet50", 32, return_regions=False)
    path = str(tmp_path / "resnet50_notop.weights.h5")
    first.get_layer("resnet50").save_weights(path)
    second = build_image_encoder(
        "resnet50", 32, weights=path, trainable=False, return_regions=True
    )
    images = _images()
    pooled, _ = second(images)
    np.testing.assert_allclose(pooled, first(images), rtol=1e-5, atol=1e-5)
    # Frozen backbone: only the (new) region position embedding trains.
    trainable = second.trainable_weights
    assert trainable and all("regions" in w.path for w in trainable)
    assert not second.get_layer("resnet50").trainable_weights


def test_vit_trainable_false_freezes_the_backbone():
    encoder = build_image_encoder("vit", 32, trainable=False, **TINY)
    assert encoder.trainable_weights == []
    assert encoder.non_trainable_weights


def test_from_config_reads_standard_fields():
    config = types.SimpleNamespace(
        image_encoder="cnn", image_size=32, cnn_filters=(4, 8), dropout=0.1
    )
    encoder = image_encoder_from_config(config, name="scan_encoder")
    assert encoder.name == "scan_encoder"
    assert tuple(encoder.outputs[0].shape) == (None, 8 * 8 * 8)
    patches = image_encoder_from_config(
        types.SimpleNamespace(image_size=32, patch_size=8, patch_dim=4),
        return_regions=False,
        kind="patches",
    )
    assert tuple(patches.outputs[0].shape) == (None, 4 * 4 * 4)


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'alexnet'.*cnn"):
        build_image_encoder("alexnet", 32)
    with pytest.raises(ValueError, match="resnet50 needs image_size >= 32"):
        build_image_encoder("resnet50", 16)
    with pytest.raises(ValueError, match="not divisible by patch_size=16"):
        build_image_encoder("vit", 40, patch_size=16)
    with pytest.raises(ValueError, match="pooling blocks"):
        build_image_encoder("cnn", 8, cnn_filters=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="'imagenet' or an existing"):
        build_image_encoder("resnet50", 32, weights=str(tmp_path / "no.h5"))
    with pytest.raises(ValueError, match="cnn has no pretrained.*weights="):
        build_image_encoder("cnn", 32, weights="imagenet")
    with pytest.raises(ValueError, match="patches has no pretrained.*preset"):
        build_image_encoder("patches", 32, preset="vit_base_patch16_224")
    with pytest.raises(ValueError, match="cnn has no pretrained.*trainable"):
        build_image_encoder("cnn", 32, trainable=False)
    with pytest.raises(ValueError, match="vit takes a preset, not weights"):
        build_image_encoder("vit", 32, weights="imagenet")
    with pytest.raises(ValueError, match="preset or weights, not both"):
        build_image_encoder("resnet50", 32, preset="x", weights="imagenet")
    with pytest.raises(ValueError, match="image_size must be a positive"):
        build_image_encoder("cnn", None)
