"""Modality encoders (`keras.ops` only): image and text branches that return
both a pooled vector and a sequence, so one builder can feed vector fusions
and cross-modal attention alike.

Kinds live in the `IMAGE_ENCODERS` / `TEXT_ENCODERS` registries
(`register_image_encoder` / `register_text_encoder`); backbone kinds can
start from keras-hub presets or `keras.applications` weights
(`mmzoo.encoders.presets`)."""

from mmzoo.encoders.image import (
    PRESET_IMAGE_KINDS,
    WEIGHTS_IMAGE_KINDS,
    CaffePreprocessing,
    ClassTokenSplit,
    PixelNormalization,
    PositionalRegions,
    build_image_encoder,
    image_encoder_from_config,
    preset_image_outputs,
)
from mmzoo.encoders.presets import (
    DEFAULT_VOCABULARY,
    preset_image_size,
    preset_pixel_normalization,
    save_tiny_preset,
)
from mmzoo.encoders.registry import (
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    register_image_encoder,
    register_text_encoder,
)
from mmzoo.encoders.text import (
    PRESET_TEXT_KINDS,
    BackboneTextInputs,
    MaskedMean,
    TokenMask,
    ZeroMissing,
    backbone_text_outputs,
    build_text_encoder,
    text_encoder_from_config,
)

__all__ = [
    "DEFAULT_VOCABULARY",
    "IMAGE_ENCODERS",
    "PRESET_IMAGE_KINDS",
    "PRESET_TEXT_KINDS",
    "TEXT_ENCODERS",
    "WEIGHTS_IMAGE_KINDS",
    "BackboneTextInputs",
    "CaffePreprocessing",
    "ClassTokenSplit",
    "MaskedMean",
    "PixelNormalization",
    "PositionalRegions",
    "TokenMask",
    "ZeroMissing",
    "backbone_text_outputs",
    "build_image_encoder",
    "build_text_encoder",
    "image_encoder_from_config",
    "preset_image_outputs",
    "preset_image_size",
    "preset_pixel_normalization",
    "register_image_encoder",
    "register_text_encoder",
    "save_tiny_preset",
    "text_encoder_from_config",
]
