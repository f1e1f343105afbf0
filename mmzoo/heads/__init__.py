"""Heads (`keras.ops` only): what a model outputs and how it is read out.

`classification`: sigmoid / softmax probabilities, a linear regression
`score` in target units (`TargetScale`), `MaskedMeanSquaredError` (NaN
targets ignored, standardized) and `MatchingLoss` (in-batch label
matching).
`generation`: greedy and beam-search caption decoding over any captioner
that exposes the layers its module docstring lists, and the reserved
caption token ids.
"""

from mmzoo.heads.classification import (
    HEADS,
    TEXT_LOSSES,
    MaskedMeanSquaredError,
    MatchingLoss,
    TargetScale,
    classification_head,
    classification_loss,
    has_reconstruction,
    output_losses,
    output_names,
    probabilities_layer,
    regression_head,
)
from mmzoo.heads.generation import (
    END_ID,
    OOV_ID,
    PAD_ID,
    START_ID,
    attention_weights,
    beam_search_decode,
    bidirectional_decode,
    generate,
    greedy_decode,
    ids_to_text,
)

__all__ = [
    "END_ID",
    "HEADS",
    "MaskedMeanSquaredError",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "TEXT_LOSSES",
    "MatchingLoss",
    "TargetScale",
    "attention_weights",
    "beam_search_decode",
    "bidirectional_decode",
    "classification_head",
    "classification_loss",
    "generate",
    "greedy_decode",
    "has_reconstruction",
    "ids_to_text",
    "output_losses",
    "output_names",
    "probabilities_layer",
    "regression_head",
]
