"""LSTNet-style diagnosis from an image and its report (multi-label).

A configuration of the generic multimodal classifier
(`mmzoo.models.multimodal`): an image branch (a small CNN, ResNet50,
EfficientNetB0 or ViT) and a report branch (word embeddings + LSTM or
BiLSTM) are fused by any layer of `mmzoo.layers.FUSION_METHODS` at the
`early`, `intermediate` or `late` level, and a sigmoid head predicts every
finding. The report is missing when its token ids are all 0 (an empty
report string); the image is always present.

Reference:
    LSTNet image + report diagnosis model (design documents of this
    project): CNN image branch, LSTM report branch, fused multi-label head,
    optional auxiliary image reconstruction (weight alpha) beside the
    classification loss (weight beta).
    Arevalo et al., "Gated Multimodal Units for Information Fusion",
    ICLR workshop 2017. https://arxiv.org/abs/1702.01992
    Baltrusaitis et al., "Multimodal Machine Learning: A Survey and
    Taxonomy", TPAMI 2019. https://arxiv.org/abs/1705.09406 (early,
    intermediate and late fusion).
    Neverova et al., "ModDrop: Adaptive Multi-Modal Gesture Recognition",
    TPAMI 2016. https://arxiv.org/abs/1501.00102 (modality dropout).
"""

import dataclasses
from typing import ClassVar

import keras

from mmzoo.models.multimodal import (  # noqa: F401 (re-exported)
    FUSION_LEVELS,
    MODALITY_WEIGHTS,
    PROBABILITIES,
    RECONSTRUCTION,
    TINY,
    ModalityMask,
    MultimodalClassifierConfig,
    build_multimodal_classifier,
    has_modality_weights,
    modality_specs,
    output_losses,
    output_names,
)
from mmzoo.registry import TFDS_DATASET, register_model

# Input names: also `tf.data` keys and serving keys.
IMAGE = "image"
REPORT = "report"
MODALITIES = (IMAGE, REPORT)
"""Modalities in their fixed order (columns of masks and weights)."""


@dataclasses.dataclass(frozen=True)
class LSTNetDiagnosisConfig(MultimodalClassifierConfig):
    """Hyperparameters of `build_lstnet_diagnosis`: the fields of
    `MultimodalClassifierConfig` (documented there), with the inputs
    `image` (an image) and `report` (a text) and a `sigmoid` (multi-label)
    head over `num_labels` findings.
    """

    model_name: ClassVar[str] = "lstnet_diagnosis"

    inputs: tuple = ((IMAGE, "image"), (REPORT, "text"))
    head: str = "sigmoid"


VARIANTS = {"tiny": dict(TINY), "base": {}}


@register_model(
    "lstnet_diagnosis",
    LSTNetDiagnosisConfig,
    variants=VARIANTS,
    problem="classification",
    datasets=("synthetic", "image-report", TFDS_DATASET),
    description=(
        "LSTNet-style multi-label diagnosis from an image and its report: "
        "CNN/ResNet/EfficientNet/ViT and (Bi)LSTM branches, any fusion at "
        "the early, intermediate or late level, optional reconstruction"
    ),
    test_overrides={"fusion": "attention"},
    synthetic="diagnosis",
)
def build_lstnet_diagnosis(config: LSTNetDiagnosisConfig) -> keras.Model:
    """Builds an uncompiled image + report multi-label diagnosis model.

    Inputs: `image` float32 `[B, S, S, 3]` (raw pixels, 0..255) and
    `report` int32 `[B, max_text_length]` (token ids, 0 = padding; an
    all-zero row is a missing report), or only the one of `modalities`.
    Outputs (see `output_names`): `probabilities` float32 `[B,
    num_labels]`; with a weighted fusion also `modality_weights` float32
    `[B, 2]` (columns image, report; a missing modality gets 0); with
    `reconstruction_weight > 0` also `reconstruction` float32 `[B, S, S,
    3]`. A single output is returned as a tensor, several as a dict. Train
    `probabilities` with binary cross-entropy (weight
    `classification_weight`) and `reconstruction` with MSE against
    `image / 255` (weight `reconstruction_weight`); `modality_weights` has
    no loss.

    Example:
    >>> model = mmzoo.build("lstnet_diagnosis", "tiny", fusion="attention")
    >>> out = model({"image": images, "report": report_ids})
    >>> out["probabilities"].shape, out["modality_weights"].shape
    ((B, 3), (B, 2))

    Reference:
        LSTNet (design documents of this project); Arevalo et al., 2017
        (GMU); Baltrusaitis et al., 2019 (fusion levels); Neverova et al.,
        2016 (ModDrop).
    """
    return build_multimodal_classifier(config, name="lstnet_diagnosis")
