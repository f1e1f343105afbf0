"""CNN image features + an LSTM over the caption so far, concatenated: the
captioner of seed 000 (§3-4).

The seed writes it as `Z = W[X; V] + b`, `O = softmax(W' Z + b')`: `V`
the CNN feature of the image, `X` the encoding of the caption so far (an
LSTM over the words), concatenated and projected, then a softmax over the
vocabulary for the next word. It is the "merge" architecture of Tanti et
al. (2018): the language model never sees the image; the two meet just
before the output. `fusion` swaps the concatenation for any vector fusion
layer of `mmzoo.layers` (`gmu`, `lmf`, `max_alignment`, ...).

Training (teacher forcing), decoding (greedy and beam search in the
graph), the datasets, the COCO metrics and the serving signatures are the
shared captioning ones (`mmzoo.heads.generation`,
`mmzoo.tasks.captioning`).

Reference:
    Tanti, Gatt and Camilleri, "Where to put the Image in an Image Caption
    Generator", Natural Language Engineering 2018.
    https://arxiv.org/abs/1703.09137
"""

import dataclasses

import keras

from mmzoo.models.captioner_parts import (
    TINY_FUSION,
    FusionCaptionerConfig,
    build_captioner,
    fusion_decoder,
)
from mmzoo.registry import TFDS_DATASET, register_model


@dataclasses.dataclass(frozen=True)
class CNNTextCaptionerConfig(FusionCaptionerConfig):
    """Hyperparameters for `build_cnn_text_captioner`: the settings every
    captioner has and those of its fusion
    (`mmzoo.models.captioner_parts.FusionCaptionerConfig`: `image_units`,
    the width of `V`; `fusion`, `"concat"` for the seed's `[X; V]` or any
    vector fusion; `fusion_units`, the width of `Z`).

    Defaults are the reference settings: ResNet-50 features at 224 pixels,
    a 512-unit LSTM over 512-wide word embeddings, concatenation.
    """

    model_name = "cnn_text_captioner"


VARIANTS = {
    "tiny": {
        **TINY_FUSION,
        # The merge model learns more slowly than the attention captioner
        # (test BLEU-4 0.38 at 15 epochs, 0.61 at 20; 0.66 at 40).
        "epochs": 20,
    },
    "base": {},
}


@register_model(
    "cnn_text_captioner",
    CNNTextCaptionerConfig,
    variants=VARIANTS,
    problem="captioning",
    datasets=("synthetic", "flickr8k", "image-text-pairs", TFDS_DATASET),
    description=(
        "Seed 000's captioner: CNN image feature V and an LSTM encoding X of "
        "the caption so far, Z = W[X; V] + b (or any fusion), softmax over "
        "the next word"
    ),
)
def build_cnn_text_captioner(config: CNNTextCaptionerConfig) -> keras.Model:
    """Builds an uncompiled teacher-forced captioner.

    Inputs, output and layer names are those of every mmzoo captioner
    (`mmzoo.heads.generation`): `image` (float32 `[B, S, S, 3]`, raw pixels
    0..255) and `token_ids` (int32 `[B, max_length - 1]`) in, `logits`
    (float32 `[B, max_length - 1, vocabulary_size]`) out.

    Example:
    >>> model = mmzoo.build("cnn_text_captioner", "tiny", vocabulary_size=50)
    >>> captions, scores = mmzoo.heads.generate(model, images)
    """
    return build_captioner(
        config,
        lambda: fusion_decoder(config, fuse_at="merge"),
        "cnn_text_captioner",
    )
