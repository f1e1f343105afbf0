"""Text files of dataset folders, read so that errors name file and line.

Every reader of a dataset folder opens its text files (CSV indexes, caption
and label files, GloVe vectors, JSON, MovieLens tables) with `open_text`.
A file that is not valid UTF-8 then fails with

```
ValueError: data/index.csv:3: not UTF-8 text: byte 0xe9 at column 4 of
'caf\ufffd,...'; save the file as UTF-8
```

instead of a bare `UnicodeDecodeError` that names neither the file nor
the line. `csv_records` reads CSV records with the line each starts on.
`line_blocks` reads large text files into `tf.data` a block of lines at a
time (the Criteo reader).
"""

import contextlib
import csv

import tensorflow as tf

ENCODING = "utf-8-sig"  # UTF-8; a byte order mark at the start is dropped
_CONTEXT = 60  # characters of the bad line quoted in the error


@contextlib.contextmanager
def open_text(path, newline=None, encoding=ENCODING):
    """Opens a text file; a decode error while reading it names its line.

    Args:
        path: str or path-like. The file.
        newline: str or None. As for `open` (`""` for the `csv` module).
            Defaults to None (universal newlines).
        encoding: str. Defaults to UTF-8 with an optional byte order mark.

    Yields:
        The open text file.

    Raises:
        ValueError: `path:line: not UTF-8 text: ...` when a line read
            inside the `with` block is not valid in `encoding`.

    Example:
    >>> with open_text("data/captions.txt") as f:
    ...     for number, line in enumerate(f, start=1):
    ...         ...
    """
    with open(path, encoding=encoding, newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError as error:
            located = undecodable_line(path, encoding)
            if located is None:  # not from this file: leave it alone
                raise
            raise located from error


def undecodable_line(path, encoding=ENCODING):
    """A `ValueError` naming the first line of `path` that `encoding`
    cannot decode (file, line, column and the bytes), or None.

    Lines are counted as text mode counts them (`\\n`, `\\r\\n` or `\\r`
    ends a line), so the number is the one an editor shows.
    """
    # latin-1 maps every byte to one character and leaves the newlines to
    # the text layer: each line comes back as its raw bytes.
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, start=1):
            raw = line.encode("latin-1")
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as error:
                return ValueError(
                    f"{path}:{number}: {_describe(raw, error, encoding)}"
                )
    return None


def _describe(raw, error, encoding):
    """`not UTF-8 text: byte 0xe9 at column 4 of 'caf\ufffd'; ...`."""
    name = "UTF-8" if encoding.lower().startswith("utf-8") else encoding
    bad = " ".join(f"0x{b:02x}" for b in raw[error.start : error.end])
    column = len(raw[: error.start].decode(encoding)) + 1
    text = raw.decode(encoding, "replace").rstrip("\n")
    if len(text) > _CONTEXT:
        text = text[: _CONTEXT - 3] + "..."
    return (
        f"not {name} text: byte {bad} at column {column} of {text!r}; save "
        f"the file as {name}"
    )


def csv_records(path):
    """Yields `(first_line, fields)` of the non-blank CSV records of `path`.

    `first_line` is the 1-based line on which the record starts, so errors
    point at the right line even after multi-line quoted fields. A record
    whose fields are all blank (an empty line, `,,,`) is skipped.

    Raises:
        ValueError: naming the file and line of malformed CSV or of bytes
            that are not UTF-8.
    """
    with open_text(path, newline="") as f:
        reader = csv.reader(f)
        end = 0
        while True:
            start = end + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise ValueError(f"{path}:{start}: malformed CSV: {e}") from e
            end = reader.line_num
            if fields and any(field.strip() for field in fields):
                yield start, fields


# 2 MiB, about 8,700 Criteo lines: 4 MiB fitted DeepFM's Criteo
# vocabularies 4% faster but raised peak memory by 58-75 MB (the blocks in
# flight), 1 MiB was 9% slower (`benchmarks/README.md`).
BLOCK_BYTES = 2 << 20


def line_blocks(path, size, block_bytes=None):
    """`(line_numbers, lines)` of the text file `path`, a block of about
    `block_bytes` at a time, as a `tf.data.Dataset`.

    The lines are exactly `tf.data.TextLineDataset`'s (every `\\r`
    dropped, split at `\\n`, no empty last line) and `line_numbers` are
    0-based, but there is no dataset element per line: the file is read
    in fixed-size blocks (`FixedLengthRecordDataset`) and split by one op
    per block, with a scan carrying the partial last line into the next
    block. Reading and numbering 1M Criteo lines took 0.83 s this way and
    1.85 s through `TextLineDataset(path).enumerate().batch(8192)`
    (`benchmarks/criteo_prepare_profile.py`, 2 cores).

    Args:
        path: str or scalar string tensor. The file (any `tf.io.gfile`
            path).
        size: int or scalar int64 tensor. Its size in bytes
            (`tf.io.gfile.stat(path).length`): the blocks are laid out
            from it, so that the last, shorter one is read too.
        block_bytes: int. Bytes per block (default `BLOCK_BYTES`); a line
            longer than a block is carried whole into the next.
    """
    block_bytes = int(block_bytes or BLOCK_BYTES)
    size = tf.cast(size, tf.int64)
    tail = size % block_bytes
    blocks = tf.data.FixedLengthRecordDataset(
        path, block_bytes, footer_bytes=tail
    ).concatenate(
        # The last partial block; none (record of 1 byte after the whole
        # file) when the size is a multiple of the block.
        tf.data.FixedLengthRecordDataset(
            path, tf.maximum(tail, 1), header_bytes=size - tail
        )
    )
    # `TextLineDataset` drops every carriage return, not only the one of
    # a `\r\n`; done per block, in parallel, before the scan.
    blocks = blocks.map(
        lambda block: (tf.strings.regex_replace(block, "\r", ""), False),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    # A last, empty block marks the end, where the carried partial line
    # (a last line without `\n`) is a line of its own if not empty.
    blocks = blocks.concatenate(tf.data.Dataset.from_tensors(("", True)))

    def split(state, block_and_end):
        carried, first_number = state
        block, end = block_and_end
        pieces = tf.strings.split(tf.strings.join([carried, block]), "\n")
        lines = tf.cond(
            end,
            lambda: tf.boolean_mask(pieces[-1:], pieces[-1:] != ""),
            lambda: pieces[:-1],
        )
        count = tf.size(lines, out_type=tf.int64)
        numbers = first_number + tf.range(count)
        return (pieces[-1], first_number + count), (numbers, lines)

    start = (tf.constant(""), tf.constant(0, tf.int64))
    return blocks.scan(start, split)
