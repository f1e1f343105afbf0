"""String vocabularies that travel with a SavedModel as asset files.

Ids are fixed for every vocabulary in mmzoo: 0 = padding / missing value
(the empty string), 1 = out-of-vocabulary, 2.. = the kept tokens in
descending frequency. The training pipeline and the serving signature call
the same `Vocabulary.lookup`, so they cannot disagree.
"""

import collections
import collections.abc
import itertools
import math
import os

import numpy as np
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
        counts: mapping of token to count (e.g. `collections.Counter`), or
            an iterable of `(token, count)` pairs already most frequent
            first, ties in token order (`StreamingCounter.most_common`):
            that is read only as far as `max_size` tokens, not sorted.
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
    ordered = not isinstance(counts, collections.abc.Mapping)
    special = frozenset((PAD_TOKEN, OOV_TOKEN, *reserved))
    kept = (
        (token, count)
        for token, count in (counts if ordered else counts.items())
        if count >= min_count
        and token
        and "\n" not in token
        and "\r" not in token
        and token not in special
    )
    if not ordered:
        kept = sorted(kept, key=lambda item: (-item[1], item[0]))
    kept = list(itertools.islice(kept, max_size))
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
            tokens = f.read().splitlines()
        # A plain list, not tracked: tf.Module wraps a list attribute
        # element by element (0.2 s per 100,000 tokens; DeepFM's 26 Criteo
        # vocabularies took 1.4 s to load). The table reads the asset.
        object.__setattr__(self, "tokens", tokens)
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


class StreamingCounter:
    """Counts strings batch by batch in TensorFlow hash tables (C speed),
    with memory bounded by the distinct values kept, not by the rows.

    Each `add` counts a batch with `tf.unique_with_counts` over 62-bit
    fingerprints of the strings (`tf.strings.to_hash_bucket_fast`;
    `distinct`, which may run in `tf.data` threads) and adds the counts
    into an int64 `DenseHashTable` (`merge`); a value's string is
    stored once, when its count reaches `prune_below`. When the table holds
    more than `max_distinct` values, values seen fewer than `prune_below`
    times are dropped (lossy counting: a value dropped and seen again
    later starts from zero, so values rarer than `prune_below` in each
    stretch between prunes may be undercounted; values at least that
    frequent are kept). If pruning leaves more than half of
    `max_distinct`, the column is too varied to count within the bound:
    `overflowed` becomes True, counting stops and the tables are freed
    (the caller hashes the column instead). Two strings with the same
    fingerprint (probability about n²/2⁶³) would be counted as one.

    Args:
        max_distinct: int. Most distinct values held.
        prune_below: int. Count under which values are dropped when the
            table is full (the vocabulary's `min_count` is the natural
            choice: such values would map to OOV anyway).

    Example:
    >>> counter = StreamingCounter(1_000_000, 2)
    >>> counter.update(tf.constant(["a", "b", "a"]))
    >>> counter.counts()  # {"a": 2}: "b", seen once, has no string
    """

    _EMPTY, _DELETED = -1, -2

    def __init__(self, max_distinct, prune_below=2):
        self.max_distinct = int(max_distinct)
        self.prune_below = max(int(prune_below), 1)
        self.overflowed = False
        self.table = tf.lookup.experimental.DenseHashTable(
            tf.int64,
            tf.int64,
            default_value=0,
            empty_key=self._EMPTY,
            deleted_key=self._DELETED,
        )
        self.strings = tf.lookup.experimental.MutableHashTable(
            tf.int64, tf.string, default_value=""
        )
        self._update = tf.function(self.add, reduce_retracing=True)

    @staticmethod
    def distinct(values):
        """`(keys, counts, positions, values)` of the distinct non-empty
        strings of `values` (any shape, or a `tf.RaggedTensor`): their
        fingerprints, counts, the position of one occurrence each in
        `values` flattened, and `values` flattened. A pure function of
        the batch (no table), so it can run in parallel `tf.data`
        threads; `merge` adds it to a counter."""
        if isinstance(values, tf.RaggedTensor):
            values = values.flat_values
        values = tf.reshape(values, [-1])
        # Empty strings are dropped from the fingerprints and positions,
        # not from `values`: no copy of the strings. (`tf.where` + gather,
        # not `tf.boolean_mask`: the same ops, but 3x quicker to trace,
        # 5.7 against 1.8 ms a call; Criteo's fitting traces 26 of these.)
        present_positions = tf.where(tf.not_equal(values, ""))[:, 0]
        fingerprints = tf.gather(
            tf.strings.to_hash_bucket_fast(values, 2**62), present_positions
        )
        keys, first, counts = tf.unique_with_counts(fingerprints)
        # Any occurrence of a key holds its string: the first one.
        positions = tf.math.unsorted_segment_min(
            present_positions, first, tf.size(keys)
        )
        return keys, tf.cast(counts, tf.int64), positions, values

    def merge(self, keys, counts, positions, values):
        """Adds `distinct`'s output to the table; returns its size.
        Graph-friendly: several counters may share one `tf.function`; the
        caller then passes the size to `check`."""
        before = tf.reshape(self.table.lookup(keys), tf.shape(keys))
        after = before + counts
        self.table.insert(keys, after)
        # A value's string is kept once its count reaches `prune_below`
        # (values below it never enter a vocabulary), so the many values
        # seen once cost no string copy.
        reached = tf.logical_and(
            before < self.prune_below, after >= self.prune_below
        )
        reached = tf.where(reached)[:, 0]
        self.strings.insert(
            tf.gather(keys, reached),
            tf.gather(values, tf.gather(positions, reached)),
        )
        return self.table.size()

    def add(self, values):
        """Adds the counts of the non-empty strings of `values` (see
        `distinct`) to the table; returns its size (see `merge`)."""
        return self.merge(*self.distinct(values))

    def update(self, values):
        """Counts the strings of `values` (see `add`) eagerly."""
        if not self.overflowed:
            self.check(self._update(values))

    def _export(self):
        keys, counts = self.table.export()
        used = keys >= 0
        return tf.boolean_mask(keys, used), tf.boolean_mask(counts, used)

    def check(self, size):
        """Prunes (or gives up, `overflowed`) when `size`, the table's
        size after the last `add`, is over `max_distinct`. Returns True
        when the counter overflowed just now."""
        if self.overflowed or int(size) <= self.max_distinct:
            return False
        keys, counts = self._export()
        kept = counts >= self.prune_below
        keys, counts = (
            tf.boolean_mask(keys, kept),
            tf.boolean_mask(counts, kept),
        )
        if int(tf.size(keys)) > self.max_distinct // 2:
            self.overflowed = True
            self.table = self.strings = None
            return True
        # The values dropped were seen fewer than `prune_below` times, so
        # they have no string to remove.
        self._refill(keys, counts)
        return False

    def _refill(self, keys, counts):
        """Empties the table in place (same resource: functions that use
        it need no retrace) and inserts `keys` with `counts`.

        Not `DenseHashTable.erase`: TensorFlow's dense table (2.21) inserts
        a key at the first deleted bucket of its probe sequence without
        looking further, so a key still held past that bucket is held
        twice. Pruning by erase left 1,889-3,531 values twice in 5 of the
        26 Criteo columns at 1M rows, each copy with part of its count.
        Importing empty buckets leaves none deleted."""
        buckets = 1 << max(
            10, math.ceil(math.log2(max(int(tf.size(keys)), 1) / 0.4))
        )
        tf.raw_ops.LookupTableImportV2(
            table_handle=self.table.resource_handle,
            keys=tf.fill([buckets, 1], tf.constant(self._EMPTY, tf.int64)),
            values=tf.zeros([buckets, 1], tf.int64),
        )
        self.table.insert(keys, counts)

    def most_common(self):
        """Yields `(value, count)` (value as str, UTF-8 decoded) for the
        values seen at least `prune_below` times (the others have no
        string), most frequent first, then by value: `write_vocabulary`'s
        order, sorted in NumPy, each value decoded only when reached."""
        if self.overflowed:
            raise ValueError(
                f"more than {self.max_distinct} distinct values: not counted"
            )
        keys, counts = self._export()
        kept = counts >= self.prune_below
        keys = tf.boolean_mask(keys, kept)
        counts = tf.boolean_mask(counts, kept).numpy()
        strings = self.strings.lookup(keys).numpy()
        # UTF-8 byte order is code point order, so sorting the bytes sorts
        # the decoded values.
        order = np.lexsort((strings.astype(bytes), -counts))
        # In slices, as Python lists: indexing NumPy arrays one item at a
        # time cost 0.4 s for the 600,000 values of Criteo's 1M rows.
        for start in range(0, len(order), 65536):
            part = order[start : start + 65536]
            for value, count in zip(
                strings[part].tolist(), counts[part].tolist(), strict=True
            ):
                yield value.decode("utf-8", "replace"), count

    def counts(self):
        """Dict of value to count of `most_common`, in its order."""
        return dict(self.most_common())
