"""Tests for mmzoo.encoders.image: every kind returns pooled + regions."""

import keras
import numpy as np
import pytest

from mmzoo.encoders import (
    IMAGE_ENCODERS,
    CaffePreprocessing,
    build_image_encoder,
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


def test_every_kind_is_tested():
    assert set(SHAPES) == set(IMAGE_ENCODERS)


@pytest.mark.parametrize("kind", IMAGE_ENCODERS)
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


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown kind 'alexnet'.*cnn"):
        build_image_encoder("alexnet", 32)
    with pytest.raises(ValueError, match="resnet50 needs image_size >= 32"):
        build_image_encoder("resnet50", 16)
    with pytest.raises(ValueError, match="not divisible by patch_size=16"):
        build_image_encoder("vit", 40, patch_size=16)
    with pytest.raises(ValueError, match="pooling blocks"):
        build_image_encoder("cnn", 8, cnn_filters=(4, 4, 4, 4))
