"""TensorBoard records of a training run beyond Keras's scalars.

- `log_hparams`: the run's hyperparameters (every scalar config field, plus
  the variant, dataset and seed) with the HParams plugin, and its final
  validation and test metrics as the plugin's metrics, so TensorBoard's
  HParams tab compares runs of a model side by side (`hparams/`).
- `SamplePredictions`: a callback that serves a few fixed test examples
  through the task's `serving_default` code after every epoch and logs
  what came back (`samples/`): a Markdown table of inputs and outputs for
  every model, and for models that see pictures an image of each example
  (an image input, or a video's first frame) titled with its served
  caption, answer or label.
- `log_confusion_matrix`: a classifier's confusion matrix on the test
  split as an image (`confusion/`), also saved as `confusion_matrix.png`
  in the run folder.
- `log_embeddings`: embeddings for the Embedding Projector (`projector/`),
  e.g. a retrieval model's image and caption embeddings in their shared
  space.

`tensorboard --logdir RUN_DIR` shows them all.
"""

import dataclasses
import io
import math
import os

import numpy as np
import tensorflow as tf

HPARAMS_DIR = "hparams"
SAMPLES_DIR = "samples"
CONFUSION_DIR = "confusion"
PROJECTOR_DIR = "projector"
CONFUSION_FILE = "confusion_matrix.png"
# Longest text shown per cell of the sample table and per image title.
_TEXT_CHARS = 80


def _scalar(value):
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def log_hparams(run_dir, hparams, metrics):
    """Writes `hparams` and the final `metrics` under `run_dir/hparams`.

    Args:
        run_dir: str. The run folder (TensorBoard's log dir).
        hparams: dict of name to value; scalars (bool, int, float, str)
            are kept, tuples become their text, the rest is dropped.
        metrics: dict of split (`val`, `test`) to dict of metric to float;
            written as scalars `<split>/<metric>` at step 0.

    Returns:
        The dict of hyperparameters written.
    """
    from tensorboard.plugins.hparams import api as hp

    kept = {}
    for name, value in hparams.items():
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        value = _scalar(value)
        if value is not None:
            kept[name] = value
    writer = tf.summary.create_file_writer(os.path.join(run_dir, HPARAMS_DIR))
    with writer.as_default():
        hp.hparams(kept, trial_id=os.path.basename(os.path.normpath(run_dir)))
        for split, values in metrics.items():
            for name, value in values.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    tf.summary.scalar(f"{split}/{name}", float(value), step=0)
    writer.close()
    return kept


# ------------------------------------------------------------ figures --


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig):
    """PNG bytes of a matplotlib figure (closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _image_summary(name, png, step):
    image = tf.io.decode_png(png, channels=3)[None]
    tf.summary.image(name, image, step=step)


def _short(text, chars=_TEXT_CHARS):
    text = " ".join(str(text).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _cell(text):
    """`text` as a Markdown table cell (`|` would end the cell)."""
    return text.replace("|", "\\|")


# ------------------------------------------------- sample predictions --


def _as_text(value):
    """A raw or served value of one example as short text."""
    value = np.asarray(value)
    if value.dtype.kind in "SOU" and value.ndim == 0:
        item = value.item()
        if isinstance(item, bytes):
            try:
                return _short(item.decode("utf-8"))
            except UnicodeDecodeError:
                return f"<{len(item)} bytes>"
        return _short(item)
    if value.dtype.kind in "SOU":
        return f"<{value.size} values>"
    if value.ndim == 0:
        return f"{float(value):.4g}"
    flat = value.reshape(-1)
    shown = ", ".join(f"{float(v):.3g}" for v in flat[:6])
    return f"[{shown}{', …' if flat.size > 6 else ''}]"


def _picture(spec_kind, value):
    """RGB uint8 array of an image input's bytes (a video's first frame),
    or None when it does not decode."""
    data = value
    if spec_kind == "video":
        frames = [f for f in np.asarray(value).reshape(-1) if len(f)]
        if not frames:
            return None
        data = frames[0]
    try:
        return tf.io.decode_image(
            data, channels=3, expand_animations=False
        ).numpy()
    except (tf.errors.InvalidArgumentError, ValueError):
        return None


class SamplePredictions:
    """Serves fixed raw examples after every epoch and logs the answers.

    A Keras callback (`keras.callbacks.Callback` is mixed in by
    `sample_predictions_callback`, so this module imports Keras lazily).

    Args:
        run_dir: str. The run folder; records go to `run_dir/samples`.
        serve: `serve(raw dict of tensors) -> dict of tensors`: the task's
            `serving_default` code bound to the model and preprocessor.
        raw: dict of input name to NumPy array `[N, ...]`, the examples
            (what a client sends).
        kinds: dict of input name to modality kind (`image`, `video`,
            `text`, ...); image and video inputs are drawn.
    """

    def __init__(self, run_dir, serve, raw, kinds):
        self.directory = os.path.join(run_dir, SAMPLES_DIR)
        self.serve = serve
        self.raw = raw
        self.kinds = kinds
        self.writer = None

    def log(self, step):
        """Serves the examples and writes the table (and image) at
        `step`; returns the served outputs (NumPy)."""
        served = self.serve(
            {name: tf.constant(value) for name, value in self.raw.items()}
        )
        served = {name: np.asarray(value) for name, value in served.items()}
        count = len(next(iter(self.raw.values())))
        pictured = [n for n, k in self.kinds.items() if k in ("image", "video")]
        shown_inputs = [n for n in self.raw if n not in pictured]
        header = ["#", *shown_inputs, *served]
        rows = [
            [str(i)]
            + [_as_text(self.raw[n][i]) for n in shown_inputs]
            + [_as_text(served[n][i]) for n in served]
            for i in range(count)
        ]
        table = "\n".join(
            "| " + " | ".join(_cell(c) for c in cells) + " |"
            for cells in [header, ["---"] * len(header), *rows]
        )
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.directory)
        with self.writer.as_default():
            tf.summary.text("samples", table, step=step)
            if pictured:
                _image_summary(
                    "samples",
                    self._grid(pictured[0], served, count, shown_inputs),
                    step,
                )
        self.writer.flush()
        return served

    def _grid(self, name, served, count, shown_inputs):
        plt = _pyplot()
        columns = min(count, 4)
        rows = math.ceil(count / columns)
        fig, axes = plt.subplots(
            rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False
        )
        text_outputs = [n for n, v in served.items() if v.dtype.kind in "SOU"]
        titled = text_outputs or list(served)[:1]
        for i, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if i >= count:
                continue
            picture = _picture(self.kinds[name], self.raw[name][i])
            if picture is not None:
                ax.imshow(picture)
            lines = [f"{n}: {_as_text(served[n][i])}" for n in titled]
            lines += [
                f"{n}: {_as_text(self.raw[n][i])}"
                for n in shown_inputs
                if self.kinds.get(n) == "text"
            ]
            ax.set_title(
                "\n".join(_short(line, 40) for line in lines), fontsize=8
            )
        return _figure_png(fig)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def sample_predictions_callback(run_dir, serve, raw, kinds):
    """A Keras callback logging `SamplePredictions` at every epoch's end
    (step = the epoch number, from 1)."""
    import keras

    class _Callback(keras.callbacks.Callback, SamplePredictions):
        def __init__(self):
            keras.callbacks.Callback.__init__(self)
            SamplePredictions.__init__(self, run_dir, serve, raw, kinds)

        def on_epoch_end(self, epoch, logs=None):
            self.log(epoch + 1)

        def on_train_end(self, logs=None):
            self.close()

    return _Callback()


# --------------------------------------------------- confusion matrix --


@dataclasses.dataclass(frozen=True)
class Confusion:
    """Counts of a classifier's predictions against the truth.

    Attributes:
        matrix: int array. Single-label: `[K, K]`, rows the true class,
            columns the predicted one. Multi-label: `[K, 2, 2]`, per label
            `[[TN, FP], [FN, TP]]`.
        class_names: tuple of K str.
        multi_label: bool.
        title: str.
    """

    matrix: np.ndarray
    class_names: tuple
    multi_label: bool
    title: str = ""


def _write_counts(ax, cells, fontsize):
    """Writes each count of the heat map `cells` in its cell (white on the
    darker half)."""
    top = cells.max() or 1
    for (row, column), count in np.ndenumerate(cells):
        ax.text(
            column, row, str(int(count)), ha="center", va="center",
            fontsize=fontsize, color="white" if count > top / 2 else "black",
        )  # fmt: skip


def confusion_figure(confusion):
    """PNG bytes of `confusion` drawn with counts in the cells."""
    plt = _pyplot()
    names = [_short(n, 24) for n in confusion.class_names]
    if not confusion.multi_label:
        size = len(names)
        side = min(16.0, 2.0 + 0.45 * size)
        fig, ax = plt.subplots(figsize=(side, side))
        matrix = np.asarray(confusion.matrix)
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(size), names, rotation=90, fontsize=8)
        ax.set_yticks(range(size), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if size <= 25:
            _write_counts(ax, matrix, fontsize=7)
    else:
        count = len(names)
        columns = min(count, 6)
        rows = math.ceil(count / columns)
        fig, axes = plt.subplots(
            rows, columns, figsize=(2.1 * columns, 2.3 * rows), squeeze=False
        )
        for i, ax in enumerate(axes.ravel()):
            if i >= count:
                ax.axis("off")
                continue
            cells = np.asarray(confusion.matrix[i])
            ax.imshow(cells, cmap="Blues")
            _write_counts(ax, cells, fontsize=8)
            ax.set_xticks([0, 1], ["no", "yes"], fontsize=7)
            ax.set_yticks([0, 1], ["no", "yes"], fontsize=7)
            ax.set_title(names[i], fontsize=8)
        fig.supxlabel("predicted")
        fig.supylabel("true")
    if confusion.title:
        fig.suptitle(confusion.title, fontsize=9)
    return _figure_png(fig)


def log_confusion_matrix(run_dir, confusion, step=0):
    """Writes `confusion`'s image to TensorBoard (`run_dir/confusion`, tag
    `confusion_matrix`) and to `run_dir/confusion_matrix.png`; returns the
    PNG path."""
    png = confusion_figure(confusion)
    path = os.path.join(run_dir, CONFUSION_FILE)
    with open(f"{path}.tmp", "wb") as f:
        f.write(png)
    os.replace(f"{path}.tmp", path)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, CONFUSION_DIR))
    with writer.as_default():
        _image_summary("confusion_matrix", png, step)
    writer.close()
    return path


# ----------------------------------------------------------- projector --


def log_embeddings(run_dir, vectors, metadata, name="embeddings"):
    """Writes embeddings for TensorBoard's Embedding Projector under
    `run_dir/projector`.

    Args:
        run_dir: str. The run folder.
        vectors: float array `[N, D]`.
        metadata: dict of column name to sequence of N values (e.g.
            `modality` and `text`), written as the projector's labels.
        name: str. The tensor's name in the projector.

    Returns:
        The projector folder.
    """
    from tensorboard.plugins import projector

    vectors = np.asarray(vectors, np.float32)
    folder = os.path.join(run_dir, PROJECTOR_DIR)
    os.makedirs(folder, exist_ok=True)
    columns = list(metadata)
    for column in columns:
        if len(metadata[column]) != len(vectors):
            raise ValueError(
                f"log_embeddings: metadata column {column!r} has "
                f"{len(metadata[column])} values for {len(vectors)} vectors"
            )

    def cell(value):
        return " ".join(str(value).split()) or "-"

    with open(os.path.join(folder, "metadata.tsv"), "w") as f:
        if len(columns) > 1:
            f.write("\t".join(columns) + "\n")
        for i in range(len(vectors)):
            f.write("\t".join(cell(metadata[c][i]) for c in columns) + "\n")
    checkpoint = tf.train.Checkpoint(**{name: tf.Variable(vectors)})
    checkpoint.save(os.path.join(folder, "embeddings.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(folder, config)
    return folder
