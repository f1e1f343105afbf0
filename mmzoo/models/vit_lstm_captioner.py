"""ViT (or CNN) encoder + attention LSTM caption decoder.

A Vision Transformer turns the image into a set of patch vectors; an LSTM
writes the caption one token at a time and, at every step, attends softly
over the patches (Show, Attend and Tell). Training uses teacher forcing:
the model reads the caption without its last token and predicts the
caption without its first. Decoding (greedy and beam search) lives in
`mmzoo.models.captioning_decode` and reuses the layers of the trained model
by name, so it also works on a model reloaded from a `.keras` file.

Token ids are fixed by mmzoo's vocabulary files: 0 = padding, 1 = OOV,
2 = start, 3 = end, then the words.

Reference:
    Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
    Visual Attention", ICML 2015. https://arxiv.org/abs/1502.03044
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
    Image Recognition at Scale", ICLR 2021. https://arxiv.org/abs/2010.11929
"""

import dataclasses

import keras
import keras_hub

from mmzoo.registry import register_model

PAD_ID = 0
OOV_ID = 1
START_ID = 2
END_ID = 3

# Layer names that decoding looks up on a trained (or reloaded) model.
IMAGE_INPUT = "image"
TOKEN_INPUT = "token_ids"
RESCALING = "rescaling"
IMAGE_ENCODER = "image_encoder"
REGION_FEATURES = "region_features"
TOKEN_EMBEDDING = "token_embedding"
CAPTION_DECODER = "caption_decoder"
LOGITS = "logits"

_ENCODERS = ("vit", "cnn")
_CNN_BACKBONES = ("resnet50", "small")


@dataclasses.dataclass(frozen=True)
class ViTLSTMCaptionerConfig:
    """Hyperparameters for `build_vit_lstm_captioner`.

    Defaults are the reference settings: a ViT-B/16 encoder at 224 pixels
    and a 512-unit attention LSTM decoder.

    Attributes:
        vocabulary_size: int. Number of token ids, including the four
            reserved ids (pad, OOV, start, end). Set from the data.
        max_length: int. Most caption tokens, start and end included. The
            `token_ids` input has `max_length - 1` columns.
        image_size: int. Height and width of the square input image.
        encoder: str. `"vit"` (ViT patch tokens) or `"cnn"` (the regions of
            a convolutional feature map).
        cnn_backbone: str. With `encoder="cnn"`: `"resnet50"`
            (`keras.applications.ResNet50`, untrained) or `"small"` (three
            stride-2 convolutions of `hidden_dim` filters, for tests).
        patch_size: int. ViT patch side; must divide `image_size`.
        num_layers: int. ViT transformer blocks.
        num_heads: int. ViT attention heads; must divide `hidden_dim`.
        hidden_dim: int. ViT token width.
        mlp_dim: int. ViT feed-forward width.
        embedding_dim: int. Width of the caption token embedding.
        decoder_units: int. LSTM units.
        attention_units: int. Width of the additive attention.
        dropout: float. Dropout on the token embeddings, on the decoder
            outputs before the logits and inside the ViT.
        beam_width: int. Default beam width of `captioning_decode.generate`
            (stored on the decoder layer so reloaded models keep it).
    """

    vocabulary_size: int = 1000
    max_length: int = 20
    image_size: int = 224
    encoder: str = "vit"
    cnn_backbone: str = "resnet50"
    patch_size: int = 16
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    mlp_dim: int = 3072
    embedding_dim: int = 512
    decoder_units: int = 512
    attention_units: int = 512
    dropout: float = 0.5
    beam_width: int = 3

    def __post_init__(self):
        def fail(message):
            raise ValueError(f"vit_lstm_captioner: {message}")

        if self.encoder not in _ENCODERS:
            fail(f"unknown encoder '{self.encoder}'; valid: vit, cnn")
        if self.cnn_backbone not in _CNN_BACKBONES:
            fail(
                f"unknown cnn_backbone '{self.cnn_backbone}'; valid: "
                f"{', '.join(_CNN_BACKBONES)}"
            )
        if self.vocabulary_size <= END_ID + 1:
            fail(
                f"vocabulary_size={self.vocabulary_size}; expected more than "
                f"{END_ID + 1} (ids 0-3 are pad, OOV, start, end)"
            )
        if self.max_length < 2:
            fail(f"max_length={self.max_length}; expected at least 2")
        if self.encoder == "vit" and self.image_size % self.patch_size:
            fail(
                f"image_size={self.image_size} is not divisible by "
                f"patch_size={self.patch_size}"
            )
        if self.encoder == "vit" and self.hidden_dim % self.num_heads:
            fail(
                f"hidden_dim={self.hidden_dim} is not divisible by "
                f"num_heads={self.num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout={self.dropout}; expected 0 <= dropout < 1")
        if not 1 <= self.beam_width <= self.vocabulary_size:
            fail(
                f"beam_width={self.beam_width}; expected 1 to "
                f"vocabulary_size={self.vocabulary_size}"
            )


VARIANTS = {
    "tiny": {
        "image_size": 32,
        "patch_size": 8,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 32,
        "mlp_dim": 64,
        "embedding_dim": 32,
        "decoder_units": 64,
        "attention_units": 32,
        "dropout": 0.1,
        "max_length": 16,
    },
    "base": {},
}


@keras.saving.register_keras_serializable(package="mmzoo")
class RegionFeatures(keras.layers.Layer):
    """Splits encoder output into region vectors and one pooled vector.

    A ViT output `[B, 1 + N, D]` gives its patch tokens as the regions and
    its class token as the pooled vector. A CNN feature map `[B, H, W, D]`
    gives its `H * W` positions as the regions and their mean as the pooled
    vector (the annotation vectors of Show, Attend and Tell).

    Args:
        class_token: bool. Whether the first token of a `[B, 1 + N, D]`
            input is a class token to pool with. When False the regions
            are averaged. Defaults to True.
        **kwargs: base `keras.layers.Layer` arguments.

    Returns:
        A tuple `(regions [B, N, D], pooled [B, D])`.
    """

    def __init__(self, class_token=True, **kwargs):
        super().__init__(**kwargs)
        self.class_token = class_token

    def call(self, features):
        if len(features.shape) == 4:
            _, height, width, depth = features.shape
            regions = keras.ops.reshape(features, (-1, height * width, depth))
            return regions, keras.ops.mean(regions, axis=1)
        if self.class_token:
            return features[:, 1:, :], features[:, 0, :]
        return features, keras.ops.mean(features, axis=1)

    def compute_output_shape(self, features_shape):
        if len(features_shape) == 4:
            batch, height, width, depth = features_shape
            return (batch, height * width, depth), (batch, depth)
        batch, length, depth = features_shape
        if self.class_token and length is not None:
            length -= 1
        return (batch, length, depth), (batch, depth)

    def get_config(self):
        config = super().get_config()
        config.update({"class_token": self.class_token})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionLSTMDecoder(keras.layers.Layer):
    """LSTM that attends softly over image regions at every step.

    At step t, additive attention scores each region `a_i` against the
    previous hidden state: `e_ti = v . tanh(W_a a_i + W_h h_{t-1})`,
    `alpha_t = softmax(e_t)`, and the context `z_t = beta_t * sum_i
    alpha_ti a_i` is gated by `beta_t = sigmoid(W_b h_{t-1})`. The LSTM reads
    `[embedding of y_{t-1}, z_t]`; the step's output is `[h_t, z_t]`, which a
    `Dense` layer outside turns into logits. The initial `h_0` and `c_0` are
    `tanh` projections of the pooled image vector.

    `call` runs the whole teacher-forced sequence with `keras.ops.scan`;
    decoding calls `initial_state`, `attention_keys` and `step` directly,
    so training and decoding share the same weights and code.

    Args:
        units: int. LSTM units.
        attention_units: int. Width of the additive attention.
        beam_width: int. Default beam width for decoding with this layer's
            model; not used by the layer itself. Defaults to 3.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        embeddings: float `[B, T, E]`. Embedded input tokens.
        regions: float `[B, N, D]`. Image region vectors.
        pooled: float `[B, D]`. Pooled image vector.

    Returns:
        Float `[B, T, units + D]`, the `[h_t, z_t]` of every step.

    Reference:
        Xu et al., "Show, Attend and Tell: Neural Image Caption Generation
        with Visual Attention", ICML 2015.
    """

    def __init__(self, units, attention_units, beam_width=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.attention_units = attention_units
        self.beam_width = beam_width
        self.init_h = keras.layers.Dense(
            units, activation="tanh", name="init_h"
        )
        self.init_c = keras.layers.Dense(
            units, activation="tanh", name="init_c"
        )
        self.attention_regions = keras.layers.Dense(
            attention_units, name="attention_regions"
        )
        self.attention_hidden = keras.layers.Dense(
            attention_units, use_bias=False, name="attention_hidden"
        )
        self.attention_score = keras.layers.Dense(1, name="attention_score")
        self.context_gate = None
        self.cell = keras.layers.LSTMCell(units, name="lstm_cell")

    def build(self, embeddings_shape, regions_shape, pooled_shape):
        depth = regions_shape[-1]
        self.init_h.build(pooled_shape)
        self.init_c.build(pooled_shape)
        self.attention_regions.build(regions_shape)
        self.attention_hidden.build((None, self.units))
        self.attention_score.build((None, None, self.attention_units))
        self.context_gate = keras.layers.Dense(
            depth, activation="sigmoid", name="context_gate"
        )
        self.context_gate.build((None, self.units))
        self.cell.build((None, embeddings_shape[-1] + depth))

    def initial_state(self, pooled):
        """Returns `(h_0, c_0)`, each `[B, units]`, from `pooled [B, D]`."""
        return self.init_h(pooled), self.init_c(pooled)

    def attention_keys(self, regions):
        """Returns `W_a a_i` `[B, N, A]`, computed once per image."""
        return self.attention_regions(regions)

    def step(self, embedding, state, regions, keys):
        """Runs one decoding step.

        Args:
            embedding: float `[B, E]`. Embedding of the previous token.
            state: tuple `(h, c)` of float `[B, units]`.
            regions: float `[B, N, D]`. Image region vectors.
            keys: float `[B, N, A]`. `attention_keys(regions)`.

        Returns:
            A tuple `(output [B, units + D], (h, c), alpha [B, N])`.
        """
        h, c = state
        query = keras.ops.expand_dims(self.attention_hidden(h), 1)
        energy = self.attention_score(keras.ops.tanh(keys + query))
        alpha = keras.ops.softmax(keras.ops.squeeze(energy, -1), axis=-1)
        context = keras.ops.sum(
            keras.ops.expand_dims(alpha, -1) * regions, axis=1
        )
        context = self.context_gate(h) * context
        inputs = keras.ops.concatenate([embedding, context], axis=-1)
        _, (h, c) = self.cell(inputs, [h, c])
        output = keras.ops.concatenate([h, context], axis=-1)
        return output, (h, c), alpha

    def call(self, embeddings, regions, pooled):
        keys = self.attention_keys(regions)

        # The TensorFlow backend's `scan` stacks outputs shaped like the
        # carry, so the step output rides along in the carry.
        def one_step(carry, embedding):
            output, (h, c), _ = self.step(embedding, carry[:2], regions, keys)
            carry = (h, c, output)
            return carry, carry

        h, c = self.initial_state(pooled)
        output = keras.ops.concatenate(
            [keras.ops.zeros_like(h), keras.ops.zeros_like(pooled)], axis=-1
        )
        steps = keras.ops.transpose(embeddings, (1, 0, 2))
        _, (_, _, outputs) = keras.ops.scan(one_step, (h, c, output), steps)
        return keras.ops.transpose(outputs, (1, 0, 2))

    def compute_output_shape(
        self, embeddings_shape, regions_shape, pooled_shape
    ):
        return (*embeddings_shape[:2], self.units + regions_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "attention_units": self.attention_units,
                "beam_width": self.beam_width,
            }
        )
        return config


def _image_encoder(config):
    """Returns the encoder model and whether its output has a class token."""
    shape = (config.image_size, config.image_size, 3)
    if config.encoder == "vit":
        backbone = keras_hub.models.ViTBackbone(
            image_shape=shape,
            patch_size=config.patch_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            hidden_dim=config.hidden_dim,
            mlp_dim=config.mlp_dim,
            dropout_rate=config.dropout,
            name=IMAGE_ENCODER,
        )
        return backbone, True
    if config.cnn_backbone == "resnet50":
        backbone = keras.applications.ResNet50(
            include_top=False,
            weights=None,
            input_shape=shape,
            name=IMAGE_ENCODER,
        )
        return backbone, False
    layers = [keras.Input(shape)]
    for i in range(3):
        layers.append(
            keras.layers.Conv2D(
                config.hidden_dim,
                3,
                strides=2,
                padding="same",
                activation="relu",
                name=f"conv{i + 1}",
            )
        )
    return keras.Sequential(layers, name=IMAGE_ENCODER), False


@register_model("vit_lstm_captioner", ViTLSTMCaptionerConfig, variants=VARIANTS)
def build_vit_lstm_captioner(config: ViTLSTMCaptionerConfig) -> keras.Model:
    """Builds an uncompiled teacher-forced captioner.

    Inputs are `image` (float32 `[B, S, S, 3]`, raw pixels 0..255) and
    `token_ids` (int32 `[B, max_length - 1]`, the caption without its last
    token, starting with `START_ID`). The output `logits` (float32
    `[B, max_length - 1, vocabulary_size]`) predicts the caption without its
    first token. Train with
    `SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)`.

    Example:
    >>> model = mmzoo.build("vit_lstm_captioner", "tiny", vocabulary_size=50)
    >>> captions, scores = captioning_decode.generate(model, images)

    Reference:
        Xu et al., "Show, Attend and Tell", ICML 2015; Dosovitskiy et al.,
        "An Image is Worth 16x16 Words", ICLR 2021.
    """
    size = config.image_size
    image = keras.Input((size, size, 3), dtype="float32", name=IMAGE_INPUT)
    token_ids = keras.Input(
        (config.max_length - 1,), dtype="int32", name=TOKEN_INPUT
    )

    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=RESCALING)(image)
    encoder, class_token = _image_encoder(config)
    regions, pooled = RegionFeatures(
        class_token=class_token, name=REGION_FEATURES
    )(encoder(x))

    embeddings = keras.layers.Embedding(
        config.vocabulary_size, config.embedding_dim, name=TOKEN_EMBEDDING
    )(token_ids)
    embeddings = keras.layers.Dropout(config.dropout, name="embedding_dropout")(
        embeddings
    )
    outputs = AttentionLSTMDecoder(
        config.decoder_units,
        config.attention_units,
        beam_width=config.beam_width,
        name=CAPTION_DECODER,
    )(embeddings, regions, pooled)
    outputs = keras.layers.Dropout(config.dropout, name="output_dropout")(
        outputs
    )
    logits = keras.layers.Dense(config.vocabulary_size, name=LOGITS)(outputs)
    return keras.Model(
        {IMAGE_INPUT: image, TOKEN_INPUT: token_ids},
        logits,
        name="vit_lstm_captioner",
    )
