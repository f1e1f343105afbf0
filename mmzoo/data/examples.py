"""Labeled multimodal examples and their one `tf.data` pipeline.

A reader returns `LabeledExamples`: named raw columns (an image column holds
file paths, an audio column WAV file paths (`""` = missing), a video
column a tuple of frame file paths per row, a text column strings), 0/1
labels and, optionally, float
regression targets (NaN = no target for that row). The pipeline reads image
files, batches raw values, runs the model's `Preprocessor` on each batch,
exactly as the serving signature does, and caches the preprocessed split in
memory when it fits (otherwise it shuffles file names and decodes every
epoch in parallel). Nothing here knows an architecture: columns are matched
to model inputs by name (or, failing that, by kind).

```
columns ─► read image files ─► batch ─► Preprocessor ─► [cache] ─►
[shuffle, augment] ─► (model inputs, targets) ─► prefetch
```
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Preprocessed splits are cached in memory below this many bytes.
CACHE_LIMIT_BYTES = 1 << 30
_PREPROCESS_BATCH = 256


@dataclasses.dataclass
class LabeledExamples:
    """One split's examples, images still on disk.

    Attributes:
        columns: dict of column name to a list of raw values (image file
            paths for image columns, WAV file paths or `""` for audio,
            tuples of frame file paths for video, tuples of floats for
            sensor readings, strings for text).
        kinds: dict of column name to its modality kind (`image`, `text`,
            `audio`, `video`, `sensor`).
        labels: float32 array `[N, L]` (multi-hot; one-hot for
            single-label data).
        label_names: tuple of str. Name of each label column.
        targets: float32 array `[N, T]` of regression targets (NaN = none)
            or None.
        multi_label: bool. Whether a row may carry several labels (the
            reader saw one that did); single-label data is one-hot.
        splits: list of str (`train`, `val` or `test`) per row, from the
            source's own split column, or None (split by seed).
    """

    columns: dict
    kinds: dict
    labels: np.ndarray
    label_names: tuple = ()
    targets: np.ndarray = None
    multi_label: bool = False
    splits: list | None = None

    def __len__(self):
        return len(self.labels)

    def take(self, indices):
        """The examples at `indices`, as a new `LabeledExamples`."""
        index = np.asarray(indices, dtype=np.int64)
        return LabeledExamples(
            {k: [v[i] for i in index] for k, v in self.columns.items()},
            dict(self.kinds),
            np.asarray(self.labels)[index],
            self.label_names,
            None if self.targets is None else self.targets[index],
            self.multi_label,
            None if self.splits is None else [self.splits[i] for i in index],
        )

    def image_paths(self):
        """Every image file named by an image column or a video column's
        frames."""
        paths = []
        for name, values in self.columns.items():
            if self.kinds[name] == "image":
                paths.extend(values)
            elif self.kinds[name] == "video":
                paths.extend(p for frames in values for p in frames)
        return paths

    def audio_paths(self):
        """Every audio file named by an audio column (not the missing)."""
        return [
            path
            for name, values in self.columns.items()
            if self.kinds[name] == "audio"
            for path in values
            if path
        ]


def match_columns(examples, specs, where):
    """Maps each model input spec to a column of `examples`.

    A column of the spec's name is taken; otherwise the one column of the
    spec's kind (so a model whose text input is `text` reads the `report`
    column of an `image-report` folder).

    Returns:
        dict of spec name to column name.

    Raises:
        ValueError: naming the input and the columns there are.
    """
    mapping = {}
    for spec in specs:
        if spec.name in examples.columns:
            mapping[spec.name] = spec.name
            continue
        same_kind = [c for c, k in examples.kinds.items() if k == spec.kind]
        if len(same_kind) != 1:
            raise ValueError(
                f"{where}: no column for input '{spec.name}' ({spec.kind}); "
                f"columns: "
                + ", ".join(f"{c} ({k})" for c, k in examples.kinds.items())
            )
        mapping[spec.name] = same_kind[0]
    return mapping


FILE_KINDS = ("image", "audio", "video")
"""Kinds whose columns name files that are read into the raw values."""


def raw_values(examples, mapping, limit=None):
    """Dict of input name to the raw values a client would send (files
    read as bytes; a video row as a list of frame bytes), for fitting
    preprocessing and for examples."""
    out = {}
    for name, column in mapping.items():
        values = examples.columns[column][:limit]
        kind = examples.kinds[column]
        if kind == "video":
            values = [[_read_file(p) for p in frames] for frames in values]
        elif kind in FILE_KINDS:
            values = [_read_file(path) for path in values]
        out[name] = values
    return out


def _read_file(path):
    if not path:  # a missing audio
        return b""
    with open(os.fspath(path), "rb") as f:
        return f.read()


def _column_tensor(values, kind):
    """A column as a tensor: strings `[N]`, `[N, F]` for video (frame paths
    padded with `""` to the longest clip), float32 `[N, D]` for sensors."""
    if kind == "sensor":
        return tf.constant(np.asarray(list(values), np.float32))
    if kind != "video":
        return tf.constant(list(values), tf.string)
    width = max([1, *(len(frames) for frames in values)])
    rows = [list(frames) + [""] * (width - len(frames)) for frames in values]
    return tf.constant(np.array(rows, dtype=object).reshape(-1, width))


def _read_path(path):
    """Bytes of the file at `path`; `""` for `""` (padding, missing)."""
    return tf.cond(
        tf.strings.length(path) > 0,
        lambda: tf.io.read_file(path),
        lambda: tf.constant("", tf.string),
    )


def read_media(raw, kinds):
    """Replaces the file paths of one example's file-kind inputs by the
    files' bytes (`kinds`: input name → kind; video rows frame by frame)."""
    raw = dict(raw)
    for name, kind in kinds.items():
        if kind == "image":
            raw[name] = tf.io.read_file(raw[name])
        elif kind == "audio":
            raw[name] = _read_path(raw[name])
        elif kind == "video":
            raw[name] = tf.map_fn(
                _read_path, raw[name], fn_output_signature=tf.string
            )
    return raw


def _media_kinds(examples, mapping):
    return {
        name: examples.kinds[column]
        for name, column in mapping.items()
        if examples.kinds[column] in FILE_KINDS
    }


def _table(examples, mapping):
    columns = {
        name: _column_tensor(examples.columns[column], examples.kinds[column])
        for name, column in mapping.items()
    }
    labels = tf.constant(np.asarray(examples.labels, np.float32))
    if examples.targets is None:
        return tf.data.Dataset.from_tensor_slices((columns, labels))
    targets = tf.constant(np.asarray(examples.targets, np.float32))
    return tf.data.Dataset.from_tensor_slices((columns, (labels, targets)))


def raw_dataset(examples, mapping):
    """Unbatched `(raw inputs dict, labels)` examples, files read with
    `tf.io.read_file` (`read_media`): the values a serving client sends.
    With targets, the second element is `(labels, targets)`."""
    kinds = _media_kinds(examples, mapping)

    def read(raw, labels):
        return read_media(raw, kinds), labels

    return _table(examples, mapping).map(read, num_parallel_calls=AUTOTUNE)


def augmentation_layers(seed=0, translation=0.05, contrast=0.1):
    """Keras core augmentation layers that keep image labels valid.

    Small shifts and contrast changes only: no flips (left/right carries
    meaning in medical images and in scenes described by text) and no
    large crops (a finding at the edge could be cut out).

    Returns:
        A list of Keras layers to apply in order to `[B, S, S, 3]` float
        images in 0..255.
    """
    layers = []
    if translation:
        layers.append(
            keras.layers.RandomTranslation(
                translation, translation, fill_mode="nearest", seed=seed
            )
        )
    if contrast:
        layers.append(
            keras.layers.RandomContrast(
                contrast, value_range=(0, 255), seed=seed + 1
            )
        )
    return layers


def _preprocessed_bytes(preprocessor, count):
    per_example = 0
    for spec in preprocessor.specs:
        per_example += int(np.prod(spec.input_shape or (1,))) * 4
    return per_example * count


def make_pipeline(
    examples,
    mapping,
    preprocessor,
    batch_size,
    training=False,
    seed=0,
    augmentation=None,
    targets=None,
    cache_limit_bytes=CACHE_LIMIT_BYTES,
):
    """Batched `(model inputs, targets)` for `model.fit` / `evaluate`.

    Args:
        examples: `LabeledExamples` of one split.
        mapping: dict of model input name to column (`match_columns`).
        preprocessor: `mmzoo.data.modalities.Preprocessor`.
        batch_size: int. Examples per batch.
        training: bool. Shuffle (reshuffled each epoch) and augment.
        seed: int. Shuffle seed.
        augmentation: list of Keras layers applied to image inputs in
            training (`augmentation_layers()`), or None.
        targets: callable `(inputs, labels) -> targets` giving the model's
            training targets; defaults to the labels.
        cache_limit_bytes: int. Largest preprocessed split kept in memory.

    Returns:
        A prefetched `tf.data.Dataset`.
    """
    count = len(examples)

    def preprocess(raw, labels):
        return preprocessor(raw), labels

    if _preprocessed_bytes(preprocessor, count) <= cache_limit_bytes:
        dataset = raw_dataset(examples, mapping).batch(_PREPROCESS_BATCH)
        dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
        # unbatch() forgets the size; restore it so Keras knows the steps.
        dataset = dataset.unbatch().apply(
            tf.data.experimental.assert_cardinality(count)
        )
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(
                count, seed=seed, reshuffle_each_iteration=True
            )
        dataset = dataset.batch(batch_size)
    else:
        # Shuffle file names, not decoded images, then read in parallel.
        dataset = _table(examples, mapping)
        if training:
            dataset = dataset.shuffle(
                count, seed=seed, reshuffle_each_iteration=True
            )
        dataset = dataset.batch(batch_size)
        kinds = _media_kinds(examples, mapping)

        def read(raw, labels):
            return tf.map_fn(
                lambda row: read_media(row, kinds),
                raw,
                fn_output_signature={
                    name: tf.TensorSpec(value.shape[1:], value.dtype)
                    for name, value in raw.items()
                },
            ), labels

        dataset = dataset.map(read, num_parallel_calls=AUTOTUNE)
        dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
    image_inputs = [
        n for n, c in mapping.items() if examples.kinds[c] == "image"
    ]
    if training and augmentation and image_inputs:

        def augment(inputs, labels):
            inputs = dict(inputs)
            for name in image_inputs:
                image = inputs[name]
                for layer in augmentation:
                    image = layer(image, training=True)
                inputs[name] = image
            return inputs, labels

        dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
    if targets is not None:
        dataset = dataset.map(
            lambda inputs, labels: (inputs, targets(inputs, labels)),
            num_parallel_calls=AUTOTUNE,
        )
    return dataset.prefetch(AUTOTUNE)


def write_dummy_examples(directory, specs, num_labels, count, seed=0):
    """Writes random raw values of `specs` as files and returns
    `LabeledExamples` over them (the `dummy` dataset: no signal, for
    contract tests before any dataset exists)."""
    from mmzoo.specs import dummy_raw_inputs

    rng = np.random.default_rng(seed)
    raw = dummy_raw_inputs(specs, count, seed)
    columns, kinds = {}, {}
    os.makedirs(directory, exist_ok=True)
    for spec in specs:
        kinds[spec.name] = spec.kind
        if spec.kind in ("audio", "video"):
            columns[spec.name] = _write_dummy_media(
                directory, spec, raw[spec.name]
            )
        elif spec.kind == "sensor":
            columns[spec.name] = [tuple(row) for row in raw[spec.name]]
        elif spec.kind == "image":
            paths = []
            for i, data in enumerate(raw[spec.name]):
                path = os.path.join(directory, f"{spec.name}_{i:04d}.png")
                with open(path, "wb") as f:
                    f.write(data)
                paths.append(path)
            columns[spec.name] = paths
        else:
            columns[spec.name] = [str(v) for v in raw[spec.name]]
    labels = (rng.random((count, num_labels)) < 0.5).astype(np.float32)
    names = tuple(f"label_{i}" for i in range(num_labels))
    return LabeledExamples(columns, kinds, labels, names)


def _write_dummy_media(directory, spec, values):
    """Writes dummy WAVs (`""` stays missing) or clips' frames as files;
    returns the column (paths, or tuples of frame paths)."""
    column = []
    for i, value in enumerate(values):
        stem = os.path.join(directory, f"{spec.name}_{i:04d}")
        if spec.kind == "audio":
            if value:
                with open(stem + ".wav", "wb") as f:
                    f.write(value)
            column.append(stem + ".wav" if value else "")
            continue
        frames = [data for data in value if data]
        os.makedirs(stem, exist_ok=True)
        paths = []
        for k, data in enumerate(frames):
            paths.append(os.path.join(stem, f"frame_{k:03d}.png"))
            with open(paths[-1], "wb") as f:
                f.write(data)
        column.append(tuple(paths))
    return column


# ------------------------------------------------------------- readers --


def _read_image_report(data_dir):
    from mmzoo.data.image_report import read_image_report

    data = read_image_report(data_dir)
    return LabeledExamples(
        {"image": list(data.image_paths), "report": list(data.reports)},
        {"image": "image", "report": "text"},
        data.labels,
        tuple(data.label_names),
    )


def _read_image_text_labels(data_dir):
    from mmzoo.data.image_text_labels import read_image_text_labels

    return read_image_text_labels(data_dir)


def _write_synthetic_diagnosis(out_dir, num_examples, seed, image_size):
    from mmzoo.data.synthetic_images import write_synthetic_diagnosis

    return write_synthetic_diagnosis(
        out_dir, num_examples=num_examples, seed=seed, image_size=image_size
    )


def _write_synthetic_shapes_reference(out_dir, num_examples, seed, image_size):
    from mmzoo.data.synthetic_images import write_synthetic_shapes_reference

    return write_synthetic_shapes_reference(
        out_dir, num_examples=num_examples, seed=seed, image_size=image_size
    )


def _read_av_clips(data_dir):
    from mmzoo.data.av_clips import read_av_clips

    return read_av_clips(data_dir)


def _write_synthetic_av_clips(out_dir, num_examples, seed, image_size):
    from mmzoo.data.av_clips import write_synthetic_av_clips

    return write_synthetic_av_clips(
        out_dir, num_examples=num_examples, seed=seed, image_size=image_size
    )


READERS = {
    "image-report": _read_image_report,
    "image-text-labels": _read_image_text_labels,
    "av-clips": _read_av_clips,
}
"""On-disk layout name (`--dataset`) → `reader(data_dir) -> LabeledExamples`.
A new layout adds its reader here."""

SYNTHETIC = {
    "diagnosis": ("image-report", _write_synthetic_diagnosis),
    "shapes_reference": (
        "image-text-labels",
        _write_synthetic_shapes_reference,
    ),
    "av_clips": ("av-clips", _write_synthetic_av_clips),
}
"""Synthetic generator name → `(layout it writes, writer(out_dir,
num_examples, seed, image_size) -> folder)`. A model names its generator
in `register_model(..., synthetic=...)`; the folder is then read back by
the layout's reader, like a user's folder."""


def read_labeled(layout, data_dir):
    """Reads a labeled folder of `layout` (a key of `READERS`)."""
    if layout not in READERS:
        raise ValueError(
            f"unknown labeled dataset layout '{layout}'; valid: "
            f"{', '.join(READERS)}"
        )
    return READERS[layout](data_dir)


def write_synthetic(generator, out_dir, num_examples, seed, image_size):
    """Writes synthetic data with `generator` (a key of `SYNTHETIC`) and
    reads it back with its layout's reader."""
    if generator not in SYNTHETIC:
        raise ValueError(
            f"unknown synthetic generator '{generator}'; valid: "
            f"{', '.join(SYNTHETIC)}"
        )
    layout, writer = SYNTHETIC[generator]
    folder = writer(out_dir, num_examples, seed, image_size)
    return read_labeled(layout, folder)
