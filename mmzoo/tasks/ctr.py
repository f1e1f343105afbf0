"""Click-through-rate task: tabular CTR datasets → any model over
`FeatureSpec` columns (`config.features`) → `probability` from raw
columns (or `prediction` for a regression target)."""

import dataclasses

import keras
import numpy as np

from mmzoo.data import ctr, tabular, tfds
from mmzoo.metrics.ctr import example_logloss, example_squared_error
from mmzoo.specs import FeatureSpec
from mmzoo.tasks.base import DUMMY_DATASET, Prepared, Task, replace_config
from mmzoo.training_config import compile_model

DUMMY_EXAMPLES = 64
# Batches in the shuffle buffer of a cached training pipeline.
CACHED_BATCHES = 1024


@dataclasses.dataclass
class CTRPrepared(Prepared):
    """`Prepared` plus the reader's `TabularData` (its fast `batches`)."""

    data: object = None


class CTRTask(Task):
    """Generic CTR glue: readers, the tabular preprocessor, AUC/logloss
    (binary) or RMSE (regression), and one serving input per column."""

    headline_metrics = ("auc", "rmse")

    def read(self, config, dataset, data_dir, seed):
        """Reads `dataset` as `mmzoo.data.tabular.TabularData`
        (`tfds:movielens/100k-ratings` and the like: `mmzoo.data.tfds`)."""
        self.check_dataset(dataset, data_dir)
        if dataset == DUMMY_DATASET:
            return _dummy_data(config.features, seed)
        if tfds.is_tfds(dataset):
            return tfds.read_ctr(dataset, data_dir, seed, self.model)
        return ctr.read_ctr_dataset(dataset, data_dir, seed)

    def prepare(self, config, dataset, data_dir, directory, seed):
        data = self.read(config, dataset, data_dir, seed)
        features = tabular.fit_features(
            data,
            directory,
            max_vocabulary_size=getattr(config, "max_vocabulary_size", 100_000),
            min_count=getattr(config, "min_count", 2),
        )
        config = replace_config(config, features=features)
        preprocessor = self.make_preprocessor(config, directory)
        return CTRPrepared(config, preprocessor, data.splits, directory, data)

    def make_preprocessor(self, config, directory):
        return tabular.TabularPreprocessor(config.features, directory)

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        """Raw batches of the reader's fast path (`TabularData.batches`),
        preprocessed per batch.

        With `training`, rows are shuffled every epoch (a buffer of
        `config.shuffle_buffer` rows). With `config.cache` (`"memory"` or
        a file path prefix), the preprocessed batches of the first pass
        are kept: later epochs skip reading and parsing, and training
        shuffles the order of the cached batches (`CACHED_BATCHES`
        buffer) instead of rows.
        """
        config = prepared.config
        data = getattr(prepared, "data", None)
        if data is None:  # a `Prepared` made elsewhere: rows only
            data = tabular.TabularData("rows", (), prepared.splits)
        cache = getattr(config, "cache", "")
        if cache and cache != "memory":
            cache = f"{cache}-{split}"
        batches = data.batches(
            split,
            batch_size,
            shuffle=training and not cache,
            seed=seed,
            shuffle_buffer=getattr(config, "shuffle_buffer", None),
        )
        dataset = tabular.preprocess_batches(
            batches, prepared.preprocessor, cache=cache
        )
        if training and cache:
            dataset = dataset.shuffle(
                CACHED_BATCHES, seed=seed, reshuffle_each_iteration=True
            )
        return dataset

    def compile(self, model, config):
        # Per-example losses (`[B]` values, not Keras's mean over the last
        # axis of a `[B]` output, which is already a scalar): Keras scales
        # only those by 1 / replicas under a tf.distribute strategy, so
        # the gradients summed over replicas are the global batch's mean.
        if config.task == "binary":
            compile_model(
                model,
                config,
                loss=example_logloss,
                metrics=[
                    keras.metrics.AUC(name="auc"),
                    keras.metrics.MeanMetricWrapper(
                        example_logloss, name="logloss"
                    ),
                ],
            )
        else:
            compile_model(
                model,
                config,
                loss=example_squared_error,
                metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
            )

    def evaluate(self, model, prepared, split, batch_size):
        results = model.evaluate(
            self.pipeline(prepared, split, batch_size),
            return_dict=True,
            verbose=0,
        )
        return {k: float(v) for k, v in results.items()}

    def serve(self, model, preprocessor, raw):
        outputs = model(preprocessor(raw), training=False)
        return {model.output_names[0]: outputs}


def _dummy_data(features, seed):
    """Random raw columns of the schema `features` with random labels."""
    rng = np.random.default_rng(seed)
    columns = tuple(
        tabular.Column(f.name, "numeric" if f.kind == "numeric" else f.kind)
        for f in features
        if isinstance(f, FeatureSpec) and f.kind != "vector"
    )
    specs = {f.name: f for f in features}
    arrays = {
        c.name: specs[c.name].dummy_raw(DUMMY_EXAMPLES, seed + i)
        for i, c in enumerate(columns)
    }
    labels = (rng.random(DUMMY_EXAMPLES) < 0.5).astype(np.float32)
    return ctr.from_arrays(DUMMY_DATASET, columns, arrays, labels, seed)
