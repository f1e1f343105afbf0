"""DeepFM task: CTR datasets → DeepFM → `probability` from raw columns."""

import keras
import tensorflow as tf

from mmzoo.data import ctr, tabular
from mmzoo.models.deepfm import example_logloss
from mmzoo.tasks.base import Prepared, Task


class DeepFMTask(Task):
    model = "deepfm"
    datasets = ("synthetic", "criteo", "movielens-100k")
    default_epochs = 3
    default_batch_size = 256
    main_job = {"variant": "tiny", "epochs": 3, "batch_size": 64}
    headline_metrics = ("auc", "rmse")

    def prepare(self, config, dataset, data_dir, directory, seed):
        data = ctr.read_ctr_dataset(dataset, data_dir, seed)
        features = tabular.fit_features(data, directory)
        config = type(config)(**{**_fields(config), "features": features})
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
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.BinaryCrossentropy(),
                metrics=[
                    keras.metrics.AUC(name="auc"),
                    keras.metrics.MeanMetricWrapper(
                        example_logloss, name="logloss"
                    ),
                ],
            )
        else:
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
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

    def serving_signature(self, config):
        specs = {}
        for feature in config.features:
            if feature.kind == "numeric":
                specs[feature.name] = tf.TensorSpec(
                    [None], tf.float32, name=feature.name
                )
            elif feature.kind == "vector":
                specs[feature.name] = tf.TensorSpec(
                    [None, feature.dimension], tf.float32, name=feature.name
                )
            else:
                specs[feature.name] = tf.TensorSpec(
                    [None], tf.string, name=feature.name
                )
        return specs

    def serve(self, model, preprocessor, raw):
        outputs = model(preprocessor(raw), training=False)
        name = (
            "probability"
            if model.output_names == ["probability"]
            else ("prediction")
        )
        return {name: outputs}


def _fields(config):
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
