"""Classification task: labeled multimodal folders → any multimodal
classifier → served `probabilities` and `label` (plus `score`,
`reconstruction`, `modality_weights` when the model has them) from raw
client values (image bytes, text).

Datasets (readers return `mmzoo.data.examples.LabeledExamples`):

- `synthetic`: the generator the model names (`register_model(...,
  synthetic=...)`, a key of `mmzoo.data.examples.SYNTHETIC`; by default
  `diagnosis`, chest-like pictures with histories), written in a folder
  layout and read back by the same reader as a user's folder.
- a folder layout of `mmzoo.data.examples.READERS` (`--data-dir`), e.g.
  `image-report` (`index.csv` with `image`, `report`, then one 0/1 column
  per label; `mmzoo.data.image_report`) or `image-text-labels`
  (`index.csv` with `image`, `text`, `label`, optional `target` and
  `split`; `mmzoo.data.image_text_labels`).
- `tfds:NAME`: a TensorFlow Datasets builder with an `Image` and a
  `ClassLabel` (or `Sequence(ClassLabel)`) feature, written as an
  `image-text-labels` folder and read back (`mmzoo.data.tfds`).
- `dummy`: random values of the model's input specs (contract tests).

Splits come from the dataset's own `split` column when it has one,
otherwise 80/10/10 by seed. The data completes the config: the number and
names of the labels; the head (`sigmoid` for multi-label data, else
`softmax`) for configs with `head_from_data`; the regression head's width
(`num_targets`, 1 per target column, 0 without targets or when every
target cell is empty) and the train
split's target mean and standard deviation (`target_mean`, `target_std`).
Preprocessing (vocabularies, WordPiece, preset tokenizers, sensor
statistics) is fitted on the train split by
`mmzoo.data.modalities.fit_preprocessor` and travels with the export;
every image, video frame and WAV file is decoded once up front so a
corrupt file fails with its name.

Metrics (`evaluate`): the compiled Keras metrics (`loss`, `auroc`,
`accuracy` or `binary_accuracy`) plus, from the predictions over the split
(`mmzoo.metrics.classification`): `accuracy` and `macro_f1` for a
`softmax` head (single-label); `micro_f1`, `macro_f1`, `map` and per
label `auroc/<label>` and `ap/<label>` for a `sigmoid` head (multi-label,
threshold 0.5); `mae`, `rmse` and `pearson`
with a regression head (rows with a target only); `reconstruction_mse`
with a reconstruction output. `reports` gives the per-class
precision/recall/F1 table (`classification_report.txt`).
"""

import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import examples as examples_lib
from mmzoo.data import tfds
from mmzoo.data.audio import crop_or_pad, validate_audio_files
from mmzoo.data.images import validate_image_files
from mmzoo.data.modalities import Preprocessor, fit_preprocessor
from mmzoo.data.splits import SPLITS, split_indices
from mmzoo.heads.classification import (
    MODALITY_WEIGHTS,
    PROBABILITIES,
    RECONSTRUCTION,
    SCORE,
    output_losses,
    output_names,
)
from mmzoo.metrics import classification as metrics_lib
from mmzoo.tasks.base import (
    DUMMY_DATASET,
    Endpoint,
    Prepared,
    Task,
    replace_config,
)
from mmzoo.tasks.tensorboard import Confusion
from mmzoo.training_config import compile_model

SYNTHETIC_EXAMPLES = 2000
# The synthetic generator of models that name none.
DEFAULT_SYNTHETIC = "diagnosis"
DUMMY_EXAMPLES = 40
# Served output: the predicted class name(s).
LABEL = "label"
# Joins the names of several predicted labels (as in the datasets).
LABEL_SEPARATOR = "|"
# A label is predicted when its sigmoid probability exceeds this.
THRESHOLD = 0.5
REPORT_FILE = "classification_report.txt"
# Most classes drawn in a single-label confusion matrix (the rest: one).
CONFUSION_CLASSES = 20
# A target standard deviation below this is taken as 1 (constant target).
MIN_TARGET_STD = 1e-6


@dataclasses.dataclass
class ClassificationPrepared(Prepared):
    """`Prepared` plus each split's examples and the column of each input.

    Attributes:
        examples: dict of split name to `LabeledExamples`.
        mapping: dict of model input name to dataset column.
    """

    examples: dict = dataclasses.field(default_factory=dict)
    mapping: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """What `serve` needs from the config, carried by the preprocessor
    (`serve` receives the model and the preprocessor, not the config).

    Attributes:
        label_names: tuple of str. Name of each label, in output order.
        head: str. `softmax` (label = the arg-max's name) or `sigmoid`
            (the names over 0.5, joined by `|`).
        serve_reconstruction: bool. Serve the `reconstruction` output.
    """

    label_names: tuple = ()
    head: str = "sigmoid"
    serve_reconstruction: bool = False


def serving_options(config):
    """The `ServingOptions` of a classifier config."""
    num_labels = int(getattr(config, "num_labels", 0))
    names = tuple(getattr(config, "label_names", ()) or ())
    if len(names) != num_labels:
        names = tuple(f"label_{i}" for i in range(num_labels))
    return ServingOptions(
        label_names=tuple(str(n) for n in names),
        head=getattr(config, "head", "sigmoid"),
        serve_reconstruction=bool(
            getattr(config, "serve_reconstruction", False)
        ),
    )


def predicted_labels(probabilities, label_names, head):
    """The `label` output: class names from probabilities, in graph ops.

    Args:
        probabilities: float tensor `[B, K]`.
        label_names: sequence of K str.
        head: str. `softmax`: the name of the arg-max; `sigmoid`: the names
            whose probability exceeds 0.5, joined by `|` in label order
            (`""` when none).

    Returns:
        A `tf.string` tensor `[B]`.
    """
    names = tf.constant([str(n) for n in label_names], tf.string)
    if head == "softmax":
        return tf.gather(names, tf.argmax(probabilities, axis=-1))
    chosen = tf.where(
        probabilities > THRESHOLD,
        tf.strings.join([names, LABEL_SEPARATOR]),
        "",
    )
    joined = tf.strings.reduce_join(chosen, axis=-1)
    # Drop the separator after the last name.
    return tf.strings.regex_replace(
        joined, re.escape(LABEL_SEPARATOR) + "$", ""
    )


def target_statistics(targets):
    """Per-column mean and standard deviation of the finite targets.

    Args:
        targets: float array `[N, T]` (NaN = no target).

    Returns:
        `(mean, std)`, two tuples of T floats; a column without a finite
        value gets 0 and 1, a (near) constant one the std 1.
    """
    targets = np.asarray(targets, np.float64)
    means, stds = [], []
    for column in targets.T:
        values = column[np.isfinite(column)]
        mean = float(values.mean()) if len(values) else 0.0
        std = float(values.std()) if len(values) else 1.0
        means.append(mean)
        stds.append(std if std >= MIN_TARGET_STD else 1.0)
    return tuple(means), tuple(stds)


class ClassificationTask(Task):
    """Generic glue of multimodal classifiers: data, pipelines, metrics and
    serving.

    Losses are the config's (`mmzoo.heads.classification.output_losses`).
    Metrics: see the module docstring. Serving: one raw input per modality
    spec → `probabilities [None, num_labels]`, `label` (string `[None]`),
    plus `score` (`[None]` for one target) with a regression head,
    `reconstruction` when the config's `serve_reconstruction` is set, and
    `modality_weights` for weighted fusions.
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
                s.size
                for s in self.input_specs(config)
                if s.kind in ("image", "video")
            ]
            return examples_lib.write_synthetic(
                self.entry.synthetic or DEFAULT_SYNTHETIC,
                os.path.join(directory, "synthetic"),
                getattr(config, "synthetic_examples", self.synthetic_examples),
                seed,
                max([16, *sizes]),
            )
        if tfds.is_tfds(dataset):
            # Written in the layout, then read like a user's folder.
            layout = tfds.IMAGE_TEXT_LABELS
            folder = tfds.materialize(
                dataset, layout, data_dir, directory, self.model
            )
            return examples_lib.read_labeled(layout, folder)
        return examples_lib.read_labeled(dataset, data_dir)

    def prepare(self, config, dataset, data_dir, directory, seed):
        everything = self.read(config, dataset, data_dir, directory, seed)
        specs = self.input_specs(config)
        validate_media_files(everything, specs, dataset)
        mapping = examples_lib.match_columns(everything, specs, dataset)
        indices = _split(everything, dataset, seed)
        parts = {name: everything.take(indices[name]) for name in SPLITS}
        fitted, preprocessor = fit_preprocessor(
            specs, _fit_values(parts["train"], mapping), directory
        )
        config = replace_config(
            config,
            specs=tuple(fitted),
            **_from_data(config, everything, parts["train"]),
        )
        preprocessor.serving_options = serving_options(config)
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
        assets in `directory`; an ablated modality has none. It carries
        the config's `ServingOptions` for `serve`."""
        preprocessor = Preprocessor(self.input_specs(config), directory)
        preprocessor.serving_options = serving_options(config)
        return preprocessor

    def with_overrides(self, prepared, **overrides):
        """`prepared` for its config with `overrides` (e.g. an ablation
        `modalities=("image",)` or another `fusion`): the same examples and
        fitted assets, the preprocessor of the new config's inputs.

        Example:
        >>> image_only = task.with_overrides(prepared, modalities=("image",))
        """
        config = dataclasses.replace(prepared.config, **overrides)
        return dataclasses.replace(
            prepared,
            config=config,
            preprocessor=self.make_preprocessor(config, prepared.directory),
        )

    def targets(self, config):
        """`(inputs, labels) -> targets` matching the model's outputs (the
        labels alone for the single output `probabilities`).

        `labels` is `(labels, targets)` for a dataset with regression
        targets. `modality_weights` gets a placeholder (Keras wants a
        target for every output of a dict model; it has no loss),
        `reconstruction` the input image rescaled to 0..1 (after
        augmentation) and `score` the regression targets (NaN = none).
        """
        names = output_names(config)
        if names == (PROBABILITIES,):

            def labels_only(inputs, labels):
                if isinstance(labels, tuple):
                    return labels[0]
                return labels

            return labels_only
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

    def compile(self, model, config):
        """Compiles with Adam (the config's training settings), the losses
        and weights of `output_losses(config)` and the metrics of
        `probabilities`."""
        losses = output_losses(config)
        if output_names(config) == (PROBABILITIES,):
            loss, weight = losses[PROBABILITIES]
            compile_model(
                model,
                config,
                loss=loss,
                loss_weights=[weight],
                metrics=self._metrics(config),
            )
            return
        compile_model(
            model,
            config,
            loss={name: loss for name, (loss, _) in losses.items()},
            loss_weights={name: weight for name, (_, weight) in losses.items()},
            metrics={PROBABILITIES: self._metrics(config)},
        )

    def predict(self, model, prepared, split, batch_size, dataset=None):
        """Predictions over `split`, with its labels and targets.

        Args:
            model: the Keras model.
            prepared: `ClassificationPrepared`.
            split: str. `train`, `val` or `test`.
            batch_size: int.
            dataset: optional `task.pipeline(prepared, split, batch_size)`
                to reuse (its cache).

        Returns:
            dict with `labels` `[N, K]`, `probabilities` `[N, K]`, and
            when the model has them `targets` / `score` `[N, T]`, and
            `reconstruction_sse` / `reconstruction_count` (summed squared
            error of the reconstructions against the images in 0..1, and
            the number of values).
        """
        if dataset is None:
            dataset = self.pipeline(prepared, split, batch_size)
        parts = {PROBABILITIES: [], "labels": [], SCORE: [], "targets": []}
        sse, count = 0.0, 0
        for inputs, targets in dataset:
            inputs = {k: np.asarray(v) for k, v in inputs.items()}
            outputs = model.predict_on_batch(inputs)
            if not isinstance(outputs, dict):
                outputs = {PROBABILITIES: outputs}
            if not isinstance(targets, dict):
                targets = {PROBABILITIES: targets}
            parts[PROBABILITIES].append(np.asarray(outputs[PROBABILITIES]))
            parts["labels"].append(np.asarray(targets[PROBABILITIES]))
            if SCORE in outputs and SCORE in targets:
                parts[SCORE].append(np.asarray(outputs[SCORE]))
                parts["targets"].append(np.asarray(targets[SCORE]))
            if RECONSTRUCTION in outputs and RECONSTRUCTION in targets:
                error = np.asarray(outputs[RECONSTRUCTION], np.float64)
                error -= np.asarray(targets[RECONSTRUCTION], np.float64)
                sse += float(np.sum(np.square(error)))
                count += error.size
        result = {
            name: np.concatenate(values)
            for name, values in parts.items()
            if values
        }
        if count:
            result["reconstruction_sse"] = sse
            result["reconstruction_count"] = count
        return result

    def prediction_metrics(self, config, predictions):
        """The NumPy metrics of `predictions` (from `predict`): see the
        module docstring."""
        labels = predictions["labels"]
        probabilities = predictions[PROBABILITIES]
        out = {}
        if getattr(config, "head", "sigmoid") == "softmax":
            num_classes = probabilities.shape[-1]
            true, pred = labels.argmax(-1), probabilities.argmax(-1)
            out["accuracy"] = metrics_lib.accuracy(true, pred)
            out["macro_f1"] = metrics_lib.macro_f1(true, pred, num_classes)
        else:
            true = (labels > THRESHOLD).astype(np.int64)
            pred = (probabilities > THRESHOLD).astype(np.int64)
            out["micro_f1"] = metrics_lib.micro_f1(true, pred)
            out["macro_f1"] = metrics_lib.macro_f1(true, pred)
            out["map"] = metrics_lib.mean_average_precision(true, probabilities)
            out.update(
                metrics_lib.per_label_metrics(
                    true, probabilities, serving_options(config).label_names
                )
            )
        if SCORE in predictions:
            targets, score = predictions["targets"], predictions[SCORE]
            if np.any(np.isfinite(targets)):
                out["mae"] = metrics_lib.mae(targets, score)
                out["rmse"] = metrics_lib.rmse(targets, score)
                out["pearson"] = metrics_lib.pearson(targets, score)
        if "reconstruction_count" in predictions:
            out["reconstruction_mse"] = (
                predictions["reconstruction_sse"]
                / predictions["reconstruction_count"]
            )
        return out

    def evaluate(self, model, prepared, split, batch_size):
        dataset = self.pipeline(prepared, split, batch_size)
        results = model.evaluate(dataset, return_dict=True, verbose=0)
        metrics = {
            _metric_name(name): float(value) for name, value in results.items()
        }
        predictions = self.predict(model, prepared, split, batch_size, dataset)
        metrics.update(self.prediction_metrics(prepared.config, predictions))
        return metrics

    def _classes(self, model, prepared, split):
        """True and predicted classes of `split`, as `reports` and
        `confusion` count them: arg-max class ids `[N]` for a `softmax`
        head, 0/1 per label `[N, K]` (probability over 0.5) for `sigmoid`.

        Returns:
            `(true, pred, softmax)`.
        """
        config = prepared.config
        predictions = self.predict(
            model, prepared, split, getattr(config, "batch_size", 64)
        )
        labels = predictions["labels"]
        probabilities = predictions[PROBABILITIES]
        if getattr(config, "head", "sigmoid") == "softmax":
            return labels.argmax(-1), probabilities.argmax(-1), True
        true = (labels > THRESHOLD).astype(np.int64)
        pred = (probabilities > THRESHOLD).astype(np.int64)
        return true, pred, False

    def reports(self, model, prepared, split="test"):
        """`{"classification_report.txt": text}`: per-class precision,
        recall, F1 and support on `split` (scikit-learn's layout; arg-max
        classes for a `softmax` head, labels over 0.5 for `sigmoid`)."""
        true, pred, softmax = self._classes(model, prepared, split)
        names = serving_options(prepared.config).label_names
        kind = (
            "single-label, arg-max class"
            if softmax
            else f"multi-label, probability > {THRESHOLD}"
        )
        table = metrics_lib.classification_report(true, pred, names, digits=4)
        title = f"{self.model}: {split} split, {len(true)} examples ({kind})"
        return {REPORT_FILE: f"{title}\n\n{table}"}

    def confusion(self, model, prepared, split="test"):
        """Counts of predicted against true classes on `split`: `[K, K]`
        for a softmax head (arg-max classes; with more than
        `CONFUSION_CLASSES` classes, the most frequent true ones and one
        `(other)` class for the rest), per label `[[TN, FP], [FN, TP]]`
        for a sigmoid head (threshold 0.5)."""
        true, pred, softmax = self._classes(model, prepared, split)
        names = serving_options(prepared.config).label_names
        title = f"{self.model}: {split} split, {len(true)} examples"
        if not softmax:
            true, pred = true.astype(bool), pred.astype(bool)
            matrix = np.stack(
                [
                    [
                        [np.sum(~t & ~p), np.sum(~t & p)],
                        [np.sum(t & ~p), np.sum(t & p)],
                    ]
                    for t, p in zip(true.T, pred.T, strict=True)
                ]
            ).astype(np.int64)
            return Confusion(matrix, names, True, title)
        kept = np.arange(len(names))
        if len(names) > CONFUSION_CLASSES:
            support = np.bincount(true, minlength=len(names))
            kept = np.sort(
                np.argsort(-support, kind="stable")[: CONFUSION_CLASSES - 1]
            )
        # Classes outside `kept` become the last row/column, `(other)`.
        position = np.full(len(names), len(kept))
        position[kept] = np.arange(len(kept))
        size = len(kept) + (len(kept) < len(names))
        matrix = np.zeros((size, size), np.int64)
        np.add.at(matrix, (position[true], position[pred]), 1)
        shown = tuple(names[i] for i in kept)
        if size > len(kept):
            shown += ("(other)",)
        return Confusion(matrix, shown, False, title)

    def serve(self, model, preprocessor, raw):
        return self.serve_inputs(model, preprocessor, preprocessor(raw))

    def serve_inputs(self, model, preprocessor, inputs):
        """The served outputs of preprocessed model `inputs`."""
        outputs = model(inputs, training=False)
        if not isinstance(outputs, dict):
            outputs = {PROBABILITIES: outputs}
        probabilities = outputs[PROBABILITIES]
        options = getattr(preprocessor, "serving_options", None)
        if options is None:  # a preprocessor not made by this task
            options = ServingOptions(
                tuple(str(i) for i in range(probabilities.shape[-1]))
            )
        served = {
            PROBABILITIES: probabilities,
            LABEL: predicted_labels(
                probabilities, options.label_names, options.head
            ),
        }
        if SCORE in outputs:
            score = outputs[SCORE]
            if score.shape[-1] == 1:
                score = tf.squeeze(score, axis=-1)
            served[SCORE] = score
        if RECONSTRUCTION in outputs and options.serve_reconstruction:
            served[RECONSTRUCTION] = outputs[RECONSTRUCTION]
        if MODALITY_WEIGHTS in outputs:
            served[MODALITY_WEIGHTS] = outputs[MODALITY_WEIGHTS]
        return served

    def extra_signatures(self, config):
        """`waveform` when the model reads audio: the same outputs from
        float samples (for clients that decode audio themselves) in place
        of WAV bytes; see `waveform_input`."""
        audio = [s for s in self.input_specs(config) if s.kind == "audio"]
        if not audio:
            return {}
        others = tuple(
            s.name for s in self.input_specs(config) if s.kind != "audio"
        )
        extra = {
            waveform_input(spec): tf.TensorSpec(
                [None, None], tf.float32, name=waveform_input(spec)
            )
            for spec in audio
        }

        def serve(model, preprocessor, raw):
            inputs = {
                name: preprocessor.processors[name](raw[name])
                for name in others
            }
            for spec in audio:
                inputs[spec.name] = checked_waveforms(
                    raw[waveform_input(spec)],
                    spec.num_samples,
                    waveform_input(spec),
                )
            return self.serve_inputs(model, preprocessor, inputs)

        def examples(raw):
            from mmzoo.data.modalities import processor_class

            out = dict(raw)
            for spec in audio:
                decode = processor_class(spec)(spec, "")
                out[waveform_input(spec)] = decode(
                    tf.constant(raw[spec.name], tf.string)
                ).numpy()
            return out

        return {WAVEFORM: Endpoint(serve, others, extra, examples)}


WAVEFORM = "waveform"
"""Signature of audio models that takes float samples in place of WAVs."""


def waveform_input(spec):
    """Name of the `waveform` signature's input for audio input `spec`:
    `waveform` for an input named `audio`, else `<name>_waveform`."""
    return WAVEFORM if spec.name == "audio" else f"{spec.name}_{WAVEFORM}"


def checked_waveforms(samples, num_samples, name):
    """Client samples float `[B, L]` (any L, at the spec's rate, -1..1) →
    `[B, num_samples]`: cropped or zero-padded; a row holding NaN is a
    missing audio. ±inf, or a peak above 2 (16-bit integers sent
    unscaled), fails with InvalidArgument naming `name`."""
    samples = tf.convert_to_tensor(samples, tf.float32)
    finite_or_nan = tf.logical_or(
        tf.math.is_finite(samples), tf.math.is_nan(samples)
    )
    peak = tf.reduce_max(
        tf.where(tf.math.is_finite(samples), tf.abs(samples), 0.0)
    )
    checks = [
        tf.debugging.Assert(
            tf.reduce_all(finite_or_nan),
            [
                name,
                ": samples hold +-inf; send floats in -1..1 (NaN rows "
                "= missing audio)",
            ],
        ),
        tf.debugging.Assert(
            peak <= 2.0,
            [
                name,
                ": samples peak at",
                peak,
                "; send floats in -1..1 "
                "(divide 16-bit integer samples by 32768)",
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        return crop_or_pad(samples, num_samples)


def _split(everything, dataset, seed):
    """Indices of each split: the dataset's own `splits` when given,
    otherwise 80/10/10 by seed. Every split must be non-empty."""
    given = getattr(everything, "splits", None)
    if given is None:
        indices = split_indices(len(everything), seed)
        how = "80/10/10"
        need = "need at least 10 examples"
    else:
        values = np.asarray([str(v) for v in given])
        unknown = sorted(set(values) - set(SPLITS))
        if unknown:
            raise ValueError(
                f"{dataset}: unknown split value(s) {unknown}; valid: "
                f"{', '.join(SPLITS)}"
            )
        indices = {name: np.flatnonzero(values == name) for name in SPLITS}
        how = "from its split column"
        need = "give every split at least one row"
    empty = [name for name in SPLITS if not len(indices[name])]
    if empty:
        raise ValueError(
            f"{dataset}: {len(everything)} examples leave the "
            f"{', '.join(empty)} split(s) empty ({how}); {need}"
        )
    return indices


def _from_data(config, everything, train):
    """Config changes decided by the data (only fields the config has)."""
    fields = {field.name for field in dataclasses.fields(config)}
    changes = {
        "num_labels": everything.labels.shape[1],
        "label_names": tuple(everything.label_names),
    }
    if getattr(config, "head_from_data", False):
        multi_label = getattr(everything, "multi_label", False)
        changes["head"] = "sigmoid" if multi_label else "softmax"
    if "num_targets" in fields:
        targets = everything.targets
        # A target column without any value (all cells empty) is none.
        width = 0
        if targets is not None and np.isfinite(targets).any():
            width = int(np.shape(targets)[1])
        changes["num_targets"] = width
        if {"target_mean", "target_std"} <= fields:
            mean, std = (), ()
            if width:
                mean, std = target_statistics(train.targets)
            changes.update(target_mean=mean, target_std=std)
    return changes


def validate_media_files(examples, specs, where):
    """Decodes every image, frame and WAV file of `examples` once, so a bad
    file is named before training starts (`ValueError`)."""
    validate_image_files(examples.image_paths(), where)
    audio = [s for s in specs if s.kind == "audio"]
    paths = examples.audio_paths()
    if paths:
        validate_audio_files(
            paths, where, seconds=audio[0].seconds if audio else 1.0
        )


def _fit_values(train, mapping):
    """Raw train values to fit preprocessing on. Media (images, audio,
    video) need no fitting, so their files are not read (that would hold
    the whole split in memory)."""
    kinds = train.kinds
    media = examples_lib.FILE_KINDS
    values = examples_lib.raw_values(
        train, {n: c for n, c in mapping.items() if kinds[c] not in media}
    )
    values.update({n: [] for n, c in mapping.items() if kinds[c] in media})
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
