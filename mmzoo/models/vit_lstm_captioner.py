"""ViT (or CNN) encoder + attention LSTM caption decoder.

The shared image encoder (`mmzoo.encoders.build_image_encoder`, a Vision
Transformer by default) turns the image into a set of region vectors (ViT
patch tokens or CNN feature-map positions) and one pooled vector; an LSTM
writes the caption one token at a time and, at every step, attends softly
over the regions (Show, Attend and Tell). Training uses teacher forcing:
the model reads the caption without its last token and predicts the
caption without its first. Decoding (greedy and beam search) lives in
`mmzoo.heads.generation` and reuses the layers of the trained model by
name, so it also works on a model reloaded from a `.keras` file.

Token ids are fixed by mmzoo's vocabulary files
(`mmzoo.heads.generation`): 0 = padding, 1 = OOV, 2 = start, 3 = end, then
the words.

Reference:
    Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
    Visual Attention", ICML 2015. https://arxiv.org/abs/1502.03044
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
    Image Recognition at Scale", ICLR 2021. https://arxiv.org/abs/2010.11929
"""

import dataclasses

import keras

from mmzoo.heads.generation import (
    CAPTION_DECODER,
    END_ID,
    IMAGE_ENCODER,
    IMAGE_INPUT,
    LOGITS,
    OOV_ID,
    PAD_ID,
    START_ID,
    TOKEN_EMBEDDING,
    TOKEN_INPUT,
)
from mmzoo.models.captioner_parts import (
    TINY,
    CaptionerConfig,
    build_captioner,
)
from mmzoo.registry import TFDS_DATASET, register_model

__all__ = [
    "CAPTION_DECODER",
    "END_ID",
    "IMAGE_ENCODER",
    "IMAGE_INPUT",
    "LOGITS",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "TOKEN_EMBEDDING",
    "TOKEN_INPUT",
    "VARIANTS",
    "AttentionLSTMDecoder",
    "ViTLSTMCaptionerConfig",
    "build_vit_lstm_captioner",
]


@dataclasses.dataclass(frozen=True)
class ViTLSTMCaptionerConfig(CaptionerConfig):
    """Hyperparameters for `build_vit_lstm_captioner`: the settings every
    captioner has (`mmzoo.models.captioner_parts.CaptionerConfig`: the
    vocabulary, the image encoder, the decoder's width, beam width and
    training settings) plus the attention's width.

    Defaults are the reference settings: a ViT-B/16 encoder at 224 pixels
    and a 512-unit attention LSTM decoder, trained with Adam at 3e-3, the
    global gradient norm clipped to 5, 10 epochs of batches of 64.

    Attributes:
        attention_units: int. Width of the additive attention.
    """

    attention_units: int = 512

    model_name = "vit_lstm_captioner"


VARIANTS = {
    "tiny": {
        **TINY,
        "patch_size": 8,
        "vit_num_layers": 2,
        "vit_num_heads": 2,
        "vit_hidden_dim": 32,
        "vit_mlp_dim": 64,
        "attention_units": 32,
    },
    "base": {},
}


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
        pooled: float `[B, D_p]`. Pooled image vector.

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
        # Sublayers take this layer's dtype policy, so that a model built
        # under a mixed policy keeps it when loaded under another.
        policy = {"dtype": self.dtype_policy}
        self.init_h = keras.layers.Dense(
            units, activation="tanh", name="init_h", **policy
        )
        self.init_c = keras.layers.Dense(
            units, activation="tanh", name="init_c", **policy
        )
        self.attention_regions = keras.layers.Dense(
            attention_units, name="attention_regions", **policy
        )
        self.attention_hidden = keras.layers.Dense(
            attention_units,
            use_bias=False,
            name="attention_hidden",
            **policy,
        )
        self.attention_score = keras.layers.Dense(
            1, name="attention_score", **policy
        )
        self.context_gate = None
        self.cell = keras.layers.LSTMCell(units, name="lstm_cell", **policy)

    def build(self, embeddings_shape, regions_shape, pooled_shape):
        depth = regions_shape[-1]
        self.init_h.build(pooled_shape)
        self.init_c.build(pooled_shape)
        self.attention_regions.build(regions_shape)
        self.attention_hidden.build((None, self.units))
        self.attention_score.build((None, None, self.attention_units))
        self.context_gate = keras.layers.Dense(
            depth,
            activation="sigmoid",
            name="context_gate",
            dtype=self.dtype_policy,
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
        # The pooled vector may be wider than a region (a flattened CNN
        # map), so the output's zeros take the regions' width.
        output = keras.ops.concatenate(
            [keras.ops.zeros_like(h), keras.ops.zeros_like(regions[:, 0, :])],
            axis=-1,
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


@register_model(
    "vit_lstm_captioner",
    ViTLSTMCaptionerConfig,
    variants=VARIANTS,
    problem="captioning",
    datasets=("synthetic", "flickr8k", "image-text-pairs", TFDS_DATASET),
    description=(
        "Show, Attend and Tell: a shared image encoder (keras-hub ViT by "
        "default) + LSTM decoder with soft attention over the image "
        "regions; greedy and beam search in the graph"
    ),
)
def build_vit_lstm_captioner(config: ViTLSTMCaptionerConfig) -> keras.Model:
    """Builds an uncompiled teacher-forced captioner.

    Inputs are `image` (float32 `[B, S, S, 3]`, raw pixels 0..255) and
    `token_ids` (int32 `[B, max_length - 1]`, the caption without its last
    token, starting with `START_ID`). The output `logits` (float32
    `[B, max_length - 1, vocabulary_size]`) predicts the caption without its
    first token. Train with
    `SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)`.
    The layer names are those `mmzoo.heads.generation` decodes with.

    Example:
    >>> model = mmzoo.build("vit_lstm_captioner", "tiny", vocabulary_size=50)
    >>> captions, scores = mmzoo.heads.generate(model, images)

    Reference:
        Xu et al., "Show, Attend and Tell", ICML 2015; Dosovitskiy et al.,
        "An Image is Worth 16x16 Words", ICLR 2021.
    """

    def decoder():
        return AttentionLSTMDecoder(
            config.decoder_units,
            config.attention_units,
            beam_width=config.beam_width,
            name=CAPTION_DECODER,
        )

    return build_captioner(config, decoder, "vit_lstm_captioner")
