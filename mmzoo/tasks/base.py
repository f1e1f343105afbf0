"""The task interface: everything between files on disk and a served model.

A model file (`mmzoo/models/`) is backend-agnostic Keras; a task joins it to
TensorFlow data pipelines and to its serving signatures. Tasks are generic
per problem kind (classification, click-through rate, captioning): one
task object is made per registered model from its registry entry, so the
training loop, the CLI, the export path and the contract harness hold no
per-model code.
"""

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from mmzoo.registry import TFDS_DATASET, TFDS_PREFIX

SERVING_DEFAULT = "serving_default"


def enable_op_determinism():
    """TensorFlow op determinism (`mmzoo train --deterministic`): with the
    same seeds, the same results, at some speed."""
    tf.config.experimental.enable_op_determinism()


def has_accelerator():
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(
        tf.config.list_physical_devices("GPU")
        or tf.config.list_physical_devices("TPU")
    )


DUMMY_DATASET = "dummy"
"""Dataset name every task reads: random raw values derived from the
model's input specs (no files, no learnable signal). The contract harness
(`mmzoo.testing`) uses it to test a model before any real dataset exists."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One served signature.

    Attributes:
        serve: `serve(model, preprocessor, raw) -> dict of tensors`, traced
            into the signature (graph-friendly ops only).
        inputs: tuple of str. The raw inputs it takes, a subset of the
            task's `serving_signature` (a retrieval model's `embed_text`
            takes `text` only); None = all of them.
        extra_inputs: dict of input name to `tf.TensorSpec` (batch
            `None`): inputs that are not serving inputs (the `waveform`
            signature's float samples in place of WAV bytes), or None.
        examples: callable `raw -> dict`: this signature's inputs made
            from raw serving values (NumPy, every serving input), for
            tests, recorded examples and warmup; needed with
            `extra_inputs`. None = the raw values of its `inputs`.
    """

    serve: Callable
    inputs: tuple | None = None
    extra_inputs: dict | None = None
    examples: Callable | None = None

    def inputs_from(self, raw, signature):
        """This endpoint's inputs (`signature`'s names) from raw serving
        values."""
        if self.examples is not None:
            raw = self.examples(raw)
        return {name: raw[name] for name in signature}


@dataclasses.dataclass
class Prepared:
    """A dataset made ready for one model.

    Attributes:
        config: the model config, completed with what the data decides
            (vocabulary sizes, feature statistics, label count).
        preprocessor: `tf.Module` mapping a batch of raw serving inputs to
            model inputs; the training pipeline and the serving signature
            both call it.
        splits: dict of split name to an unbatched `tf.data.Dataset` of
            `(raw inputs dict, target)`.
        directory: str. Where the preprocessing assets were written.
    """

    config: object
    preprocessor: object
    splits: dict
    directory: str


def replace_config(config, **changes):
    """`dataclasses.replace` for frozen configs."""
    return dataclasses.replace(config, **changes)


class Task:
    """Base class of the generic tasks.

    Args:
        entry: the model's `mmzoo.registry.ModelEntry`.
    """

    # Test metrics reported first by the main job, in order of preference.
    headline_metrics: tuple = ()

    def __init__(self, entry):
        self.entry = entry
        self.model = entry.name

    @property
    def datasets(self):
        """Dataset names the model reads (plus `dummy`)."""
        return (*self.entry.datasets, DUMMY_DATASET)

    @property
    def contract_overrides(self):
        """Config overrides the contract harness adds to `tiny`."""
        return dict(self.entry.test_overrides)

    def check_dataset(self, dataset, data_dir, needs_dir=True):
        """Raises `ValueError` for a dataset this model does not read, or a
        file dataset without `--data-dir`.

        `tfds:NAME` (a TensorFlow Datasets builder, `mmzoo.data.tfds`) is
        accepted when the model lists `TFDS_DATASET`; its `--data-dir` (the
        TFDS `data_dir`) is optional.
        """
        if str(dataset).startswith(TFDS_PREFIX):
            if TFDS_DATASET not in self.entry.datasets:
                raise ValueError(
                    f"{self.model}: TensorFlow Datasets builders "
                    f"('{dataset}') have no mapping to this model's inputs; "
                    f"valid datasets: {', '.join(self.datasets)}"
                )
            from mmzoo.data import tfds

            tfds.parse(dataset)  # a malformed name fails here
            return
        if dataset not in self.datasets:
            raise ValueError(
                f"{self.model}: unknown dataset '{dataset}'; valid: "
                f"{', '.join(self.datasets)}"
            )
        if needs_dir and dataset not in ("synthetic", DUMMY_DATASET):
            if not data_dir:
                raise ValueError(
                    f"{self.model}: dataset '{dataset}' needs --data-dir"
                )

    def input_specs(self, config):
        """The modality specs of the raw served inputs."""
        return tuple(self.entry.inputs(config))

    def prepare(self, config, dataset, data_dir, directory, seed):
        """Reads `dataset`, fits preprocessing on its train split (assets
        under `directory`) and returns `Prepared`."""
        raise NotImplementedError

    def make_preprocessor(self, config, directory):
        """Rebuilds the preprocessor of a trained model from its assets."""
        raise NotImplementedError

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        """Returns a batched `tf.data.Dataset` of `(model inputs, targets)`
        for `model.fit` / `evaluate`."""
        raise NotImplementedError

    def compile(self, model, config):
        """Compiles `model` with the task's loss, optimizer and metrics."""
        raise NotImplementedError

    def evaluate(self, model, prepared, split, batch_size):
        """Returns a dict of metric name to float on `split`."""
        raise NotImplementedError

    def reports(self, model, prepared, split):
        """Text reports on `split` that `mmzoo train` writes into the run
        folder.

        Returns:
            dict of file name to text (none by default).
        """
        return {}

    def confusion(self, model, prepared, split):
        """The confusion matrix of a classifier on `split`
        (`mmzoo.tasks.tensorboard.Confusion`), drawn into the run folder
        and TensorBoard by `mmzoo train`; None for other problems."""
        return None

    def embeddings(self, model, prepared, split):
        """Embeddings of `split` for TensorBoard's Embedding Projector:
        `(vectors [N, D], metadata dict of column to N values)`, or None
        for a model that has none to show."""
        return None

    def serving_signature(self, config):
        """Dict of raw input name to `tf.TensorSpec` (batch `None`),
        derived from the model's input specs: no signature is written by
        hand, and an ablated modality is not an input."""
        return {
            spec.name: tf.TensorSpec(
                [None, *spec.serving_shape],
                tf.as_dtype(spec.serving_dtype),
                name=spec.name,
            )
            for spec in self.input_specs(config)
        }

    def serve(self, model, preprocessor, raw):
        """Raw inputs → named outputs; traced into `serving_default`."""
        raise NotImplementedError

    def extra_signatures(self, config):
        """Returns dict of signature name to a `serve`-like function
        `(model, preprocessor, raw) -> outputs` with the same inputs, or
        to an `Endpoint` (which may take fewer inputs)."""
        return {}

    def endpoints(self, config, preprocessor=None):
        """Every served signature: dict of name to `Endpoint`,
        `serving_default` (`serve`) first, then `extra_signatures`.

        Args:
            config: the model config.
            preprocessor: the preprocessor being exported, or None. A task
                may serve more when it carries more (a retrieval gallery).
        """
        out = {SERVING_DEFAULT: Endpoint(self.serve)}
        for name, endpoint in self.extra_signatures(config).items():
            if not isinstance(endpoint, Endpoint):
                endpoint = Endpoint(endpoint)
            out[name] = endpoint
        return out

    def endpoint_signature(self, config, endpoint):
        """The `tf.TensorSpec`s of the raw inputs `endpoint` takes."""
        signature = self.serving_signature(config)
        if endpoint.inputs is not None:
            signature = {name: signature[name] for name in endpoint.inputs}
        return {**signature, **(endpoint.extra_inputs or {})}

    def raw_examples(self, prepared, split="test", count=8):
        """Returns `count` raw examples of `split` as a dict of NumPy arrays
        (what a client would send)."""
        batch = next(iter(prepared.splits[split].batch(count).take(1)))
        raw = batch[0]
        return {name: value.numpy() for name, value in raw.items()}
