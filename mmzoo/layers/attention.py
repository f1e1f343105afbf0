"""Attention layers: `AttentionPooling` and `CrossModalAttention`.

Both follow the calling convention of `mmzoo.layers.modality` when given a
list or dict of modalities. `AttentionPooling` also pools a single
`[B, T, D]` sequence with a `[B, T]` token mask.
"""

import keras
from keras import ops

from mmzoo.layers.modality import (
    FusionLayer,
    as_modality_list,
    masked_mean,
    masked_softmax,
    zero_masked,
)


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionPooling(FusionLayer):
    """Attention pooling of a set or sequence `[B, T, D]` into `[B, D]`.

    Each element gets a learned score (`w·x`, or `v·tanh(W x + b)` when
    `units` is set); the output is the softmax-weighted sum of the elements
    over the unmasked ones. An example with every element masked gets zeros.

    Given a list or dict of same-width `[B, D]` vectors it stacks them into
    `[B, M, D]` and acts as a fusion layer, with `modality_mask` as the mask.

    Args:
        units: int or None. Hidden width of the scorer; `None` scores with a
            single linear projection. Defaults to `None`.
        return_weights: bool. If true, `call` returns `(pooled, weights)`
            with `weights` of shape `[B, T]` (`[B, M]` for a list).
            Defaults to `False`.
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: a `[B, T, D]` tensor, or a list or dict of `[B, D]` tensors
            (dict values in sorted key order).
        mask: optional `[B, T]` token mask (1 = valid) for a single tensor;
            filled in by Keras from an upstream `mask_zero` embedding.
        modality_mask: optional `[B, M]` mask for a list of vectors. For a
            single tensor it is combined with `mask` (both must hold).

    Returns:
        A `[B, D]` tensor, or `(pooled, weights)` if `return_weights`.

    Example:
    ```python
    pooled = AttentionPooling(32)(tokens, mask=token_mask)   # [B, D]
    fused = AttentionPooling()([image_vec, text_vec])         # [B, D]
    ```

    Reference:
    - [Ilse et al., 2018. Attention-based Deep Multiple Instance
      Learning](https://arxiv.org/abs/1802.04712)
    - [Yang et al., 2016. Hierarchical Attention Networks for Document
      Classification](https://aclanthology.org/N16-1174/)
    """

    def __init__(
        self,
        units=None,
        return_weights=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units is not None and int(units) <= 0:
            raise ValueError(
                f"AttentionPooling: units must be a positive int or None; "
                f"received {units}"
            )
        self.units = None if units is None else int(units)
        self.return_weights = bool(return_weights)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if isinstance(input_shape, dict) or (
            isinstance(input_shape, (list, tuple))
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            shapes = self._modality_shapes(input_shape)
            widths = sorted({shape[-1] for shape in shapes})
            if len(widths) != 1:
                raise ValueError(
                    f"{self.name}: every modality must have the same width "
                    f"to be pooled; received shapes {shapes}"
                )
            shape = (None, len(shapes), widths[0])
        else:
            shape = tuple(input_shape)
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"{self.name}: expected a [B, T, D] tensor with known D, "
                    f"or a list of [B, D] tensors; received shape {shape}"
                )
        if self.units is not None:
            self.attention_hidden = keras.layers.Dense(
                self.units,
                activation="tanh",
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="attention_hidden",
            )
            self.attention_hidden.build(shape)
            shape = shape[:-1] + (self.units,)
        self.attention_score = keras.layers.Dense(
            1,
            use_bias=False,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="attention_score",
        )
        self.attention_score.build(shape)

    def call(self, inputs, mask=None, modality_mask=None, training=None):
        if isinstance(inputs, (list, tuple, dict)):
            if modality_mask is None and mask is not None:
                if not isinstance(mask, (list, tuple, dict)):
                    modality_mask = mask
            tensors, token_mask = self._prepare(inputs, modality_mask)
            values = ops.stack(tensors, axis=1)
        else:
            values = inputs
            token_mask = ops.ones_like(values[..., 0], dtype=self.compute_dtype)
            for extra in (mask, modality_mask):
                if extra is not None:
                    token_mask = token_mask * _as_float_mask(
                        extra, self.compute_dtype
                    )
            values = zero_masked(values, token_mask)
        hidden = values
        if self.units is not None:
            hidden = self.attention_hidden(hidden)
        scores = ops.squeeze(self.attention_score(hidden), -1)
        weights = masked_softmax(scores, token_mask, axis=1)
        weights = ops.cast(weights, values.dtype)
        pooled = ops.sum(values * ops.expand_dims(weights, -1), axis=1)
        if self.return_weights:
            return pooled, weights
        return pooled

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


def _as_float_mask(mask, dtype):
    """Bool or numeric mask to a float mask of 0/1 (values > 0.5 are 1)."""
    mask = ops.convert_to_tensor(mask)
    if keras.backend.standardize_dtype(mask.dtype) != "bool":
        mask = ops.greater(mask, ops.cast(0.5, mask.dtype))
    return ops.cast(mask, dtype)


@keras.saving.register_keras_serializable(package="mmzoo")
class CrossModalAttention(FusionLayer):
    """Co-attention between a text and an image sequence, pooled and joined.

    Text tokens attend to image patches and image patches attend to text
    tokens (two `keras.layers.MultiHeadAttention`, computed in parallel from
    the input streams as in ViLBERT's co-attention block). Each stream adds
    its attended values as a residual and applies LayerNorm; each stream is
    then mean-pooled over its valid tokens and the two are concatenated.

    Missing modalities: a masked modality's pooled features are zeros, and
    the other stream does not attend to it (its attention output is dropped,
    leaving `LayerNorm(own features)`). Padding tokens (`token_masks`) are
    never attended to and are left out of the pooling.

    Args:
        num_heads: int. Attention heads of each direction.
        key_dim: int. Size of each attention head.
        units: int or None. If set, both streams are first projected to
            `units` and the output is `[B, 2 * units]`; otherwise the
            streams keep their widths and the output is `[B, Dt + Di]`.
            Defaults to `None`.
        dropout: float. Dropout on the attention probabilities. Defaults
            to `0.0`.
        kernel_initializer: str or initializer. Defaults to
            `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: `[text, image]` with `text` `[B, T, Dt]` and `image`
            `[B, P, Di]`, or a dict of the two (sorted key order, so
            `{"image": ..., "text": ...}` is read as `[image, text]`).
        modality_mask: optional `[B, 2]` mask, 1 = present.
        token_masks: optional `[text_mask [B, T], image_mask [B, P]]`,
            1 = valid token; either entry may be `None`. When omitted, masks
            Keras propagates on the inputs (e.g. `mask_zero=True`) are used.
        training: bool. Enables attention dropout.

    Returns:
        A `[B, Dt + Di]` (or `[B, 2 * units]`) tensor: `[text, image]`.

    Example:
    ```python
    layer = CrossModalAttention(num_heads=2, key_dim=16, units=32)
    fused = layer([text_tokens, image_patches])  # [B, 64]
    ```

    Reference:
    - [Lu et al., 2019. ViLBERT: Pretraining Task-Agnostic Visiolinguistic
      Representations for Vision-and-Language
      Tasks](https://arxiv.org/abs/1908.02265)
    - [Tan & Bansal, 2019. LXMERT: Learning Cross-Modality Encoder
      Representations from Transformers](https://arxiv.org/abs/1908.07490)
    """

    input_rank = 3
    num_modalities_allowed = 2

    def __init__(
        self,
        num_heads,
        key_dim,
        units=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.units = None if units is None else int(units)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _dense(self, units, name, shape):
        dense = keras.layers.Dense(
            units,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        dense.build(shape)
        return dense

    def build(self, input_shape):
        text_shape, image_shape = self._modality_shapes(input_shape)
        if self.units is not None:
            self.text_projection = self._dense(
                self.units, "text_projection", text_shape
            )
            self.image_projection = self._dense(
                self.units, "image_projection", image_shape
            )
            text_shape = text_shape[:-1] + (self.units,)
            image_shape = image_shape[:-1] + (self.units,)
        self.text_to_image = keras.layers.MultiHeadAttention(
            self.num_heads,
            self.key_dim,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="text_to_image",
        )
        self.text_to_image.build(text_shape, image_shape)
        self.image_to_text = keras.layers.MultiHeadAttention(
            self.num_heads,
            self.key_dim,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="image_to_text",
        )
        self.image_to_text.build(image_shape, text_shape)
        self.text_norm = keras.layers.LayerNormalization(
            dtype=self.dtype_policy, name="text_norm"
        )
        self.text_norm.build(text_shape)
        self.image_norm = keras.layers.LayerNormalization(
            dtype=self.dtype_policy, name="image_norm"
        )
        self.image_norm.build(image_shape)

    def call(
        self,
        inputs,
        modality_mask=None,
        token_masks=None,
        mask=None,
        training=None,
    ):
        if token_masks is None and isinstance(mask, (list, tuple, dict)):
            token_masks = as_modality_list(mask, self.name)
        (text, image), present = self._prepare(inputs, modality_mask)
        if token_masks is None:
            token_masks = [None, None]
        if len(token_masks) != 2:
            raise ValueError(
                f"{self.name}: token_masks must be [text_mask, image_mask]; "
                f"received {len(token_masks)} masks"
            )
        text_mask, image_mask = (
            ops.ones_like(x[..., 0], dtype=self.compute_dtype)
            if m is None
            else _as_float_mask(m, self.compute_dtype)
            for x, m in zip((text, image), token_masks)
        )
        text_mask = text_mask * present[:, 0:1]
        image_mask = image_mask * present[:, 1:2]
        text = zero_masked(text, text_mask)
        image = zero_masked(image, image_mask)
        if self.units is not None:
            text = self.text_projection(text)
            image = self.image_projection(image)

        text_attended = self._attend(
            self.text_to_image, text, image, text_mask, image_mask, training
        )
        image_attended = self._attend(
            self.image_to_text, image, text, image_mask, text_mask, training
        )
        text = self.text_norm(text + text_attended)
        image = self.image_norm(image + image_attended)
        return ops.concatenate(
            [masked_mean(text, text_mask), masked_mean(image, image_mask)],
            axis=-1,
        )

    @staticmethod
    def _attend(attention, query, value, query_mask, value_mask, training):
        """Attends `query` to valid `value` tokens; zeros if there are none."""
        valid = ops.greater(value_mask, 0.5)
        attention_mask = ops.logical_and(
            ops.expand_dims(ops.ones_like(query_mask, dtype="bool"), 2),
            ops.expand_dims(valid, 1),
        )
        attended = attention(
            query=query,
            value=value,
            key=value,
            attention_mask=attention_mask,
            training=training,
        )
        has_values = ops.any(valid, axis=1)
        return zero_masked(attended, ops.cast(has_values, attended.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "units": self.units,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
