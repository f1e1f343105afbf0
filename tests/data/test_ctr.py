"""Tests for the CTR readers: criteo (real sample), movielens-100k (GroupLens
layout built here, RecBole layout from the real data)."""

import math
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data import ctr, tabular
from tests.recbole_data import movielens_100k_dir

CRITEO_ROWS = 200


@pytest.fixture(scope="module")
def criteo_path(shared_data):
    return os.path.join(shared_data, "criteo_sample.tsv")


def _rows(dataset):
    """All `(features, label)` of a split as hashable tuples (NaN → None)."""
    rows = []
    for features, labels in dataset.batch(4096).as_numpy_iterator():
        for i in range(len(labels)):
            row = [float(labels[i])]
            for name in ctr.CRITEO_NUMERIC:
                value = float(features[name][i])
                row.append(None if math.isnan(value) else value)
            row += [features[n][i].decode() for n in ctr.CRITEO_CATEGORICAL]
            rows.append(tuple(row))
    return rows


def _all_rows(data):
    return {split: _rows(data.splits[split]) for split in ctr.SPLIT_IDS}


def _expected_criteo_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            numbers = [float(v) if v else None for v in fields[1:14]]
            rows.append((float(fields[0]), *numbers, *fields[14:]))
    return rows


def test_criteo_sample_parses_every_row_into_three_splits(criteo_path):
    splits = _all_rows(ctr.read_criteo(criteo_path, seed=0))
    sizes = {name: len(rows) for name, rows in splits.items()}
    assert sum(sizes.values()) == CRITEO_ROWS
    assert all(size > 0 for size in sizes.values()), sizes
    assert sizes["train"] > sizes["val"] and sizes["train"] > sizes["test"]
    # Every file row appears once, parsed field by field: empty integers
    # are NaN, empty categoricals are "".
    got = sorted(sum(splits.values(), []), key=repr)
    assert got == sorted(_expected_criteo_rows(criteo_path), key=repr)


def test_criteo_empty_fields_are_nan_and_empty_string(criteo_path):
    # First line of the sample: I1 is empty, I2 = 3; C19 and C20 are empty.
    data = ctr.read_criteo(criteo_path, seed=0)
    rows = sum(_all_rows(data).values(), [])
    # Two rows have C1 = 05db9164 and I2 = 3; I3 = 260 picks the first line.
    first = next(
        r for r in rows if r[14] == "05db9164" and r[2] == 3.0 and r[3] == 260.0
    )
    assert first[1] is None
    assert first[14 + 18] == "" and first[14 + 19] == ""
    features, _ = next(iter(data.splits["train"].batch(CRITEO_ROWS)))
    assert features["I1"].dtype == tf.float32
    assert features["C1"].dtype == tf.string
    assert np.isnan(features["I1"].numpy()).any()
    assert (features["C19"].numpy() == b"").any()


def test_criteo_split_is_deterministic_per_seed(criteo_path):
    a = _all_rows(ctr.read_criteo(criteo_path, seed=0))
    b = _all_rows(ctr.read_criteo(criteo_path, seed=0))
    c = _all_rows(ctr.read_criteo(criteo_path, seed=1))
    assert a == b
    assert sorted(a["test"], key=repr) != sorted(c["test"], key=repr)
    assert sum(len(rows) for rows in c.values()) == CRITEO_ROWS


def test_criteo_empty_categoricals_map_to_id_0(criteo_path, tmp_path):
    data = ctr.read_criteo(criteo_path, seed=0)
    specs = tabular.fit_features(data, str(tmp_path))
    preprocessor = tabular.TabularPreprocessor(specs, str(tmp_path))
    raw, _ = next(iter(data.splits["test"].batch(CRITEO_ROWS)))
    ids = preprocessor(raw)
    for name in ctr.CRITEO_CATEGORICAL:
        empty = raw[name].numpy() == b""
        assert (ids[name].numpy()[empty] == 0).all(), name
        assert (ids[name].numpy()[~empty] >= 1).all(), name
    assert any((raw[n].numpy() == b"").any() for n in ctr.CRITEO_CATEGORICAL)
    # Numbers pass through; NaN stays NaN for the model to mask.
    np.testing.assert_array_equal(ids["I1"].numpy(), raw["I1"].numpy())


def test_criteo_folder_with_train_txt(criteo_path, tmp_path):
    shutil.copy(criteo_path, tmp_path / "train.txt")
    # train.txt is preferred over any other file in the folder.
    (tmp_path / "other.tsv").write_text("not\ta\tcriteo\tfile\n")
    data = ctr.read_ctr_dataset("criteo", str(tmp_path), seed=0)
    assert sum(len(r) for r in _all_rows(data).values()) == CRITEO_ROWS
    assert [c.name for c in data.columns] == [
        *ctr.CRITEO_NUMERIC,
        *ctr.CRITEO_CATEGORICAL,
    ]


def test_criteo_missing_path_names_it(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ctr.read_criteo(str(tmp_path / "nope"))


def _corrupt(criteo_path, tmp_path, line, edit):
    with open(criteo_path) as f:
        lines = f.read().splitlines()[:6]
    fields = lines[line - 1].split("\t")
    lines[line - 1] = "\t".join(edit(fields))
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _set(index, value):
    def edit(fields):
        fields[index] = value
        return fields

    return edit


@pytest.mark.parametrize(
    "line, edit, what",
    [
        (3, lambda fields: fields[:-1], "expected 40 tab-separated fields"),
        (2, _set(5, "12x"), "I1..I13 must be numbers"),  # I5
        (4, _set(0, "yes"), "label must be 0 or 1"),
    ],
    ids=["field_count", "non_number_in_I5", "bad_label"],
)
def test_criteo_malformed_line_names_file_and_line(
    criteo_path, tmp_path, line, edit, what
):
    path = _corrupt(criteo_path, tmp_path, line, edit)
    data = ctr.read_criteo(path, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _all_rows(data)
    assert f"{path}:{line}: {what}" in str(error.value)
    # The pass that fits vocabularies fails the same way.
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(path)):
        tabular.fit_features(data, str(tmp_path / "vocab"))


# ------------------------------------------------------------ movielens --

GENRES = ctr.MOVIELENS_GENRES


def _item_line(item_id, title, genres):
    flags = ["1" if g in genres else "0" for g in GENRES]
    return "|".join(
        [str(item_id), title, "01-Jan-1995", "", "http://x/?t"] + flags
    )


USERS = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|23|M|writer|E2A"]
ITEMS = [
    _item_line(1, "Toy Story (1995)", ("Animation", "Children's", "Comedy")),
    _item_line(2, "Café Society (1995)", ("Drama",)),
    _item_line(3, "Unknown Film (1996)", ()),
]
RATINGS = [  # user, item, rating
    (1, 1, 5), (1, 2, 3), (1, 3, 4), (2, 1, 1), (2, 2, 4), (2, 3, 2),
    (3, 1, 4), (3, 2, 5), (3, 3, 3), (1, 1, 2),
]  # fmt: skip


def _write_grouplens(folder, users=USERS, items=ITEMS, ratings=None):
    folder.mkdir(parents=True, exist_ok=True)
    if ratings is None:
        ratings = [f"{u}\t{i}\t{r}\t881250949" for u, i, r in RATINGS]
    (folder / "u.user").write_bytes(("\n".join(users) + "\n").encode("latin-1"))
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.data").write_text("\n".join(ratings) + "\n")
    return str(folder)


def _movielens_rows(data):
    rows = []
    for split in ctr.SPLIT_IDS:
        for features, label in data.splits[split].as_numpy_iterator():
            row = {
                k: v.decode() if isinstance(v, bytes) else float(v)
                for k, v in features.items()
            }
            rows.append((row, float(label), split))
    return rows


def test_movielens_grouplens_layout(tmp_path):
    data = ctr.read_ctr_dataset(
        "movielens-100k", _write_grouplens(tmp_path / "ml-100k"), seed=0
    )
    assert [c.name for c in data.columns] == [
        "user_id", "item_id", "gender", "occupation", "zip_code", "age",
        "genres", "title",
    ]  # fmt: skip
    rows = _movielens_rows(data)
    assert len(rows) == len(RATINGS)
    assert sorted(split for *_, split in rows).count("train") == 8
    got = sorted(
        (r["user_id"], r["item_id"], label, r["genres"]) for r, label, _ in rows
    )
    genres = {"1": "Animation|Children's|Comedy", "2": "Drama", "3": ""}
    want = sorted(
        (str(u), str(i), 1.0 if r >= 4 else 0.0, genres[str(i)])
        for u, i, r in RATINGS
    )
    assert got == want
    by_item = {r["item_id"]: r for r, _, _ in rows}
    assert by_item["2"]["title"] == "Café Society (1995)"  # latin-1 decoded
    user_3 = next(r for r, _, _ in rows if r["user_id"] == "3")
    assert user_3["age"] == 23.0 and user_3["gender"] == "M"
    assert user_3["occupation"] == "writer" and user_3["zip_code"] == "E2A"
    spec = data.splits["train"].element_spec[0]
    assert spec["age"].dtype == tf.float32 and spec["title"].dtype == tf.string


def test_movielens_split_is_deterministic(tmp_path):
    folder = _write_grouplens(tmp_path / "ml-100k")
    a = _movielens_rows(ctr.read_movielens(folder, seed=0))
    b = _movielens_rows(ctr.read_movielens(folder, seed=0))
    assert a == b


def _bad_line(lines, number, line):
    lines = list(lines)
    lines[number - 1] = line
    return lines


GOOD = "1\t1\t5\t1"


@pytest.mark.parametrize(
    "file, number, kwargs, what",
    [
        ("u.data", 2, {"ratings": [GOOD, "1\t2\t3", GOOD]},
         "expected 4 fields"),
        ("u.data", 3, {"ratings": [GOOD, GOOD, "1\t3\tfour\t1"]},
         "rating must be a number, got 'four'"),
        ("u.data", 2, {"ratings": [GOOD, "9\t2\t3\t1"]},
         "unknown user id '9'"),
        ("u.user", 2, {"users": _bad_line(USERS, 2, "2|53|F|other")},
         "expected 5 fields"),
        ("u.item", 3, {"items": _bad_line(ITEMS, 3, "3|Short|x")},
         "expected 24 fields"),
    ],
    ids=["field_count", "rating", "unknown_user", "user_fields", "item_fields"],
)  # fmt: skip
def test_movielens_malformed_line_names_file_and_line(
    tmp_path, file, number, kwargs, what
):
    folder = _write_grouplens(tmp_path / "ml-100k", **kwargs)
    with pytest.raises(ValueError) as error:
        ctr.read_movielens(folder)
    assert f"{os.path.join(folder, file)}:{number}: " in str(error.value)
    assert what in str(error.value)


def test_movielens_folder_without_data_names_layouts(tmp_path):
    with pytest.raises(ValueError, match="u.data .*\\*.inter"):
        ctr.read_movielens(str(tmp_path))


@pytest.fixture(scope="module")
def recbole_movielens():
    return ctr.read_movielens(movielens_100k_dir(), seed=0)


def test_movielens_recbole_layout_real_data(recbole_movielens):
    data = recbole_movielens
    sizes, positives, first = {}, 0, None
    for split in ctr.SPLIT_IDS:
        sizes[split] = 0
        for features, labels in data.splits[split].batch(50_000):
            sizes[split] += len(labels)
            positives += int(labels.numpy().sum())
            ids = zip(features["user_id"].numpy(), features["item_id"].numpy())
            for i, (user, item) in enumerate(ids):
                if (user, item) == (b"196", b"242"):
                    first = {k: v[i].numpy() for k, v in features.items()}
                    first["label"] = labels[i].numpy()
    assert sizes == {"train": 80_000, "val": 10_000, "test": 10_000}
    assert positives == 55_375  # ratings 4 and 5 in MovieLens-100k
    # The first line of ml-100k.inter: user 196 rated item 242 with 3.
    assert first["label"] == 0.0
    assert first["title"] == b"Kolya"
    assert first["genres"] == b"Comedy"
    assert (first["gender"], first["occupation"]) == (b"M", b"writer")
    assert first["age"] == 49.0 and first["zip_code"] == b"55105"


def test_movielens_recbole_genres_are_pipe_joined(recbole_movielens):
    features, _ = next(iter(recbole_movielens.splits["train"].batch(20_000)))
    genres = {
        g for v in features["genres"].numpy() for g in v.decode().split("|")
    }
    assert genres <= set(GENRES) and "Children's" in genres
    assert len(genres) >= 18


def test_criteo_split_does_not_depend_on_the_folder(criteo_path, tmp_path):
    copy = tmp_path / "elsewhere" / os.path.basename(criteo_path)
    copy.parent.mkdir()
    shutil.copy(criteo_path, copy)
    here = _all_rows(ctr.read_criteo(criteo_path, seed=3))
    there = _all_rows(ctr.read_criteo(str(copy), seed=3))
    assert {k: sorted(v, key=repr) for k, v in here.items()} == {
        k: sorted(v, key=repr) for k, v in there.items()
    }
