"""Reader and writer for the `image-text-labels` dataset layout.

The layout is a folder holding `index.csv` and the image files it names:

```
data_dir/
  index.csv        image,text,label[,target][,split]
  images/0001.png  (any path relative to data_dir; JPEG or PNG)
```

`index.csv` has a header row naming its columns, in any order:

- `image`: path of the image file, relative to the folder.
- `text`: free text (commas, quotes and newlines are allowed when the
  field is quoted, as the `csv` module writes it); may be empty.
- `label`: a class name, or for multi-label tagging several names joined
  by `|` (`beach|sunset`).
- `target` (optional): a float regression target; an empty cell means the
  row has none (NaN).
- `split` (optional): `train`, `val` or `test` for every row; without it
  the examples are split 80/10/10 by seed.

The reader only parses and checks the files; decoding and batching happen
in the `tf.data` pipelines.
"""

import csv
import math
import os

import numpy as np

from mmzoo.data.examples import LabeledExamples
from mmzoo.data.image_report import open_index, split_value
from mmzoo.data.splits import SPLITS

INDEX_FILE = "index.csv"
IMAGE_COLUMN = "image"
TEXT_COLUMN = "text"
LABEL_COLUMN = "label"
TARGET_COLUMN = "target"
SPLIT_COLUMN = "split"
REQUIRED_COLUMNS = (IMAGE_COLUMN, TEXT_COLUMN, LABEL_COLUMN)
OPTIONAL_COLUMNS = (TARGET_COLUMN, SPLIT_COLUMN)
LABEL_SEPARATOR = "|"


def read_image_text_labels(data_dir):
    """Reads an `image-text-labels` folder (see the module docstring).

    Args:
        data_dir: str or path-like. Folder holding `index.csv`.

    Returns:
        A `LabeledExamples` in file order with columns `image` (kind
        `image`, absolute paths) and `text` (kind `text`); `labels` float32
        `[N, L]` multi-hot over `label_names` (the sorted class names);
        `multi_label` True when some row has several names; `targets`
        float32 `[N, 1]` (NaN where the cell is empty) or None without a
        `target` column; `splits` the per-row split names or None without
        a `split` column.

    Raises:
        ValueError: naming the file and line, when `index.csv` is missing
            or empty, the header lacks a required column or has an unknown
            or duplicate one, a row has the wrong number of fields, an
            empty image or label, an image file that does not exist, a
            target that is not a finite number, a split other than
            `train`, `val`, `test`, or bytes that are not UTF-8.

    Example:
    >>> examples = read_image_text_labels("data/memes")
    >>> examples.labels.shape  # (num_examples, num_classes)
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    index, header_line, header, rows = open_index(
        data_dir, "image-text-labels", "image,text,label[,target][,split]"
    )
    col = _check_header(index, header_line, header)

    paths, texts, names, targets, splits = [], [], [], [], []
    for line, fields in rows:
        where = f"{index}:{line}"
        if len(fields) != len(header):
            raise ValueError(
                f"{where}: expected {len(header)} fields "
                f"({','.join(header)}), got {len(fields)}"
            )
        paths.append(_image_path(where, data_dir, fields[col[IMAGE_COLUMN]]))
        texts.append(fields[col[TEXT_COLUMN]])
        names.append(_label_names(where, fields[col[LABEL_COLUMN]]))
        if TARGET_COLUMN in col:
            targets.append(_target(where, fields[col[TARGET_COLUMN]]))
        if SPLIT_COLUMN in col:
            splits.append(split_value(where, fields[col[SPLIT_COLUMN]]))
    if not paths:
        raise ValueError(
            f"{index}:{header_line}: no examples after the header row"
        )
    label_names = tuple(sorted({name for row in names for name in row}))
    position = {name: i for i, name in enumerate(label_names)}
    labels = np.zeros((len(names), len(label_names)), np.float32)
    for i, row in enumerate(names):
        labels[i, [position[name] for name in row]] = 1.0
    return LabeledExamples(
        columns={IMAGE_COLUMN: paths, TEXT_COLUMN: texts},
        kinds={IMAGE_COLUMN: "image", TEXT_COLUMN: "text"},
        labels=labels,
        label_names=label_names,
        targets=(
            np.asarray(targets, np.float32)[:, None]
            if TARGET_COLUMN in col
            else None
        ),
        multi_label=any(len(row) > 1 for row in names),
        splits=splits if SPLIT_COLUMN in col else None,
    )


def _check_header(index, line, header):
    """Column name -> field position; raises on a bad header."""
    where = f"{index}:{line}"
    valid = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    for column in REQUIRED_COLUMNS:
        if column not in header:
            raise ValueError(
                f"{where}: missing column '{column}'; header has {header}, "
                f"expected {', '.join(REQUIRED_COLUMNS)} and optionally "
                f"{', '.join(OPTIONAL_COLUMNS)}"
            )
    unknown = [name for name in header if name not in valid]
    if unknown:
        # A misspelt optional column ("targets") would otherwise be dropped
        # without a word.
        raise ValueError(
            f"{where}: unknown column(s) {unknown}; valid: {', '.join(valid)}"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate columns {duplicates} in header")
    return {name: i for i, name in enumerate(header)}


def _image_path(where, data_dir, field):
    name = field.strip()
    if not name:
        raise ValueError(f"{where}: empty 'image' field")
    path = os.path.normpath(os.path.join(data_dir, name))
    if not os.path.isfile(path):
        raise ValueError(f"{where}: image file '{name}' not found")
    return path


def _label_names(where, field):
    """The distinct class names of one `label` cell, in order."""
    if not field.strip():
        raise ValueError(
            f"{where}: empty 'label'; expected a class name, or several "
            f"joined by '{LABEL_SEPARATOR}'"
        )
    names = [name.strip() for name in field.split(LABEL_SEPARATOR)]
    if not all(names):
        raise ValueError(
            f"{where}: empty class name in label {field!r}; expected names "
            f"joined by '{LABEL_SEPARATOR}'"
        )
    return list(dict.fromkeys(names))


def _target(where, field):
    value = field.strip()
    if not value:
        return math.nan
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(
            f"{where}: target must be a finite number or empty (no target), "
            f"got {field!r}"
        )
    return number


def write_image_text_labels(out_dir, rows):
    """Writes the `index.csv` of an `image-text-labels` folder.

    The images must already exist (the reader checks them). The `target`
    column is written when some row has a `target` key, the `split` column
    when some row has a `split` key.

    Args:
        out_dir: str or path-like. Folder to write `index.csv` into;
            created if missing.
        rows: iterable of dicts with keys `image` (path of the image file;
            a relative path is relative to `out_dir`), `text` (str),
            `label` (a class name, or a list of names for multi-label),
            optionally `target` (float; None or NaN = no target) and
            `split` (`train`, `val` or `test`).

    Returns:
        str. Path of the written `index.csv`.

    Raises:
        ValueError: naming the row, when a label is empty or contains `|`,
            or a split is not `train`, `val` or `test`.

    Example:
    >>> write_image_text_labels("data/x", [
    ...     {"image": "a.png", "text": "a dog", "label": ["dog", "grass"]}])
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    rows = list(rows)
    header = list(REQUIRED_COLUMNS)
    header += [c for c in OPTIONAL_COLUMNS if any(c in row for row in rows)]
    records = []
    for i, row in enumerate(rows):
        where = f"write_image_text_labels: row {i}"
        labels = row[LABEL_COLUMN]
        labels = [labels] if isinstance(labels, str) else list(labels)
        if not labels or any(
            not str(name).strip() or LABEL_SEPARATOR in str(name)
            for name in labels
        ):
            raise ValueError(
                f"{where}: label {row[LABEL_COLUMN]!r} must be one or more "
                f"non-empty class names without '{LABEL_SEPARATOR}'"
            )
        image = os.path.join(out_dir, os.fspath(row[IMAGE_COLUMN]))
        record = [
            os.path.relpath(image, out_dir).replace(os.sep, "/"),
            row[TEXT_COLUMN],
            LABEL_SEPARATOR.join(str(name).strip() for name in labels),
        ]
        if TARGET_COLUMN in header:
            target = row.get(TARGET_COLUMN)
            missing = target is None or math.isnan(float(target))
            record.append("" if missing else repr(float(target)))
        if SPLIT_COLUMN in header:
            split = row.get(SPLIT_COLUMN)
            if split not in SPLITS:
                raise ValueError(
                    f"{where}: split must be one of {', '.join(SPLITS)}, "
                    f"got {split!r}"
                )
            record.append(split)
        records.append(record)
    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, INDEX_FILE)
    with open(index, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(records)
    return index
