"""Classification task: labeled multimodal folders → any multimodal
classifier → served `probabilities` (and `modality_weights`, `score`) from
raw client values (image bytes, text).

Datasets (readers return `mmzoo.data.examples.LabeledExamples`):

- `synthetic`: the generator the model names (`register_model(...,
  synthetic=...)`, a key of `mmzoo.data.examples.SYNTHETIC`; by default
  `diagnosis`, chest-like pictures with histories), written in a folder
  layout and read back by the same reader as a user's folder.
- a folder layout of `mmzoo.data.examples.READERS` (`--data-dir`), e.g.
  `image-report`: `index.csv` (`image`, `report`, then one 0/1 column per
  label); see `mmzoo.data.image_report`.
- `dummy`: random values of the model's input specs (contract tests).

Splits are 80/10/10 by seed. Preprocessing (vocabularies, WordPiece,
preset tokenizers) is fitted on the train split by
`mmzoo.data.modalities.fit_preprocessor` and travels with the export; every
image file is decoded once up front so a corrupt file fails with its name.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from mmzoo.data import examples as examples_lib
from mmzoo.data.images import validate_image_files
from mmzoo.data.modalities import Preprocessor, fit_preprocessor
from mmzoo.data.splits import SPLITS, split_indices
from mmzoo.heads.classification import (
    MODALITY_WEIGHTS,
    PROBABILITIES,
    RECONSTRUCTION,
    SCORE,
    MaskedMeanSquaredError,
    output_names,
)
from mmzoo.tasks.base import DUMMY_DATASET, Prepared, Task, replace_config
from mmzoo.training_config import make_optimizer

SYNTHETIC_EXAMPLES = 2000
# The synthetic generator of models that name none.
DEFAULT_SYNTHETIC = "diagnosis"
DUMMY_EXAMPLES = 40


@dataclasses.dataclass
class ClassificationPrepared(Prepared):
    """`Prepared` plus each split's examples and the column of each input.

    Attributes:
        examples: dict of split name to `LabeledExamples`.
        mapping: dict of model input name to dataset column.
    """

    examples: dict = dataclasses.field(default_factory=dict)
    mapping: dict = dataclasses.field(default_factory=dict)


class ClassificationTask(Task):
    """Generic glue of multimodal classifiers: data, pipelines, metrics and
    serving.

    Metrics: sigmoid heads (multi-label) report macro AUROC over the labels
    (`auroc`) and binary accuracy; softmax heads accuracy and AUROC;
    regression heads MAE. Serving: one raw input per modality spec →
    `probabilities [None, num_labels]`, plus `modality_weights` for
    weighted fusions and `score` with a regression head.
    """

    headline_metrics = ("auroc", "accuracy")
    # Training-time augmentation (shifts, contrast).
    augment = True
    synthetic_examples = SYNTHETIC_EXAMPLES

    def read(self, config, dataset, data_dir, directory, seed):
        """Reads `dataset` as `LabeledExamples`."""
        self.check_dataset(dataset, data_dir)
        if dataset == DUMMY_DATASET:
            return examples_lib.write_dummy_examples(
                os.path.join(directory, DUMMY_DATASET),
                self.input_specs(config),
                config.num_labels,
                DUMMY_EXAMPLES,
                seed,
            )
        if dataset == "synthetic":
            sizes = [
                s.size for s in self.input_specs(config) if s.kind == "image"
            ]
            return examples_lib.write_synthetic(
                self.entry.synthetic or DEFAULT_SYNTHETIC,
                os.path.join(directory, "synthetic"),
                self.synthetic_examples,
                seed,
                max([16, *sizes]),
            )
        return examples_lib.read_labeled(dataset, data_dir)

    def prepare(self, config, dataset, data_dir, directory, seed):
        everything = self.read(config, dataset, data_dir, directory, seed)
        validate_image_files(everything.image_paths(), dataset)
        specs = self.input_specs(config)
        mapping = examples_lib.match_columns(everything, specs, dataset)
        indices = split_indices(len(everything), seed)
        empty = [name for name in SPLITS if not len(indices[name])]
        if empty:
            raise ValueError(
                f"{dataset}: {len(everything)} examples leave the "
                f"{', '.join(empty)} split(s) empty (80/10/10); need at least "
                "10 examples"
            )
        parts = {name: everything.take(indices[name]) for name in SPLITS}
        fitted, preprocessor = fit_preprocessor(
            specs, _fit_values(parts["train"], mapping), directory
        )
        config = replace_config(
            config,
            specs=tuple(fitted),
            num_labels=everything.labels.shape[1],
            label_names=tuple(everything.label_names),
        )
        splits = {
            name: examples_lib.raw_dataset(part, mapping)
            for name, part in parts.items()
        }
        return ClassificationPrepared(
            config,
            preprocessor,
            splits,
            directory,
            examples=parts,
            mapping=mapping,
        )

    def make_preprocessor(self, config, directory):
        """The preprocessor of the config's (fitted) input specs, over the
        assets in `directory`; an ablated modality has none."""
        return Preprocessor(self.input_specs(config), directory)

    def targets(self, config):
        """`(inputs, labels) -> targets` matching the model's outputs, or
        None when the model has the single output `probabilities`.

        `modality_weights` gets a placeholder (Keras wants a target for
        every output of a dict model; it has no loss), `reconstruction` the
        input image rescaled to 0..1 (after augmentation) and `score` the
        regression targets (NaN = none).
        """
        names = output_names(config)
        if names == (PROBABILITIES,):
            return None
        images = [s.name for s in self.input_specs(config) if s.kind == "image"]

        def targets(inputs, labels):
            if isinstance(labels, tuple):
                labels, regression = labels
            else:
                regression = None
            out = {PROBABILITIES: labels}
            if MODALITY_WEIGHTS in names:
                batch = tf.shape(labels)[0]
                out[MODALITY_WEIGHTS] = tf.zeros(
                    [batch, len(self.input_specs(config))], tf.float32
                )
            if RECONSTRUCTION in names:
                out[RECONSTRUCTION] = inputs[images[0]] / 255.0
            if SCORE in names:
                if regression is None:
                    raise ValueError(
                        f"{self.model}: the model has a regression head "
                        "(num_targets > 0) but the dataset has no targets"
                    )
                out[SCORE] = regression
            return out

        return targets

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        augmentation = None
        if training and self.augment:
            augmentation = examples_lib.augmentation_layers(seed)
        # Only the config's inputs: a `prepared` reused for an ablation
        # (`modalities=("image",)`) still maps the left-out columns.
        used = {spec.name for spec in self.input_specs(prepared.config)}
        return examples_lib.make_pipeline(
            prepared.examples[split],
            {k: v for k, v in prepared.mapping.items() if k in used},
            prepared.preprocessor,
            batch_size,
            training=training,
            seed=seed,
            augmentation=augmentation,
            targets=self.targets(prepared.config),
        )

    def _metrics(self, config):
        metrics = [
            keras.metrics.AUC(
                multi_label=True, num_labels=config.num_labels, name="auroc"
            )
        ]
        if getattr(config, "head", "sigmoid") == "softmax":
            metrics.append(keras.metrics.CategoricalAccuracy(name="accuracy"))
        else:
            metrics.append(keras.metrics.BinaryAccuracy(name="binary_accuracy"))
        return metrics

    def _classification_loss(self, config):
        if getattr(config, "head", "sigmoid") == "softmax":
            return keras.losses.CategoricalCrossentropy()
        return keras.losses.BinaryCrossentropy()

    def compile(self, model, config):
        names = output_names(config)
        optimizer = make_optimizer(config)
        loss = self._classification_loss(config)
        if names == (PROBABILITIES,):
            model.compile(
                optimizer=optimizer,
                loss=loss,
                loss_weights=[config.classification_weight],
                metrics=self._metrics(config),
            )
            return
        losses = {PROBABILITIES: loss}
        weights = {PROBABILITIES: config.classification_weight}
        metrics = {PROBABILITIES: self._metrics(config)}
        if RECONSTRUCTION in names:
            losses[RECONSTRUCTION] = keras.losses.MeanSquaredError()
            weights[RECONSTRUCTION] = config.reconstruction_weight
        if SCORE in names:
            losses[SCORE] = MaskedMeanSquaredError()
            weights[SCORE] = config.regression_weight
        model.compile(
            optimizer=optimizer,
            loss=losses,
            loss_weights=weights,
            metrics=metrics,
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

    def serve(self, model, preprocessor, raw):
        outputs = model(preprocessor(raw), training=False)
        if not isinstance(outputs, dict):
            return {PROBABILITIES: outputs}
        return {
            name: outputs[name]
            for name in (PROBABILITIES, MODALITY_WEIGHTS, SCORE)
            if name in outputs
        }


def _fit_values(train, mapping):
    """Raw train values to fit preprocessing on. Images need no fitting, so
    image files are not read (that would hold the whole split in memory)."""
    kinds = train.kinds
    values = examples_lib.raw_values(
        train, {n: c for n, c in mapping.items() if kinds[c] != "image"}
    )
    values.update({n: [] for n, c in mapping.items() if kinds[c] == "image"})
    return values


def _metric_name(name):
    """`probabilities_auroc` → `auroc`; `probabilities_loss` →
    `classification_loss` (names of a dict-output model)."""
    prefix = PROBABILITIES + "_"
    if name == prefix + "loss":
        return "classification_loss"
    if name.startswith(prefix):
        return name[len(prefix) :]
    return name
