"""Greedy and beam-search caption decoding, shared by every captioner.

The functions take a trained Functional captioner and call its layers by
name, so they work on a freshly built model, a trained one and one
reloaded from a `.keras` file alike. They use `keras.ops` loops only: they
run eagerly on any backend and trace inside a
`tf.function(autograph=False)` for a SavedModel signature.

The contract a captioner meets for decoding (what a new captioner
architecture exposes; `build_vit_lstm_captioner` is the reference):

    - Inputs `image` (float32 `[B, S, S, 3]`, raw pixels 0..255) and
      `token_ids` (int32 `[B, max_length - 1]`, the caption without its
      last token, starting with `START_ID`); the length of `token_ids` is
      the default decoding length.
    - A layer `image_encoder` (`IMAGE_ENCODER`) mapping raw pixels to
      `[pooled [B, D_p], regions [B, N, D]]`, as
      `mmzoo.encoders.build_image_encoder(..., return_regions=True)`
      returns; pixel rescaling is inside it.
    - A layer `token_embedding` (`TOKEN_EMBEDDING`) mapping int ids `[B]`
      to embeddings `[B, E]`.
    - A layer `caption_decoder` (`CAPTION_DECODER`) with an int attribute
      `beam_width` (the default width) and three methods:
      `initial_state(pooled) -> state`, `attention_keys(regions) -> keys`
      (computed once per image) and `step(embedding, state, regions, keys)
      -> (output, state, alpha [B, N])`, where `state` is a pair `(h, c)`
      of `[B, units]` tensors (beam search reorders their rows) and
      `alpha` the attention over the regions.
    - A `Dense` layer `logits` (`LOGITS`) turning a step's `output` into
      `[B, vocabulary_size]` logits; its `units` is the vocabulary size.

A bidirectional captioner (Wang et al., 2016) also has a layer
`backward_caption_decoder` and a `Dense` layer `backward_logits`: a second
language model over the caption read backwards (trained on the reversed
caption, the `reverse_token_ids` input), sharing the image encoder and the
token embedding. `bidirectional_decode` decodes both directions and keeps,
per image, the sentence that scores higher; `generate` and the captioning
task's serving do so whenever the model has these layers.

Token ids (`PAD_ID`, `OOV_ID`, `START_ID`, `END_ID`) are defined here once
for the caption vocabulary files, the data pipeline and the models.

Conventions shared by both decoders:
    - Output ids exclude the start token, include the end token and are
      padded with `PAD_ID` after it; a caption that reaches the length
      limit without an end token is returned as it stands.
    - The pad, OOV and start ids are never generated: their logits are
      masked before the softmax.
    - A score is the sum of the log-probabilities of the returned tokens,
      end token included.

Reference:
    Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
    Visual Attention", ICML 2015. https://arxiv.org/abs/1502.03044
"""

import keras
import numpy as np

from mmzoo.specs import OOV_ID, PAD_ID

START_ID = 2
"""Id of the `[START]` token: the decoder's first input."""
END_ID = 3
"""Id of the `[END]` token: a generated caption stops after it."""

# Names of the model inputs and layers that decoding looks up (the
# contract of the module docstring).
IMAGE_INPUT = "image"
TOKEN_INPUT = "token_ids"
IMAGE_ENCODER = "image_encoder"
TOKEN_EMBEDDING = "token_embedding"
CAPTION_DECODER = "caption_decoder"
LOGITS = "logits"
# The backward language model of a bidirectional captioner.
REVERSE_TOKEN_INPUT = "reverse_token_ids"
BACKWARD_DECODER = "backward_caption_decoder"
BACKWARD_LOGITS = "backward_logits"
DIRECTIONS = ("forward", "backward")

__all__ = [
    "BACKWARD_DECODER",
    "BACKWARD_LOGITS",
    "CAPTION_DECODER",
    "DIRECTIONS",
    "END_ID",
    "IMAGE_ENCODER",
    "IMAGE_INPUT",
    "LOGITS",
    "OOV_ID",
    "PAD_ID",
    "REVERSE_TOKEN_INPUT",
    "START_ID",
    "TOKEN_EMBEDDING",
    "TOKEN_INPUT",
    "attention_weights",
    "beam_search_decode",
    "bidirectional_decode",
    "generate",
    "greedy_decode",
    "ids_to_text",
    "is_bidirectional",
    "reverse_caption_ids",
]

_NEG = -1e9


class _Layers:
    """The named layers of a captioner that decoding needs."""

    def __init__(self, model, direction="forward"):
        if direction not in DIRECTIONS:
            raise ValueError(
                f"generation: direction must be one of {DIRECTIONS}, got "
                f"{direction!r}"
            )
        decoder, logits = (
            (CAPTION_DECODER, LOGITS)
            if direction == "forward"
            else (BACKWARD_DECODER, BACKWARD_LOGITS)
        )
        names = (IMAGE_ENCODER, TOKEN_EMBEDDING, decoder, logits, TOKEN_INPUT)
        found = {layer.name: layer for layer in model.layers}
        missing = [name for name in names if name not in found]
        if missing:
            raise ValueError(
                f"generation: model '{model.name}' has no layers {missing}; "
                "expected a captioner with the layers listed in "
                "mmzoo.heads.generation (e.g. build_vit_lstm_captioner)"
            )
        self.encoder = found[IMAGE_ENCODER]
        self.embedding = found[TOKEN_EMBEDDING]
        self.decoder = found[decoder]
        self.logits = found[logits]
        self.input_length = found[TOKEN_INPUT].output.shape[-1]
        vocabulary_size = self.logits.units
        banned = np.zeros([vocabulary_size], "float32")
        # Never generated: padding, the start token, and OOV (a caption
        # saying "[OOV]" is worse than its next best word).
        banned[[PAD_ID, OOV_ID, START_ID]] = _NEG
        self.banned = banned

    def encode(self, images):
        """Returns `(regions [B, N, D], pooled [B, D_p])` of raw images."""
        images = keras.ops.convert_to_tensor(images, "float32")
        pooled, regions = self.encoder(images, training=False)
        return regions, pooled

    def log_probs(self, tokens, state, regions, keys):
        """Returns `(log-probabilities [B, V], state)` after `tokens`."""
        embedding = self.embedding(tokens)
        output, state, _ = self.decoder.step(embedding, state, regions, keys)
        logits = self.logits(output) + keras.ops.convert_to_tensor(self.banned)
        return keras.ops.log_softmax(logits, axis=-1), state


def _num_steps(layers, max_length):
    """Tokens to generate: `max_length - 1` (the start token is given)."""
    if max_length is None:
        return layers.input_length
    if max_length < 2:
        raise ValueError(
            f"generation: max_length={max_length}; expected at least "
            "2 (start token + one generated token)"
        )
    return max_length - 1


def _write_column(ids, i, tokens):
    """Returns `ids [B, L]` with column `i` set to `tokens [B]`."""
    columns = keras.ops.arange(keras.ops.shape(ids)[1], dtype="int32")
    return keras.ops.where(
        keras.ops.expand_dims(columns, 0) == i,
        keras.ops.expand_dims(tokens, 1),
        ids,
    )


def _not_done(i, steps, finished):
    return keras.ops.logical_and(
        i < steps, keras.ops.logical_not(keras.ops.all(finished))
    )


def _start(layers, images, steps, repeat=1):
    """Encodes `images` and returns the decoding loop's initial values.

    Rows are image-major when `repeat > 1` (row `b * repeat + k` is copy
    `k` of image `b`, as beam search wants).

    Returns:
        `(regions, keys, (h, c), zeros [R], start tokens [R], ids [R,
        steps], finished [R])`.
    """
    regions, pooled = layers.encode(images)
    if repeat > 1:
        regions = keras.ops.repeat(regions, repeat, axis=0)
        pooled = keras.ops.repeat(pooled, repeat, axis=0)
    keys = layers.decoder.attention_keys(regions)
    state = layers.decoder.initial_state(pooled)
    # Scores add float32 log-probabilities, whatever the encoder's dtype.
    zeros = keras.ops.zeros_like(pooled[:, 0], dtype="float32")
    row_ids = keras.ops.cast(zeros, "int32")
    ids = keras.ops.expand_dims(row_ids, 1) + keras.ops.zeros(
        (1, steps), "int32"
    )
    return (
        regions,
        keys,
        state,
        zeros,
        row_ids + START_ID,
        ids,
        zeros > 0.0,
    )


def greedy_decode(model, images, max_length=None, direction="forward"):
    """Decodes captions by taking the most likely token at every step.

    Args:
        model: keras.Model. A captioner (see the module docstring).
        images: float32 `[B, S, S, 3]`. Raw pixels 0..255.
        max_length: int or None. Most caption tokens, start and end
            included, as in the config. Defaults to the model's
            `max_length` (its `token_ids` length + 1).
        direction: str. `"backward"` decodes with the backward language
            model of a bidirectional captioner (ids come out in reverse
            reading order: `reverse_caption_ids` turns them round).

    Returns:
        A tuple `(token_ids int32 [B, max_length - 1], scores float32 [B])`.

    Example:
    >>> ids, scores = greedy_decode(model, images)
    """
    layers = _Layers(model, direction)
    steps = _num_steps(layers, max_length)
    regions, keys, (h, c), scores, tokens, ids, finished = _start(
        layers, images, steps
    )

    def body(i, ids, tokens, h, c, scores, finished):
        log_probs, (h, c) = layers.log_probs(tokens, (h, c), regions, keys)
        best = keras.ops.cast(keras.ops.argmax(log_probs, axis=-1), "int32")
        best_log_prob = keras.ops.max(log_probs, axis=-1)
        tokens = keras.ops.where(finished, PAD_ID, best)
        tokens = keras.ops.cast(tokens, "int32")
        scores = scores + keras.ops.where(finished, 0.0, best_log_prob)
        ids = _write_column(ids, i, tokens)
        finished = keras.ops.logical_or(finished, tokens == END_ID)
        return i + 1, ids, tokens, h, c, scores, finished

    def cond(i, ids, tokens, h, c, scores, finished):
        return _not_done(i, steps, finished)

    loop = (0, ids, tokens, h, c, scores, finished)
    _, ids, _, _, _, scores, _ = keras.ops.while_loop(cond, body, loop)
    return ids, scores


def beam_search_decode(
    model,
    images,
    beam_width=None,
    max_length=None,
    length_penalty=0.0,
    direction="forward",
):
    """Decodes captions with beam search.

    Each step keeps the `beam_width` most likely of the (beam x vocabulary)
    extensions. A beam that has produced the end token stops growing (it
    can only be extended by padding, at no cost) and keeps competing with
    its final score. At the end, every beam (finished, or cut off at the
    length limit) is ranked by its score and the best is returned, so a
    width of 1 is exactly `greedy_decode`.

    Args:
        model: keras.Model. A captioner (see the module docstring).
        images: float32 `[B, S, S, 3]`. Raw pixels 0..255.
        beam_width: int or None. Beams kept per image. Defaults to the
            config's `beam_width` (stored on the decoder layer).
        max_length: int or None. Most caption tokens, start and end
            included. Defaults to the model's `max_length`.
        length_penalty: float. GNMT length normalization `alpha` for the
            final ranking only: a beam of `n` tokens ranks by
            `score / ((5 + n) / 6) ** alpha`. Defaults to 0 (raw
            log-probability).
        direction: str. As in `greedy_decode`.

    Returns:
        A tuple `(token_ids int32 [B, max_length - 1], scores float32 [B])`;
        the scores are unnormalized sums of log-probabilities.

    Example:
    >>> ids, scores = beam_search_decode(model, images, beam_width=3)

    Reference:
        Wu et al., "Google's Neural Machine Translation System", 2016
        (length normalization).
    """
    layers = _Layers(model, direction)
    steps = _num_steps(layers, max_length)
    width = beam_width or layers.decoder.beam_width
    vocabulary_size = layers.logits.units
    if not 1 <= width <= vocabulary_size:
        raise ValueError(
            f"generation: beam_width={width}; expected 1 to "
            f"vocabulary_size={vocabulary_size}"
        )

    # Rows are image-major: row b * width + k is beam k of image b.
    regions, keys, (h, c), row_zeros, tokens, ids, finished = _start(
        layers, images, steps, repeat=width
    )
    # Only beam 0 is live at first, so the first step does not pick the
    # same token `width` times.
    first = keras.ops.where(keras.ops.arange(width) == 0, 0.0, _NEG)
    scores = keras.ops.reshape(row_zeros, (-1, width)) + first
    pad_only = np.full([vocabulary_size], _NEG, "float32")
    pad_only[PAD_ID] = 0.0
    pad_only = keras.ops.convert_to_tensor(pad_only)

    def body(i, ids, tokens, h, c, scores, finished):
        log_probs, (h, c) = layers.log_probs(tokens, (h, c), regions, keys)
        log_probs = keras.ops.where(
            keras.ops.expand_dims(finished, 1), pad_only, log_probs
        )
        candidates = keras.ops.reshape(scores, (-1, 1)) + log_probs
        candidates = keras.ops.reshape(
            candidates, (-1, width * vocabulary_size)
        )
        scores, index = keras.ops.top_k(candidates, width)
        index = keras.ops.cast(index, "int32")
        beam = index // vocabulary_size
        tokens = keras.ops.reshape(index % vocabulary_size, (-1,))
        image_rows = keras.ops.arange(keras.ops.shape(index)[0], dtype="int32")
        rows = keras.ops.reshape(
            beam + keras.ops.expand_dims(image_rows, 1) * width, (-1,)
        )
        ids, h, c, finished = (
            keras.ops.take(x, rows, axis=0) for x in (ids, h, c, finished)
        )
        ids = _write_column(ids, i, tokens)
        finished = keras.ops.logical_or(finished, tokens == END_ID)
        return i + 1, ids, tokens, h, c, scores, finished

    def cond(i, ids, tokens, h, c, scores, finished):
        return _not_done(i, steps, finished)

    loop = (0, ids, tokens, h, c, scores, finished)
    _, ids, _, _, _, scores, _ = keras.ops.while_loop(cond, body, loop)

    ranking = scores
    if length_penalty:
        lengths = keras.ops.sum(
            keras.ops.cast(ids != PAD_ID, "float32"), axis=1
        )
        lengths = keras.ops.reshape(lengths, (-1, width))
        ranking = scores / ((5.0 + lengths) / 6.0) ** length_penalty
    best = keras.ops.cast(keras.ops.argmax(ranking, axis=1), "int32")
    image_rows = keras.ops.arange(keras.ops.shape(best)[0], dtype="int32")
    ids = keras.ops.take(ids, image_rows * width + best, axis=0)
    scores = keras.ops.take_along_axis(
        scores, keras.ops.expand_dims(best, 1), axis=1
    )
    return ids, keras.ops.squeeze(scores, 1)


def generate(model, images, beam_width=None, max_length=None):
    """Captions `images` eagerly; returns NumPy arrays.

    Args:
        model: keras.Model. A captioner (see the module docstring).
        images: float32 `[B, S, S, 3]`. Raw pixels 0..255.
        beam_width: int or None. 1 decodes greedily. Defaults to the
            config's `beam_width`.
        max_length: int or None. Most caption tokens, start and end
            included. Defaults to the model's `max_length`.

    Returns:
        A tuple `(token_ids int32 [B, max_length - 1], scores float32 [B])`
        of NumPy arrays.

    Example:
    >>> ids, scores = generate(model, images)
    >>> captions = ids_to_text(ids, vocabulary_tokens)
    """
    ids, scores, _ = decode(model, images, beam_width, max_length)
    return keras.ops.convert_to_numpy(ids), keras.ops.convert_to_numpy(scores)


def decode(model, images, beam_width=None, max_length=None):
    """Greedy (`beam_width=1`) or beam-search captions in reading order,
    with both directions of a bidirectional captioner; traceable.

    Returns:
        A tuple `(token_ids int32 [B, max_length - 1], scores float32 [B],
        backward bool [B])`: `backward` is True where the backward
        language model's sentence won (always False for a one-directional
        captioner).
    """
    if is_bidirectional(model):
        return bidirectional_decode(model, images, beam_width, max_length)
    ids, scores = _decode_one(model, images, beam_width, max_length)
    return ids, scores, keras.ops.zeros_like(scores) > 0.0


def _decode_one(model, images, beam_width, max_length, direction="forward"):
    width = beam_width or _Layers(model, direction).decoder.beam_width
    if width == 1:
        return greedy_decode(model, images, max_length, direction)
    return beam_search_decode(
        model, images, width, max_length, direction=direction
    )


def is_bidirectional(model):
    """True when `model` has a backward language model (the layers of the
    module docstring)."""
    return any(layer.name == BACKWARD_DECODER for layer in model.layers)


def reverse_caption_ids(token_ids):
    """Turns decoded ids of a backward language model into reading order.

    The words before the end token are reversed; the end token and the
    padding stay where they are (`[w3, w2, w1, END, PAD]` ->
    `[w1, w2, w3, END, PAD]`).

    Args:
        token_ids: int `[B, L]`.

    Returns:
        int32 `[B, L]`.
    """
    token_ids = keras.ops.cast(token_ids, "int32")
    is_word = keras.ops.logical_and(token_ids != END_ID, token_ids != PAD_ID)
    # Words are a prefix of each row: decoding stops at the end token.
    count = keras.ops.sum(keras.ops.cast(is_word, "int32"), axis=1)
    positions = keras.ops.arange(keras.ops.shape(token_ids)[1], dtype="int32")
    positions = keras.ops.expand_dims(positions, 0)
    count = keras.ops.expand_dims(count, 1)
    reversed_positions = count - 1 - positions
    source = keras.ops.where(positions < count, reversed_positions, positions)
    return keras.ops.take_along_axis(token_ids, source, axis=1)


def bidirectional_decode(model, images, beam_width=None, max_length=None):
    """Decodes with the forward and the backward language model of a
    bidirectional captioner and keeps, per image, the sentence whose
    log-probability is higher (Wang et al., 2016).

    Both scores sum the log-probabilities of the same number of tokens
    (the words and the end token), so they compare directly.

    Args:
        model: keras.Model. A bidirectional captioner.
        images: float32 `[B, S, S, 3]`. Raw pixels 0..255.
        beam_width: int or None. As in `generate`.
        max_length: int or None. As in `generate`.

    Returns:
        A tuple `(token_ids int32 [B, max_length - 1]` in reading order,
        `scores float32 [B]`, `backward bool [B]`).

    Reference:
        Wang et al., "Image Captioning with Deep Bidirectional LSTMs", ACM
        Multimedia 2016. https://arxiv.org/abs/1604.00790
    """
    forward_ids, forward_scores = _decode_one(
        model, images, beam_width, max_length, "forward"
    )
    backward_ids, backward_scores = _decode_one(
        model, images, beam_width, max_length, "backward"
    )
    backward = backward_scores > forward_scores
    ids = keras.ops.where(
        keras.ops.expand_dims(backward, 1),
        reverse_caption_ids(backward_ids),
        keras.ops.cast(forward_ids, "int32"),
    )
    scores = keras.ops.where(backward, backward_scores, forward_scores)
    return ids, scores, backward


def attention_weights(model, images, token_ids):
    """Attention of the decoder over image regions while reading a caption.

    Runs the decoder teacher-forced on `token_ids` (e.g. a decoded
    caption) and collects the soft attention `alpha` of every step: row
    `t` is where the decoder looked when it predicted `token_ids[:, t]`.

    Args:
        model: keras.Model. A captioner (see the module docstring).
        images: float32 `[B, S, S, 3]`. Raw pixels 0..255.
        token_ids: int `[B, T]`. Caption ids after the start token.

    Returns:
        float32 NumPy array `[B, T, N]` over the `N` image regions (ViT
        patches in row-major order, or CNN feature-map positions); each
        row sums to 1.

    Example:
    >>> ids, _ = generate(model, images, beam_width=1)
    >>> alpha = attention_weights(model, images, ids)  # [B, T, N]
    """
    layers = _Layers(model)
    token_ids = np.asarray(token_ids, "int32")
    regions, pooled = layers.encode(images)
    keys = layers.decoder.attention_keys(regions)
    state = layers.decoder.initial_state(pooled)
    tokens = np.full([token_ids.shape[0]], START_ID, "int32")
    weights = []
    for t in range(token_ids.shape[1]):
        embedding = layers.embedding(keras.ops.convert_to_tensor(tokens))
        _, state, alpha = layers.decoder.step(embedding, state, regions, keys)
        weights.append(keras.ops.convert_to_numpy(alpha))
        tokens = token_ids[:, t]
    if not weights:
        return np.zeros([token_ids.shape[0], 0, regions.shape[1]], "float32")
    return np.stack(weights, axis=1).astype("float32")


def ids_to_text(token_ids, tokens):
    """Joins decoded ids into captions, stopping at the end token.

    Args:
        token_ids: int array `[B, L]`. Output of a decoder.
        tokens: list of str. The vocabulary, indexed by id.

    Returns:
        A list of `B` space-joined strings.
    """
    captions = []
    for row in np.asarray(token_ids):
        words = []
        for token in row.tolist():
            if token in (END_ID, PAD_ID):
                break
            words.append(tokens[token])
        captions.append(" ".join(words))
    return captions
