"""Caption preprocessing and `tf.data` pipelines for captioners.

`CaptionPreprocessor` is the one home of the captioner's preprocessing:
image bytes → pixels (`mmzoo.data.images.decode_images`, after a check
for truncated files), captions → token ids (`mmzoo.data.text.tokenize` +
the vocabulary asset) and generated ids → text. The training pipeline and
the serving signatures both call it, so they cannot disagree.

Token ids are those of `mmzoo.heads.generation` (the decoders' and the
models'): 0 = padding, 1 = OOV, 2 = start, 3 = end, then the training words
by descending frequency.
"""

import os

import numpy as np
import tensorflow as tf

from mmzoo.data import text
from mmzoo.data.images import decode_images
from mmzoo.data.vocab import OOV_TOKEN, Vocabulary, count_tokens
from mmzoo.data.vocab import write_vocabulary as _write_vocabulary
from mmzoo.heads.generation import (
    BACKWARD_LOGITS,
    END_ID,
    LOGITS,
    PAD_ID,
    REVERSE_TOKEN_INPUT,
    START_ID,
    TOKEN_INPUT,
)

START_TOKEN = "[START]"
END_TOKEN = "[END]"
VOCABULARY_FILE = "caption_vocabulary.txt"

# Memory the pipeline may spend on decoded images: the in-memory cache of
# one split and each of its two shuffle buffers.
CACHE_BYTES = 1 << 30
SHUFFLE_BYTES = 256 << 20
# A train split with at least this many captions keeps only words seen
# `LARGE_MIN_COUNT` times (Karpathy's Flickr8k setting); smaller ones keep
# every word.
LARGE_CAPTION_COUNT = 10_000
LARGE_MIN_COUNT = 5

AUTOTUNE = tf.data.AUTOTUNE


def build_vocabulary(captions, path, min_count=None, extra_words=()):
    """Writes the caption vocabulary of `captions` to `path`.

    Args:
        captions: iterable of str. The training captions.
        path: str. File to write (one token a line).
        min_count: int or None. Rarer words map to OOV. Defaults to 1, or
            `LARGE_MIN_COUNT` for at least `LARGE_CAPTION_COUNT` captions.
        extra_words: iterable of str. Words given ids after the training
            words even if no training caption has them (the most frequent
            words of a GloVe file: a caption with a word unseen in training
            is then read with that word's vector, not as OOV).

    Returns:
        list of str: the tokens, indexed by id (`[PAD]`, `[OOV]`,
        `[START]`, `[END]`, then the words).
    """
    token_lists = [text.tokenize_py(caption) for caption in captions]
    if min_count is None:
        large = len(token_lists) >= LARGE_CAPTION_COUNT
        min_count = LARGE_MIN_COUNT if large else 1
    tokens = _write_vocabulary(
        count_tokens(token_lists),
        path,
        min_count=min_count,
        reserved=(START_TOKEN, END_TOKEN),
        extra=extra_words,
    )
    if tokens.index(START_TOKEN) != START_ID or tokens.index(END_TOKEN) != (
        END_ID
    ):  # pragma: no cover - guards the id convention
        raise AssertionError("caption vocabulary ids do not match the model")
    return tokens


def caption_length(captions, cap, percentile=95.0):
    """Token length (start and end included) covering `percentile` % of
    `captions`, at most `cap` and at least 3."""
    lengths = [len(text.tokenize_py(c)) + 2 for c in captions]
    length = int(np.ceil(np.percentile(lengths, percentile)))
    return int(max(3, min(cap, length)))


class CaptionPreprocessor(tf.Module):
    """Image bytes and captions → captioner inputs; ids → captions.

    Args:
        vocabulary_path: str. A file of `build_vocabulary`; it travels with
            the SavedModel as an asset.
        image_size: int. Side of the square model input.
        max_length: int. Caption tokens, start and end included.
        name: str. Module name.

    Example:
    >>> pre = CaptionPreprocessor("caption_vocabulary.txt", 32, 16)
    >>> pre({"image": tf.constant([jpeg_bytes])})["image"].shape
    TensorShape([1, 32, 32, 3])
    """

    def __init__(
        self,
        vocabulary_path,
        image_size,
        max_length,
        bidirectional=False,
        name="caption_preprocessor",
    ):
        super().__init__(name=name)
        self.image_size = int(image_size)
        self.max_length = int(max_length)
        self.bidirectional = bool(bidirectional)
        self.vocabulary = Vocabulary(vocabulary_path, name="caption_vocabulary")
        if self.vocabulary.tokens[START_ID : END_ID + 1] != [
            START_TOKEN,
            END_TOKEN,
        ]:
            raise ValueError(
                f"caption vocabulary {vocabulary_path}: lines 3-4 must be "
                f"{START_TOKEN} and {END_TOKEN}, got "
                f"{self.vocabulary.tokens[START_ID : END_ID + 1]}"
            )
        initializer = tf.lookup.TextFileInitializer(
            self.vocabulary.asset,
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        )
        self.id_to_token = tf.lookup.StaticHashTable(
            initializer,
            OOV_TOKEN,
            experimental_is_anonymous=True,  # see vocab.Vocabulary
        )

    @property
    def tokens(self):
        """The vocabulary: list of str indexed by id."""
        return self.vocabulary.tokens

    def images(self, data, name="image"):
        """Decodes encoded images `data [B]` to float32 `[B, S, S, 3]`
        (0..255); a bad image fails with InvalidArgument naming `name`."""
        return decode_images(data, self.image_size, name)

    def encode_captions(self, captions, reverse=False):
        """Returns int32 `[B, max_length]` ids: start, words, end, padding
        (captions longer than `max_length - 2` words are cut before the end
        token). `reverse` puts the (cut) words in reverse order: the
        caption a backward language model reads."""
        words = self.vocabulary.lookup(text.tokenize(captions))
        words = words[:, : self.max_length - 2]
        if reverse:
            lengths = words.row_lengths()
            dense = tf.reverse_sequence(
                words.to_tensor(), lengths, seq_axis=1, batch_axis=0
            )
            words = tf.RaggedTensor.from_tensor(dense, lengths=lengths)
        rows = words.nrows(out_type=tf.int32)
        start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], START_ID))
        end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
        ids = tf.concat([start, words, end], axis=1)
        return text.pad_ragged(ids, self.max_length)

    def start_tokens(self, batch_size):
        """The decoder's first input: `[B, max_length - 1]` of a start token
        followed by padding."""
        ids = tf.concat(
            [
                tf.fill([batch_size, 1], START_ID),
                tf.zeros([batch_size, self.max_length - 2], tf.int32),
            ],
            axis=1,
        )
        return tf.ensure_shape(ids, [None, self.max_length - 1])

    def __call__(self, raw):
        """Maps `{"image": bytes [B]}` (+ optional `"caption"` [B]) to model
        inputs `{"image", "token_ids"}`.

        With a caption, `token_ids` is its teacher-forcing input (the ids
        without the last); without one it is the start token alone, the
        first input of decoding.
        """
        images = self.images(raw["image"])
        if "caption" not in raw:
            start = self.start_tokens(tf.shape(raw["image"])[0])
            inputs = {"image": images, TOKEN_INPUT: start}
            if self.bidirectional:
                inputs[REVERSE_TOKEN_INPUT] = start
            return inputs
        inputs, _ = self.teacher_forcing(images, raw["caption"])
        return inputs

    def teacher_forcing(self, images, captions):
        """`(inputs, targets)` of teacher forcing: the ids without the last
        token in, without the start token out; a bidirectional model also
        gets the reversed caption (`reverse_token_ids` in, its
        `backward_logits` target)."""
        ids = self.encode_captions(captions)
        inputs = {"image": images, TOKEN_INPUT: ids[:, :-1]}
        if not self.bidirectional:
            return inputs, ids[:, 1:]
        reverse = self.encode_captions(captions, reverse=True)
        inputs[REVERSE_TOKEN_INPUT] = reverse[:, :-1]
        return inputs, {LOGITS: ids[:, 1:], BACKWARD_LOGITS: reverse[:, 1:]}

    def detokenize(self, token_ids):
        """Joins generated ids `[B, L]` into captions `[B]` (graph op).

        Words are joined with single spaces up to the first end or padding
        id, as `mmzoo.heads.generation.ids_to_text` does in Python.
        """
        token_ids = tf.cast(token_ids, tf.int64)
        going = tf.logical_and(
            tf.not_equal(token_ids, END_ID), tf.not_equal(token_ids, PAD_ID)
        )
        keep = tf.math.cumprod(tf.cast(going, tf.int32), axis=1) > 0
        words = tf.ragged.boolean_mask(self.id_to_token.lookup(token_ids), keep)
        return tf.strings.reduce_join(words, axis=1, separator=" ")


def pairs_dataset(data):
    """Unbatched `({"image": encoded bytes}, caption)`, one per caption."""
    paths, captions = [], []
    for path, group in zip(data.image_paths, data.captions):
        paths += [path] * len(group)
        captions += list(group)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(captions, tf.string))
    )
    return dataset.map(
        lambda path, caption: ({"image": tf.io.read_file(path)}, caption)
    )


def make_pipeline(
    data, preprocessor, batch_size, training=False, seed=0, cache=None
):
    """Batched teacher-forcing examples of every (image, caption) pair.

    Image files are read and decoded once per image with the serving
    decoder (`CaptionPreprocessor.images`), cached in memory when the
    decoded split fits in `CACHE_BYTES`, and each image is paired with
    every one of its captions. With `training`, images and then pairs are
    shuffled (buffers bounded by `SHUFFLE_BYTES`).

    Args:
        data: `mmzoo.data.captions.CaptionData` of one split.
        preprocessor: `CaptionPreprocessor`.
        batch_size: int.
        training: bool. Shuffle (reshuffled every epoch). Defaults to False.
        seed: int. Shuffle seed.
        cache: bool or None. Cache decoded images; None decides by size.

    Returns:
        `tf.data.Dataset` of `({"image": [B, S, S, 3], "token_ids":
        [B, L - 1]}, targets [B, L - 1])`, where `L` is `max_length`,
        `token_ids` is a caption's ids without the last and the target the
        ids without the start token.
    """
    num_images = len(data.image_paths)
    size = preprocessor.image_size
    image_bytes = size * size * 3 * 4
    if cache is None:
        cache = num_images * image_bytes <= CACHE_BYTES
    images = tf.data.Dataset.from_tensor_slices(
        tf.constant(data.image_paths, tf.string)
    )
    images = images.map(tf.io.read_file, num_parallel_calls=AUTOTUNE)
    images = images.batch(64).map(
        preprocessor.images, num_parallel_calls=AUTOTUNE
    )
    images = images.unbatch()
    if cache:
        images = images.cache()
    captions = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([list(group) for group in data.captions])
    )
    examples = tf.data.Dataset.zip(images, captions)
    num_pairs = sum(len(group) for group in data.captions)
    budget = max(1, SHUFFLE_BYTES // image_bytes)
    if training:
        examples = examples.shuffle(
            min(num_images, budget), seed=seed, reshuffle_each_iteration=True
        )

    def expand(image, group):
        group = tf.data.Dataset.from_tensor_slices(group)
        return tf.data.Dataset.zip(
            tf.data.Dataset.from_tensors(image).repeat(), group
        )

    examples = examples.flat_map(expand)
    if training:
        examples = examples.shuffle(
            min(num_pairs, max(budget, 4 * batch_size)),
            seed=seed + 1,
            reshuffle_each_iteration=True,
        )

    def to_model(image, caption):
        return preprocessor.teacher_forcing(image, caption)

    examples = examples.batch(batch_size)
    # flat_map hides the length; stating it gives Keras a full progress
    # bar and no "ran out of data" warning at the end of every epoch.
    examples = examples.apply(
        tf.data.experimental.assert_cardinality(-(-num_pairs // batch_size))
    )
    examples = examples.map(to_model, num_parallel_calls=AUTOTUNE)
    return examples.prefetch(AUTOTUNE)


def read_image_files(paths):
    """Returns the bytes of each file in `paths` as a NumPy `S` array."""
    contents = []
    for path in paths:
        with open(os.fspath(path), "rb") as f:
            contents.append(f.read())
    return np.array(contents, dtype=object).astype(bytes)
