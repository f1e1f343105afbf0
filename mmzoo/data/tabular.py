"""Tabular CTR data: schemas, feature fitting and the shared preprocessor.

A reader returns `TabularData`: raw, unbatched `tf.data` splits of
`(features, label)` where every feature is a raw value (string or float32)
named after its column. `fit_features` makes one pass over the train split
to write vocabularies and numeric statistics; `TabularPreprocessor` turns a
batch of raw values into model inputs. The training pipeline and the
serving signature call the same preprocessor.
"""

import collections
import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from mmzoo.data import text
from mmzoo.data.vocab import Vocabulary, write_vocabulary
from mmzoo.specs import FeatureSpec

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Column:
    """A raw column: its name and feature kind (see `FeatureSpec.kind`)."""

    name: str
    kind: str


@dataclasses.dataclass
class TabularData:
    """Raw splits of a tabular dataset.

    Attributes:
        name: str. Dataset name.
        columns: tuple of `Column`, the raw features in serving order.
        splits: dict of split name (`train`, `val`, `test`) to an unbatched
            `tf.data.Dataset` of `(features dict, label float32)`.
    """

    name: str
    columns: tuple
    splits: dict


def raw_spec(column):
    """The `tf.TensorSpec` of one raw column, batched: `[None]`."""
    dtype = tf.float32 if column.kind == "numeric" else tf.string
    return tf.TensorSpec([None], dtype, name=column.name)


def _batches_as_numpy(dataset, batch_size=8192):
    yield from dataset.batch(batch_size).as_numpy_iterator()


def _decode(values):
    return [v.decode("utf-8", "replace") for v in values]


def fit_features(
    data,
    directory,
    max_vocabulary_size=100_000,
    min_count=2,
    hash_buckets=None,
    max_lengths=None,
):
    """Fits vocabularies and statistics on `data.splits["train"]`.

    One pass over the train split. Vocabulary files are written to
    `directory/<feature>.txt` and travel with the export as assets.

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

    Returns:
        A tuple of `FeatureSpec` in column order.
    """
    hash_buckets = hash_buckets or {}
    max_lengths = max_lengths or {}
    counts = collections.defaultdict(collections.Counter)
    lengths = collections.defaultdict(list)
    sums = collections.defaultdict(float)
    squares = collections.defaultdict(float)
    finite = collections.defaultdict(int)
    num_rows = 0
    for features, _ in _batches_as_numpy(data.splits["train"]):
        num_rows += len(next(iter(features.values())))
        for column in data.columns:
            values = features[column.name]
            if column.kind == "numeric":
                ok = values[np.isfinite(values)].astype(np.float64)
                sums[column.name] += float(ok.sum())
                squares[column.name] += float((ok**2).sum())
                finite[column.name] += len(ok)
            elif column.kind == "categorical":
                if column.name not in hash_buckets:
                    counts[column.name].update(_decode(values))
            elif column.kind in ("multi_value", "text"):
                split = (
                    (lambda s: [p for p in s.split("|") if p])
                    if column.kind == "multi_value"
                    else text.tokenize_py
                )
                for value in _decode(values):
                    tokens = split(value)
                    lengths[column.name].append(len(tokens))
                    counts[column.name].update(tokens)
    if num_rows == 0:
        raise ValueError(f"{data.name}: the train split is empty")
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
        if name in hash_buckets:
            specs.append(
                FeatureSpec(name, column.kind, hash_buckets=hash_buckets[name])
            )
            continue
        tokens = write_vocabulary(
            counts[name],
            os.path.join(directory, f"{name}.txt"),
            max_size=max_vocabulary_size,
            min_count=min_count,
        )
        length = 1
        if column.kind in ("multi_value", "text"):
            length = max_lengths.get(
                name,
                int(min(32, max(1, np.percentile(lengths[name], 95)))),
            )
        specs.append(
            FeatureSpec(
                name,
                column.kind,
                vocabulary_size=len(tokens),
                max_length=length,
            )
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


def make_pipeline(
    dataset, preprocessor, batch_size, shuffle=False, seed=0, repeat=False
):
    """Batches raw `(features, label)` examples and preprocesses them.

    Batching comes before preprocessing so that the vectorized preprocessor
    runs once per batch, exactly as the serving signature runs it.
    """
    if shuffle:
        dataset = dataset.shuffle(
            50_000, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda features, label: (preprocessor(features), label),
        num_parallel_calls=AUTOTUNE,
    )
    return dataset.prefetch(AUTOTUNE)
