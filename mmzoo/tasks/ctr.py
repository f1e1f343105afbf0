"""Click-through-rate task: tabular CTR datasets → any model over
`FeatureSpec` columns (`config.features`) → `probability` from raw
columns (or `prediction` for a regression target)."""

import keras
import numpy as np

from mmzoo.data import ctr, tabular
from mmzoo.metrics.ctr import example_logloss
from mmzoo.specs import FeatureSpec
from mmzoo.tasks.base import DUMMY_DATASET, Prepared, Task, replace_config
from mmzoo.training_config import compile_model

DUMMY_EXAMPLES = 64


class CTRTask(Task):
    """Generic CTR glue: readers, the tabular preprocessor, AUC/logloss
    (binary) or RMSE (regression), and one serving input per column."""

    headline_metrics = ("auc", "rmse")

    def read(self, config, dataset, data_dir, seed):
        """Reads `dataset` as `mmzoo.data.tabular.TabularData`."""
        self.check_dataset(dataset, data_dir)
        if dataset == DUMMY_DATASET:
            return _dummy_data(config.features, seed)
        return ctr.read_ctr_dataset(dataset, data_dir, seed)

    def prepare(self, config, dataset, data_dir, directory, seed):
        data = self.read(config, dataset, data_dir, seed)
        features = tabular.fit_features(data, directory)
        config = replace_config(config, features=features)
        preprocessor = self.make_preprocessor(config, directory)
        return Prepared(config, preprocessor, data.splits, directory)

    def make_preprocessor(self, config, directory):
        return tabular.TabularPreprocessor(config.features, directory)

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        return tabular.make_pipeline(
            prepared.splits[split],
            prepared.preprocessor,
            batch_size,
            shuffle=training,
            seed=seed,
        )

    def compile(self, model, config):
        if config.task == "binary":
            compile_model(
                model,
                config,
                loss=keras.losses.BinaryCrossentropy(),
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
                loss="mse",
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
