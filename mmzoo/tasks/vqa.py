"""Visual question answering task: VQA v2 folders → a VQA model → an
answer served from image bytes and question text.

Datasets:

- `vqa`: `DIR/questions.json`, `DIR/annotations.json` (the VQA v2 JSON
  format) and `DIR/images/` (`<image_id>.jpg|png` or COCO's
  `COCO_<anything>_<12-digit image_id>.jpg`); `mmzoo.data.vqa`.
- `synthetic`: shape scenes with questions about colour, shape, count and
  position, written in the `vqa` layout and read back by the same reader
  (`write_synthetic_vqa`); neither the question alone nor the image alone
  answers them.
- `dummy`: a few such scenes (the contract tests).

Questions are split 80/10/10 by image (no image in two splits). The
answer vocabulary is the multiple-choice answers of at least
`min_answer_count` training questions (at most `max_answers`); training
questions none of whose answers is in it are dropped. Targets are the
soft scores min(#annotators / 3, 1) of every vocabulary answer,
normalised to sum to one for the softmax cross-entropy.

Metrics (`evaluate`): `vqa_accuracy` (the soft score of the predicted
answer, averaged; a question whose answers are all outside the vocabulary
scores 0), `accuracy` (exact match with the multiple-choice answer), both
per answer type (`vqa_accuracy/yes/no`, ...), the `loss`, and
`baseline_vqa_accuracy` / `baseline_accuracy` of answering from the
question alone (the majority training answer of the same question text).

Serving: `image` (bytes `[None]`) and `question` (`[None]`) → `answer`
(string `[None]`), `score` (its probability, `[None]`) and
`probabilities` (`[None, A]`, in `label_names` order). An empty question
is a missing modality (answered from the image); a word never seen in
training is the out-of-vocabulary token.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import examples as examples_lib
from mmzoo.data import vqa as vqa_data
from mmzoo.data.images import validate_image_files
from mmzoo.data.modalities import fit_preprocessor
from mmzoo.heads.classification import PROBABILITIES
from mmzoo.metrics.vqa import vqa_metrics
from mmzoo.tasks.base import DUMMY_DATASET, replace_config
from mmzoo.tasks.classification import (
    ClassificationPrepared,
    ClassificationTask,
    _fit_values,
    serving_options,
)

ANSWER = "answer"
SCORE = "score"
DUMMY_IMAGES = 12


@dataclasses.dataclass
class VQAPrepared(ClassificationPrepared):
    """`ClassificationPrepared` plus each split's `VQARecords`.

    Attributes:
        records: dict of split name to `mmzoo.data.vqa.VQARecords` (the
            rows of `examples[split]`, in order).
    """

    records: dict = dataclasses.field(default_factory=dict)


def _labeled(records, scores, vocabulary, mapping):
    """`LabeledExamples` of `records`: image paths and questions, soft
    scores as labels."""
    columns = {mapping["image"]: list(records.image_paths)}
    columns[mapping["text"]] = list(records.questions)
    return examples_lib.LabeledExamples(
        columns=columns,
        kinds={mapping["image"]: "image", mapping["text"]: "text"},
        labels=np.asarray(scores, np.float32),
        label_names=tuple(vocabulary),
    )


class VQATask(ClassificationTask):
    """Generic glue of VQA models: the datasets, soft-score targets, VQA
    metrics and the served `answer` (module docstring).

    Works with any registered model of problem `vqa` with one image and one
    text input and a softmax `probabilities` output, whose config has
    `num_labels`, `label_names`, `min_answer_count` and `max_answers`.

    Example:
    >>> task = mmzoo.tasks.get_task("vqa")
    >>> prepared = task.prepare(config, "vqa", "data/vqa_v2", "pre", 0)
    """

    headline_metrics = ("vqa_accuracy", "accuracy")
    # Shifts and contrast only (`augmentation_layers`): left, right, top
    # and bottom stay where they are.
    augment = True
    synthetic_images = 600

    def _columns(self, config):
        """Dict of kind (`image`, `text`) to the model's input name."""
        return {spec.kind: spec.name for spec in self.input_specs(config)}

    def read_records(self, config, dataset, data_dir, directory, seed):
        """Reads `dataset` as `VQARecords` (synthetic and dummy: written
        first)."""
        self.check_dataset(dataset, data_dir)
        size = max(
            [
                16,
                *(
                    s.size
                    for s in self.input_specs(config)
                    if s.kind == "image"
                ),
            ]
        )
        if dataset in ("synthetic", DUMMY_DATASET):
            small = dataset == DUMMY_DATASET
            data_dir = vqa_data.write_synthetic_vqa(
                os.path.join(directory, dataset),
                DUMMY_IMAGES if small else self.synthetic_images,
                seed,
                image_size=size,
                questions_per_image=2 if small else 3,
            )
        return vqa_data.read_vqa(data_dir)

    def prepare(self, config, dataset, data_dir, directory, seed):
        records = self.read_records(config, dataset, data_dir, directory, seed)
        validate_image_files(sorted(set(records.image_paths)), dataset)
        parts = {
            name: records.take(rows)
            for name, rows in vqa_data.split_by_image(
                records.image_ids, seed
            ).items()
        }
        vocabulary = vqa_data.answer_vocabulary(
            parts["train"].multiple_choice_answers,
            min_count=config.min_answer_count,
            max_size=config.max_answers or None,
        )
        scores = {
            name: vqa_data.soft_scores(part.answers, vocabulary)
            for name, part in parts.items()
        }
        # A training question none of whose answers is a target teaches
        # nothing; evaluation keeps every question (it scores 0).
        answerable = np.flatnonzero(scores["train"].sum(axis=1) > 0)
        parts["train"] = parts["train"].take(answerable)
        scores["train"] = scores["train"][answerable]
        columns = self._columns(config)
        examples = {
            name: _labeled(part, scores[name], vocabulary, columns)
            for name, part in parts.items()
        }
        specs = self.input_specs(config)
        mapping = examples_lib.match_columns(examples["train"], specs, dataset)
        fitted, preprocessor = fit_preprocessor(
            specs, _fit_values(examples["train"], mapping), directory
        )
        config = replace_config(
            config,
            specs=tuple(fitted),
            num_labels=len(vocabulary),
            label_names=tuple(vocabulary),
            head="softmax",
        )
        preprocessor.serving_options = serving_options(config)
        return VQAPrepared(
            config,
            preprocessor,
            {
                name: examples_lib.raw_dataset(part, mapping)
                for name, part in examples.items()
            },
            directory,
            examples=examples,
            mapping=mapping,
            records=parts,
        )

    def targets(self, config):
        """Soft scores normalised to sum to one (a row without a target
        answer stays all zeros and adds no loss)."""

        def normalized(inputs, labels):
            if isinstance(labels, tuple):
                labels = labels[0]
            total = tf.reduce_sum(labels, axis=-1, keepdims=True)
            return tf.math.divide_no_nan(labels, total)

        return normalized

    def _metrics(self, config):
        return [keras.metrics.CategoricalAccuracy(name="top_answer_accuracy")]

    def evaluate(self, model, prepared, split, batch_size):
        """The metrics of the module docstring on `split`."""
        dataset = self.pipeline(prepared, split, batch_size)
        losses = model.evaluate(dataset, return_dict=True, verbose=0)
        predictions = self.predict(model, prepared, split, batch_size, dataset)
        predicted = predictions[PROBABILITIES].argmax(axis=-1)
        records = prepared.records[split]
        vocabulary = prepared.config.label_names
        results = vqa_metrics(
            prepared.examples[split].labels,
            predicted,
            vocabulary,
            records.multiple_choice_answers,
            records.answer_types,
        )
        train = prepared.records["train"]
        guesses = vqa_data.question_only_baseline(
            train.questions, train.multiple_choice_answers, records.questions
        )
        index = {answer: i for i, answer in enumerate(vocabulary)}
        guessed = np.asarray([index.get(g, -1) for g in guesses])
        scores = prepared.examples[split].labels
        rows = np.arange(len(guessed))
        baseline = np.where(
            guessed >= 0, scores[rows, np.maximum(guessed, 0)], 0.0
        )
        results["baseline_vqa_accuracy"] = float(np.mean(baseline))
        results["baseline_accuracy"] = float(
            np.mean(np.asarray(guesses) == records.multiple_choice_answers)
        )
        results["loss"] = float(losses["loss"])
        return results

    def serve(self, model, preprocessor, raw):
        probabilities = model(preprocessor(raw), training=False)
        if isinstance(probabilities, dict):
            probabilities = probabilities[PROBABILITIES]
        names = tf.constant(
            list(preprocessor.serving_options.label_names), tf.string
        )
        return {
            ANSWER: tf.gather(names, tf.argmax(probabilities, axis=-1)),
            SCORE: tf.reduce_max(probabilities, axis=-1),
            PROBABILITIES: probabilities,
        }
