"""ResNet-50 features + GloVe word vectors, aligned by element-wise max,
and bidirectional LSTM language models: the captioner of seed 001 (§4-5).

At every step the projected image feature and the word vector are aligned
by the element-wise max (`mmzoo.layers.MaxAlignment`: both projected to
`fusion_units`, then the max), and an LSTM reads the result ("inject", in
Tanti et al.'s terms). Two such language models share the image encoder
and the word embedding: a forward one trained on the caption and a
backward one trained on the caption reversed, as in "Image Captioning
with Deep Bidirectional LSTMs" (Wang et al., 2016). At inference both
decode and the sentence with the higher log-probability is kept
(`mmzoo.heads.generation.bidirectional_decode`); the export says which in
its `direction` output.

Neither direction sees a word it has to predict: each is a teacher-forced
left-to-right model over its own reading order. (A `Bidirectional` layer
over the teacher-forced input would see the next word: an excellent
training loss and garbage decoding.)

The word embedding starts from a GloVe file (`glove_path`; words not in
the file get random vectors of the same scale) and is frozen unless
`glove_trainable`.

Reference:
    Wang, Yang, Bartz and Meinel, "Image Captioning with Deep
    Bidirectional LSTMs", ACM Multimedia 2016.
    https://arxiv.org/abs/1604.00790
    Pennington, Socher and Manning, "GloVe: Global Vectors for Word
    Representation", EMNLP 2014.
"""

import dataclasses
import os

import keras
import numpy as np

from mmzoo.data.glove import glove_dimension, read_glove
from mmzoo.heads.generation import (
    BACKWARD_DECODER,
    BACKWARD_LOGITS,
    CAPTION_DECODER,
    IMAGE_INPUT,
    LOGITS,
    REVERSE_TOKEN_INPUT,
    TOKEN_EMBEDDING,
    TOKEN_INPUT,
)
from mmzoo.models.captioner_parts import (
    TINY_FUSION,
    FusionCaptionerConfig,
    caption_image_encoder,
    caption_inputs,
    fusion_decoder,
)
from mmzoo.registry import TFDS_DATASET, register_model


@dataclasses.dataclass(frozen=True)
class GloveBiLSTMCaptionerConfig(FusionCaptionerConfig):
    """Hyperparameters for `build_glove_bilstm_captioner`: the settings
    every captioner has and those of its fusion
    (`mmzoo.models.captioner_parts.FusionCaptionerConfig`) plus the GloVe
    file's.

    Defaults are the reference settings: ResNet-50 features at 224 pixels,
    300-wide GloVe vectors, max alignment in a 512-wide space, 512-unit
    LSTMs in each direction.

    Attributes:
        image_units: int. Width of the image feature before alignment.
        fusion: str. How the image and the word meet before the LSTM:
            `"max_alignment"` (the seed's) or any vector fusion.
        fusion_units: int. Width of the aligned space.
        glove_path: str. A GloVe text file (`word v1 ... vD` per line) to
            start the word embedding from; `embedding_dim` then follows the
            file's D. `""` starts it at random.
        glove_trainable: bool. Fine-tune the GloVe vectors (frozen by
            default).
        glove_extra_words: int. The first (most frequent) words of the
            GloVe file added to the caption vocabulary beyond the training
            captions' words, so that a word never seen in training (a
            synonym in a test caption) is read with its own vector rather
            than as OOV; frozen vectors keep it next to the words it is
            like. Only with `glove_path`. Defaults to 10000.
        vocabulary_file: str. The caption vocabulary (one token per line,
            by id); set by the captioning task's `prepare`, read only with
            `glove_path`.
    """

    embedding_dim: int = 300
    fusion: str = "max_alignment"
    glove_path: str = ""
    glove_trainable: bool = False
    glove_extra_words: int = 10000
    vocabulary_file: str = ""

    model_name = "glove_bilstm_captioner"
    bidirectional = True

    def __post_init__(self):
        super().__post_init__()
        # The vectors are the embedding: its width is theirs. (A config read
        # back from a run folder elsewhere may not reach the file; its
        # embedding_dim is already the file's, and only building needs it.)
        if self.glove_path and os.path.isfile(self.glove_path):
            object.__setattr__(
                self, "embedding_dim", glove_dimension(self.glove_path)
            )


VARIANTS = {
    "tiny": TINY_FUSION,
    "base": {},
}


def glove_embedding_weights(config, initial):
    """The word embedding's starting weights: GloVe vectors where the file
    has the word, random vectors of the same scale elsewhere.

    Args:
        config: a `GloveBiLSTMCaptionerConfig` with `glove_path` and
            `vocabulary_file`.
        initial: float `[V, E]` NumPy array, the random initial weights.

    Returns:
        A tuple `(weights float32 [V, E], found)`: `found` counts the
        vocabulary words the file had.
    """
    if not config.vocabulary_file:
        raise ValueError(
            "glove_bilstm_captioner: glove_path needs the caption vocabulary "
            "(config.vocabulary_file, set by the captioning task's prepare); "
            "build the model from prepared.config"
        )
    if not os.path.isfile(config.glove_path):
        raise ValueError(
            f"glove_bilstm_captioner: glove_path {config.glove_path} is not "
            "a file"
        )
    with open(config.vocabulary_file, encoding="utf-8") as f:
        words = f.read().splitlines()
    if len(words) != config.vocabulary_size:
        raise ValueError(
            f"glove_bilstm_captioner: {config.vocabulary_file} has "
            f"{len(words)} tokens, config.vocabulary_size is "
            f"{config.vocabulary_size}"
        )
    vectors, found = read_glove(config.glove_path, words)
    if vectors.shape[1] != config.embedding_dim:
        raise ValueError(
            f"glove_bilstm_captioner: {config.glove_path} has "
            f"{vectors.shape[1]}-dimensional vectors but embedding_dim is "
            f"{config.embedding_dim}; set embedding_dim="
            f"{vectors.shape[1]}"
        )
    weights = np.asarray(initial, "float32").copy()
    if found.any():
        scale = float(vectors[found].std()) or 1.0
        rng = np.random.default_rng(0)
        weights = rng.normal(0.0, scale, weights.shape).astype("float32")
        weights[found] = vectors[found]
    return weights, int(found.sum())


@register_model(
    "glove_bilstm_captioner",
    GloveBiLSTMCaptionerConfig,
    variants=VARIANTS,
    problem="captioning",
    datasets=("synthetic", "flickr8k", "image-text-pairs", TFDS_DATASET),
    description=(
        "Seed 001's captioner: ResNet-50 features and GloVe word vectors "
        "aligned by element-wise max, forward and backward LSTM language "
        "models, the higher-scoring sentence kept"
    ),
)
def build_glove_bilstm_captioner(
    config: GloveBiLSTMCaptionerConfig,
) -> keras.Model:
    """Builds an uncompiled teacher-forced bidirectional captioner.

    Inputs: `image` (float32 `[B, S, S, 3]`, raw pixels 0..255),
    `token_ids` and `reverse_token_ids` (int32 `[B, max_length - 1]`: the
    caption and the reversed caption, each without its last token).
    Outputs: `logits` and `backward_logits` (float32 `[B, max_length - 1,
    vocabulary_size]`), the next-token logits of each direction. Layer
    names are those of `mmzoo.heads.generation`.

    Example:
    >>> model = mmzoo.build("glove_bilstm_captioner", "tiny",
    ...                     vocabulary_size=50)
    >>> captions, scores = mmzoo.heads.generate(model, images)
    """
    image, token_ids = caption_inputs(config)
    reverse_ids = keras.Input(
        token_ids.shape[1:], dtype="int32", name=REVERSE_TOKEN_INPUT
    )
    pooled, regions = caption_image_encoder(config)(image)
    embedding = keras.layers.Embedding(
        config.vocabulary_size,
        config.embedding_dim,
        trainable=config.glove_trainable or not config.glove_path,
        name=TOKEN_EMBEDDING,
    )
    dropout = keras.layers.Dropout(config.dropout, name="embedding_dropout")
    outputs = {}
    for ids, decoder, logits in (
        (token_ids, CAPTION_DECODER, LOGITS),
        (reverse_ids, BACKWARD_DECODER, BACKWARD_LOGITS),
    ):
        hidden = fusion_decoder(config, "inject", decoder)(
            dropout(embedding(ids)), regions, pooled
        )
        hidden = keras.layers.Dropout(config.dropout, name=f"{logits}_dropout")(
            hidden
        )
        outputs[logits] = keras.layers.Dense(
            config.vocabulary_size, dtype="float32", name=logits
        )(hidden)
    model = keras.Model(
        {
            IMAGE_INPUT: image,
            TOKEN_INPUT: token_ids,
            REVERSE_TOKEN_INPUT: reverse_ids,
        },
        outputs,
        name="glove_bilstm_captioner",
    )
    if config.glove_path:
        weights, _ = glove_embedding_weights(
            config, keras.ops.convert_to_numpy(embedding.embeddings)
        )
        embedding.embeddings.assign(weights)
    return model
