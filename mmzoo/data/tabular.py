"""Tabular CTR data: schemas, feature fitting and the shared preprocessor.

A reader returns `TabularData`: raw, unbatched `tf.data` splits of
`(features, label)` where every feature is a raw value (string or float32)
named after its column. `fit_features` makes one pass over the train split
to write vocabularies and numeric statistics; `TabularPreprocessor` turns a
batch of raw values into model inputs. The training pipeline and the
serving signature call the same preprocessor.
"""

import collections
import collections.abc
import dataclasses
import logging
import math
import os
import time

import numpy as np
import tensorflow as tf

from mmzoo.data import text
from mmzoo.data.vocab import StreamingCounter, Vocabulary, write_vocabulary
from mmzoo.specs import FeatureSpec

AUTOTUNE = tf.data.AUTOTUNE
_log = logging.getLogger(__name__)
# Seconds between progress lines of `fit_features` (INFO; the CLI shows
# them): a pass over a Criteo-sized file takes minutes.
PROGRESS_SECONDS = 10.0
# Rows per batch while fitting vocabularies and statistics.
FIT_BATCH = 8192
# For the one pass of `fit_features`: with tf.data's autotuning, deleting
# the finished iterator stalled for 5 s in 2 of 4 runs (the autotuning
# thread; 1M Criteo rows, 2 cores); without it AUTOTUNE parallelism is
# the number of cores, which suits a CPU-bound pass.
_NO_AUTOTUNE = tf.data.Options()
_NO_AUTOTUNE.autotune.enabled = False


# Under a multi-worker (or TPU pod) strategy, every worker reads the same
# batches and keeps its part of each: every worker then takes the
# dataset's number of steps, and the batch size stays the global one.
# tf.data's default (AUTO) shards by file where the data comes from files:
# on Criteo's shuffled training pipeline (its window seeds come from
# `Dataset.random`, not a file) that kept half of each worker's rows (45
# of 90 and 30 of 60 on two files), and with a stated number of batches
# evaluation skipped rows. The cost: each worker reads and parses every
# line.
_SHARD_BY_DATA = tf.data.Options()
_SHARD_BY_DATA.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA
)


@dataclasses.dataclass(frozen=True)
class Column:
    """A raw column: its name and feature kind (see `FeatureSpec.kind`)."""

    name: str
    kind: str


# Rows held by the default shuffle buffer of `TabularData.batches`.
SHUFFLE_BUFFER = 100_000


@dataclasses.dataclass
class TabularData:
    """Raw splits of a tabular dataset.

    Attributes:
        name: str. Dataset name.
        columns: tuple of `Column`, the raw features in serving order.
        splits: mapping of split name (`train`, `val`, `test`) to an
            unbatched `tf.data.Dataset` of `(features dict, label
            float32)`: the simple view, for small consumers (examples,
            tests); a dict, or `LazySplits`.
        batcher: optional callable `(split, batch_size, shuffle, seed,
            shuffle_buffer) -> tf.data.Dataset` of batches `(features dict
            of [B] tensors, label [B])`: the fast path of a reader that can
            shuffle and parse cheaper than row by row (see `batches`).
        fit_batcher: optional callable `() -> tf.data.Dataset`, the
            `fit_batches` of a reader that can do it in one read.
        rows: optional dict of split name to its number of rows, once
            known: `fit_features` counts them in its pass over all
            splits. `batches` then states its number of batches, so that
            Keras shows each epoch's length from the first one and ends
            it without a "Your input ran out of data" warning.
    """

    name: str
    columns: tuple
    splits: dict
    batcher: object = None
    fit_batcher: object = None
    rows: dict = None

    def batches(
        self, split, batch_size, shuffle=False, seed=0, shuffle_buffer=None
    ):
        """Batches of raw `(features, label)` of `split`.

        With `shuffle`, the order changes every epoch (iteration) and is
        drawn from `seed`. Without a `batcher`, rows of `splits[split]` are
        shuffled (buffer `shuffle_buffer` rows, default `SHUFFLE_BUFFER`)
        and batched; readers that hold their rows in memory or in files
        supply a `batcher` that never handles a row as a structure of
        tensors (`from_arrays`: shuffled indices gathered per batch;
        `read_criteo`: blocks of text lines, shuffled in windows of
        `shuffle_buffer` lines, parsed per batch).
        """
        buffer = int(shuffle_buffer or SHUFFLE_BUFFER)
        if self.batcher is not None:
            dataset = self.batcher(split, batch_size, shuffle, seed, buffer)
        else:
            dataset = self.splits[split]
            if shuffle:
                dataset = dataset.shuffle(
                    buffer, seed=seed, reshuffle_each_iteration=True
                )
            dataset = dataset.batch(batch_size)
        rows = (self.rows or {}).get(split)
        if rows is not None:
            # Batches of `batch_size` but the last (`rebatch` and `batch`).
            dataset = dataset.apply(
                tf.data.experimental.assert_cardinality(-(-rows // batch_size))
            )
        return dataset.with_options(_SHARD_BY_DATA)

    def fit_batches(self, batch_size):
        """`(features, label, rows)`: the train split's raw batches, for
        fitting vocabularies and statistics, from a pass that reads every
        other split too, so that a malformed row anywhere fails now
        (naming its file and line), not in the evaluation after training;
        `rows` maps each split name to its rows read in this step (an
        int64 scalar), the train rows included.

        Readers that can do both in one read of their files supply
        `fit_batcher` (`read_criteo`: chunks of lines as read, so batch
        sizes vary); otherwise the train batches are followed by the
        other splits' batches, counted and emptied of rows.
        """
        if self.fit_batcher is not None:
            return self.fit_batcher()

        def counted(split):
            def count(features, label):
                rows = {
                    name: tf.size(label, out_type=tf.int64)
                    if name == split
                    else tf.constant(0, tf.int64)
                    for name in self.splits
                }
                if split != "train":  # read and checked, not fitted
                    features = {k: v[:0] for k, v in features.items()}
                    label = label[:0]
                return features, label, rows

            return self.batches(split, batch_size).map(count)

        dataset = counted("train")
        for split in self.splits:
            if split != "train":
                dataset = dataset.concatenate(counted(split))
        return dataset


class LazySplits(collections.abc.Mapping):
    """Split name → unbatched dataset, each made on first use: making a
    reader's simple view can cost tracing its parse function (0.7 s for
    Criteo's three), and a training run reads only the test split's."""

    def __init__(self, names, make):
        self._names = tuple(names)
        self._make = make
        self._made = {}

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        if name not in self._made:
            self._made[name] = self._make(name)
        return self._made[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def raw_spec(column):
    """The `tf.TensorSpec` of one raw column, batched: `[None]`."""
    dtype = tf.float32 if column.kind == "numeric" else tf.string
    return tf.TensorSpec([None], dtype, name=column.name)


def fit_features(
    data,
    directory,
    max_vocabulary_size=100_000,
    min_count=2,
    hash_buckets=None,
    max_lengths=None,
    max_distinct=None,
):
    """Fits vocabularies and statistics on `data.splits["train"]`.

    One streaming pass (`TabularData.fit_batches`: the train split's
    batches, reading the other splits too so that a malformed row fails
    before training, and counting every split's rows into `data.rows`,
    so that `data.batches` knows its length): values are counted in
    TensorFlow hash tables (C speed, memory bounded by the distinct
    values; each batch's distinct values found in parallel `tf.data`
    threads), strings split and tokenized by the serving preprocessor's
    own ops. Vocabulary
    files are written to `directory/<feature>.txt` and travel with the
    export as assets.

    Args:
        data: `TabularData`.
        directory: str. Where vocabulary files are written.
        max_vocabulary_size: int. Most values kept per feature; rarer values
            map to the OOV id.
        min_count: int. Values seen fewer times map to the OOV id.
            Defaults to 2, so that the OOV (and missing) embeddings are
            trained on the rare values and an unseen value at serving time
            gets a learned vector, not its random initialization.
        hash_buckets: optional dict of feature name to a bucket count; those
            features are hashed instead of looked up.
        max_lengths: optional dict of feature name to the tokens kept for
            multi-valued and text features (default: the 95th percentile of
            the train split, at most 32).
        max_distinct: int or None. Most distinct values counted per column
            (`mmzoo.data.vocab.StreamingCounter`; default 4 ×
            `max_vocabulary_size`): memory is bounded by this, not by the
            rows. A column with more than half of it seen at least
            `min_count` times is hashed into `max_vocabulary_size` buckets
            (a warning names it).

    Returns:
        A tuple of `FeatureSpec` in column order.
    """
    hash_buckets = dict(hash_buckets or {})
    max_lengths = max_lengths or {}
    start = time.monotonic()
    max_distinct = int(max_distinct or 4 * max_vocabulary_size)
    counters = {
        c.name: StreamingCounter(max_distinct, min_count)
        for c in data.columns
        if c.kind != "numeric" and c.name not in hash_buckets
    }
    lengths = collections.defaultdict(list)
    sums = collections.defaultdict(float)
    squares = collections.defaultdict(float)
    finite = collections.defaultdict(int)

    def summarize(features, labels, rows):
        # Per batch, in parallel tf.data threads: numeric sums, token
        # counts, and each counted column's distinct values and counts
        # (`StreamingCounter.distinct`); only the merge into the counters'
        # tables runs in this thread.
        stats, distinct = {}, {}
        for column in data.columns:
            values = features[column.name]
            if column.kind == "numeric":
                values = tf.cast(values, tf.float64)
                ok = tf.math.is_finite(values)
                values = tf.where(ok, values, 0.0)
                stats[column.name] = tf.stack(
                    [
                        tf.reduce_sum(values),
                        tf.reduce_sum(values * values),
                        tf.reduce_sum(tf.cast(ok, tf.float64)),
                    ]
                )
                continue
            # The serving preprocessor's own string ops, so the counted
            # values are the looked-up ones.
            values = tf.strings.strip(values)
            if column.kind == "multi_value":
                values = text.split_multi_value(values)
            elif column.kind == "text":
                values = text.tokenize(values)
            if column.kind in ("multi_value", "text"):
                stats[column.name] = values.row_lengths()
            if column.name in counters:
                distinct[column.name] = StreamingCounter.distinct(values)
        return rows, stats, distinct

    summaries = (
        data.fit_batches(FIT_BATCH)
        .map(
            # Plain Python control flow: autograph would only slow tracing.
            tf.autograph.experimental.do_not_convert(summarize),
            num_parallel_calls=AUTOTUNE,
        )
        .prefetch(AUTOTUNE)
        .with_options(_NO_AUTOTUNE)
    )

    def make_merge():
        # One call per batch merges every column (a call per column costs
        # more in Python than the merging), traced once for the batches'
        # spec; remade when a counter gives up.
        active = {n: c for n, c in counters.items() if not c.overflowed}

        @tf.function(
            input_signature=[summaries.element_spec[2]], autograph=False
        )
        def merge(distinct):
            # The table sizes, in `active`'s order, as one tensor: one
            # read per batch, not one per column.
            return tf.stack(
                [
                    counter.merge(*distinct[name])
                    for name, counter in active.items()
                ]
            )

        return merge, list(active)

    merge, merged = make_merge()
    split_rows = collections.Counter()
    last_report = start
    for rows, stats, distinct in summaries:
        split_rows.update({name: int(n) for name, n in rows.items()})
        if time.monotonic() - last_report >= PROGRESS_SECONDS:
            last_report = time.monotonic()
            read = sum(split_rows.values())
            _log.info(
                "%s: fitting vocabularies and statistics: %s rows read "
                "(%s rows/s)",
                data.name,
                f"{read:,}",
                f"{read / max(last_report - start, 1e-9):,.0f}",
            )
        sizes = merge(distinct).numpy() if merged else ()
        gave_up = [
            counters[name].check(size) for name, size in zip(merged, sizes)
        ]
        if any(gave_up):
            merge, merged = make_merge()
        for column in data.columns:
            if column.kind == "numeric":
                total, total_squares, count = stats[column.name].numpy()
                sums[column.name] += float(total)
                squares[column.name] += float(total_squares)
                finite[column.name] += int(count)
            elif column.kind in ("multi_value", "text"):
                lengths[column.name].append(stats[column.name].numpy())
    if split_rows["train"] == 0:
        raise ValueError(f"{data.name}: the train split is empty")
    data.rows = {name: split_rows[name] for name in data.splits}
    os.makedirs(directory, exist_ok=True)
    specs = []
    for column in data.columns:
        name = column.name
        if column.kind == "numeric":
            n = max(finite[name], 1)
            mean = sums[name] / n
            var = max(squares[name] / n - mean**2, 0.0)
            std = math.sqrt(var) if var > 1e-12 else 1.0
            specs.append(FeatureSpec(name, "numeric", mean=mean, std=std))
            continue
        if name in counters and counters[name].overflowed:
            # Too many frequent values to count within the bound: hashed.
            hash_buckets[name] = max_vocabulary_size
            _log.warning(
                "%s: column %s has more than %d distinct values seen at "
                "least %d times; hashing it into %d buckets",
                data.name, name, max_distinct // 2, min_count,
                max_vocabulary_size,
            )  # fmt: skip
        if name in hash_buckets:
            specs.append(
                FeatureSpec(name, column.kind, hash_buckets=hash_buckets[name])
            )
            continue
        tokens = write_vocabulary(
            # Read only as far as the vocabulary's size.
            counters[name].most_common(),
            os.path.join(directory, f"{name}.txt"),
            max_size=max_vocabulary_size,
            min_count=min_count,
        )
        length = 1
        if column.kind in ("multi_value", "text"):
            length = max_lengths.get(
                name,
                int(
                    min(
                        32,
                        max(
                            1,
                            np.percentile(np.concatenate(lengths[name]), 95),
                        ),
                    )
                ),
            )
        specs.append(
            FeatureSpec(
                name,
                column.kind,
                vocabulary_size=len(tokens),
                max_length=length,
            )
        )
    hashed = sum(1 for spec in specs if spec.hash_buckets)
    _log.info(
        "%s: %s rows (%s); vocabularies of %d columns written to %s, "
        "%d hashed; %.1f s",
        data.name,
        f"{sum(data.rows.values()):,}",
        ", ".join(f"{name} {rows:,}" for name, rows in data.rows.items()),
        sum(1 for spec in specs if spec.kind != "numeric") - hashed,
        directory,
        hashed,
        time.monotonic() - start,
    )
    return tuple(specs)


class TabularPreprocessor(tf.Module):
    """Raw feature values → DeepFM model inputs, batched.

    Categorical strings → vocabulary ids (unknown → OOV id 1, empty →
    missing id 0) or hash buckets (2..); `"a|b"` multi-values and text →
    padded id matrices; numbers pass through as float32 (the model
    normalizes them and treats non-finite values as missing).

    Args:
        features: tuple of `FeatureSpec`.
        directory: str. Folder of the vocabulary files of `fit_features`.
    """

    def __init__(self, features, directory, name="tabular_preprocessor"):
        super().__init__(name=name)
        self.features = tuple(features)
        self.vocabularies = {}
        for feature in self.features:
            if feature.kind in ("numeric", "vector") or feature.hash_buckets:
                continue
            self.vocabularies[feature.name] = Vocabulary(
                os.path.join(directory, f"{feature.name}.txt"),
                name=f"vocab_{feature.name}",
            )

    def _ids(self, feature, values):
        if feature.hash_buckets:
            ids = tf.strings.to_hash_bucket_fast(values, feature.hash_buckets)
            ids = tf.cast(ids, tf.int32) + 2
            empty = tf.equal(values, "")
            if isinstance(values, tf.RaggedTensor):
                return values.with_flat_values(
                    tf.where(empty.flat_values, 0, ids.flat_values)
                )
            return tf.where(empty, 0, ids)
        return self.vocabularies[feature.name].lookup(values)

    def __call__(self, raw):
        """Maps a dict of raw `[B]` tensors to a dict of model inputs."""
        outputs = {}
        for feature in self.features:
            if feature.name not in raw:
                raise ValueError(
                    f"missing feature '{feature.name}'; got {sorted(raw)}"
                )
            values = raw[feature.name]
            if feature.kind in ("numeric", "vector"):
                outputs[feature.name] = tf.cast(values, tf.float32)
                continue
            if values.dtype != tf.string:
                values = tf.strings.as_string(values)
            values = tf.strings.strip(values)
            if feature.kind == "categorical":
                outputs[feature.name] = self._ids(feature, values)
                continue
            if feature.kind == "multi_value":
                tokens = text.split_multi_value(values)
            else:
                tokens = text.tokenize(values)
            outputs[feature.name] = text.pad_ragged(
                self._ids(feature, tokens), feature.max_length
            )
        return outputs


def preprocess_batches(batches, preprocessor, cache=None, repeat=False):
    """Maps raw batches `(features, label)` through `preprocessor`, once
    per batch, exactly as the serving signature runs it.

    Args:
        batches: `tf.data.Dataset` of raw batches (`TabularData.batches`).
        preprocessor: `TabularPreprocessor`.
        cache: None or "" (none), `"memory"`, or a file path prefix: the
            preprocessed batches are kept after the first pass, so later
            epochs skip reading and parsing (and see the first epoch's
            batches in the same order: use it for evaluation, or for
            training when the data fits and order matters less than speed).
        repeat: bool. Repeat forever.
    """
    dataset = batches.map(
        lambda features, label: (preprocessor(features), label),
        num_parallel_calls=AUTOTUNE,
    )
    if cache:
        dataset = dataset.cache("" if cache == "memory" else cache)
    if repeat:
        dataset = dataset.repeat()
    return dataset.prefetch(AUTOTUNE)


def make_pipeline(
    dataset, preprocessor, batch_size, shuffle=False, seed=0, repeat=False
):
    """Batches raw unbatched `(features, label)` rows and preprocesses
    them (`preprocess_batches`); for a whole `TabularData`, use its
    `batches` (the readers' fast path) with `preprocess_batches`."""
    data = TabularData("rows", (), {"rows": dataset})
    return preprocess_batches(
        data.batches("rows", batch_size, shuffle=shuffle, seed=seed),
        preprocessor,
        repeat=repeat,
    )
