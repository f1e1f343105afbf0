"""Readers of click-through-rate datasets: criteo, movielens-100k, synthetic.

Each returns `TabularData` (see `mmzoo.data.tabular`): raw `(features,
label)` splits whose feature names are the serving signature's input names.
"""

import functools
import glob
import os

import numpy as np
import tensorflow as tf

from mmzoo.data.splits import split_indices
from mmzoo.data.tabular import AUTOTUNE, Column, LazySplits, TabularData
from mmzoo.data.textfile import ENCODING, line_blocks, open_text

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

# ---------------------------------------------------------------- criteo --

CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = tuple(Column(n, "numeric") for n in CRITEO_NUMERIC) + tuple(
    Column(n, "categorical") for n in CRITEO_CATEGORICAL
)
_CRITEO_FIELDS = 1 + len(CRITEO_NUMERIC) + len(CRITEO_CATEGORICAL)


def _criteo_files(data_dir):
    if os.path.isfile(data_dir):
        return [data_dir]
    if not os.path.isdir(data_dir):
        raise ValueError(f"criteo: data dir '{data_dir}' does not exist")
    train = os.path.join(data_dir, "train.txt")
    if os.path.isfile(train):
        return [train]
    files = sorted(
        glob.glob(os.path.join(data_dir, "*.txt"))
        + glob.glob(os.path.join(data_dir, "*.tsv"))
    )
    if not files:
        raise ValueError(
            f"criteo: no train.txt, *.txt or *.tsv file in '{data_dir}'"
        )
    return files


def _split_of(path, line_numbers, seed):
    """Deterministic 80/10/10 split id of each line, from (seed, file name,
    line). The file's base name, not its path, so a copy of the data in
    another folder or on another machine splits the same way."""
    name = tf.strings.regex_replace(path, r"^.*[/\\]", "")
    keys = tf.strings.join(
        [
            tf.strings.as_string(seed),
            ":",
            name,
            ":",
            tf.strings.as_string(line_numbers),
        ]
    )
    bucket = tf.strings.to_hash_bucket_fast(keys, 10)
    return tf.where(bucket < 8, 0, tf.where(bucket < 9, 1, 2))


def _fail_at(bad_rows, paths, line_numbers, what):
    """Asserts no row is bad; the error names the file and first bad line.
    `paths` holds each row's file (`[B]`)."""
    first = tf.argmax(tf.cast(bad_rows, tf.int32))
    # tf.strings.join, not tf.strings.format: format quotes string
    # arguments, and the message must read `path:line: what`.
    message = tf.strings.join(
        [
            paths[first],
            ":",
            tf.strings.as_string(line_numbers[first] + 1),
            ": ",
            what,
        ]
    )
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad_rows)), [message]
    )


def _not_utf8(lines):
    """True where a line is not valid UTF-8 (transcoding changes it)."""
    repaired = tf.strings.unicode_transcode(
        lines, "UTF-8", "UTF-8", errors="replace"
    )
    return tf.not_equal(repaired, lines)


_CRITEO_NUMBER = r"(-?[0-9]+(\.[0-9]*)?)?"
# A whole valid line: label, 13 numbers or empty, 26 fields without tabs.
_CRITEO_LINE = r"[01](\t" + _CRITEO_NUMBER + r"){13}(\t[^\t]*){26}"
_CRITEO_DEFAULTS = (
    [[0.0]] + [[np.float32("nan")]] * len(CRITEO_NUMERIC)
    + [[""]] * len(CRITEO_CATEGORICAL)
)  # fmt: skip


def _criteo_line_checks(paths, line_numbers, lines):
    """Asserts naming the first bad line and what is wrong with it (only
    built when some line of the batch failed `_CRITEO_LINE`)."""
    fields = tf.strings.split(lines, "\t")
    counts = fields.row_lengths()
    dense = fields.to_tensor(shape=[None, _CRITEO_FIELDS])
    count_ok = tf.equal(counts, _CRITEO_FIELDS)
    number_ok = tf.reduce_all(
        tf.strings.regex_full_match(dense[:, 1:14], _CRITEO_NUMBER), axis=1
    )
    label_ok = tf.strings.regex_full_match(dense[:, 0], "[01]")
    checks = [
        _fail_at(
            tf.logical_not(count_ok),
            paths,
            line_numbers,
            f"expected {_CRITEO_FIELDS} tab-separated fields "
            "(label, I1..I13, C1..C26)",
        ),
        _fail_at(
            tf.logical_not(label_ok),
            paths,
            line_numbers,
            "label must be 0 or 1",
        ),  # fmt: skip
        _fail_at(
            tf.logical_not(number_ok),
            paths,
            line_numbers,
            "I1..I13 must be numbers or empty",
        ),
        # `_CRITEO_LINE` (RE2, UTF-8) rejects bytes that are not UTF-8;
        # values are decoded as UTF-8 later (vocabularies, serving).
        _fail_at(
            _not_utf8(lines),
            paths,
            line_numbers,
            "not UTF-8 text; save the file as UTF-8",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.constant(False)


def _check_criteo_lines(files, file_indices, line_numbers, lines):
    """An op that fails with InvalidArgument naming the first bad line of
    the batch: `files` holds the file names, `file_indices` each line's
    file, `line_numbers` (0-based) its line (`[B]` like `lines`).

    One regular expression per line validates it; only a batch holding a
    bad line pays for finding and naming it (the lines' paths included).
    """
    valid = tf.reduce_all(tf.strings.regex_full_match(lines, _CRITEO_LINE))
    valid = tf.cond(
        valid,
        lambda: tf.constant(True),
        lambda: _criteo_line_checks(
            tf.gather(files, file_indices), line_numbers, lines
        ),
    )
    return tf.debugging.Assert(valid, [files[:1]])


def _decode_criteo_lines(lines):
    """`(features, label)` of valid Criteo lines: `decode_csv` straight to
    floats (empty numbers → NaN) and strings."""
    columns = tf.io.decode_csv(
        lines,
        list(_CRITEO_DEFAULTS),
        field_delim="\t",
        use_quote_delim=False,
    )
    features = {name: columns[1 + i] for i, name in enumerate(CRITEO_NUMERIC)}
    features.update(
        {name: columns[14 + i] for i, name in enumerate(CRITEO_CATEGORICAL)}
    )
    return features, columns[0]


def _parse_criteo_lines(files, file_indices, line_numbers, lines):
    """Parses a batch of Criteo lines to `(features, label)`; a bad line
    fails with InvalidArgument naming its file and line (see
    `_check_criteo_lines`)."""
    with tf.control_dependencies(
        [_check_criteo_lines(files, file_indices, line_numbers, lines)]
    ):
        lines = tf.identity(lines)
    return _decode_criteo_lines(lines)


# Lines read, numbered and split-assigned a block at a time
# (`textfile.line_blocks`) before any per-line work; files read at once by
# `interleave`.
_PARALLEL_FILES = 4
# Training shuffles blocks of lines (a buffer of this many), then lines
# within windows of `shuffle_buffer` lines cut from them.
_SHUFFLED_BLOCKS = 8


def _numbered_chunks(files, seed, shuffle):
    """`(file index, line numbers, lines, split ids)` of the blocks of
    lines of `files` (`textfile.line_blocks`, about 8,700 Criteo lines
    each), read in parallel (`interleave`, in shuffled order with
    `shuffle`); split ids from `_split_of`."""

    def numbered(index, path, size):
        return line_blocks(path, size).map(
            lambda numbers, lines: (
                index,
                numbers,
                lines,
                _split_of(path, numbers, seed),
            ),
            num_parallel_calls=AUTOTUNE,
        )

    sizes = [tf.io.gfile.stat(path).length for path in files]
    paths = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(files)), files, sizes)
    )
    if shuffle:
        paths = paths.shuffle(len(files), seed=seed)
    return paths.interleave(
        numbered,
        cycle_length=min(len(files), _PARALLEL_FILES),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def _criteo_blocks(files, split, seed, shuffle):
    """`(file indices, line numbers, lines)` of `split`'s lines, a block
    at a time (no per-line dataset element)."""
    index = SPLIT_IDS[split]

    def keep(file_index, numbers, lines, splits):
        mine = tf.equal(splits, index)
        numbers = tf.boolean_mask(numbers, mine)
        return (
            tf.fill(tf.shape(numbers), file_index),
            numbers,
            tf.boolean_mask(lines, mine),
        )

    chunks = _numbered_chunks(files, seed, shuffle)
    return chunks.map(keep, num_parallel_calls=AUTOTUNE)


def _shuffle_blocks(blocks, buffer, seed):
    """Lines of `blocks` in random order, without an element per line:
    blocks are drawn from a buffer of `_SHUFFLED_BLOCKS`, cut into windows
    of `buffer` lines (`rebatch`) and each window permuted; every
    iteration (epoch) draws new orders from `seed`. DeepFM's whole Criteo
    training pipeline takes 7.3-7.8 CPU-µs per row this way, against
    15.3-15.8 with `unbatch` + `shuffle(buffer)` + `batch` of lines
    (`benchmarks/criteo_scale.py`, 2 cores)."""
    windows = blocks.shuffle(
        _SHUFFLED_BLOCKS, seed=seed, reshuffle_each_iteration=True
    ).rebatch(buffer)
    seeds = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).batch(2)

    def permute(window, window_seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(tf.shape(window[0])[0]), window_seed
        )
        return tuple(tf.gather(x, order) for x in window)

    return tf.data.Dataset.zip(windows, seeds).map(
        permute, num_parallel_calls=AUTOTUNE
    )


def _criteo_fit_batches(files, paths, seed):
    """`(features, label, rows)` of the train split in blocks as read (see
    `_numbered_chunks`), in one read of the files that also checks every
    line of the other splits and counts every split's lines (see
    `TabularData.fit_batches`); `paths` is `files` as a tensor."""

    def train_rows(file_index, numbers, lines, splits):
        file_indices = tf.fill(tf.shape(numbers), file_index)
        with tf.control_dependencies(
            [_check_criteo_lines(paths, file_indices, numbers, lines)]
        ):
            lines = tf.boolean_mask(lines, tf.equal(splits, 0))
        counts = tf.math.bincount(
            splits,
            minlength=len(SPLIT_IDS),
            maxlength=len(SPLIT_IDS),
            dtype=tf.int64,
        )
        rows = {name: counts[index] for name, index in SPLIT_IDS.items()}
        return (*_decode_criteo_lines(lines), rows)

    chunks = _numbered_chunks(files, seed, shuffle=False)
    return chunks.map(train_rows, num_parallel_calls=AUTOTUNE)


def read_criteo(data_dir, seed=0):
    """Reads Criteo display-ads TSV files (no header).

    Columns: label, I1..I13 (integers, may be empty → NaN), C1..C26 (hex
    strings, may be empty → missing). Lines are split 80/10/10 into
    train/val/test by a hash of (seed, file, line). A malformed line (a
    wrong field count, a label other than 0/1, an I column that is not a
    number, bytes that are not UTF-8) fails when the data is iterated,
    with a `tf.errors.InvalidArgumentError` that reads `path:line: what`.

    The fast path is `TabularData.batches` (training and evaluation):
    files are read in parallel in blocks of lines, which are numbered and
    assigned to their split a block at a time; for training, blocks are
    drawn in random order (a buffer of 8) and their lines shuffled in
    windows of `shuffle_buffer` lines; batches are cut from the blocks
    (`rebatch`) and parsed a batch at a time. No line is ever a dataset
    element of its own, and no row a dict of 40 tensors.
    `TabularData.fit_batches` (vocabulary fitting) reads the files once
    for all splits: every line checked, the train lines parsed, a block
    at a time. `splits` is the same data unbatched, made on first use, for
    small consumers.

    Args:
        data_dir: str. A TSV file, or a folder holding `train.txt` or
            `*.txt` / `*.tsv` files.
        seed: int. Split seed.
    """
    files = _criteo_files(data_dir)
    paths = tf.constant(files)
    parse = functools.partial(_parse_criteo_lines, paths)

    def batcher(split, batch_size, shuffle, shuffle_seed, buffer):
        blocks = _criteo_blocks(files, split, seed, shuffle)
        if shuffle:
            blocks = _shuffle_blocks(blocks, buffer, shuffle_seed)
        return blocks.rebatch(batch_size).map(
            parse, num_parallel_calls=AUTOTUNE
        )

    splits = LazySplits(
        SPLIT_IDS, lambda name: batcher(name, 4096, False, 0, 0).unbatch()
    )
    return TabularData(
        "criteo",
        CRITEO_COLUMNS,
        splits,
        batcher,
        fit_batcher=lambda: _criteo_fit_batches(files, paths, seed),
    )


# ------------------------------------------------------------ movielens --

MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
MOVIELENS_COLUMNS = (
    Column("user_id", "categorical"),
    Column("item_id", "categorical"),
    Column("gender", "categorical"),
    Column("occupation", "categorical"),
    Column("zip_code", "categorical"),
    Column("age", "numeric"),
    Column("genres", "multi_value"),
    Column("title", "text"),
)


def _read_delimited(path, separator, num_fields, encoding, header=None):
    """Yields (line number, fields); a wrong field count, bytes that are
    not `encoding` or a missing file name the file (and line).

    `header`: the name of the first column when line 1 is a RecBole header
    (`user_id:token<TAB>...`); a file without it fails instead of losing
    its first row.
    """
    if not os.path.isfile(path):
        raise ValueError(
            f"movielens-100k: {path} not found; the folder needs all three "
            "of u.data, u.item, u.user (GroupLens) or .inter, .item, .user "
            "(RecBole)"
        )
    with open_text(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if header and number == 1:
                first = line.split(separator)[0].split(":")[0].strip()
                if first != header:
                    raise ValueError(
                        f"{path}:1: expected RecBole's header row, "
                        f"starting '{header}:token', got {line[:80]!r}"
                    )
                continue
            if not line.strip():
                continue
            fields = line.split(separator)
            if len(fields) != num_fields:
                raise ValueError(
                    f"{path}:{number}: expected {num_fields} fields separated "
                    f"by {separator!r}, got {len(fields)}"
                )
            yield number, fields


def _number(path, number, value, what):
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{path}:{number}: {what} must be a number, got {value!r}"
        ) from None


def _read_grouplens(data_dir):
    users, items, ratings = {}, {}, []
    path = os.path.join(data_dir, "u.user")
    for number, (uid, age, gender, occupation, zip_code) in _read_delimited(
        path, "|", 5, "latin-1"
    ):
        users[uid] = (
            _number(path, number, age, "age"),
            gender,
            occupation,
            zip_code,
        )
    path = os.path.join(data_dir, "u.item")
    for number, fields in _read_delimited(path, "|", 24, "latin-1"):
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise ValueError(f"{path}:{number}: genre flags must be 0 or 1")
        genres = [g for g, f in zip(MOVIELENS_GENRES, flags) if f == "1"]
        items[fields[0]] = (fields[1], "|".join(genres))
    path = os.path.join(data_dir, "u.data")
    for number, (uid, iid, rating, _) in _read_delimited(
        path, "\t", 4, "latin-1"
    ):
        ratings.append(
            (path, number, uid, iid, _number(path, number, rating, "rating"))
        )
    return users, items, ratings


def _read_recbole(data_dir, prefix):
    users, items, ratings = {}, {}, []
    path = os.path.join(data_dir, f"{prefix}.user")
    for number, (uid, age, gender, occupation, zip_code) in _read_delimited(
        path, "\t", 5, ENCODING, header="user_id"
    ):
        users[uid] = (
            _number(path, number, age, "age"),
            gender,
            occupation,
            zip_code,
        )
    path = os.path.join(data_dir, f"{prefix}.item")
    for _, (iid, title, _, classes) in _read_delimited(
        path, "\t", 4, ENCODING, header="item_id"
    ):
        items[iid] = (title, "|".join(classes.split()))
    path = os.path.join(data_dir, f"{prefix}.inter")
    for number, (uid, iid, rating, _) in _read_delimited(
        path, "\t", 4, ENCODING, header="user_id"
    ):
        ratings.append(
            (path, number, uid, iid, _number(path, number, rating, "rating"))
        )
    return users, items, ratings


def read_movielens(data_dir, seed=0):
    """Reads MovieLens-100k; label = rating >= 4.

    Accepts GroupLens' `ml-100k/` folder (`u.data`, `u.item`, `u.user`) and
    RecBole's atomic files (`ml-100k.inter`, `.item`, `.user`). Features:
    `user_id`, `item_id`, `gender`, `occupation`, `zip_code`, `title`,
    `genres` (`|`-joined) as strings and `age` as float32. Ratings are split
    80/10/10 by `seed`.

    Raises:
        ValueError: naming the file and line of a row with the wrong number
            of fields, a number that does not parse, a genre flag other
            than 0/1, an unknown user or item id, a RecBole file without
            its header row, or bytes that are not UTF-8 (RecBole; GroupLens
            files are latin-1, which every byte is); naming the file when
            one of the three is missing.
    """
    if os.path.isfile(os.path.join(data_dir, "u.data")):
        users, items, ratings = _read_grouplens(data_dir)
    else:
        inter = sorted(glob.glob(os.path.join(data_dir, "*.inter")))
        if not inter:
            raise ValueError(
                f"movielens-100k: '{data_dir}' holds neither u.data "
                "(GroupLens layout) nor *.inter (RecBole layout)"
            )
        users, items, ratings = _read_recbole(
            data_dir, os.path.basename(inter[0])[: -len(".inter")]
        )
    columns = {c.name: [] for c in MOVIELENS_COLUMNS}
    labels = []
    for path, number, uid, iid, rating in ratings:
        if uid not in users:
            raise ValueError(f"{path}:{number}: unknown user id {uid!r}")
        if iid not in items:
            raise ValueError(f"{path}:{number}: unknown item id {iid!r}")
        age, gender, occupation, zip_code = users[uid]
        title, genres = items[iid]
        for name, value in (
            ("user_id", uid), ("item_id", iid), ("gender", gender),
            ("occupation", occupation), ("zip_code", zip_code), ("age", age),
            ("genres", genres), ("title", title),
        ):  # fmt: skip
            columns[name].append(value)
        labels.append(1.0 if rating >= 4 else 0.0)
    arrays = {
        name: np.asarray(values, np.float32 if name == "age" else object)
        for name, values in columns.items()
    }
    return from_arrays(
        "movielens-100k", MOVIELENS_COLUMNS, arrays, np.float32(labels), seed
    )


def from_arrays(name, columns, arrays, labels, seed):
    """`TabularData` of in-memory columns, split 80/10/10 by `seed`.

    Its `batches` shuffles row indices and gathers each batch's rows at
    once (no per-row structures).

    Args:
        name: str. Dataset name.
        columns: tuple of `Column`.
        arrays: dict of column name to an array of N values (float for
            numeric columns, str for the others).
        labels: float array `[N]`.
        seed: int. Split seed.
    """
    indices = split_indices(len(labels), seed)
    tensors = {}
    for split, index in indices.items():
        features = {
            c.name: tf.constant(
                arrays[c.name][index].astype(np.float32)
                if c.kind == "numeric"
                else arrays[c.name][index].astype(str)
            )
            for c in columns
        }
        tensors[split] = (
            features,
            tf.constant(np.asarray(labels)[index].astype(np.float32)),
        )

    def batcher(split, batch_size, shuffle, shuffle_seed, buffer):
        features, label = tensors[split]
        count = int(label.shape[0])
        rows = tf.data.Dataset.range(count)
        if shuffle:
            # All rows: an index costs 8 bytes, so the buffer is no limit.
            rows = rows.shuffle(
                count, seed=shuffle_seed, reshuffle_each_iteration=True
            )
        return rows.batch(batch_size).map(
            lambda index: (
                {k: tf.gather(v, index) for k, v in features.items()},
                tf.gather(label, index),
            ),
            num_parallel_calls=AUTOTUNE,
        )

    splits = {
        split: tf.data.Dataset.from_tensor_slices(value)
        for split, value in tensors.items()
    }
    return TabularData(name, columns, splits, batcher)


# ------------------------------------------------------------ synthetic --

SYNTHETIC_COLUMNS = (
    Column("user_id", "categorical"),
    Column("item_id", "categorical"),
    Column("user_segment", "categorical"),
    Column("item_category", "categorical"),
    Column("device", "categorical"),
    Column("price", "numeric"),
    Column("user_age", "numeric"),
    Column("tags", "multi_value"),
    Column("title", "text"),
)
_TITLE_WORDS = (
    "super", "classic", "ultra", "mini", "pro", "smart", "eco", "deluxe",
    "basic", "premium", "retro", "turbo", "lite", "max", "prime", "neo",
)  # fmt: skip
_CATEGORY_WORDS = (
    "camera", "phone", "lamp", "shoe", "book", "guitar", "watch", "bike",
    "chair", "kettle",
)  # fmt: skip


def make_synthetic_ctr(num_examples=20_000, seed=0):
    """Generates a CTR dataset whose clicks come from feature interactions.

    Users belong to 5 segments and items to 10 categories; the click logit
    is dominated by a segment × category affinity matrix and a device × tag
    term (pairwise interactions, which the FM part models and a linear model
    cannot), plus small user/item biases, a price effect and a title-word
    effect. 5% of ages are missing (NaN). Deterministic for a seed; split
    80/10/10 by the same seed.
    """
    rng = np.random.default_rng(seed)
    num_users, num_items, num_tags = 500, 300, 20
    user_segment = rng.integers(0, 5, num_users)
    user_age = rng.normal(35, 10, num_users).clip(16, 80).round()
    item_category = rng.integers(0, 10, num_items)
    item_price = rng.lognormal(3.0, 0.5, num_items).round(2)
    item_tags = [
        rng.choice(num_tags, size=rng.integers(1, 4), replace=False)
        for _ in range(num_items)
    ]
    item_words = [
        rng.choice(len(_TITLE_WORDS), size=2, replace=False)
        for _ in range(num_items)
    ]
    affinity = rng.normal(0, 1.6, (5, 10))
    device_tag = rng.normal(0, 0.8, (3, num_tags))
    word_effect = rng.normal(0, 0.4, len(_TITLE_WORDS))
    user_bias = rng.normal(0, 0.3, num_users)
    item_bias = rng.normal(0, 0.3, num_items)

    users = rng.integers(0, num_users, num_examples)
    items = rng.integers(0, num_items, num_examples)
    devices = rng.integers(0, 3, num_examples)
    logits = (
        affinity[user_segment[users], item_category[items]]
        + np.array(
            [device_tag[d, item_tags[i]].mean() for d, i in zip(devices, items)]
        )
        + np.array([word_effect[item_words[i]].sum() for i in items])
        + user_bias[users]
        + item_bias[items]
        - 0.4 * (np.log(item_price[items]) - 3.0)
        - 0.8
    )
    labels = (rng.random(num_examples) < 1 / (1 + np.exp(-logits))).astype(
        np.float32
    )
    ages = user_age[users].astype(np.float32)
    ages[rng.random(num_examples) < 0.05] = np.nan
    arrays = {
        "user_id": np.array([f"u{u}" for u in users], object),
        "item_id": np.array([f"i{i}" for i in items], object),
        "user_segment": np.array(
            [f"s{user_segment[u]}" for u in users], object
        ),
        "item_category": np.array(
            [_CATEGORY_WORDS[item_category[i]] for i in items], object
        ),
        "device": np.array(["mobile", "desktop", "tablet"], object)[devices],
        "price": item_price[items].astype(np.float32),
        "user_age": ages,
        "tags": np.array(
            ["|".join(f"tag{t}" for t in item_tags[i]) for i in items], object
        ),
        "title": np.array(
            [
                " ".join(_TITLE_WORDS[w] for w in item_words[i]).title()
                + f" {_CATEGORY_WORDS[item_category[i]]} {i}"
                for i in items
            ],
            object,
        ),
    }
    return from_arrays("synthetic", SYNTHETIC_COLUMNS, arrays, labels, seed)


def read_ctr_dataset(name, data_dir=None, seed=0):
    """Reads a CTR dataset by its `--dataset` name."""
    if name == "synthetic":
        return make_synthetic_ctr(seed=seed)
    if data_dir is None:
        raise ValueError(f"dataset '{name}' needs --data-dir")
    if name == "criteo":
        return read_criteo(data_dir, seed)
    if name == "movielens-100k":
        return read_movielens(data_dir, seed)
    raise ValueError(
        f"deepfm: unknown dataset '{name}'; valid: synthetic, criteo, "
        "movielens-100k"
    )
