"""Serializable Keras layers built on `keras.ops` only.

Fusion layers share one calling convention (see `mmzoo.layers.modality`):
`layer(inputs, modality_mask=None, training=None)` with `inputs` a list or
dict (sorted key order) of per-modality tensors, returning `[B, D_out]`, or
`(fused, weights [B, M])` when built with `return_weights=True`.
"""

from mmzoo.layers.alignment import (
    AdversarialAlignment,
    GradientReversal,
    MaxAlignment,
    ProductAlignment,
    WeightedAlignment,
)
from mmzoo.layers.attention import AttentionPooling, CrossModalAttention
from mmzoo.layers.fusion import (
    FUSION_METHODS,
    SEQUENCE_FUSIONS,
    WEIGHTED_FUSIONS,
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    LowRankFusion,
    get_fusion,
)
from mmzoo.layers.interactions import (
    CategoricalEmbedding,
    FMInteraction,
    NumericEmbedding,
    PooledEmbedding,
)
from mmzoo.layers.modality import FusionLayer, ModalityDropout, NaNMask

__all__ = [
    "FUSION_METHODS",
    "SEQUENCE_FUSIONS",
    "WEIGHTED_FUSIONS",
    "AdversarialAlignment",
    "AttentionFusion",
    "AttentionPooling",
    "CategoricalEmbedding",
    "ConcatFusion",
    "CrossModalAttention",
    "FMInteraction",
    "FusionLayer",
    "GatedFusion",
    "GradientReversal",
    "LowRankFusion",
    "MaxAlignment",
    "ModalityDropout",
    "NaNMask",
    "NumericEmbedding",
    "PooledEmbedding",
    "ProductAlignment",
    "WeightedAlignment",
    "get_fusion",
]
