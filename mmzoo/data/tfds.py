r"""TensorFlow Datasets builders as training data: `--dataset tfds:NAME`.

A `tfds:` dataset names a TFDS builder; its examples are mapped onto the
layout the model's task already reads, then read by that layout's reader,
so validation, splits and error messages are the ones of a user's folder
(as `synthetic` data is written and read back):

```
tfds:NAME[/CONFIG or :CONFIG][:VERSION][SLICE]
  tfds:movielens/100k-ratings      TFDS's own `name/config`
  tfds:movielens:100k-ratings      the same
  tfds:coco_captions[:2000]        at most 2000 examples of every split
  tfds:oxford_flowers102[:10%]     10% of every split
```

`SLICE` is TFDS's split slicing (`[:N]`, `[A:B]`, `[:P%]`), applied to
every split read, to bound the size. `--data-dir` is the TFDS `data_dir`
holding prepared data (default: TFDS's, `~/tensorflow_datasets` or
`$TFDS_DATA_DIR`). Nothing is downloaded (`download=False`): when the data
is not prepared there, the error names the builder, the folder and the
command that prepares it on a machine with internet access
(`tfds build NAME --data_dir DIR`).

Mapping, by the task of the model (by the builder's feature types, not its
name, except the CTR columns):

- CTR models: MovieLens ratings builders with user data
  (`movielens/100k-ratings`, `movielens/1m-ratings`) → the columns of the
  `movielens-100k` dataset, in memory (`mmzoo.data.ctr.from_arrays`, no
  files):

  | mmzoo column | TFDS feature |
  | --- | --- |
  | `user_id` | `user_id` |
  | `item_id` | `movie_id` |
  | `gender` | `user_gender` (True → `M`, False → `F`) |
  | `occupation` | `user_occupation_text` |
  | `zip_code` | `user_zip_code` |
  | `age` (float) | `raw_user_age`, else `bucketized_user_age` (1m) |
  | `genres` | `movie_genres` ClassLabel names, `\|`-joined |
  | `title` | `movie_title` |
  | label | `user_rating >= 4` |

  `movielens/1m-ratings` has no raw age: GroupLens' ml-1m itself gives
  only the age bucket (1, 18, 25, 35, 45, 50, 56), used as the number.
  The genre names are TFDS's (`Children`, not GroupLens' `Children's`).
  The builder has only `train`: ratings are split 80/10/10 by `--seed`.

- classification models → an `image-text-labels` folder (`index.csv` +
  images): image = the `Image` feature; label = a `ClassLabel` (single
  label: its class name), else a `Sequence(ClassLabel)` (multi-label: the
  distinct names `\|`-joined, e.g. coco's `objects/label`); text = the
  first caption, else a `Text` feature, else empty
  (`tfds:oxford_flowers102`: image + class, empty text).
- captioning and retrieval models → an
  `image-text-pairs` folder (`x.jpg` + `x.txt`, one caption a line):
  image = the `Image` feature; captions = a sequence of strings whose name
  holds `caption` (coco's `captions/text`), else one caption-named string
  or `Text` feature.
- A model that does not list `tfds:NAME` among its datasets (VQA, audio
  and video models) has no mapping and refuses `tfds:`.

Choices:

- The `Image` feature named `image` is taken, else the first top-level one.
  Images are decoded by TFDS and written as JPEG (quality 95) when the
  builder stores JPEG, else PNG, whatever TFDS keeps inside its records.
- Text features that name a file, a path, a URL or an id
  (`image/filename`, `file_name`, `*_id`) are not text: they would leak the
  label or say nothing.
- A top-level `ClassLabel` (the one named `label` first) wins over a
  `Sequence(ClassLabel)`. A row with no label (a `-1` ClassLabel, or an
  image without objects for a multi-label one) is skipped: the layout has
  no "no label" row, and an empty multi-hot target would teach the
  classifier that nothing is ever there. A caption row without a caption is
  skipped too. The log says how many were.
- Splits: the builder's `train`, `validation` (or `val`, `valid`, `dev`)
  and `test` splits are read; other splits (coco's `restval`, `unlabelled`)
  are not, unless the builder has none of those names. When it has all
  three, they are kept: a `split` column in `image-text-labels`. Otherwise,
  and always for the CTR and caption layouts (the caption layout has no
  split; the caption tasks split images 80/10/10 by `--seed`), the splits
  read are concatenated and the task splits them by seed as it does a
  folder without split files.
- The folder is written to `<prepare directory>/tfds/<builder>/<layout>/`
  (under the run's `preprocessing/` folder in `mmzoo train`) and rewritten
  on each prepare.

Example:
>>> data = read_ctr("tfds:movielens/100k-ratings", None, 0, "my_ctr_model")
>>> folder = materialize("tfds:coco_captions[:200]", "image-text-labels",
...                      "/data/tfds", "prep", "vision_language_classifier")
"""

import dataclasses
import logging
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from mmzoo.registry import TFDS_PREFIX

USAGE = (
    "tfds:NAME[/CONFIG or :CONFIG][:VERSION][SLICE], e.g. "
    "tfds:movielens/100k-ratings or tfds:coco_captions[:2000]"
)
IMAGE_TEXT_LABELS = "image-text-labels"
IMAGE_TEXT_PAIRS = "image-text-pairs"
LAYOUTS = (IMAGE_TEXT_LABELS, IMAGE_TEXT_PAIRS)
"""Folder layouts `materialize` writes."""
FOLDER = "tfds"
"""Subfolder of the prepare directory the examples are written to."""
VALIDATION_NAMES = ("validation", "val", "valid", "dev")
JPEG_QUALITY = 95
_BATCH = 4096

_SOURCE = re.compile(r"(?P<name>[^\[\]]+)(?P<slice>\[[^\[\]]*\])?")
_VERSION = re.compile(r"[0-9*]+\.[0-9*]+\.[0-9*]+")
_METADATA = re.compile(
    r"file_?name|file_?path|(^|[/_.])(id|ids|path|url|uri|key|hash)$"
)

# MovieLens ratings: mmzoo column (`mmzoo.data.ctr.MOVIELENS_COLUMNS`) ←
# TFDS feature(s), the first present taken.
MOVIELENS_FEATURES = {
    "user_id": ("user_id",),
    "item_id": ("movie_id",),
    "gender": ("user_gender",),
    "occupation": ("user_occupation_text",),
    "zip_code": ("user_zip_code",),
    "age": ("raw_user_age", "bucketized_user_age"),
    "genres": ("movie_genres",),
    "title": ("movie_title",),
}
RATING_FEATURE = "user_rating"
# Ratings at or above this are positives (as `read_movielens`).
POSITIVE_RATING = 4.0

_log = logging.getLogger(__name__)


def _tfds():
    # Imported when a tfds: dataset is used: the package is large.
    import tensorflow_datasets

    return tensorflow_datasets


# --------------------------------------------------------------- names --


@dataclasses.dataclass(frozen=True)
class TFDSSource:
    """A parsed `tfds:` dataset name.

    Attributes:
        dataset: str. The `--dataset` value as given.
        name: str. The TFDS builder name, `name[/config][:version]`.
        split_slice: str. TFDS slice read of every split (`[:2000]`) or "".
    """

    dataset: str
    name: str
    split_slice: str = ""

    @property
    def slug(self):
        """A folder name for this source."""
        text = self.name + self.split_slice
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def is_tfds(dataset):
    """Whether `dataset` names a TFDS builder (`tfds:...`)."""
    return isinstance(dataset, str) and dataset.startswith(TFDS_PREFIX)


def parse(dataset):
    """Parses a `tfds:` dataset name (see the module docstring).

    Args:
        dataset: str. E.g. `tfds:movielens:100k-ratings`,
            `tfds:coco_captions/2014:1.1.0[:2000]`.

    Returns:
        A `TFDSSource`.

    Raises:
        ValueError: naming the value and the expected form.
    """
    if not is_tfds(dataset):
        raise ValueError(
            f"'{dataset}' is not a tfds: dataset; expected {USAGE}"
        )
    match = _SOURCE.fullmatch(dataset[len(TFDS_PREFIX) :].strip())
    parts = match["name"].strip().split(":") if match else []
    version = ""
    if len(parts) > 1 and _VERSION.fullmatch(parts[-1]):
        version = parts.pop()
    if len(parts) == 2 and "/" not in parts[0]:
        parts = ["/".join(parts)]
    name = parts[0] if len(parts) == 1 else ""
    if not name or any(not piece for piece in name.split("/")):
        raise ValueError(f"bad dataset '{dataset}'; expected {USAGE}")
    if version:
        name += f":{version}"
    return TFDSSource(dataset, name, match["slice"] or "")


# ------------------------------------------------------------ builders --


def load_builder(source, data_dir):
    """The TFDS builder of `source` over `data_dir` (nothing downloaded).

    Raises:
        ValueError: naming the builder, for an unknown builder, config or
            version.
    """
    tfds = _tfds()
    try:
        return tfds.builder(source.name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        raise ValueError(
            f"{source.dataset}: no TFDS builder '{source.name}' (neither in "
            f"tensorflow_datasets nor prepared in {_where(data_dir)}); see "
            "tfds.list_builders()"
        ) from error
    except (ValueError, AssertionError) as error:
        first = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(f"{source.dataset}: {first}") from error


def _where(data_dir):
    if data_dir:
        return f"--data-dir '{data_dir}'"
    from tensorflow_datasets.core import constants

    return f"the default TFDS data_dir '{constants.get_default_data_dir()}'"


def split_plan(split_names):
    """Which TFDS splits are read, and as which mmzoo split.

    Args:
        split_names: the builder's split names (empty when its metadata
            lists none: `train` is read then).

    Returns:
        dict of TFDS split name to `train`/`val`/`test` when the builder
        has all three roles (kept), else to None (concatenated; the task
        splits by seed).
    """
    names = list(split_names) or ["train"]
    val = [n for n in VALIDATION_NAMES if n in names]
    if "train" in names and val and "test" in names:
        return {"train": "train", val[0]: "val", "test": "test"}
    known = [n for n in names if n in ("train", "test", *VALIDATION_NAMES)]
    return dict.fromkeys(known or names)


def _not_prepared(source, builder, data_dir):
    name = source.name
    return ValueError(
        f"{source.dataset}: TFDS builder '{name}' has no prepared data in "
        f"{_where(data_dir)} (looked in {builder.data_dir}); mmzoo reads "
        "TFDS data without downloading. Prepare it on a machine with "
        f"internet access with `tfds build {name} --data_dir DIR`, copy DIR "
        "here and pass it as --data-dir"
    )


def _read(builder, source, data_dir, split, decoders):
    """`builder.as_dataset` of one split (sliced), in file order."""
    try:
        return builder.as_dataset(
            split=split + source.split_slice,
            decoders=decoders,
            shuffle_files=False,
        )
    except AssertionError as error:  # TFDS: "could not find data in ..."
        raise _not_prepared(source, builder, data_dir) from error
    except ValueError as error:  # a bad slice or split
        raise ValueError(
            f"{source.dataset}: split '{split}{source.split_slice}': {error}"
        ) from error


# ------------------------------------------------------------ features --


def leaves(features, path=(), sequence=False):
    """Yields `(path, feature, in_sequence)` for every leaf feature.

    `path` is a tuple of keys (`("objects", "label")`); `in_sequence` says
    a `Sequence` holds it (one value per element).
    """
    tfds = _tfds()
    if isinstance(features, tfds.features.FeaturesDict):
        for key, feature in features.items():
            yield from leaves(feature, (*path, key), sequence)
    elif isinstance(features, tfds.features.Sequence):
        yield from leaves(features.feature, path, True)
    else:
        yield path, features, sequence


def describe(features):
    """`a (Image), b/c (Sequence(ClassLabel)), ...` for error messages."""
    out = []
    for path, feature, sequence in leaves(features):
        kind = type(feature).__name__
        if kind == "Tensor":
            kind = tf.as_dtype(feature.dtype).name
        out.append(
            f"{'/'.join(path)} ({f'Sequence({kind})' if sequence else kind})"
        )
    return ", ".join(out)


def _is_string(feature):
    tfds = _tfds()
    if isinstance(feature, tfds.features.Text):
        return True
    return (
        type(feature) is tfds.features.Tensor
        and tf.as_dtype(feature.dtype) == tf.string
        and tuple(feature.shape) == ()
    )


def _is_metadata(path):
    return bool(_METADATA.search(path[-1].lower()))


def _is_caption(path):
    return "caption" in "/".join(path).lower()


@dataclasses.dataclass(frozen=True)
class ImageTextFields:
    """The TFDS features an image layout is made of (paths as tuples).

    Attributes:
        image: path of the `Image` feature, or None.
        captions: path of a sequence of caption strings, or None.
        text: path of one string feature (a caption or `Text`), or None.
        label: path of the `ClassLabel` feature, or None.
        multi_label: bool. The label is a `Sequence(ClassLabel)`.
        label_names: tuple of str. The ClassLabel's class names.
    """

    image: tuple | None = None
    captions: tuple | None = None
    text: tuple | None = None
    label: tuple | None = None
    multi_label: bool = False
    label_names: tuple = ()


def image_text_fields(features):
    """Picks the image, caption/text and label features (module docstring).

    Args:
        features: a builder's `info.features`.

    Returns:
        `ImageTextFields`; a field the builder lacks is None.
    """
    tfds = _tfds()
    found = list(leaves(features))
    images = [
        p
        for p, f, seq in found
        if isinstance(f, tfds.features.Image) and not seq
    ]
    image = ("image",) if ("image",) in images else next(iter(images), None)
    strings = [
        (p, f, seq)
        for p, f, seq in found
        if _is_string(f) and not _is_metadata(p)
    ]
    captions = next(
        (p for p, _, seq in strings if seq and _is_caption(p)), None
    )
    single = [p for p, _, seq in strings if not seq and _is_caption(p)]
    single += [
        p
        for p, f, seq in strings
        if not seq and isinstance(f, tfds.features.Text) and p not in single
    ]
    labels = [
        (p, f, seq)
        for p, f, seq in found
        if isinstance(f, tfds.features.ClassLabel)
    ]
    # A top-level ClassLabel (`label` first), else a sequence of them.
    labels.sort(key=lambda x: (x[2], x[0][-1] != "label"))
    label = labels[0] if labels else None
    return ImageTextFields(
        image=image,
        captions=captions,
        text=next(iter(single), None),
        label=label[0] if label else None,
        multi_label=bool(label and label[2]),
        label_names=tuple(label[1].names) if label else (),
    )


def _partial(paths):
    """A `PartialDecoding` of the features at `paths` only."""
    spec = {}
    for path in paths:
        node = spec
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = True
    return _tfds().decode.PartialDecoding(spec)


def _get(example, path):
    for key in path:
        example = example[key]
    return example


def _mismatch(model, source, builder, layout, needs):
    return ValueError(
        f"{model}: TFDS builder '{source.name}' has no mapping to the "
        f"{layout} data this model reads: needs {needs}; found "
        f"{describe(builder.info.features)}"
    )


# ----------------------------------------------------------------- CTR --


def read_ctr(dataset, data_dir, seed, model):
    """Reads a MovieLens ratings builder as the `movielens-100k` columns.

    Args:
        dataset: str. A `tfds:` name, e.g. `tfds:movielens/100k-ratings`.
        data_dir: str or None. TFDS `data_dir` with the prepared data.
        seed: int. Seed of the 80/10/10 split.
        model: str. The model, for error messages.

    Returns:
        `mmzoo.data.tabular.TabularData` named `dataset`, with
        `mmzoo.data.ctr.MOVIELENS_COLUMNS` (see the module docstring).

    Raises:
        ValueError: the builder lacks a feature (naming the needed and the
            found ones), or its data is not prepared in `data_dir`.
    """
    from mmzoo.data import ctr

    source = parse(dataset)
    builder = load_builder(source, data_dir)
    features = builder.info.features
    keys = set(features.keys())
    chosen = {
        column: next((k for k in options if k in keys), None)
        for column, options in MOVIELENS_FEATURES.items()
    }
    if None in chosen.values() or RATING_FEATURE not in keys:
        needs = ", ".join(
            "/".join(options) for options in MOVIELENS_FEATURES.values()
        )
        raise _mismatch(
            model,
            source,
            builder,
            "click-through-rate (MovieLens ratings)",
            f"{needs}, {RATING_FEATURE}",
        )
    genre_names = tf.constant(
        [str(n) for n in features[chosen["genres"]].feature.names]
    )

    def to_columns(example):
        get = {column: example[key] for column, key in chosen.items()}
        columns = {
            "gender": tf.where(get["gender"], "M", "F"),
            "age": tf.cast(get["age"], tf.float32),
            "genres": tf.strings.reduce_join(
                tf.gather(genre_names, get["genres"]), separator="|"
            ),
        }
        for column in ("user_id", "item_id", "occupation", "zip_code", "title"):
            columns[column] = get[column]
        label = tf.cast(example[RATING_FEATURE] >= POSITIVE_RATING, tf.float32)
        return columns, label

    decoders = _partial([(k,) for k in (*chosen.values(), RATING_FEATURE)])
    parts, labels = {c.name: [] for c in ctr.MOVIELENS_COLUMNS}, []
    for split in split_plan(builder.info.splits):
        data = _read(builder, source, data_dir, split, decoders)
        data = data.map(to_columns, num_parallel_calls=tf.data.AUTOTUNE)
        for columns, label in data.batch(_BATCH).as_numpy_iterator():
            for name, values in columns.items():
                parts[name].append(values)
            labels.append(label)
    if not labels:
        raise ValueError(f"{dataset}: no examples")
    arrays = {}
    for column in ctr.MOVIELENS_COLUMNS:
        values = np.concatenate(parts[column.name])
        if column.kind == "numeric":
            arrays[column.name] = values.astype(np.float32)
        else:
            arrays[column.name] = np.asarray(
                [v.decode("utf-8", "replace") for v in values], object
            )
    return ctr.from_arrays(
        dataset,
        ctr.MOVIELENS_COLUMNS,
        arrays,
        np.concatenate(labels).astype(np.float32),
        seed,
    )


# -------------------------------------------------------- image layouts --


def _needs(layout):
    if layout == IMAGE_TEXT_LABELS:
        return (
            "an Image feature and a ClassLabel or Sequence(ClassLabel) "
            "feature (text optional)"
        )
    return (
        "an Image feature and captions (a sequence of strings named "
        "*caption*, or a caption-named string or Text feature)"
    )


def _encoder(feature):
    """Image tensor → JPEG (when TFDS stores JPEG) or PNG bytes."""
    channels = feature.shape[-1] if feature.shape else None
    jpeg = (
        getattr(feature, "encoding_format", None) == "jpeg"
        and channels in (1, 3)
        and tf.as_dtype(feature.dtype) == tf.uint8
    )
    if jpeg:
        return lambda image: tf.io.encode_jpeg(image, quality=JPEG_QUALITY)
    return tf.io.encode_png


def _rows(builder, source, data_dir, fields):
    """Yields `(mmzoo split or None, {image, texts, labels})` in split
    order; `image` is encoded bytes, `texts` a list of str (the captions,
    else the one text), `labels` class ids (-1 = none)."""
    encode = _encoder(_get(builder.info.features, fields.image))
    text = fields.captions or fields.text
    paths = [p for p in (fields.image, text, fields.label) if p is not None]

    def row(example):
        out = {"image": encode(_get(example, fields.image))}
        if text is None:
            out["texts"] = tf.zeros([0], tf.string)
        else:
            out["texts"] = tf.reshape(_get(example, text), [-1])
        if fields.label is not None:
            label = tf.cast(_get(example, fields.label), tf.int64)
            out["labels"] = tf.reshape(label, [-1])
        return out

    for split, role in split_plan(builder.info.splits).items():
        data = _read(builder, source, data_dir, split, _partial(paths))
        data = data.map(row, num_parallel_calls=tf.data.AUTOTUNE)
        for example in data.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
            example["texts"] = [
                " ".join(t.decode("utf-8", "replace").split())
                for t in example["texts"]
            ]
            yield role, example


def _image_name(index, data):
    ext = "jpg" if data[:2] == b"\xff\xd8" else "png"
    return f"{index:07d}.{ext}"


def _write_labels(builder, source, data_dir, fields, folder):
    """Writes an `image-text-labels` folder; returns (written, skipped)."""
    from mmzoo.data.image_text_labels import write_image_text_labels

    rows, skipped = [], 0
    os.makedirs(os.path.join(folder, "images"))
    for role, example in _rows(builder, source, data_dir, fields):
        names = [
            fields.label_names[i]
            for i in example["labels"]
            if 0 <= i < len(fields.label_names)
        ]
        if not names:
            skipped += 1
            continue
        image = os.path.join("images", _image_name(len(rows), example["image"]))
        with open(os.path.join(folder, image), "wb") as f:
            f.write(example["image"])
        texts = [t for t in example["texts"] if t]
        row = {
            "image": image,
            "text": texts[0] if texts else "",
            "label": list(dict.fromkeys(names)),
        }
        if role is not None:
            row["split"] = role
        rows.append(row)
    if rows:
        write_image_text_labels(folder, rows)
    return len(rows), skipped


def _write_pairs(builder, source, data_dir, fields, folder):
    """Writes an `image-text-pairs` folder; returns (written, skipped)."""
    written, skipped = 0, 0
    os.makedirs(folder)
    for _, example in _rows(builder, source, data_dir, fields):
        texts = [t for t in example["texts"] if t]
        if not texts:
            skipped += 1
            continue
        name = _image_name(written, example["image"])
        with open(os.path.join(folder, name), "wb") as f:
            f.write(example["image"])
        text_file = os.path.splitext(name)[0] + ".txt"
        with open(os.path.join(folder, text_file), "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
        written += 1
    return written, skipped


def materialize(dataset, layout, data_dir, directory, model):
    """Writes a TFDS builder's examples as a folder of `layout`.

    Args:
        dataset: str. A `tfds:` name (module docstring).
        layout: str. `image-text-labels` or `image-text-pairs`.
        data_dir: str or None. TFDS `data_dir` with the prepared data.
        directory: str. The prepare directory; the folder is
            `directory/tfds/<builder>/<layout>/`, replaced if it exists.
        model: str. The model, for error messages.

    Returns:
        str. The folder, to read with the layout's reader
        (`mmzoo.data.examples.read_labeled` / `read_image_text_pairs`).

    Raises:
        ValueError: the builder has no feature for a part of the layout
            (naming what is needed and what it has), its data is not
            prepared in `data_dir`, or no example is left.
    """
    if layout not in LAYOUTS:
        raise ValueError(
            f"unknown tfds layout '{layout}'; valid: {', '.join(LAYOUTS)}"
        )
    source = parse(dataset)
    builder = load_builder(source, data_dir)
    fields = image_text_fields(builder.info.features)
    if layout == IMAGE_TEXT_LABELS:
        usable = fields.image and fields.label
        write = _write_labels
    else:
        usable = fields.image and (fields.captions or fields.text)
        write = _write_pairs
    if not usable:
        raise _mismatch(model, source, builder, layout, _needs(layout))
    folder = os.path.join(os.fspath(directory), FOLDER, source.slug, layout)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    written, skipped = write(builder, source, data_dir, fields, folder)
    if not written:
        raise ValueError(
            f"{dataset}: no example left for {layout} ({skipped} skipped: "
            "no label or caption)"
        )
    _log.info(
        "%s: wrote %d examples as %s in %s (%d without a %s skipped)",
        dataset,
        written,
        layout,
        folder,
        skipped,
        "label" if layout == IMAGE_TEXT_LABELS else "caption",
    )
    return folder
