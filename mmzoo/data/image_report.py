"""Reader and writer for the `image-report` dataset layout.

The layout is a folder holding `index.csv` and the image files it names:

```
data_dir/
  index.csv        image,report,<label 1>,<label 2>,...
  images/0001.png  (any path relative to data_dir)
```

`index.csv` has a header row; `image` is a path relative to the folder,
`report` is free text (commas, quotes and newlines are allowed when the
field is quoted, as the `csv` module writes it), and every other column
is one 0/1 label. The reader only parses and checks the files; decoding
and batching happen in the `tf.data` pipelines.
"""

import csv
import dataclasses
import os

import numpy as np

from mmzoo.data.textfile import csv_records

INDEX_FILE = "index.csv"
IMAGE_COLUMN = "image"
REPORT_COLUMN = "report"


@dataclasses.dataclass
class ImageReportData:
    """An image-report dataset held in memory (images stay on disk).

    Attributes:
        image_paths: list of str. Absolute path of each example's image.
        reports: list of str. Free-text report of each example.
        labels: float32 array `[N, L]` of 0/1 targets.
        label_names: tuple of str. Name of each of the `L` label columns.
    """

    image_paths: list
    reports: list
    labels: np.ndarray
    label_names: tuple

    def __len__(self):
        return len(self.image_paths)


def split_value(where, field):
    """A `split` cell as `train`, `val` or `test` (any case); `ValueError`
    naming `where` otherwise. Shared by the readers with a split column."""
    from mmzoo.data.splits import SPLITS

    value = field.strip().lower()
    if value not in SPLITS:
        raise ValueError(
            f"{where}: split must be one of {', '.join(SPLITS)}, got {field!r}"
        )
    return value


def open_index(data_dir, layout, columns):
    """Opens `data_dir/index.csv` of a folder layout and reads its header.

    Args:
        data_dir: str or path-like. The dataset folder.
        layout: str. The layout's name (`--dataset`), for errors.
        columns: str. The expected header, for errors
            (`"image,report,<label>,..."`).

    Returns:
        `(index path, header line, header names stripped, rows)` with
        `rows` the iterator of `csv_records` past the header.

    Raises:
        ValueError: when the file is missing or has no header row.
    """
    index = os.path.join(os.path.abspath(os.fspath(data_dir)), INDEX_FILE)
    if not os.path.isfile(index):
        raise ValueError(
            f"{layout}: {index} not found; expected a folder with "
            f"{INDEX_FILE} (header {columns})"
        )
    rows = csv_records(index)
    try:
        line, header = next(rows)
    except StopIteration:
        raise ValueError(
            f"{index}:1: empty file; expected a header row '{columns}'"
        ) from None
    return index, line, [name.strip() for name in header], rows


def read_image_report(data_dir):
    """Reads an `image-report` folder (see the module docstring).

    Args:
        data_dir: str or path-like. Folder holding `index.csv`.

    Returns:
        An `ImageReportData` with absolute image paths, in file order.

    Raises:
        ValueError: naming the file and line, when `index.csv` is missing,
            lacks the `image` or `report` column or any label column, a row
            has the wrong number of fields, a label is not 0 or 1, an
            image file does not exist, or the file is not UTF-8.

    Example:
    >>> data = read_image_report("data/chest")
    >>> data.labels.shape  # (num_examples, num_labels)
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    index, line, header, rows = open_index(
        data_dir, "image-report", "image,report,<label>,..."
    )
    for column in (IMAGE_COLUMN, REPORT_COLUMN):
        if column not in header:
            raise ValueError(
                f"{index}:{line}: missing column '{column}'; header has "
                f"{header}"
            )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"{index}:{line}: duplicate columns {duplicates} in header"
        )
    image_col = header.index(IMAGE_COLUMN)
    report_col = header.index(REPORT_COLUMN)
    label_cols = [
        i for i in range(len(header)) if i not in (image_col, report_col)
    ]
    if not label_cols:
        raise ValueError(
            f"{index}:{line}: no label columns; expected one 0/1 column per "
            "label after 'image' and 'report'"
        )
    label_names = tuple(header[i] for i in label_cols)

    image_paths, reports, labels = [], [], []
    for line, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"{index}:{line}: expected {len(header)} fields "
                f"({','.join(header)}), got {len(fields)}"
            )
        name = fields[image_col].strip()
        if not name:
            raise ValueError(f"{index}:{line}: empty 'image' field")
        path = os.path.normpath(os.path.join(data_dir, name))
        if not os.path.isfile(path):
            raise ValueError(f"{index}:{line}: image file '{name}' not found")
        row = []
        for i in label_cols:
            value = fields[i].strip()
            if value not in ("0", "1"):
                raise ValueError(
                    f"{index}:{line}: label '{header[i]}' must be 0 or 1, "
                    f"got {fields[i]!r}"
                )
            row.append(float(value))
        image_paths.append(path)
        reports.append(fields[report_col])
        labels.append(row)
    if not image_paths:
        raise ValueError(f"{index}: no examples after the header row")
    return ImageReportData(
        image_paths=image_paths,
        reports=reports,
        labels=np.asarray(labels, dtype=np.float32),
        label_names=label_names,
    )


def write_image_report(out_dir, data):
    """Writes `data`'s `index.csv` into `out_dir` (the inverse of
    `read_image_report`).

    The images must already exist; their paths are written relative to
    `out_dir` with `/` separators.

    Args:
        out_dir: str or path-like. Folder to write `index.csv` into; created
            if missing.
        data: ImageReportData. Examples to index.

    Returns:
        str. Path of the written `index.csv`.

    Raises:
        ValueError: when the lengths or the label shape disagree, a label
            is not 0 or 1, or a label name clashes with `image`/`report`.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    labels = np.asarray(data.labels)
    names = tuple(data.label_names)
    n = len(data.image_paths)
    if len(data.reports) != n or labels.shape != (n, len(names)):
        raise ValueError(
            f"write_image_report: {n} image paths, {len(data.reports)} "
            f"reports and labels of shape {labels.shape} for "
            f"{len(names)} label names; expected labels ({n}, {len(names)})"
        )
    if not names or {IMAGE_COLUMN, REPORT_COLUMN} & set(names):
        raise ValueError(
            f"write_image_report: label names {names} must be non-empty and "
            f"must not include '{IMAGE_COLUMN}' or '{REPORT_COLUMN}'"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("write_image_report: labels must all be 0 or 1")
    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, INDEX_FILE)
    with open(index, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([IMAGE_COLUMN, REPORT_COLUMN, *names])
        for path, report, row in zip(
            data.image_paths, data.reports, labels, strict=True
        ):
            rel = os.path.relpath(os.path.abspath(path), out_dir)
            writer.writerow(
                [rel.replace(os.sep, "/"), report, *(str(int(v)) for v in row)]
            )
    return index
