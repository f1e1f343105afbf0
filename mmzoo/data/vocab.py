"""String vocabularies that travel with a SavedModel as asset files.

Ids are fixed for every vocabulary in mmzoo: 0 = padding / missing value
(the empty string), 1 = out-of-vocabulary, 2.. = the kept tokens in
descending frequency. The training pipeline and the serving signature call
the same `Vocabulary.lookup`, so they cannot disagree.
"""

import collections
import os

import tensorflow as tf

PAD_TOKEN = "[PAD]"
OOV_TOKEN = "[OOV]"
PAD_ID = 0
OOV_ID = 1


def write_vocabulary(
    counts, path, max_size=None, min_count=1, reserved=(), extra=()
):
    """Writes the most frequent tokens of `counts` to a vocabulary file.

    Args:
        counts: mapping of token to count (e.g. `collections.Counter`).
        path: str. File to write, one token a line; lines 0 and 1 are the
            padding and OOV tokens.
        max_size: int or None. Most tokens kept, reserved ids excluded.
        min_count: int. Tokens seen fewer times map to OOV. Defaults to 1.
        reserved: tuple of str. Extra special tokens given ids 2, 3, ...
            before the counted tokens (e.g. caption start and end).
        extra: iterable of str. Tokens appended after the counted ones, in
            order, when not already there (e.g. the words of a word-vector
            file, so that words unseen in training still get their own
            ids); not limited by `max_size`.

    Returns:
        The list of tokens written (reserved tokens first).
    """
    kept = sorted(
        (
            (token, count)
            for token, count in counts.items()
            if count >= min_count
            and token
            and "\n" not in token
            and "\r" not in token
            and token not in (PAD_TOKEN, OOV_TOKEN, *reserved)
        ),
        key=lambda item: (-item[1], item[0]),
    )
    if max_size is not None:
        kept = kept[:max_size]
    tokens = [PAD_TOKEN, OOV_TOKEN, *reserved] + [t for t, _ in kept]
    present = set(tokens)
    for token in extra:
        if token and "\n" not in token and "\r" not in token:
            if token not in present:
                tokens.append(token)
                present.add(token)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return tokens


def count_tokens(token_lists):
    """Counts tokens over an iterable of token iterables."""
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    return counts


class Vocabulary(tf.Module):
    """Maps strings to integer ids with a table read from an asset file.

    Args:
        path: str. A file written by `write_vocabulary`.
        name: str. Module name.

    Example:
    >>> vocab = Vocabulary("genres.txt")
    >>> vocab.lookup(tf.constant(["Comedy", "", "unseen"]))  # [k, 0, 1]
    """

    def __init__(self, path, name=None):
        super().__init__(name=name)
        with open(path, encoding="utf-8") as f:
            self.tokens = f.read().splitlines()
        if self.tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError(
                f"vocabulary file {path}: first lines must be {PAD_TOKEN} and "
                f"{OOV_TOKEN}, got {self.tokens[:2]}"
            )
        # Reserved tokens ("[PAD]", "[OOV]", "[START]", ...) lead the file;
        # a client value spelling one of them is an ordinary unseen value.
        self.num_reserved = next(
            (
                i
                for i, token in enumerate(self.tokens)
                if not (token.startswith("[") and token.endswith("]"))
            ),
            len(self.tokens),
        )
        self.asset = tf.saved_model.Asset(path)
        initializer = tf.lookup.TextFileInitializer(
            self.asset,
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        # Anonymous: a named table's shared name comes from the Asset's
        # repr (its memory address), so a new table at a reused address
        # silently answered with an earlier, freed vocabulary's table.
        self.table = tf.lookup.StaticHashTable(
            initializer, OOV_ID, experimental_is_anonymous=True
        )

    @property
    def size(self):
        """Number of ids, reserved ids included."""
        return len(self.tokens)

    def lookup(self, strings):
        """Returns int32 ids of `strings` (any shape, dense or ragged)."""
        if isinstance(strings, tf.RaggedTensor):
            return strings.with_flat_values(self.lookup(strings.flat_values))
        ids = self.table.lookup(strings)
        ids = tf.where(
            ids < self.num_reserved, tf.constant(OOV_ID, tf.int64), ids
        )
        ids = tf.where(
            tf.equal(strings, ""), tf.constant(PAD_ID, tf.int64), ids
        )
        return tf.cast(ids, tf.int32)
