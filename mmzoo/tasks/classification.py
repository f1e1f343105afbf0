"""Diagnosis task: image-report folders → LSTNet diagnosis → served
`probabilities` (and `modality_weights`) from JPEG/PNG bytes and report text.

Datasets:

- `synthetic`: `mmzoo.data.synthetic_images.write_synthetic_diagnosis`
  writes chest-like pictures and histories into `<directory>/synthetic`
  in the `image-report` layout, which is then read by the same reader as a
  user's folder.
- `image-report` (`--data-dir`): a folder with `index.csv` (`image`,
  `report`, then one 0/1 column per finding); see
  `mmzoo.data.image_report`.

Both are split 80/10/10 by seed. The report vocabulary comes from the
training reports and is written as an asset file; every image file is
decoded once up front so a corrupt file fails with its name.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from mmzoo.data import image_text
from mmzoo.data.image_report import read_image_report
from mmzoo.data.images import validate_image_files
from mmzoo.data.splits import SPLITS, split_indices
from mmzoo.data.synthetic_images import write_synthetic_diagnosis
from mmzoo.models import lstnet_diagnosis as model_lib
from mmzoo.tasks.base import Prepared, Task

# Words seen fewer times in the training reports map to OOV (id 1), so the
# OOV embedding is trained and serves unseen words sensibly.
MIN_WORD_COUNT = 2
SYNTHETIC_EXAMPLES = 2000


@dataclasses.dataclass
class DiagnosisPrepared(Prepared):
    """`Prepared` plus each split's examples (image paths, reports,
    labels), from which the training pipelines read.

    Attributes:
        examples: dict of split name to `image_text.ImageTextExamples`.
    """

    examples: dict = dataclasses.field(default_factory=dict)


def _replace(config, **changes):
    return dataclasses.replace(config, **changes)


class DiagnosisTask(Task):
    """Glue of `lstnet_diagnosis`: data, pipelines, metrics and serving.

    Metrics: macro AUROC over the findings (`auroc`,
    `keras.metrics.AUC(multi_label=True)`) and binary accuracy. Serving:
    `image` (encoded JPEG/PNG bytes) and `report` (text) `tf.string
    [None]` → `probabilities [None, num_labels]`, plus `modality_weights
    [None, 2]` for weighted fusions. An empty report is a missing modality.
    """

    model = "lstnet_diagnosis"
    datasets = ("synthetic", "image-report")
    default_epochs = 10
    default_batch_size = 32
    main_job = {"variant": "tiny", "epochs": 10}
    contract_overrides = {"fusion": "attention"}
    headline_metrics = ("auroc",)
    # Training-time augmentation (shifts, contrast; see
    # `image_text.augmentation_layers`).
    augment = True
    synthetic_examples = SYNTHETIC_EXAMPLES

    def prepare(self, config, dataset, data_dir, directory, seed):
        if dataset == "synthetic":
            data_dir = write_synthetic_diagnosis(
                os.path.join(directory, "synthetic"),
                num_examples=self.synthetic_examples,
                seed=seed,
                image_size=max(16, config.image_size),
            )
        elif dataset == "image-report":
            if not data_dir:
                raise ValueError(
                    "lstnet_diagnosis: dataset 'image-report' needs "
                    "--data-dir, a folder with index.csv (columns image, "
                    "report, then one 0/1 column per label)"
                )
        else:
            raise ValueError(
                f"lstnet_diagnosis: unknown dataset '{dataset}'; valid: "
                f"{', '.join(self.datasets)}"
            )
        data = read_image_report(data_dir)
        validate_image_files(data.image_paths, dataset)
        everything = image_text.ImageTextExamples(
            data.image_paths, data.reports, data.labels
        )
        indices = split_indices(len(everything), seed)
        empty = [name for name in SPLITS if not len(indices[name])]
        if empty:
            raise ValueError(
                f"{dataset}: {len(everything)} examples leave the "
                f"{', '.join(empty)} split(s) empty (80/10/10); need at least "
                "10 examples"
            )
        examples = {name: everything.take(indices[name]) for name in SPLITS}
        os.makedirs(directory, exist_ok=True)
        tokens, longest = image_text.fit_text_vocabulary(
            examples["train"].texts,
            os.path.join(directory, image_text.VOCABULARY_FILE),
            max_size=max(0, config.vocabulary_size - 2),
            min_count=MIN_WORD_COUNT,
        )
        config = _replace(
            config,
            num_labels=len(data.label_names),
            label_names=tuple(data.label_names),
            vocabulary_size=len(tokens),
            max_report_length=max(1, min(config.max_report_length, longest)),
        )
        preprocessor = self.make_preprocessor(config, directory)
        splits = {
            name: image_text.raw_dataset(part)
            for name, part in examples.items()
        }
        return DiagnosisPrepared(
            config, preprocessor, splits, directory, examples=examples
        )

    def make_preprocessor(self, config, directory):
        return image_text.ImageTextPreprocessor(
            os.path.join(directory, image_text.VOCABULARY_FILE),
            config.image_size,
            config.max_report_length,
            keys=config.modalities,
            name="diagnosis_preprocessor",
        )

    def targets(self, config):
        """`(inputs, labels) -> targets` matching the model's outputs, or
        None when the model has the single output `probabilities`.

        `modality_weights` gets a placeholder (Keras wants a target for
        every output of a dict model; it has no loss) and `reconstruction`
        the input image rescaled to 0..1 (after augmentation).
        """
        names = model_lib.output_names(config)
        if names == (model_lib.PROBABILITIES,):
            return None

        def targets(inputs, labels):
            out = {model_lib.PROBABILITIES: labels}
            if model_lib.MODALITY_WEIGHTS in names:
                batch = tf.shape(labels)[0]
                out[model_lib.MODALITY_WEIGHTS] = tf.zeros(
                    [batch, len(config.modalities)], tf.float32
                )
            if model_lib.RECONSTRUCTION in names:
                out[model_lib.RECONSTRUCTION] = inputs[model_lib.IMAGE] / 255.0
            return out

        return targets

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        augmentation = None
        if training and self.augment:
            augmentation = image_text.augmentation_layers(seed)
        return image_text.make_pipeline(
            prepared.examples[split],
            prepared.preprocessor,
            batch_size,
            training=training,
            seed=seed,
            augmentation=augmentation,
            targets=self.targets(prepared.config),
        )

    def _metrics(self, config):
        return [
            keras.metrics.AUC(
                multi_label=True, num_labels=config.num_labels, name="auroc"
            ),
            keras.metrics.BinaryAccuracy(name="binary_accuracy"),
        ]

    def compile(self, model, config):
        names = model_lib.output_names(config)
        optimizer = keras.optimizers.Adam(config.learning_rate)
        bce = keras.losses.BinaryCrossentropy()
        if names == (model_lib.PROBABILITIES,):
            model.compile(
                optimizer=optimizer,
                loss=bce,
                loss_weights=[config.classification_weight],
                metrics=self._metrics(config),
            )
            return
        losses = {model_lib.PROBABILITIES: bce}
        weights = {model_lib.PROBABILITIES: config.classification_weight}
        if model_lib.RECONSTRUCTION in names:
            losses[model_lib.RECONSTRUCTION] = keras.losses.MeanSquaredError()
            weights[model_lib.RECONSTRUCTION] = config.reconstruction_weight
        model.compile(
            optimizer=optimizer,
            loss=losses,
            loss_weights=weights,
            metrics={model_lib.PROBABILITIES: self._metrics(config)},
        )

    def evaluate(self, model, prepared, split, batch_size):
        results = model.evaluate(
            self.pipeline(prepared, split, batch_size),
            return_dict=True,
            verbose=0,
        )
        return {
            _metric_name(name): float(value) for name, value in results.items()
        }

    def serving_signature(self, config):
        return {
            model_lib.IMAGE: tf.TensorSpec(
                [None], tf.string, name=model_lib.IMAGE
            ),
            model_lib.REPORT: tf.TensorSpec(
                [None], tf.string, name=model_lib.REPORT
            ),
        }

    def serve(self, model, preprocessor, raw):
        outputs = model(preprocessor(raw), training=False)
        if not isinstance(outputs, dict):
            return {model_lib.PROBABILITIES: outputs}
        return {
            name: outputs[name]
            for name in (model_lib.PROBABILITIES, model_lib.MODALITY_WEIGHTS)
            if name in outputs
        }


def _metric_name(name):
    """`probabilities_auroc` → `auroc`; `probabilities_loss` →
    `classification_loss` (names of a dict-output model)."""
    prefix = model_lib.PROBABILITIES + "_"
    if name == prefix + "loss":
        return "classification_loss"
    if name.startswith(prefix):
        return name[len(prefix) :]
    return name
