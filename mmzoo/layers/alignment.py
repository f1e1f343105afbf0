"""Alignment fusions: project modalities into one space, then combine.

`MaxAlignment`, `WeightedAlignment` and `AdversarialAlignment` follow the
calling convention of `mmzoo.layers.modality`: `layer(inputs,
modality_mask=None, training=None)` with `inputs` a list or dict of `[B, D_i]`
tensors, returning `[B, units]`. `GradientReversal` is the identity with a
reversed gradient, used by `AdversarialAlignment`.
"""

import keras
from keras import ops

from mmzoo.layers.modality import FusionLayer, masked_mean, masked_softmax


def _large_negative(dtype):
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


class _ProjectingFusion(FusionLayer):
    """Holds one `Dense(units)` projection per modality."""

    def __init__(
        self,
        units,
        activation=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(
                f"{type(self).__name__}: units must be a positive int; "
                f"received {units}"
            )
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _build_projections(self, shapes):
        self.projections = []
        for index, shape in enumerate(shapes):
            dense = keras.layers.Dense(
                self.units,
                activation=self.activation,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"projection_{index}",
            )
            dense.build(shape)
            self.projections.append(dense)

    def _project(self, tensors):
        """Returns the stacked projections `[B, M, units]`."""
        return ops.stack(
            [dense(x) for dense, x in zip(self.projections, tensors)], axis=1
        )

    @staticmethod
    def _reduce_present(projected, mask, fill, reduce):
        """`reduce` over the modality axis of `projected [B, M, units]`,
        masked modalities set to `fill` (the reduction's identity); zeros
        for an example with every modality masked."""
        present = ops.expand_dims(ops.greater(mask, 0.5), -1)
        fill = ops.cast(fill, projected.dtype)
        reduced = reduce(ops.where(present, projected, fill), axis=1)
        any_present = ops.any(present, axis=1)
        return ops.where(any_present, reduced, ops.zeros_like(reduced))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class MaxAlignment(_ProjectingFusion):
    """Projects every modality to `units`, then takes the element-wise max.

    Masked modalities are left out of the max; an example with every
    modality masked gets zeros.

    Args:
        units: int. Width of the shared space and of the output.
        activation: str or callable. Activation of the projections.
            Defaults to `None` (linear).
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor.

    Example:
    ```python
    fused = MaxAlignment(64)([image_vec, text_vec])  # [B, 64]
    ```

    Reference:
    - [Su et al., 2015. Multi-view Convolutional Neural Networks for 3D
      Shape Recognition](https://arxiv.org/abs/1505.00880) (element-wise
      max "view pooling" across views).
    """

    def build(self, input_shape):
        self._build_projections(self._modality_shapes(input_shape))

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        projected = self._project(tensors)
        fill = _large_negative(projected.dtype)
        return self._reduce_present(projected, mask, fill, ops.max)


@keras.saving.register_keras_serializable(package="mmzoo")
class ProductAlignment(_ProjectingFusion):
    """Projects every modality to `units` (tanh), then multiplies them
    element-wise: the fusion of the VQA paper's "deeper LSTM Q + norm I"
    model, where a feature survives only when both modalities agree on it.

    A masked modality is left out of the product (it counts as ones); an
    example with every modality masked gets zeros.

    Args:
        units: int. Width of the shared space and of the output.
        activation: str or callable. Activation of the projections.
            Defaults to `"tanh"` (the paper's).
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor.

    Example:
    ```python
    fused = ProductAlignment(64)([image_vec, question_vec])  # [B, 64]
    ```

    Reference:
    - [Antol et al., 2015. VQA: Visual Question
      Answering](https://arxiv.org/abs/1505.00468) (point-wise product of
      the image and question embeddings).
    """

    def __init__(self, units, activation="tanh", **kwargs):
        super().__init__(units, activation=activation, **kwargs)

    def build(self, input_shape):
        self._build_projections(self._modality_shapes(input_shape))

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        projected = self._project(tensors)
        return self._reduce_present(projected, mask, 1.0, ops.prod)


@keras.saving.register_keras_serializable(package="mmzoo")
class WeightedAlignment(_ProjectingFusion):
    """Projects every modality to `units`, then a learned weighted sum.

    Each modality has one learned logit (input independent); the weights are
    the softmax of the logits over the modalities present in each example.

    Args:
        units: int. Width of the shared space and of the output.
        activation: str or callable. Activation of the projections.
            Defaults to `None` (linear).
        return_weights: bool. If true, `call` returns `(fused, weights)`
            with `weights` of shape `[B, M]`. Defaults to `False`.
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor, or `(fused, weights)` if `return_weights`.
        Weights of masked modalities are 0.

    Example:
    ```python
    fused, w = WeightedAlignment(64, return_weights=True)([img, txt])
    ```

    Reference:
    - [Peters et al., 2018. Deep contextualized word
      representations](https://arxiv.org/abs/1802.05365) (softmax-normalized
      learned scalar mix, applied here across modalities).
    """

    def __init__(
        self,
        units,
        activation=None,
        return_weights=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            kernel_initializer=kernel_initializer,
            **kwargs,
        )
        self.return_weights = bool(return_weights)

    def build(self, input_shape):
        shapes = self._modality_shapes(input_shape)
        self._build_projections(shapes)
        self.modality_logits = self.add_weight(
            shape=(len(shapes),), initializer="zeros", name="modality_logits"
        )

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        projected = self._project(tensors)
        logits = ops.zeros_like(mask) + ops.cast(
            ops.expand_dims(self.modality_logits, 0), mask.dtype
        )
        weights = masked_softmax(logits, mask, axis=1)
        fused = ops.sum(projected * ops.expand_dims(weights, -1), axis=1)
        if self.return_weights:
            return fused, weights
        return fused

    def get_config(self):
        config = super().get_config()
        config["return_weights"] = self.return_weights
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class GradientReversal(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient by `-scale`.

    Implemented with `keras.ops.stop_gradient` only, so it runs on every
    backend: `y = stop_gradient(x) + (stop_gradient(s * x) - s * x)`. The
    bracket is exactly zero in the forward pass (so `y == x` bit for bit)
    and its gradient is `-s`, while `stop_gradient(x)` passes no gradient.
    This is the `stop_gradient(x * (1 + s)) - x * s` trick rearranged so the
    forward value has no rounding error.

    Args:
        scale: float. Gradient multiplier magnitude (DANN's lambda).
            Defaults to `1.0`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Returns:
        A tensor equal to the input.

    Example:
    ```python
    reversed_features = GradientReversal(0.5)(features)
    domain_logits = keras.layers.Dense(2)(reversed_features)
    ```

    Reference:
    - [Ganin & Lempitsky, 2015. Unsupervised Domain Adaptation by
      Backpropagation](https://arxiv.org/abs/1409.7495)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.supports_masking = True

    def call(self, inputs):
        scaled = inputs * ops.cast(self.scale, inputs.dtype)
        return ops.stop_gradient(inputs) + (ops.stop_gradient(scaled) - scaled)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["scale"] = self.scale
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class AdversarialAlignment(_ProjectingFusion):
    """Projects modalities into a space a discriminator cannot tell apart.

    Each modality is projected to `units`. A small MLP, the discriminator,
    sits behind `GradientReversal` and predicts from each projected vector
    which modality it came from; the layer adds `loss_weight` times its mean
    cross-entropy over present modalities with `add_loss`. Minimizing the
    total loss trains the discriminator to separate the modalities while
    the reversed gradient trains the projections to make them
    indistinguishable. The output is the mean of the present projections.

    The loss is added on every call (training or not), so `evaluate`
    reports the same objective that `fit` minimizes.

    Args:
        units: int. Width of the shared space and of the output.
        discriminator_units: tuple of int. Hidden sizes of the
            discriminator (ReLU). Defaults to `(units,)`.
        loss_weight: float. Weight of the discriminator loss. Defaults to
            `0.05` (on the synthetic diagnosis data, 0.1 with linear
            projections diverged; 0.05 with tanh trains as well as the
            other fusions).
        reversal_scale: float. Scale of the gradient reversal. Defaults to
            `1.0`.
        activation: str or callable. Activation of the projections.
            Defaults to `"tanh"`: the reversed gradient pushes the
            projections to maximize the discriminator's loss, which is
            unbounded for linear projections (training then diverges to a
            constant output); a bounded shared space keeps the game stable.
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor; zeros for examples with nothing present.

    Example:
    ```python
    fused = AdversarialAlignment(64, loss_weight=0.1)([img, txt])
    ```

    Reference:
    - [Wang et al., 2017. Adversarial Cross-Modal
      Retrieval](https://doi.org/10.1145/3123266.3123326)
    - [Ganin & Lempitsky, 2015. Unsupervised Domain Adaptation by
      Backpropagation](https://arxiv.org/abs/1409.7495)
    """

    def __init__(
        self,
        units,
        discriminator_units=None,
        loss_weight=0.05,
        reversal_scale=1.0,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            kernel_initializer=kernel_initializer,
            **kwargs,
        )
        if discriminator_units is None:
            discriminator_units = (self.units,)
        self.discriminator_units = tuple(int(u) for u in discriminator_units)
        self.loss_weight = float(loss_weight)
        self.reversal_scale = float(reversal_scale)

    def build(self, input_shape):
        shapes = self._modality_shapes(input_shape)
        self._build_projections(shapes)
        self.gradient_reversal = GradientReversal(
            self.reversal_scale, dtype=self.dtype_policy, name="reversal"
        )
        shape = (None, len(shapes), self.units)
        self.discriminator = []
        for index, width in enumerate(self.discriminator_units):
            dense = keras.layers.Dense(
                width,
                activation="relu",
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"discriminator_{index}",
            )
            dense.build(shape)
            shape = (None, len(shapes), width)
            self.discriminator.append(dense)
        self.discriminator_logits = keras.layers.Dense(
            len(shapes),
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="discriminator_logits",
        )
        self.discriminator_logits.build(shape)

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        projected = self._project(tensors)
        hidden = self.gradient_reversal(projected)
        for dense in self.discriminator:
            hidden = dense(hidden)
        logits = ops.cast(self.discriminator_logits(hidden), "float32")
        labels = ops.zeros_like(mask, dtype="int32") + ops.arange(
            len(tensors), dtype="int32"
        )
        crossentropy = ops.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        mask32 = ops.cast(mask, "float32")
        loss = ops.sum(crossentropy * mask32) / ops.maximum(
            ops.sum(mask32), 1.0
        )
        self.add_loss(self.loss_weight * loss)
        return masked_mean(projected, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "discriminator_units": list(self.discriminator_units),
                "loss_weight": self.loss_weight,
                "reversal_scale": self.reversal_scale,
            }
        )
        return config
