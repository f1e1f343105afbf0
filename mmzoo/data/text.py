"""Text standardization and tokenization shared by training and serving."""

import re

import tensorflow as tf

# Keep letters, digits and spaces; everything else separates tokens. The
# same pattern runs in Python (vocabulary building) and in the graph.
_SEPARATORS = r"[^a-z0-9 ]+"
# tf.strings.lower lowercases ASCII only; the Python twin must match it.
_ASCII_LOWER = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
)


def standardize_py(text):
    """Python twin of `standardize`, for one-pass vocabulary building."""
    text = text.translate(_ASCII_LOWER)
    text = re.sub(_SEPARATORS, " ", text)
    return " ".join(text.split())


def tokenize_py(text):
    """Python twin of `tokenize`: the word tokens of `text`."""
    return standardize_py(text).split()


def to_valid_utf8(texts):
    """Replaces invalid UTF-8 in `texts` with spaces (graph op).

    A client's bad bytes then give a defined result instead of failing the
    whole batch (or a later Unicode op).
    """
    return tf.strings.unicode_transcode(
        texts,
        input_encoding="UTF-8",
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=32,
    )


def standardize(texts):
    """Lowercases and replaces punctuation with spaces (graph op).

    Invalid UTF-8 is replaced, not rejected (`to_valid_utf8`), so a client's
    bad bytes give a defined result instead of failing the whole batch.
    """
    texts = to_valid_utf8(texts)
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, _SEPARATORS, " ")
    return texts


def tokenize(texts):
    """Splits `texts [B]` into a ragged `[B, None]` string tensor of words."""
    return tf.strings.split(standardize(texts))


def split_multi_value(values, separator="|"):
    """Splits `"a|b|c"` strings into a ragged `[B, None]` tensor; empty
    pieces are dropped."""
    pieces = tf.strings.split(values, sep=separator)
    return tf.ragged.boolean_mask(pieces, tf.not_equal(pieces, ""))


def pad_ragged(ids, length):
    """Cuts or pads ragged int ids `[B, None]` to a dense `[B, length]`."""
    ids = ids[:, :length]
    dense = ids.to_tensor(default_value=0, shape=[None, length])
    return tf.ensure_shape(dense, [None, length])
