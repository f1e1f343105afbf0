"""Multimodal fusion layers and the `get_fusion` factory.

Every layer here follows the calling convention documented in
`mmzoo.layers.modality`: `layer(inputs, modality_mask=None, training=None)`
with `inputs` a list or dict (sorted key order) of per-modality tensors,
returning a `[B, D_out]` tensor, or `(fused, weights [B, M])` for layers
built with `return_weights=True`.

`get_fusion(method, **kwargs)` builds any of them by the names in
`FUSION_METHODS`, including the alignment and attention layers defined in
sibling modules.
"""

import inspect

import keras
from keras import ops

from mmzoo.layers.alignment import (
    AdversarialAlignment,
    MaxAlignment,
    ProductAlignment,
    WeightedAlignment,
)
from mmzoo.layers.attention import AttentionPooling, CrossModalAttention
from mmzoo.layers.modality import FusionLayer, masked_softmax


def _positive_int(value, name, where):
    if int(value) <= 0:
        raise ValueError(
            f"{where}: {name} must be a positive int; received {value}"
        )
    return int(value)


@keras.saving.register_keras_serializable(package="mmzoo")
class ConcatFusion(FusionLayer):
    """Concatenates modality vectors; masked modalities become zeros.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, sum(D_i)]` tensor.

    Example:
    ```python
    fused = ConcatFusion()([image_vec, text_vec], modality_mask=mask)
    ```
    """

    def build(self, input_shape):
        self._modality_shapes(input_shape)

    def call(self, inputs, modality_mask=None, training=None):
        tensors, _ = self._prepare(inputs, modality_mask)
        return ops.concatenate(tensors, axis=-1)


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionFusion(FusionLayer):
    """Modality attention: project, score, softmax over modalities, sum.

    Each modality `x_m` is projected to `h_m = act(W_m x_m + b_m)` of width
    `units`; a scorer shared by all modalities gives `s_m = v·tanh(U h_m +
    c)`; the weights are the softmax of `s` over the present modalities and
    the output is `sum_m a_m h_m`. Unlike `WeightedAlignment` the weights
    depend on the input, so they can be read as per-example modality
    importance.

    Args:
        units: int. Width of the projections and of the output.
        attention_units: int or None. Hidden width of the scorer. Defaults
            to `units`.
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
        Masked modalities get weight 0; all-masked examples get zeros.

    Example:
    ```python
    fused, w = AttentionFusion(64, return_weights=True)([img, txt])
    ```

    Reference:
    - [Hori et al., 2017. Attention-Based Multimodal Fusion for Video
      Description](https://arxiv.org/abs/1701.03126)
    """

    def __init__(
        self,
        units,
        attention_units=None,
        activation=None,
        return_weights=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "AttentionFusion")
        self.attention_units = _positive_int(
            attention_units or units, "attention_units", "AttentionFusion"
        )
        self.activation = keras.activations.get(activation)
        self.return_weights = bool(return_weights)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _dense(self, units, name, shape, activation=None, use_bias=True):
        dense = keras.layers.Dense(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        dense.build(shape)
        return dense

    def build(self, input_shape):
        shapes = self._modality_shapes(input_shape)
        self.projections = [
            self._dense(self.units, f"projection_{i}", shape, self.activation)
            for i, shape in enumerate(shapes)
        ]
        stacked = (None, len(shapes), self.units)
        self.attention_hidden = self._dense(
            self.attention_units, "attention_hidden", stacked, "tanh"
        )
        self.attention_score = self._dense(
            1,
            "attention_score",
            (None, len(shapes), self.attention_units),
            use_bias=False,
        )

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        projected = ops.stack(
            [dense(x) for dense, x in zip(self.projections, tensors)], axis=1
        )
        scores = self.attention_score(self.attention_hidden(projected))
        weights = masked_softmax(ops.squeeze(scores, -1), mask, axis=1)
        fused = ops.sum(projected * ops.expand_dims(weights, -1), axis=1)
        if self.return_weights:
            return fused, weights
        return fused

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "attention_units": self.attention_units,
                "activation": keras.activations.serialize(self.activation),
                "return_weights": self.return_weights,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedFusion(FusionLayer):
    """Gated Multimodal Unit generalized to M modalities.

    `h_m = tanh(W_m x_m)`; a gate network reads the concatenation of all
    (masked-to-zero) inputs and gives one logit per modality and unit; the
    gates `z_m` are the softmax of those logits over the present modalities
    (per unit), and the output is `sum_m z_m * h_m`. For two modalities the
    softmax of two logits is `sigmoid` of their difference, so this is
    exactly the bimodal GMU `z * h_v + (1 - z) * h_t`.

    Args:
        units: int. Width of the hidden representations and the output.
        return_weights: bool. If true, `call` returns `(fused, weights)`
            where `weights[B, M]` is each modality's gate averaged over the
            units (rows sum to 1 over present modalities). Defaults to
            `False`.
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor, or `(fused, weights)` if `return_weights`.

    Example:
    ```python
    fused = GatedFusion(64)([image_vec, text_vec])  # [B, 64]
    ```

    Reference:
    - [Arevalo et al., 2017. Gated Multimodal Units for Information
      Fusion](https://arxiv.org/abs/1702.01992)
    """

    def __init__(
        self,
        units,
        return_weights=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "GatedFusion")
        self.return_weights = bool(return_weights)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        shapes = self._modality_shapes(input_shape)
        self.hidden = []
        for index, shape in enumerate(shapes):
            dense = keras.layers.Dense(
                self.units,
                activation="tanh",
                use_bias=False,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"hidden_{index}",
            )
            dense.build(shape)
            self.hidden.append(dense)
        self.gate = keras.layers.Dense(
            len(shapes) * self.units,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="gate",
        )
        self.gate.build((None, sum(shape[-1] for shape in shapes)))

    def call(self, inputs, modality_mask=None, training=None):
        tensors, mask = self._prepare(inputs, modality_mask)
        num_modalities = len(tensors)
        hidden = ops.stack(
            [dense(x) for dense, x in zip(self.hidden, tensors)], axis=1
        )
        logits = self.gate(ops.concatenate(tensors, axis=-1))
        logits = ops.reshape(logits, (-1, num_modalities, self.units))
        gates = masked_softmax(logits, ops.expand_dims(mask, -1), axis=1)
        fused = ops.sum(gates * hidden, axis=1)
        if self.return_weights:
            return fused, ops.mean(gates, axis=-1)
        return fused

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "return_weights": self.return_weights,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class LowRankFusion(FusionLayer):
    """Low-rank Multimodal Fusion (LMF).

    Appends a 1 to every modality vector, `z_m = [x_m, 1]`, maps it with
    `rank` modality-specific factors `W_m^(r)` of shape `[D_m + 1, units]`,
    multiplies the factor outputs element-wise across modalities and sums
    over the rank with learned weights: `h = sum_r w_r prod_m (z_m W_m^(r))
    + b`. This equals a full tensor-fusion outer product with a rank-`rank`
    weight tensor, at linear cost. A masked modality is replaced by
    `[0, ..., 0, 1]`, so it contributes only its bias factor (all-masked
    examples get a learned constant).

    Args:
        units: int. Output width.
        rank: int. Rank of the decomposition. Defaults to `4`.
        kernel_initializer: str or initializer. Initializer of the factors
            and rank weights. Defaults to `"glorot_normal"` (as in the
            reference code).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of `[B, D_i]` tensors.
        modality_mask: optional `[B, M]` mask, 1 = present.

    Returns:
        A `[B, units]` tensor.

    Example:
    ```python
    fused = LowRankFusion(units=32, rank=4)([audio, video, text])
    ```

    Reference:
    - [Liu et al., 2018. Efficient Low-rank Multimodal Fusion with
      Modality-Specific Factors](https://aclanthology.org/P18-1209/)
    """

    def __init__(
        self, units, rank=4, kernel_initializer="glorot_normal", **kwargs
    ):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units", "LowRankFusion")
        self.rank = _positive_int(rank, "rank", "LowRankFusion")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        shapes = self._modality_shapes(input_shape)
        self.factors = [
            self.add_weight(
                shape=(self.rank, shape[-1] + 1, self.units),
                initializer=self.kernel_initializer,
                name=f"factor_{index}",
            )
            for index, shape in enumerate(shapes)
        ]
        self.rank_weights = self.add_weight(
            shape=(1, self.rank),
            initializer=self.kernel_initializer,
            name="rank_weights",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )

    def call(self, inputs, modality_mask=None, training=None):
        tensors, _ = self._prepare(inputs, modality_mask)
        product = None
        for factor, x in zip(self.factors, tensors):
            z = ops.concatenate([x, ops.ones_like(x[:, :1])], axis=-1)
            projected = ops.einsum("bd,rdu->bru", z, factor)
            product = projected if product is None else product * projected
        weights = ops.reshape(self.rank_weights, (1, self.rank, 1))
        return ops.sum(product * weights, axis=1) + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "rank": self.rank,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


_FUSIONS = {
    "concat": ConcatFusion,
    "attention": AttentionFusion,
    "attention_pooling": AttentionPooling,
    "max_alignment": MaxAlignment,
    "product": ProductAlignment,
    "weighted_alignment": WeightedAlignment,
    "adversarial_alignment": AdversarialAlignment,
    "cross_attention": CrossModalAttention,
    "gmu": GatedFusion,
    "lmf": LowRankFusion,
}

FUSION_METHODS = tuple(_FUSIONS)
"""Names accepted by `get_fusion`."""

SEQUENCE_FUSIONS = ("cross_attention",)
"""Methods whose modality inputs are sequences `[B, T_i, D_i]`."""

WEIGHTED_FUSIONS = (
    "attention",
    "attention_pooling",
    "weighted_alignment",
    "gmu",
)
"""Methods that accept `return_weights=True` (per-modality weights)."""


def get_fusion(method, **kwargs):
    """Builds a fusion layer by name.

    Args:
        method: str. One of `FUSION_METHODS`.
        **kwargs: constructor arguments of the layer class (e.g. `units`,
            `return_weights`, `name`).

    Returns:
        A new, unbuilt fusion layer.

    Raises:
        ValueError: for an unknown name, for `return_weights=True` with a
            method not in `WEIGHTED_FUSIONS`, or for arguments the layer
            does not accept (the message lists the ones it does).

    Example:
    ```python
    layer = get_fusion("gmu", units=64, name="fusion")
    fused = layer([image_vec, text_vec], modality_mask=mask)
    ```
    """
    if method not in _FUSIONS:
        raise ValueError(
            f"get_fusion: unknown fusion method {method!r}; valid: "
            f"{', '.join(FUSION_METHODS)}"
        )
    if kwargs.get("return_weights") and method not in WEIGHTED_FUSIONS:
        raise ValueError(
            f"get_fusion: fusion method {method!r} does not return weights; "
            f"methods that do: {', '.join(WEIGHTED_FUSIONS)}"
        )
    cls = _FUSIONS[method]
    try:
        return cls(**kwargs)
    except TypeError as error:
        params = [
            p
            for p in inspect.signature(cls.__init__).parameters
            if p not in ("self", "kwargs")
        ]
        raise ValueError(
            f"get_fusion: bad arguments {sorted(kwargs)} for {method!r} "
            f"({cls.__name__}): {error}; it takes {', '.join(params)} and "
            "base layer arguments such as name and dtype"
        ) from error
