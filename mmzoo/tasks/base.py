"""The task interface: everything between files on disk and a served model.

A model file (`mmzoo/models/`) is backend-agnostic Keras; a task joins it to
TensorFlow data pipelines and to its serving signature. Each registered
model has exactly one task, and the training loop, the CLI and the export
path only talk to this interface, so they hold no per-model code.
"""

import dataclasses


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


class Task:
    """Base class of the per-model glue. Subclasses set the attributes and
    implement the methods below."""

    model: str = ""
    datasets: tuple = ()
    default_epochs: int = 1
    default_batch_size: int = 32
    # Settings of `mmzoo main` (variant, epochs, overrides, ...).
    main_job: dict = {}
    # Config overrides the contract test adds to the `tiny` variant.
    contract_overrides: dict = {}
    # Test metrics reported first, in order of preference.
    headline_metrics: tuple = ()

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

    def serving_signature(self, config):
        """Returns dict of raw input name to `tf.TensorSpec` (batch `None`)."""
        raise NotImplementedError

    def serve(self, model, preprocessor, raw):
        """Raw inputs → named outputs; traced into `serving_default`."""
        raise NotImplementedError

    def extra_signatures(self, config):
        """Returns dict of signature name to a `serve`-like function
        `(model, preprocessor, raw) -> outputs` with the same inputs."""
        return {}

    def raw_examples(self, prepared, split="test", count=8):
        """Returns `count` raw examples of `split` as a dict of NumPy arrays
        (what a client would send)."""
        batch = next(iter(prepared.splits[split].batch(count).take(1)))
        raw = batch[0]
        return {name: value.numpy() for name, value in raw.items()}
