"""Classification and regression heads, and a NaN-tolerant regression loss.

The heads are small functions that add named layers to a Functional graph:

- `classification_head(x, num_labels, head)`: `Dense` logits and a float32
  `sigmoid` (multi-label: one independent probability per label) or
  `softmax` (single-label: the probabilities sum to 1) activation, output
  `probabilities [B, num_labels]`.
- `regression_head(x, num_targets)`: a linear float32 `Dense`, output
  `score [B, num_targets]`.

`classification_loss(head)` gives the matching Keras loss, and
`MaskedMeanSquaredError` trains `score` on targets that may be missing
(NaN): a model can learn a label from every example and a score from the
examples that have one.

`output_names(config)` and `output_losses(config)` say which outputs a
multimodal classifier config (`mmzoo.models.multimodal`) gives and how each
is trained, for the task that compiles and serves it.
"""

import keras
from keras import ops

from mmzoo.layers import WEIGHTED_FUSIONS

HEADS = ("sigmoid", "softmax")
"""Activations of `classification_head`: multi-label or single-label."""

# Output names of a multimodal classifier (also serving output keys).
PROBABILITIES = "probabilities"
MODALITY_WEIGHTS = "modality_weights"
SCORE = "score"
RECONSTRUCTION = "reconstruction"


def _check_head(head, where):
    if head not in HEADS:
        raise ValueError(
            f"{where}: unknown head {head!r}; valid: {', '.join(HEADS)}"
        )


def probabilities_layer(logits, head="sigmoid", name=PROBABILITIES):
    """Applies the head's activation to `logits`, in float32.

    Args:
        logits: tensor `[B, K]`.
        head: str. One of `HEADS`. Defaults to `"sigmoid"`.
        name: str. Name of the activation layer (the output name). Defaults
            to `"probabilities"`.

    Returns:
        A float32 `[B, K]` tensor of probabilities.
    """
    _check_head(head, "probabilities_layer")
    return keras.layers.Activation(head, dtype="float32", name=name)(logits)


def classification_head(
    x, num_labels, head="sigmoid", name=PROBABILITIES, logits_name="logits"
):
    """Adds `Dense(num_labels)` logits and the head's activation to `x`.

    Args:
        x: tensor `[B, D]`.
        num_labels: int. Labels (classes) predicted.
        head: str. `sigmoid` (multi-label) or `softmax` (single-label).
            Defaults to `"sigmoid"`.
        name: str. Name of the output layer. Defaults to `"probabilities"`.
        logits_name: str. Name of the logits layer. Defaults to `"logits"`.

    Returns:
        A float32 `[B, num_labels]` tensor of probabilities.

    Example:
    ```python
    probabilities = classification_head(features, 5, head="softmax")
    ```
    """
    _check_head(head, "classification_head")
    logits = keras.layers.Dense(int(num_labels), name=logits_name)(x)
    return probabilities_layer(logits, head, name)


def regression_head(x, num_targets, name=SCORE):
    """Adds a linear float32 `Dense(num_targets)` to `x`.

    Args:
        x: tensor `[B, D]`.
        num_targets: int. Values predicted per example.
        name: str. Name of the output layer. Defaults to `"score"`.

    Returns:
        A float32 `[B, num_targets]` tensor.

    Example:
    ```python
    score = regression_head(features, 1)  # train with MaskedMeanSquaredError
    ```
    """
    if int(num_targets) < 1:
        raise ValueError(
            f"regression_head: num_targets must be >= 1; received {num_targets}"
        )
    return keras.layers.Dense(int(num_targets), dtype="float32", name=name)(x)


def classification_loss(head="sigmoid"):
    """The Keras loss of a `classification_head`.

    Args:
        head: str. `sigmoid`: `BinaryCrossentropy` on 0/1 label vectors
            `[B, K]`; `softmax`: `CategoricalCrossentropy` on one-hot label
            vectors `[B, K]`. Defaults to `"sigmoid"`.

    Returns:
        A `keras.losses.Loss`.
    """
    _check_head(head, "classification_loss")
    if head == "softmax":
        return keras.losses.CategoricalCrossentropy()
    return keras.losses.BinaryCrossentropy()


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedMeanSquaredError(keras.losses.Loss):
    """Mean squared error over the targets that are not NaN.

    A NaN target is a missing one: it adds nothing to the loss and its
    prediction gets no gradient. The loss of a batch is the mean squared
    error over its present targets (not over all rows, so a batch with few
    targets is not down-weighted); a batch without any target gives 0 and
    a zero (finite) gradient.

    Args:
        name: str. Defaults to `"masked_mean_squared_error"`.
        **kwargs: base `keras.losses.Loss` arguments (`reduction`,
            `dtype`).

    Call args:
        y_true: float `[B, T]` (or `[B]` when `T = 1`), NaN = missing.
        y_pred: float `[B, T]`.
        sample_weight: optional `[B]` weights, as for any Keras loss.

    Returns:
        A scalar with the default `sum_over_batch_size` reduction.

    Example:
    ```python
    model.compile(loss={"score": MaskedMeanSquaredError()}, ...)
    ```
    """

    def __init__(self, name="masked_mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
        if len(y_pred.shape) == 1:
            y_true, y_pred = y_true[:, None], y_pred[:, None]
        present = ops.logical_not(ops.isnan(y_true))
        target = ops.where(present, y_true, ops.zeros_like(y_true))
        error = ops.where(
            present, ops.square(y_pred - target), ops.zeros_like(y_pred)
        )
        count = ops.sum(ops.cast(present, y_pred.dtype))
        batch = ops.cast(ops.shape(y_pred)[0], y_pred.dtype)
        # Per-row values whose batch mean (the default reduction) is the
        # mean over the present targets.
        return ops.sum(error, axis=-1) * batch / ops.maximum(count, 1.0)


def has_modality_weights(config):
    """Whether the model built from `config` outputs `modality_weights`
    (several modalities fused by a method of `WEIGHTED_FUSIONS`)."""
    return len(config.modalities) > 1 and config.fusion in WEIGHTED_FUSIONS


def output_names(config):
    """Names of the model's outputs for `config`, in dict order.

    `probabilities` always; `modality_weights` when several modalities are
    fused by a method of `WEIGHTED_FUSIONS`; `score` when `num_targets >
    0`; `reconstruction` when `reconstruction_weight > 0`. A model with one
    output returns a tensor, otherwise a dict with these keys.

    Args:
        config: a `mmzoo.models.multimodal.MultimodalClassifierConfig` (its
            `modalities`, `fusion`, `num_targets` and
            `reconstruction_weight` are read).

    Returns:
        A tuple of output names.
    """
    names = [PROBABILITIES]
    if has_modality_weights(config):
        names.append(MODALITY_WEIGHTS)
    if config.num_targets:
        names.append(SCORE)
    if config.reconstruction_weight > 0:
        names.append(RECONSTRUCTION)
    return tuple(names)


def output_losses(config):
    """`{output name: (loss, weight)}` of the outputs that have a loss.

    `probabilities`: `classification_loss(config.head)` with
    `classification_weight`; `score`: `MaskedMeanSquaredError` (NaN
    targets ignored) with `regression_weight`; `reconstruction`: MSE
    against the image rescaled to 0..1 with `reconstruction_weight`.
    `modality_weights` has no loss.
    """
    losses = {
        PROBABILITIES: (
            classification_loss(config.head),
            config.classification_weight,
        )
    }
    names = output_names(config)
    if SCORE in names:
        losses[SCORE] = (MaskedMeanSquaredError(), config.regression_weight)
    if RECONSTRUCTION in names:
        losses[RECONSTRUCTION] = (
            keras.losses.MeanSquaredError(),
            config.reconstruction_weight,
        )
    return losses
