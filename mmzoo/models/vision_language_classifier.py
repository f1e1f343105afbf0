"""Vision-language classifier: ViT + BERT with cross-modal attention.

A configuration of the generic multimodal classifier
(`mmzoo.models.multimodal`) after the vision-language fusion seed (seed
003): a keras-hub `ViTBackbone` reads the image as patches, a keras-hub
`BertBackbone` reads the text (WordPiece ids, the vocabulary computed from
the training texts or a preset's), and co-attention joins the two
sequences: text tokens attend to image patches and patches to tokens (the
`cross_attention` fusion, ViLBERT's co-attention block), or any other
fusion of `mmzoo.layers`, or `stack_logits`, the decision-level fusion of
the seed's own code (each encoder has its own classifier and a linear layer
combines their logits). Both encoders may start from keras-hub presets
(`image_preset`, `text_preset`).

Heads, trained together: classification (`softmax`, or `sigmoid` for
multi-label tagging; the task picks it from the data, `head_from_data`)
and, when the data has a target column, a regression `score` in target
units. The loss is ℒ = ℒ_cls + λ·ℒ_reg (λ = `regression_weight`), with
ℒ_reg the mean squared error of the standardized target over the rows that
have one (a row without a target adds nothing).

Reference:
    Vision-language fusion seed (design documents of this project): ViT and
    BERT encoders, cross-modal attention, classification and regression
    heads, ℒ = ℒ_cls + λ·ℒ_reg.
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
    Image Recognition at Scale", ICLR 2021. https://arxiv.org/abs/2010.11929
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers
    for Language Understanding", NAACL 2019. https://arxiv.org/abs/1810.04805
    Lu et al., "ViLBERT: Pretraining Task-Agnostic Visiolinguistic
    Representations for Vision-and-Language Tasks", NeurIPS 2019.
    https://arxiv.org/abs/1908.02265 (co-attention).
"""

import dataclasses
from typing import ClassVar

import keras

from mmzoo.models.multimodal import (
    MultimodalClassifierConfig,
    build_multimodal_classifier,
)
from mmzoo.registry import TFDS_DATASET, register_model

# Input names: also `tf.data` keys and serving keys.
IMAGE = "image"
TEXT = "text"


@dataclasses.dataclass(frozen=True)
class VisionLanguageClassifierConfig(MultimodalClassifierConfig):
    """Hyperparameters of `build_vision_language_classifier`: the fields of
    `MultimodalClassifierConfig` (documented there) with the reference
    settings of seed 003 as defaults (the `base` variant): inputs `image`
    and `text`; ViT-B/16 at 224 px (`image_encoder="vit"`); BERT-base
    (`text_encoder="bert"`, 12 layers of width 768, WordPiece, 128 tokens);
    `cross_attention` fusion of width 768 with 12 heads; a `softmax` head
    set from the data (`head_from_data`); AdamW at 1e-4 with weight decay
    0.01 and gradient clipping, as usual for ViT and BERT.
    """

    model_name: ClassVar[str] = "vision_language_classifier"

    inputs: tuple = ((IMAGE, "image"), (TEXT, "text"))
    head: str = "softmax"
    head_from_data: bool = True
    image_size: int = 224
    image_encoder: str = "vit"
    patch_size: int = 16
    text_encoder: str = "bert"
    text_tokenizer: str = "wordpiece"
    vocabulary_size: int = 30522
    max_text_length: int = 128
    embedding_dim: int = 768
    text_num_layers: int = 12
    text_num_heads: int = 12
    text_intermediate_dim: int = 3072
    text_dropout: float = 0.1
    fusion: str = "cross_attention"
    fusion_units: int = 768
    fusion_heads: int = 12
    hidden_units: tuple = (256,)
    dropout: float = 0.1
    optimizer: str = "adamw"
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    global_clipnorm: float = 1.0


TINY = {
    "image_size": 32,
    "patch_size": 8,
    "vit_num_layers": 1,
    "vit_num_heads": 2,
    "vit_hidden_dim": 32,
    "vit_mlp_dim": 64,
    "vocabulary_size": 2000,
    "max_text_length": 32,
    "embedding_dim": 32,
    "text_num_layers": 1,
    "text_num_heads": 2,
    "text_intermediate_dim": 64,
    "text_dropout": 0.0,
    "representation_dim": 32,
    "fusion_units": 32,
    "fusion_heads": 2,
    "hidden_units": (32,),
    "dropout": 0.1,
    "learning_rate": 1e-3,
}
"""The `tiny` variant: CPU-sized ViT (32 px, patch 8, one block of width
32) and BERT (one layer of width 32, 32 tokens)."""

VARIANTS = {"tiny": TINY, "base": {}}


@register_model(
    "vision_language_classifier",
    VisionLanguageClassifierConfig,
    variants=VARIANTS,
    problem="classification",
    datasets=("synthetic", "image-text-labels", TFDS_DATASET),
    synthetic="shapes_reference",
    description=(
        "ViT + BERT with cross-modal (co-)attention, or any fusion or "
        "stacked per-modality logits; softmax or multi-label head plus an "
        "optional regression score (L = L_cls + lambda * L_reg)"
    ),
    test_overrides={},
)
def build_vision_language_classifier(
    config: VisionLanguageClassifierConfig,
) -> keras.Model:
    """Builds an uncompiled ViT + BERT vision-language classifier.

    Inputs: `image` float32 `[B, S, S, 3]` (raw pixels, 0..255) and `text`
    int32 `[B, T]` (WordPiece ids, 0 = padding; an all-zero row is a
    missing text), or only the one of `modalities`. Outputs (see
    `mmzoo.heads.classification.output_names`): `probabilities` float32
    `[B, num_labels]`; with `num_targets > 0` also `score` float32 `[B,
    num_targets]` in target units; `modality_weights` for a weighted
    fusion. `output_losses(config)` gives each output's loss and weight.

    Example:
    >>> model = mmzoo.build("vision_language_classifier", "tiny",
    ...                     num_labels=3, num_targets=1,
    ...                     target_mean=(0.5,), target_std=(0.2,))
    >>> out = model({"image": images, "text": token_ids})
    >>> out["probabilities"].shape, out["score"].shape
    ((B, 3), (B, 1))

    Reference:
        Seed 003 (ViT + BERT, cross-modal attention, ℒ_cls + λ·ℒ_reg);
        Dosovitskiy et al., 2021 (ViT); Devlin et al., 2019 (BERT); Lu et
        al., 2019 (ViLBERT co-attention).
    """
    return build_multimodal_classifier(
        config, name="vision_language_classifier"
    )
