"""Classification and regression heads, and their losses.

The heads are small functions that add named layers to a Functional graph:

- `classification_head(x, num_labels, head)`: `Dense` logits and a float32
  `sigmoid` (multi-label: one independent probability per label) or
  `softmax` (single-label: the probabilities sum to 1) activation, output
  `probabilities [B, num_labels]`.
- `regression_head(x, num_targets, mean, std)`: a linear float32 `Dense`
  that predicts standardized targets `z`, then `TargetScale` (`z * std +
  mean`), output `score [B, num_targets]` in target units.

Losses: `classification_loss(head, text_loss)` gives the cross-entropy of a
head, or `MatchingLoss`, the in-batch label matching loss
−log softmax_j(embed(y_j)ᵀ embed(x_i)) of the image + text multitask seed;
`MaskedMeanSquaredError` trains `score` on targets that may be missing
(NaN), standardized by the same mean and std as the head, so that a model
learns a label from every example and a score from the examples that have
one, with a loss weight that does not depend on the target's units.

`output_names(config)` and `output_losses(config)` say which outputs a
multimodal classifier config (`mmzoo.models.multimodal`) gives and how each
is trained, for the task that compiles and serves it.
"""

import math

import keras
from keras import ops

from mmzoo.layers import WEIGHTED_FUSIONS

HEADS = ("sigmoid", "softmax")
"""Activations of `classification_head`: multi-label or single-label."""

TEXT_LOSSES = ("crossentropy", "matching")
"""Losses of `probabilities`: the head's cross-entropy or `MatchingLoss`."""

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
    x,
    num_labels,
    head="sigmoid",
    name=PROBABILITIES,
    logits_name="logits",
    use_bias=True,
):
    """Adds `Dense(num_labels)` logits and the head's activation to `x`.

    Args:
        x: tensor `[B, D]`.
        num_labels: int. Labels (classes) predicted.
        head: str. `sigmoid` (multi-label) or `softmax` (single-label).
            Defaults to `"sigmoid"`.
        name: str. Name of the output layer. Defaults to `"probabilities"`.
        logits_name: str. Name of the logits layer. Defaults to `"logits"`.
        use_bias: bool. False makes the logits `x · E` exactly, with `E`
            (the kernel, `[D, num_labels]`) one embedding per label, as
            `MatchingLoss` reads them. Defaults to True.

    Returns:
        A float32 `[B, num_labels]` tensor of probabilities.

    Example:
    ```python
    probabilities = classification_head(features, 5, head="softmax")
    ```
    """
    _check_head(head, "classification_head")
    logits = keras.layers.Dense(
        int(num_labels), use_bias=use_bias, name=logits_name
    )(x)
    return probabilities_layer(logits, head, name)


def _floats(values, where, what):
    """`values` (a number or a sequence) as a tuple of floats."""
    if values is None:
        return ()
    if isinstance(values, int | float):
        values = (values,)
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: {what}={values!r}; expected a sequence of numbers"
        ) from None


def _check_statistics(mean, std, where, width=None):
    """Validates target statistics: equal lengths (`width` when given),
    finite means and finite positive standard deviations."""
    if width is not None:
        for what, values in (("mean", mean), ("std", std)):
            if values and len(values) != width:
                raise ValueError(
                    f"{where}: {what}={values} has {len(values)} values for "
                    f"{width} targets; expected {width} or none"
                )
    elif mean and std and len(mean) != len(std):
        raise ValueError(f"{where}: mean={mean} and std={std} differ in length")
    if not all(math.isfinite(v) for v in mean):
        raise ValueError(f"{where}: mean={mean}; expected finite values")
    if not all(math.isfinite(v) and v > 0 for v in std):
        raise ValueError(f"{where}: std={std}; expected finite values > 0")


@keras.saving.register_keras_serializable(package="mmzoo")
class TargetScale(keras.layers.Layer):
    """Maps standardized predictions back to target units: `z * std + mean`.

    The last axis holds one column per target; `mean` and `std` give one
    value per column (`()` means 0 and 1). Computed in float32.

    Args:
        mean: sequence of float. Training-split mean of each target.
            Defaults to `()` (0).
        std: sequence of float. Training-split standard deviation of each
            target, each > 0. Defaults to `()` (1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, T]` standardized predictions `z`.

    Returns:
        A float32 `[B, T]` tensor in target units.

    Example:
    ```python
    score = TargetScale(mean=(3.2,), std=(0.7,), name="score")(z)
    ```
    """

    def __init__(self, mean=(), std=(), **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean = _floats(mean, "TargetScale", "mean")
        self.std = _floats(std, "TargetScale", "std")
        _check_statistics(self.mean, self.std, "TargetScale")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.std:
            x = x * ops.convert_to_tensor(self.std, "float32")
        if self.mean:
            x = x + ops.convert_to_tensor(self.mean, "float32")
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std))
        return config


def regression_head(x, num_targets, name=SCORE, mean=(), std=()):
    """Adds a linear float32 `Dense(num_targets)` (standardized targets `z`,
    layer `<name>_standardized`) and `TargetScale` (`z * std + mean`, layer
    `name`) to `x`.

    Args:
        x: tensor `[B, D]`.
        num_targets: int. Values predicted per example.
        name: str. Name of the output layer. Defaults to `"score"`.
        mean: sequence of float. Mean of each target (training split);
            `()` means 0. Defaults to `()`.
        std: sequence of float. Standard deviation of each target; `()`
            means 1. Defaults to `()`.

    Returns:
        A float32 `[B, num_targets]` tensor in target units.

    Example:
    ```python
    score = regression_head(features, 1, mean=(3.2,), std=(0.7,))
    loss = MaskedMeanSquaredError(mean=(3.2,), std=(0.7,))
    ```
    """
    if int(num_targets) < 1:
        raise ValueError(
            f"regression_head: num_targets must be >= 1; received {num_targets}"
        )
    mean = _floats(mean, "regression_head", "mean")
    std = _floats(std, "regression_head", "std")
    _check_statistics(mean, std, "regression_head", int(num_targets))
    z = keras.layers.Dense(
        int(num_targets), dtype="float32", name=f"{name}_standardized"
    )(x)
    return TargetScale(mean, std, name=name)(z)


def _check_text_loss(text_loss, where):
    if text_loss not in TEXT_LOSSES:
        raise ValueError(
            f"{where}: unknown text_loss {text_loss!r}; valid: "
            f"{', '.join(TEXT_LOSSES)}"
        )


def classification_loss(head="sigmoid", text_loss="crossentropy"):
    """The Keras loss of a `classification_head`.

    Args:
        head: str. `sigmoid`: `BinaryCrossentropy` on 0/1 label vectors
            `[B, K]`; `softmax`: `CategoricalCrossentropy` on one-hot label
            vectors `[B, K]`. Defaults to `"sigmoid"`.
        text_loss: str. `crossentropy` (the head's, above) or `matching`
            (`MatchingLoss`, in-batch label matching; needs `softmax`).
            Defaults to `"crossentropy"`.

    Returns:
        A `keras.losses.Loss`.
    """
    _check_head(head, "classification_loss")
    _check_text_loss(text_loss, "classification_loss")
    if text_loss == "matching":
        if head != "softmax":
            raise ValueError(
                f"classification_loss: text_loss 'matching' needs head "
                f"'softmax' (one label per example); received head {head!r}"
            )
        return MatchingLoss()
    if head == "softmax":
        return keras.losses.CategoricalCrossentropy()
    return keras.losses.BinaryCrossentropy()


@keras.saving.register_keras_serializable(package="mmzoo")
class MatchingLoss(keras.losses.Loss):
    """In-batch label matching: −log softmax over the batch's labels.

    The loss of the image + text multitask seed: with `embed(x_i)` the
    features of example `i` and `embed(y_j)` the embedding of the label of
    example `j`, example `i` scores every label of the batch, `s_ij =
    embed(y_j)ᵀ embed(x_i)`, and the loss is `−log softmax_j(s_ij)` at `j =
    i`, averaged over the batch (an in-batch contrastive loss in the style
    of CLIP, with labels in place of texts).

    It is computed from the served `probabilities` of a `softmax` head with
    bias-free logits (`classification_head(..., use_bias=False)`): there
    `log p_i = x_i·E − c_i` with `E` the label embeddings and `c_i` one
    constant per row, so `s_ij = log(p_i)ᵀ y_j` for one-hot `y_j` up to
    `c_i`, which the softmax over `j` cancels. The model needs no extra
    output, and its `probabilities` stay a softmax over the classes.
    Examples of the same class are all scored (each copy in the
    denominator); a batch of one class gives the constant `log B` and no
    gradient. Probabilities below `epsilon` are clipped (as in
    `CategoricalCrossentropy`).

    Args:
        epsilon: float. Smallest probability whose log is taken. Defaults
            to 1e-7.
        name: str. Defaults to `"matching_loss"`.
        **kwargs: base `keras.losses.Loss` arguments (`reduction`,
            `dtype`).

    Call args:
        y_true: float `[B, K]` one-hot labels.
        y_pred: float `[B, K]` softmax probabilities.
        sample_weight: optional `[B]` weights, as for any Keras loss.

    Returns:
        A scalar with the default `sum_over_batch_size` reduction.

    Example:
    ```python
    model.compile(loss={"probabilities": MatchingLoss()}, ...)
    ```

    Reference:
        The image + text multitask seed of this project (loss
        −log softmax(embed(y)ᵀ embed(x)) over the batch); Radford et al.,
        "Learning Transferable Visual Models From Natural Language
        Supervision", ICML 2021. https://arxiv.org/abs/2103.00020
        (in-batch softmax over paired embeddings).
    """

    def __init__(self, epsilon=1e-7, name="matching_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        log_p = ops.log(ops.clip(y_pred, self.epsilon, 1.0))
        # scores[i, j] = embed(y_j)ᵀ embed(x_i) − c_i.
        scores = ops.matmul(log_p, ops.transpose(y_true))
        positive = ops.sum(log_p * y_true, axis=-1)
        return ops.logsumexp(scores, axis=-1) - positive

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedMeanSquaredError(keras.losses.Loss):
    """Mean squared error over the targets that are not NaN, standardized.

    A NaN target is a missing one: it adds nothing to the loss and its
    prediction gets no gradient. The loss of a batch is the mean squared
    error over its present targets (not over all rows, so a batch with few
    targets is not down-weighted); a batch without any target gives 0 and
    a zero (finite) gradient. Target and prediction (both in target units)
    are first standardized with the same `mean` and `std`, as
    `regression_head` predicts them, so the loss (and its weight) does not
    depend on the targets' units.

    Args:
        mean: sequence of float (or one float). Mean of each target
            column; `()` means 0. Defaults to `()`.
        std: sequence of float (or one float). Standard deviation of each
            target column, each > 0; `()` means 1. Defaults to `()`.
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
    model.compile(
        loss={"score": MaskedMeanSquaredError(mean=(3.2,), std=(0.7,))}, ...
    )
    ```
    """

    def __init__(
        self, mean=(), std=(), name="masked_mean_squared_error", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.mean = _floats(mean, "MaskedMeanSquaredError", "mean")
        self.std = _floats(std, "MaskedMeanSquaredError", "std")
        _check_statistics(self.mean, self.std, "MaskedMeanSquaredError")

    def _standardize(self, x):
        if self.mean:
            x = x - ops.convert_to_tensor(self.mean, x.dtype)
        if self.std:
            x = x / ops.convert_to_tensor(self.std, x.dtype)
        return x

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
        if len(y_pred.shape) == 1:
            y_true, y_pred = y_true[:, None], y_pred[:, None]
        present = ops.logical_not(ops.isnan(y_true))
        target = ops.where(present, y_true, ops.zeros_like(y_true))
        target, y_pred = self._standardize(target), self._standardize(y_pred)
        error = ops.where(
            present, ops.square(y_pred - target), ops.zeros_like(y_pred)
        )
        count = ops.sum(ops.cast(present, y_pred.dtype))
        batch = ops.cast(ops.shape(y_pred)[0], y_pred.dtype)
        # Per-row values whose batch mean (the default reduction) is the
        # mean over the present targets.
        return ops.sum(error, axis=-1) * batch / ops.maximum(count, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std))
        return config


def has_modality_weights(config):
    """Whether the model built from `config` outputs `modality_weights`
    (several modalities fused by a method of `WEIGHTED_FUSIONS`)."""
    return len(config.modalities) > 1 and config.fusion in WEIGHTED_FUSIONS


def reconstructed_modality(config):
    """Name of the image modality a decoder reconstructs (the first used
    image), or None when `config.modalities` has no image."""
    kinds = dict(config.inputs)
    for name in config.modalities:
        if kinds[name] == "image":
            return name
    return None


def has_reconstruction(config):
    """Whether the model built from `config` outputs `reconstruction`: an
    image modality is used and `reconstruction_weight > 0` (trained) or
    `serve_reconstruction` (served; trained only when the weight is > 0)."""
    wanted = config.reconstruction_weight > 0 or getattr(
        config, "serve_reconstruction", False
    )
    return bool(wanted) and reconstructed_modality(config) is not None


def output_names(config):
    """Names of the model's outputs for `config`, in dict order.

    `probabilities` always; `modality_weights` when several modalities are
    fused by a method of `WEIGHTED_FUSIONS`; `score` when `num_targets >
    0`; `reconstruction` when `has_reconstruction(config)`. A model with
    one output returns a tensor, otherwise a dict with these keys.

    Args:
        config: a `mmzoo.models.multimodal.MultimodalClassifierConfig` (its
            `inputs`, `modalities`, `fusion`, `num_targets`,
            `reconstruction_weight` and `serve_reconstruction` are read).

    Returns:
        A tuple of output names.
    """
    names = [PROBABILITIES]
    if has_modality_weights(config):
        names.append(MODALITY_WEIGHTS)
    if config.num_targets:
        names.append(SCORE)
    if has_reconstruction(config):
        names.append(RECONSTRUCTION)
    return tuple(names)


def output_losses(config):
    """`{output name: (loss, weight)}` of the outputs that have a loss.

    - `probabilities`: `classification_loss(config.head, config.text_loss)`
      (binary cross-entropy for `sigmoid`, categorical for `softmax`, or
      `MatchingLoss` for `text_loss="matching"`) with
      `classification_weight`;
    - `score`: `MaskedMeanSquaredError(target_mean, target_std)` (NaN
      targets ignored; target and prediction standardized, so the weight
      λ = `regression_weight` is scale-free);
    - `reconstruction`: MSE against the image rescaled to 0..1 with
      `reconstruction_weight` (alpha; 0 when only served).

    `modality_weights` has no loss. This is what the classification task
    compiles with: `loss={k: l for k, (l, _) in ...}`, `loss_weights={k:
    w ...}`.

    Args:
        config: a `mmzoo.models.multimodal.MultimodalClassifierConfig`.

    Returns:
        A dict of output name to `(keras.losses.Loss, float weight)`.
    """
    losses = {
        PROBABILITIES: (
            classification_loss(
                config.head, getattr(config, "text_loss", "crossentropy")
            ),
            config.classification_weight,
        )
    }
    names = output_names(config)
    if SCORE in names:
        losses[SCORE] = (
            MaskedMeanSquaredError(
                mean=getattr(config, "target_mean", ()),
                std=getattr(config, "target_std", ()),
            ),
            config.regression_weight,
        )
    if RECONSTRUCTION in names:
        losses[RECONSTRUCTION] = (
            keras.losses.MeanSquaredError(),
            config.reconstruction_weight,
        )
    return losses
