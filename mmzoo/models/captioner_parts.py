"""What every captioner shares: its config fields, its image encoder, and
the LSTM decoder that fuses the image with the words at every step.

A captioner meets the decoding contract of `mmzoo.heads.generation`; its
config inherits `CaptionerConfig`, so the image encoder settings and the
decoding settings have one name across captioners (STYLE.md: one naming
of the encoders' settings).
"""

import dataclasses

import keras

from mmzoo.encoders import IMAGE_ENCODERS, build_image_encoder
from mmzoo.heads.generation import (
    CAPTION_DECODER,
    END_ID,
    IMAGE_ENCODER,
    IMAGE_INPUT,
    LOGITS,
    TOKEN_EMBEDDING,
    TOKEN_INPUT,
)
from mmzoo.layers.fusion import FUSION_METHODS, SEQUENCE_FUSIONS, get_fusion
from mmzoo.specs import ImageSpec
from mmzoo.training_config import TrainingConfig

DECODER_FUSIONS = tuple(m for m in FUSION_METHODS if m not in SEQUENCE_FUSIONS)
"""Fusion methods `FusionLSTMDecoder` takes (vector fusions)."""


@dataclasses.dataclass(frozen=True)
class CaptionerConfig(TrainingConfig):
    """Settings every captioner has (and the training settings of
    `mmzoo.training_config.TrainingConfig`).

    Attributes:
        vocabulary_size: int. Number of token ids, including the four
            reserved ids (pad, OOV, start, end). Set from the data.
        max_length: int. Most caption tokens, start and end included. The
            `token_ids` input has `max_length - 1` columns.
        image_size: int. Height and width of the square input image.
        image_encoder: str. The shared image encoder, one of
            `mmzoo.encoders.IMAGE_ENCODERS`: `"vit"` (ViT patch tokens),
            `"cnn"` (the small LSTNet CNN), `"resnet50"`,
            `"efficientnetb0"` (their feature-map positions) or
            `"patches"` (one linear patch embedding).
        patch_size: int. Patch side of `vit` and `patches`; must divide
            `image_size`.
        vit_num_layers: int. ViT transformer blocks.
        vit_num_heads: int. ViT attention heads; must divide
            `vit_hidden_dim`.
        vit_hidden_dim: int. ViT token width.
        vit_mlp_dim: int. ViT feed-forward width.
        cnn_filters: tuple of int. Filters of each Conv-BN-ReLU-MaxPool
            block of `cnn`; each block halves the resolution.
        patch_dim: int. Width of the `patches` embedding.
        image_preset: str. A keras-hub preset handle or local preset folder
            to start the encoder from; `""` builds it from the sizes above.
        image_weights: str. `"imagenet"` or a local weights file for the
            `keras.applications` backbones; `""` is random init.
        image_trainable: bool. False freezes a preset/weights backbone.
        embedding_dim: int. Width of the caption token embedding.
        decoder_units: int. LSTM units.
        dropout: float. Dropout on the token embeddings, on the decoder
            outputs before the logits and inside the ViT.
        beam_width: int. Default beam width of
            `mmzoo.heads.generation.generate` (stored on the decoder layer
            so reloaded models keep it).
    """

    vocabulary_size: int = 1000
    max_length: int = 20
    image_size: int = 224
    image_encoder: str = "vit"
    patch_size: int = 16
    vit_num_layers: int = 12
    vit_num_heads: int = 12
    vit_hidden_dim: int = 768
    vit_mlp_dim: int = 3072
    cnn_filters: tuple = (32, 64, 128, 128, 256)
    patch_dim: int = 64
    image_preset: str = ""
    image_weights: str = ""
    image_trainable: bool = True
    embedding_dim: int = 512
    decoder_units: int = 512
    dropout: float = 0.5
    beam_width: int = 3
    learning_rate: float = 3e-3
    global_clipnorm: float = 5.0
    batch_size: int = 64

    # The registry name, for error messages.
    model_name = "captioner"
    # True for a captioner with a backward language model
    # (`mmzoo.heads.generation`): its data then carries reversed captions.
    bidirectional = False

    def fail(self, message):
        raise ValueError(f"{self.model_name}: {message}")

    def __post_init__(self):
        super().__post_init__()
        fail = self.fail
        object.__setattr__(self, "cnn_filters", tuple(self.cnn_filters))
        if self.image_encoder not in IMAGE_ENCODERS:
            fail(
                f"unknown image_encoder '{self.image_encoder}'; valid: "
                f"{', '.join(IMAGE_ENCODERS)}"
            )
        if self.vocabulary_size <= END_ID + 1:
            fail(
                f"vocabulary_size={self.vocabulary_size}; expected more than "
                f"{END_ID + 1} (ids 0-3 are pad, OOV, start, end)"
            )
        if self.max_length < 2:
            fail(f"max_length={self.max_length}; expected at least 2")
        sized = not self.image_preset
        if (
            sized
            and self.image_encoder in ("vit", "patches")
            and self.image_size % self.patch_size
        ):
            fail(
                f"image_size={self.image_size} is not divisible by "
                f"patch_size={self.patch_size}"
            )
        if (
            sized
            and self.image_encoder == "vit"
            and self.vit_hidden_dim % self.vit_num_heads
        ):
            fail(
                f"vit_hidden_dim={self.vit_hidden_dim} is not divisible by "
                f"vit_num_heads={self.vit_num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout={self.dropout}; expected 0 <= dropout < 1")
        if not 1 <= self.beam_width <= self.vocabulary_size:
            fail(
                f"beam_width={self.beam_width}; expected 1 to "
                f"vocabulary_size={self.vocabulary_size}"
            )

    def modality_specs(self):
        """The served raw inputs: one `ImageSpec` named `image`."""
        return (ImageSpec(name=IMAGE_INPUT, size=self.image_size),)


@dataclasses.dataclass(frozen=True)
class FusionCaptionerConfig(CaptionerConfig):
    """`CaptionerConfig` plus the settings of a `FusionLSTMDecoder`.

    Attributes:
        image_units: int. Width of the image vector `v`.
        fusion: str. How image and words meet: one of `DECODER_FUSIONS`.
        fusion_units: int. Width of projecting fusions (and of `z_t` under
            `merge`).
    """

    image_encoder: str = "resnet50"
    image_units: int = 512
    fusion: str = "concat"
    fusion_units: int = 512

    def __post_init__(self):
        super().__post_init__()
        if self.fusion not in DECODER_FUSIONS:
            self.fail(
                f"unknown fusion '{self.fusion}'; valid: "
                f"{', '.join(DECODER_FUSIONS)}"
            )


TINY = {
    "image_size": 32,
    "cnn_filters": (16, 32, 32),
    "embedding_dim": 32,
    "decoder_units": 64,
    "dropout": 0.1,
    "max_length": 16,
    "epochs": 15,
}
"""Settings every captioner's `tiny` variant shares (CPU minutes)."""

TINY_FUSION = {
    **TINY,
    "image_encoder": "cnn",
    "image_units": 32,
    "fusion_units": 64,
}
"""`TINY` plus a `FusionCaptionerConfig`'s own settings."""


def fusion_decoder(config, fuse_at, name=CAPTION_DECODER):
    """The `FusionLSTMDecoder` of a `FusionCaptionerConfig`."""
    return FusionLSTMDecoder(
        config.decoder_units,
        config.image_units,
        fusion=config.fusion,
        fuse_at=fuse_at,
        fusion_units=config.fusion_units,
        beam_width=config.beam_width,
        name=name,
    )


def caption_inputs(config):
    """The `image` and `token_ids` `keras.Input`s of a captioner."""
    size = config.image_size
    image = keras.Input((size, size, 3), dtype="float32", name=IMAGE_INPUT)
    token_ids = keras.Input(
        (config.max_length - 1,), dtype="int32", name=TOKEN_INPUT
    )
    return image, token_ids


def build_captioner(config, make_decoder, name):
    """A one-directional teacher-forced captioner around `decoder`.

    image → `caption_image_encoder` → `(pooled, regions)`; token ids →
    `token_embedding` → dropout → `decoder(embeddings, regions, pooled)` →
    dropout → `logits`. The layer names are those `mmzoo.heads.generation`
    decodes with.

    Args:
        config: a `CaptionerConfig`.
        make_decoder: callable returning the decoder layer, named
            `caption_decoder` and meeting the decoding contract of
            `mmzoo.heads.generation`. Called after the encoder and the
            embedding exist, so that a seed gives the same weights whatever
            the decoder (layers draw seeds in creation order).
        name: str. The model's name.

    Returns:
        An uncompiled `keras.Model`: `{"image", "token_ids"}` → `logits`.
    """
    image, token_ids = caption_inputs(config)
    pooled, regions = caption_image_encoder(config)(image)
    embeddings = keras.layers.Embedding(
        config.vocabulary_size, config.embedding_dim, name=TOKEN_EMBEDDING
    )(token_ids)
    embeddings = keras.layers.Dropout(config.dropout, name="embedding_dropout")(
        embeddings
    )
    outputs = make_decoder()(embeddings, regions, pooled)
    outputs = keras.layers.Dropout(config.dropout, name="output_dropout")(
        outputs
    )
    # float32 logits (under a mixed dtype policy too): the loss and the
    # decoders' log-softmax read them.
    logits = keras.layers.Dense(
        config.vocabulary_size, dtype="float32", name=LOGITS
    )(outputs)
    return keras.Model(
        {IMAGE_INPUT: image, TOKEN_INPUT: token_ids}, logits, name=name
    )


def caption_image_encoder(config):
    """The shared image encoder of a `CaptionerConfig`: raw pixels →
    `[pooled, regions]`, named as decoding looks it up."""
    return build_image_encoder(
        config.image_encoder,
        config.image_size,
        cnn_filters=config.cnn_filters,
        patch_size=config.patch_size,
        patch_dim=config.patch_dim,
        vit_num_layers=config.vit_num_layers,
        vit_num_heads=config.vit_num_heads,
        vit_hidden_dim=config.vit_hidden_dim,
        vit_mlp_dim=config.vit_mlp_dim,
        dropout=config.dropout,
        preset=config.image_preset,
        weights=config.image_weights,
        trainable=config.image_trainable,
        return_regions=True,
        name=IMAGE_ENCODER,
    )


@keras.saving.register_keras_serializable(package="mmzoo")
class FusionLSTMDecoder(keras.layers.Layer):
    """An LSTM language model that a fusion layer conditions on the image
    at every step.

    The image vector is `v = relu(W_v mean_i(a_i))` over the image regions
    `a_i` (for a CNN, the global average of its feature map). Where it
    meets the words is `fuse_at` (the two families of Tanti et al., 2018):

    - `"merge"`: the LSTM reads only the words; its output `h_t` (the
      encoding of the caption so far) is fused with the image:
      `z_t = W_z fusion([h_t, v]) + b_z`, and the `logits` layer after it
      gives `softmax(W' z_t + b')`. With `fusion="concat"` this is
      `Z = W[X; V] + b` of seed 000.
    - `"inject"`: the image and the word are fused before the LSTM reads
      them: `x_t = fusion([v, e_t])`, `h_t = LSTM(x_t)`, and the step's
      output is `h_t`. With `fusion="max_alignment"` (both projected to
      `fusion_units`, then the element-wise max) this is seed 001's max
      alignment.

    The decoding methods (`initial_state`, `attention_keys`, `step`) are
    those of `mmzoo.heads.generation`'s contract; `attention_keys` is the
    image vector `v`, computed once per image, and `step` reports a
    uniform `alpha` over the regions (there is no attention). The LSTM
    starts from zeros: the image enters only through the fusion.

    Args:
        units: int. LSTM units.
        image_units: int. Width of the image vector `v`.
        fusion: str. One of `DECODER_FUSIONS` (`mmzoo.layers.get_fusion`).
        fuse_at: str. `"merge"` or `"inject"`.
        fusion_units: int. Width of the fusion layers that project
            (`max_alignment`, `gmu`, ...); also of `z_t` under `merge`.
        beam_width: int. Default beam width of decoding with this layer's
            model; not used by the layer itself.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        embeddings: float `[B, T, E]`. Embedded input tokens.
        regions: float `[B, N, D]`. Image region vectors.
        pooled: float `[B, D_p]`. Pooled image vector (not used).

    Returns:
        Float `[B, T, D_out]`, the step outputs.

    Reference:
        Tanti, Gatt and Camilleri, "Where to put the Image in an Image
        Caption Generator", Natural Language Engineering 2018.
        https://arxiv.org/abs/1703.09137
    """

    def __init__(
        self,
        units,
        image_units,
        fusion="concat",
        fuse_at="merge",
        fusion_units=256,
        beam_width=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fusion not in DECODER_FUSIONS:
            raise ValueError(
                f"FusionLSTMDecoder: fusion {fusion!r} is not a vector "
                f"fusion; valid: {', '.join(DECODER_FUSIONS)}"
            )
        if fuse_at not in ("merge", "inject"):
            raise ValueError(
                f"FusionLSTMDecoder: fuse_at must be 'merge' or 'inject', "
                f"got {fuse_at!r}"
            )
        self.units = units
        self.image_units = image_units
        self.fusion_name = fusion
        self.fuse_at = fuse_at
        self.fusion_units = fusion_units
        self.beam_width = beam_width
        # Sublayers take this layer's dtype policy, so that a model built
        # under a mixed policy keeps it when loaded under another.
        policy = {"dtype": self.dtype_policy}
        self.image_projection = keras.layers.Dense(
            image_units, activation="relu", name="image_projection", **policy
        )
        options = {} if fusion == "concat" else {"units": fusion_units}
        self.fusion = get_fusion(fusion, name="fusion", **options, **policy)
        self.output_projection = (
            keras.layers.Dense(fusion_units, name="output_projection", **policy)
            if fuse_at == "merge"
            else None
        )
        self.cell = keras.layers.LSTMCell(units, name="lstm_cell", **policy)

    def build(self, embeddings_shape, regions_shape, pooled_shape):
        self.image_projection.build((None, regions_shape[-1]))
        image = (None, self.image_units)
        if self.fuse_at == "inject":
            self.cell.build((None, self._fused_width(image, embeddings_shape)))
        else:
            self.cell.build((None, embeddings_shape[-1]))
            width = self._fused_width((None, self.units), image)
            self.output_projection.build((None, width))

    def _fused_width(self, first, second):
        """Builds the fusion on `[B, D]` inputs of these shapes; returns its
        output width."""
        shapes = [(None, first[-1]), (None, second[-1])]
        self.fusion.build(shapes)
        spec = self.fusion.compute_output_spec(
            [keras.KerasTensor(shape) for shape in shapes]
        )
        return spec.shape[-1]

    def initial_state(self, pooled):
        """Returns `(h_0, c_0)`: zeros, each `[B, units]`."""
        zeros = keras.ops.zeros_like(pooled[:, :1]) + keras.ops.zeros(
            (1, self.units), pooled.dtype
        )
        return zeros, zeros

    def attention_keys(self, regions):
        """Returns the image vector `v` `[B, image_units]`."""
        return self.image_projection(keras.ops.mean(regions, axis=1))

    def _merge(self, h, image):
        return self.output_projection(self.fusion([h, image]))

    def step(self, embedding, state, regions, keys):
        """Runs one decoding step.

        Args:
            embedding: float `[B, E]`. Embedding of the previous token.
            state: tuple `(h, c)` of float `[B, units]`.
            regions: float `[B, N, D]`. Image region vectors.
            keys: float `[B, image_units]`. `attention_keys(regions)`.

        Returns:
            A tuple `(output, (h, c), alpha [B, N])`; `alpha` is uniform.
        """
        h, c = state
        if self.fuse_at == "inject":
            inputs = self.fusion([keys, embedding])
        else:
            inputs = embedding
        _, (h, c) = self.cell(inputs, [h, c])
        output = h if self.fuse_at == "inject" else self._merge(h, keys)
        alpha = keras.ops.ones_like(regions[:, :, 0])
        alpha = alpha / keras.ops.sum(alpha, axis=-1, keepdims=True)
        return output, (h, c), alpha

    def call(self, embeddings, regions, pooled):
        image = self.attention_keys(regions)
        steps = embeddings.shape[1]
        if self.fuse_at == "inject":
            # The fusion of every step at once: `[B * T, ...]` rows.
            flat = keras.ops.reshape(embeddings, (-1, embeddings.shape[-1]))
            images = keras.ops.reshape(
                keras.ops.repeat(keras.ops.expand_dims(image, 1), steps, 1),
                (-1, self.image_units),
            )
            fused = self.fusion([images, flat])
            inputs = keras.ops.reshape(fused, (-1, steps, fused.shape[-1]))
        else:
            inputs = embeddings

        # The TensorFlow backend's `scan` stacks outputs shaped like the
        # carry, so the step returns the carry as its output.
        def one_step(carry, x):
            _, (h, c) = self.cell(x, list(carry))
            return (h, c), (h, c)

        h, c = self.initial_state(pooled)
        _, (hidden, _) = keras.ops.scan(
            one_step, (h, c), keras.ops.transpose(inputs, (1, 0, 2))
        )
        hidden = keras.ops.transpose(hidden, (1, 0, 2))  # [B, T, units]
        if self.fuse_at == "inject":
            return hidden
        flat = keras.ops.reshape(hidden, (-1, self.units))
        images = keras.ops.reshape(
            keras.ops.repeat(keras.ops.expand_dims(image, 1), steps, 1),
            (-1, self.image_units),
        )
        merged = self._merge(flat, images)
        return keras.ops.reshape(merged, (-1, steps, self.fusion_units))

    def compute_output_shape(
        self, embeddings_shape, regions_shape, pooled_shape
    ):
        width = self.units if self.fuse_at == "inject" else self.fusion_units
        return (*embeddings_shape[:2], width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "image_units": self.image_units,
                "fusion": self.fusion_name,
                "fuse_at": self.fuse_at,
                "fusion_units": self.fusion_units,
                "beam_width": self.beam_width,
            }
        )
        return config
