"""Modality encoders (`keras.ops` only): image and text branches that return
both a pooled vector and a sequence, so one builder can feed vector fusions
and cross-modal attention alike."""

from mmzoo.encoders.image import (
    IMAGE_ENCODERS,
    CaffePreprocessing,
    ClassTokenSplit,
    PositionalRegions,
    build_image_encoder,
)
from mmzoo.encoders.text import (
    TEXT_ENCODERS,
    MaskedMean,
    TokenMask,
    build_text_encoder,
)

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "CaffePreprocessing",
    "ClassTokenSplit",
    "MaskedMean",
    "PositionalRegions",
    "TokenMask",
    "build_image_encoder",
    "build_text_encoder",
]
