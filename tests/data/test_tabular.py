"""Tests for feature fitting and the shared tabular preprocessor."""

import gc
import math
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data import tabular, text
from mmzoo.data.tabular import Column, TabularData
from mmzoo.data.vocab import OOV_TOKEN, PAD_TOKEN, Vocabulary
from mmzoo.layers.interactions import PooledEmbedding

COLUMNS = (
    Column("color", "categorical"),
    Column("shop", "categorical"),
    Column("price", "numeric"),
    Column("tags", "multi_value"),
    Column("title", "text"),
)
TRAIN = {
    "color": ["red", "red", "blue", "red", "blue", "green", ""],
    "shop": ["s1", "s2", "s3", "s1", "", "s2", "s9"],
    "price": [1.0, 2.0, np.nan, 3.0, np.inf, 2.0, 2.0],
    "tags": ["a|b|c", "a", "", "b|a", "a||c", "c", "a|b"],
    "title": [
        "Toy Story (1995)",
        "toy STORY 2",
        "",
        "Story-time, again!",
        "Café Society",
        "toy",
        "again",
    ],
}


def _data(columns=COLUMNS, train=None):
    train = train or TRAIN
    arrays = {
        c.name: np.asarray(
            train[c.name],
            np.float32 if c.kind == "numeric" else object,
        )
        for c in columns
    }
    labels = np.zeros(len(next(iter(arrays.values()))), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((arrays, labels))
    return TabularData("toy", columns, {"train": dataset})


def _by_name(specs):
    return {spec.name: spec for spec in specs}


DEFAULTS = {
    "color": "red",
    "shop": "s1",
    "price": 1.0,
    "tags": "a",
    "title": "toy",
}


def _batch(size, **columns):
    """A raw batch of `size` rows: given columns, defaults elsewhere."""
    raw = {name: [value] * size for name, value in DEFAULTS.items()}
    raw.update(columns)
    return {
        name: tf.constant(values, tf.float32 if name == "price" else tf.string)
        for name, values in raw.items()
    }


@pytest.fixture
def fitted(tmp_path):
    directory = str(tmp_path / "vocab")
    specs = tabular.fit_features(
        _data(),
        directory,
        hash_buckets={"shop": 16},
        max_lengths={"tags": 2},
        min_count=1,
    )
    return specs, directory, tabular.TabularPreprocessor(specs, directory)


def _vocab(directory, name):
    with open(os.path.join(directory, f"{name}.txt"), encoding="utf-8") as f:
        return f.read().splitlines()


def test_vocabulary_ids_missing_oov_then_by_frequency(fitted):
    specs, directory, preprocessor = fitted
    assert _vocab(directory, "color") == [
        PAD_TOKEN,
        OOV_TOKEN,
        "red",
        "blue",
        "green",
    ]
    assert _by_name(specs)["color"].vocabulary_size == 5
    colors = ["red", "blue", "green", "", "purple", " red "]
    ids = preprocessor(_batch(6, color=colors))["color"].numpy()
    np.testing.assert_array_equal(ids, [2, 3, 4, 0, 1, 2])
    assert ids.dtype == np.int32


def test_vocabulary_size_and_min_count_send_rare_values_to_oov(tmp_path):
    columns = (Column("color", "categorical"),)
    for kwargs in ({"max_vocabulary_size": 2, "min_count": 1}, {}):
        # The default min_count (2) sends the single "green" to OOV.
        directory = str(tmp_path / str(len(kwargs)))
        specs = tabular.fit_features(_data(columns), directory, **kwargs)
        assert specs[0].vocabulary_size == 4  # pad, oov, red, blue
        preprocessor = tabular.TabularPreprocessor(specs, directory)
        ids = preprocessor({"color": tf.constant(["red", "blue", "green"])})
        np.testing.assert_array_equal(ids["color"], [2, 3, 1])


def test_hashed_feature_ids(fitted):
    specs, directory, preprocessor = fitted
    shop = _by_name(specs)["shop"]
    assert (shop.hash_buckets, shop.vocabulary_size) == (16, 18)
    assert not os.path.exists(os.path.join(directory, "shop.txt"))
    values = ["s1", "s2", "never-seen", "", "s1", "x" * 100]
    ids = preprocessor(_batch(6, shop=values))
    ids = ids["shop"].numpy()
    assert ids[3] == 0  # empty = missing
    assert ids[0] == ids[4]  # deterministic
    others = np.delete(ids, 3)
    assert ((others >= 2) & (others < 18)).all(), ids  # 0, 1 are reserved
    expected = tf.strings.to_hash_bucket_fast(["s1", "never-seen"], 16) + 2
    np.testing.assert_array_equal(ids[[0, 2]], expected.numpy())


def test_multi_value_ids_are_cut_and_padded(fitted):
    specs, directory, preprocessor = fitted
    assert _by_name(specs)["tags"].max_length == 2
    assert _vocab(directory, "tags")[2:] == ["a", "b", "c"]  # a:5, b:3, c:3
    values = ["a|b|c", "c", "", "a||c", "zzz|b", "|"]
    ids = preprocessor(_batch(6, tags=values))["tags"]
    np.testing.assert_array_equal(
        ids, [[2, 3], [4, 0], [0, 0], [2, 4], [1, 3], [0, 0]]
    )


def test_pooling_ignores_padding():
    ids = np.array([[2, 3], [4, 0], [0, 0], [1, 1]], np.int32)
    for combiner in ("mean", "sum"):
        layer = PooledEmbedding(5, 3, combiner=combiner)
        layer.build(ids.shape)
        table = np.arange(15, dtype="float32").reshape(5, 3) + 1.0
        layer.embeddings.assign(table)
        pooled = np.asarray(layer(ids))
        first = table[2] + table[3]
        np.testing.assert_allclose(
            pooled[0], first / 2 if combiner == "mean" else first
        )
        np.testing.assert_allclose(pooled[1], table[4])  # not halved by pad
        np.testing.assert_allclose(pooled[2], np.zeros(3))  # all padding
        np.testing.assert_allclose(
            pooled[3], table[1] * (1 if combiner == "mean" else 2)
        )


def test_multi_value_default_length_is_95th_percentile(tmp_path):
    columns = (Column("tags", "multi_value"),)
    # 90 rows of 1 value, 9 of 3, one outlier of 39: p95 is 3.
    outlier = "|".join(f"x{i}" for i in range(39))
    tags = ["a"] * 90 + ["a|b|c"] * 9 + [outlier]
    specs = tabular.fit_features(_data(columns, {"tags": tags}), str(tmp_path))
    assert specs[0].max_length == 3
    tags = ["|".join(str(i) for i in range(50))] * 3
    specs = tabular.fit_features(_data(columns, {"tags": tags}), str(tmp_path))
    assert specs[0].max_length == 32  # capped


TEXTS = [
    "Toy Story (1995)",
    "  multiple   spaces\tand\ttabs ",
    "Story-time, again!",
    "Café Society",
    "ÀÉÎ upper ÇASE",
    "",
    "!!!",
    "x1 Y2_z3",
]


def test_text_tokenize_matches_python_twin():
    graph = text.tokenize(tf.constant(TEXTS)).to_list()
    graph = [[t.decode() for t in row] for row in graph]
    assert graph == [text.tokenize_py(t) for t in TEXTS]
    assert graph[0] == ["toy", "story", "1995"]
    assert graph[2] == ["story", "time", "again"]
    assert graph[5] == [] and graph[6] == []
    # Invalid UTF-8 from a client is replaced, not an error.
    bad = text.tokenize(tf.constant([b"ok \xff\xfe bytes"])).to_list()
    assert bad == [[b"ok", b"bytes"]]


def test_text_feature_ids(fitted):
    specs, directory, preprocessor = fitted
    vocab = _vocab(directory, "title")
    assert vocab[2:5] == ["story", "toy", "again"]  # 3, 3, 2 occurrences
    title = _by_name(specs)["title"]
    values = ["Toy Story!", "", "unknown words here", "AGAIN again again"]
    ids = preprocessor(_batch(4, title=values))
    ids = ids["title"].numpy()
    assert ids.shape == (4, title.max_length)
    row = list(ids[0][:2])
    assert row == [vocab.index("toy"), vocab.index("story")]
    assert (ids[0][2:] == 0).all() and (ids[1] == 0).all()
    assert (ids[2][:3] == 1).all()  # OOV words keep their place
    assert (ids[3][: title.max_length] == vocab.index("again")).all()


def test_numeric_statistics_ignore_non_finite(fitted):
    specs, _, preprocessor = fitted
    price = _by_name(specs)["price"]
    finite = np.array([1.0, 2.0, 3.0, 2.0, 2.0])
    assert math.isclose(price.mean, finite.mean(), rel_tol=1e-6)
    assert math.isclose(price.std, finite.std(), rel_tol=1e-6)
    values = [np.nan, -np.inf, 4.5]
    out = preprocessor(_batch(3, price=values))
    out = out["price"].numpy()
    assert out.dtype == np.float32
    assert np.isnan(out[0]) and out[1] == -np.inf and out[2] == 4.5


def test_constant_numeric_column_gets_unit_std(tmp_path):
    columns = (Column("x", "numeric"),)
    specs = tabular.fit_features(
        _data(columns, {"x": [5.0, 5.0, np.nan]}), str(tmp_path)
    )
    assert (specs[0].mean, specs[0].std) == (5.0, 1.0)


def test_empty_train_split_is_an_error(tmp_path):
    columns = (Column("color", "categorical"),)
    data = _data(columns, {"color": ["a"]})
    data.splits["train"] = data.splits["train"].take(0)
    with pytest.raises(ValueError, match="train split is empty"):
        tabular.fit_features(data, str(tmp_path))


def test_fitting_reports_progress_and_each_splits_rows(
    tmp_path, monkeypatch, caplog
):
    # A line at every step (the CLI shows these; a large file takes
    # minutes), then what was fitted and the rows of each split.
    monkeypatch.setattr(tabular, "PROGRESS_SECONDS", 0.0)
    data = _data()
    data.splits["val"] = data.splits["train"].take(3)
    directory = str(tmp_path / "vocab")
    with caplog.at_level("INFO", logger="mmzoo.data.tabular"):
        tabular.fit_features(data, directory, hash_buckets={"shop": 16})
    messages = [
        r.getMessage() for r in caplog.records if r.name == tabular.__name__
    ]
    progress = (
        r"toy: fitting vocabularies and statistics: {} rows read "
        r"\([\d,]+ rows/s\)"
    )
    assert len(messages) == 3, messages
    assert re.fullmatch(progress.format(7), messages[0]), messages
    assert re.fullmatch(progress.format(10), messages[1]), messages
    assert re.fullmatch(
        r"toy: 10 rows \(train 7, val 3\); vocabularies of 3 columns "
        rf"written to {re.escape(directory)}, 1 hashed; \d+\.\d s",
        messages[2],
    ), messages
    assert data.rows == {"train": 7, "val": 3}


def test_missing_feature_names_it(fitted):
    _, _, preprocessor = fitted
    raw = _batch(1)
    del raw["title"]
    with pytest.raises(ValueError, match="missing feature 'title'"):
        preprocessor(raw)


def test_pipeline_batches_then_preprocesses(fitted):
    specs, _, preprocessor = fitted
    dataset = _data().splits["train"]
    batches = list(tabular.make_pipeline(dataset, preprocessor, 4))
    assert [len(labels) for _, labels in batches] == [4, 3]
    inputs, _ = batches[0]
    assert set(inputs) == {s.name for s in specs}
    assert inputs["tags"].shape == (4, 2)


def test_saved_model_preprocessor_equals_eager_with_vocab_assets(
    fitted, tmp_path
):
    specs, directory, preprocessor = fitted
    signature = {
        s.name: tf.TensorSpec(
            [None], tf.float32 if s.kind == "numeric" else tf.string, s.name
        )
        for s in specs
    }
    module = tf.Module()
    module.preprocessor = preprocessor
    module.serve = tf.function(
        lambda raw: module.preprocessor(raw), input_signature=[signature]
    )
    path = str(tmp_path / "saved")
    tf.saved_model.save(module, path)
    raw = _batch(
        4,
        color=["red", "purple", "", "blue"],
        shop=["s1", "new", "", "s3"],
        price=[1.0, np.nan, np.inf, -2.0],
        tags=["a|b|c", "q", "", "c|a"],
        title=["Toy story", "", "Unseen!", "again AGAIN"],
    )
    expected = {k: v.numpy() for k, v in preprocessor(raw).items()}

    assets = os.listdir(os.path.join(path, "assets"))
    assert sorted(assets) == ["color.txt", "tags.txt", "title.txt"]
    shutil.rmtree(directory)  # the export must not need the original files
    loaded = tf.saved_model.load(path)
    served = {k: v.numpy() for k, v in loaded.serve(raw).items()}
    assert set(served) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(served[name], want, err_msg=name)
        assert served[name].dtype == want.dtype, name
    for name in ("color", "tags", "title"):
        assert served[name].dtype == np.int32


def test_values_spelling_reserved_tokens_are_unseen_values(fitted):
    _, _, preprocessor = fitted
    ids = preprocessor(_batch(3, color=["[PAD]", "[OOV]", "red"]))[
        "color"
    ].numpy()
    np.testing.assert_array_equal(ids, [1, 1, 2])


def test_each_vocabulary_reads_its_own_file(tmp_path):
    # Named lookup tables took their shared name from the Asset's repr (a
    # memory address): a vocabulary created where a freed one had lived
    # answered with the freed one's table, every value OOV.
    for i in range(30):
        path = tmp_path / f"v{i}.txt"
        path.write_text(f"[PAD]\n[OOV]\nword{i}\n")
        vocabulary = Vocabulary(str(path))
        ids = vocabulary.lookup(tf.constant([f"word{i}", "word-1"]))
        np.testing.assert_array_equal(ids, [2, 1], err_msg=f"vocabulary {i}")
        del vocabulary
        gc.collect()
