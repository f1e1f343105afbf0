"""The batch-level CTR data path (`TabularData.batches`): Criteo lines
shuffled as text and parsed per batch, in-memory columns gathered per
batch, vocabularies counted in bounded memory (`StreamingCounter`), and
the DeepFM pipeline's cache. The speed figures are
`benchmarks/criteo_scale.py`'s."""

import os

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.data import ctr, tabular, textfile
from mmzoo.data.vocab import (
    OOV_TOKEN,
    PAD_TOKEN,
    StreamingCounter,
    write_vocabulary,
)
from mmzoo.registry import get_task


@pytest.fixture(scope="module")
def criteo_files(shared_data, tmp_path_factory):
    """The real 200-row sample, twice (two files: the interleaved read)."""
    sample = os.path.join(shared_data, "criteo_sample.tsv")
    folder = tmp_path_factory.mktemp("criteo")
    lines = open(sample).read().splitlines()
    for name, part in (("day_0.txt", lines[:120]), ("day_1.txt", lines[120:])):
        (folder / name).write_text("\n".join(part) + "\n")
    return str(folder), lines


def _label_and_ids(batches):
    """Each row as (label, I1, C1) in the order the batches hold them."""
    rows = []
    for features, labels, *_ in batches:
        for label, number, category in zip(
            labels.numpy(),
            features["I1"].numpy(),
            features["C1"].numpy(),
            strict=True,
        ):
            rows.append((float(label), float(np.nan_to_num(number, nan=-1)),
                         category.decode()))  # fmt: skip
    return rows


@pytest.fixture(params=[None, 1000], ids=["2MiB-blocks", "1000-byte-blocks"])
def block_bytes(request, monkeypatch):
    """The Criteo reader with its usual blocks (a sample file is one
    block) and with blocks of 1,000 bytes (lines cut across blocks)."""
    if request.param:
        monkeypatch.setattr(textfile, "BLOCK_BYTES", request.param)
    return request.param


def test_batches_hold_every_row_of_the_split_once(criteo_files, block_bytes):
    folder, lines = criteo_files
    data = ctr.read_criteo(folder, seed=0)
    seen = []
    for split in ctr.SPLIT_IDS:
        plain = _label_and_ids(data.batches(split, 16))
        shuffled = _label_and_ids(data.batches(split, 16, shuffle=True))
        # The rows of `splits` (the simple view), in batches of 16 but
        # the last; shuffling changes the order, not the rows.
        assert plain == _label_and_ids(data.splits[split].batch(16))
        assert sorted(shuffled) == sorted(plain)
        seen += plain
    assert len(seen) == len(lines)


@pytest.mark.parametrize("reader", ["criteo", "in-memory"])
def test_fit_batches_hold_the_train_rows_and_fit_their_counts(
    criteo_files, tmp_path, reader
):
    folder, _ = criteo_files
    if reader == "criteo":
        # One read of the files: chunks of the train lines as read.
        data = ctr.read_criteo(folder, seed=0)
        assert data.fit_batcher is not None
        assert _label_and_ids(data.fit_batches(16)) == _label_and_ids(
            data.batches("train", 16)
        )
    else:
        data = ctr.make_synthetic_ctr(num_examples=300, seed=0)
        assert data.fit_batcher is None
    # The fitted vocabularies and statistics are those of a plain Python
    # count over the train rows.
    counts = {c.name: {} for c in data.columns if c.kind == "categorical"}
    numbers = {c.name: [] for c in data.columns if c.kind == "numeric"}
    for features, _ in data.splits["train"].as_numpy_iterator():
        for name, column in counts.items():
            value = features[name].decode().strip()
            if value:
                column[value] = column.get(value, 0) + 1
        for name, values in numbers.items():
            values.append(features[name])
    specs = tabular.fit_features(data, str(tmp_path / "vocab"), min_count=2)
    for spec in specs:
        if spec.name in counts:
            kept = sorted(
                (-n, v) for v, n in counts[spec.name].items() if n >= 2
            )
            path = tmp_path / "vocab" / f"{spec.name}.txt"
            tokens = path.read_text().splitlines()[2:]
            assert tokens == [v for _, v in kept], spec.name
        elif spec.name in numbers:
            values = np.asarray(numbers[spec.name], np.float64)
            values = values[np.isfinite(values)]
            assert spec.mean == pytest.approx(values.mean(), rel=1e-9)
    # The same pass counted every split's rows, so that batches state
    # their number (Keras then knows an epoch's length from the first).
    for split in data.splits:
        rows = sum(1 for _ in data.splits[split])
        assert data.rows[split] == rows, split
        batches = data.batches(split, 16, shuffle=True)
        assert int(batches.cardinality()) == -(-rows // 16)
        assert sum(1 for _ in batches) == -(-rows // 16)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"a",
        b"a\n",
        b"\n\n",
        b"ab\ncd",
        b"ab\r\ncd\r\n",
        b"a\rb\nx\r\ry\r\n\r\n\n\r",
        "caf\u00e9\n\u00fc".encode(),
        b"x" * 50 + b"\nyyy\n\nz",
    ],
)
def test_line_blocks_are_text_line_dataset_lines(tmp_path, content):
    path = tmp_path / "lines.txt"
    path.write_bytes(content)
    expected = list(tf.data.TextLineDataset(str(path)).as_numpy_iterator())
    # Blocks of 1, 3 and 7 bytes cut lines, carriage returns and UTF-8
    # characters anywhere; 2 MiB holds the file whole.
    for block_bytes in (1, 3, 7, None):
        lines, numbers = [], []
        for block_numbers, block_lines in textfile.line_blocks(
            str(path), len(content), block_bytes
        ).as_numpy_iterator():
            lines += list(block_lines)
            numbers += block_numbers.tolist()
        assert lines == expected, block_bytes
        assert numbers == list(range(len(expected))), block_bytes


def test_criteo_splits_are_made_on_first_use(criteo_files):
    folder, _ = criteo_files
    splits = ctr.read_criteo(folder, seed=0).splits
    assert isinstance(splits, tabular.LazySplits)
    assert list(splits) == ["train", "val", "test"] and not splits._made
    test = splits["test"]
    assert splits["test"] is test and list(splits._made) == ["test"]
    with pytest.raises(KeyError):
        splits["other"]


def test_a_bad_line_in_any_split_fails_fitting(
    criteo_files, tmp_path, block_bytes
):
    folder, lines = criteo_files
    data = ctr.read_criteo(folder, seed=0)
    # The first line of the val and of the test split, in day_0.txt.
    splits = ctr._split_of(
        tf.constant(os.path.join(folder, "day_0.txt")),
        tf.range(120, dtype=tf.int64),
        0,
    ).numpy()
    for split in (1, 2):
        line = int(np.argmax(splits == split))
        broken = tmp_path / f"split{split}"
        broken.mkdir()
        bad = lines[:120]
        bad[line] = "2" + bad[line][1:]
        (broken / "day_0.txt").write_text("\n".join(bad) + "\n")
        data = ctr.read_criteo(str(broken), seed=0)
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=f"day_0.txt:{line + 1}: label must be 0 or 1",
        ):
            tabular.fit_features(data, str(broken / "vocab"))


def test_shuffle_differs_per_epoch_and_repeats_per_seed(criteo_files):
    folder, _ = criteo_files
    data = ctr.read_criteo(folder, seed=0)
    dataset = data.batches("train", 32, shuffle=True, seed=5)
    first, second = _label_and_ids(dataset), _label_and_ids(dataset)
    assert first != second and sorted(first) == sorted(second)
    again = data.batches("train", 32, shuffle=True, seed=5)
    assert _label_and_ids(again) == first


def test_training_shuffles_blocks_then_lines_in_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(textfile, "BLOCK_BYTES", 1000)  # ~3 lines a block
    for name in ("day_0.txt", "day_1.txt"):  # Criteo-shaped, 280 bytes
        (tmp_path / name).write_text(
            "".join(
                f"{n % 2}\t" + "\t".join([str(n)] * 13) + "\t"
                + "\t".join([f"{n:08x}"] * 26) + "\n"
                for n in range(150)
            )
        )  # fmt: skip
    files = ctr._criteo_files(str(tmp_path))

    def lines_in_order(buffer, seed=3):
        blocks = ctr._criteo_blocks(files, "train", 0, shuffle=True)
        shuffled = ctr._shuffle_blocks(blocks, buffer, seed)
        return [
            (int(f), int(n))
            for files_, numbers, _ in shuffled.as_numpy_iterator()
            for f, n in zip(files_, numbers, strict=True)
        ]

    plain_blocks = list(ctr._criteo_blocks(files, "train", 0, shuffle=False))
    plain = [
        (int(f), int(n))
        for files_, numbers, _ in plain_blocks
        for f, n in zip(files_.numpy(), numbers.numpy(), strict=True)
    ]
    following = dict(zip(plain, plain[1:]))

    def breaks(order):
        """Places where a line is not followed by the next train line of
        its file."""
        return sum(following.get(a) != b for a, b in zip(order, order[1:]))

    # A window of one line: blocks come in random order, lines within a
    # block in file order, so the order breaks only between blocks.
    one = lines_in_order(1)
    assert sorted(one) == sorted(plain) and one != plain
    assert 0 < breaks(one) < len(plain_blocks)
    # One window for everything: the lines themselves are permuted.
    everything = lines_in_order(10_000)
    assert sorted(everything) == sorted(plain)
    assert breaks(everything) > 0.9 * len(plain)
    assert len(plain_blocks) < 0.5 * len(plain)


def test_in_memory_batches_gather_rows():
    data = ctr.make_synthetic_ctr(num_examples=300, seed=0)
    plain = [
        (float(y), x["user_id"].decode())
        for x, y in data.splits["val"].as_numpy_iterator()
    ]
    shuffled = [
        (float(y), u.decode())
        for x, labels in data.batches("val", 7, shuffle=True, seed=1)
        for y, u in zip(labels.numpy(), x["user_id"].numpy(), strict=True)
    ]
    assert sorted(shuffled) == sorted(plain) and shuffled != plain


def test_streaming_counter_counts_prunes_and_gives_up():
    counter = StreamingCounter(max_distinct=6, prune_below=2)
    counter.update(tf.constant(["a", "b", "a", "", "c"]))
    counter.update(tf.ragged.constant([["a", "c"], ["d"]]))
    # Values seen once have no string yet (they would be OOV at min 2).
    assert counter.counts() == {"a": 3, "c": 2}
    # 7 distinct > 6: the values seen once are dropped; a and c stay.
    counter.update(tf.constant(["e", "f", "g"]))
    assert not counter.overflowed
    assert counter.counts() == {"a": 3, "c": 2}
    assert int(counter.table.size()) == 2
    # Four more frequent values: more than half of the bound after
    # pruning, so the column cannot be counted within it.
    counter.update(tf.constant(["p", "p", "q", "q", "r", "r", "s", "s", "t"]))
    assert counter.overflowed
    with pytest.raises(ValueError, match="more than 6 distinct values"):
        counter.counts()
    everything = StreamingCounter(max_distinct=100, prune_below=1)
    everything.update(tf.constant(["x", "y", "x"]))
    assert everything.counts() == {"x": 2, "y": 1}


def test_streaming_counter_prunes_without_holding_a_value_twice():
    # 70,000 values seen once, then 40,000 seen twice: over the bound of
    # 100,000, so the values seen once are dropped; the others, seen once
    # more after the prune, must each be held once, with count 3. (Erasing
    # from TensorFlow's dense table and inserting again held some twice:
    # inserted after the values seen once, they sit past them on their
    # probe sequences.)
    values = [f"v{i}" for i in range(40_000)]
    singles = [f"s{i}" for i in range(70_000)]
    counter = StreamingCounter(max_distinct=100_000, prune_below=2)
    counter.update(tf.constant(singles + values * 2))
    assert int(counter.table.size()) == 40_000 and not counter.overflowed
    counter.update(tf.constant(values))
    pairs = list(counter.most_common())
    assert len(pairs) == 40_000
    assert dict(pairs) == {value: 3 for value in values}
    assert int(counter.table.size()) == 40_000


def test_write_vocabulary_reads_ordered_counts_only_as_far_as_needed(
    tmp_path,
):
    counter = StreamingCounter(max_distinct=100, prune_below=2)
    counter.update(tf.constant(list("aaabbbccdde") + ["[OOV]"] * 5))
    # Most frequent first, ties by value; values seen once have no string.
    assert list(counter.most_common()) == [
        ("[OOV]", 5), ("a", 3), ("b", 3), ("c", 2), ("d", 2),
    ]  # fmt: skip
    read = []

    def pairs():
        for pair in counter.most_common():
            read.append(pair[0])
            yield pair

    tokens = write_vocabulary(pairs(), str(tmp_path / "v.txt"), max_size=2)
    # A value spelling a reserved token is skipped, as for a dict; the
    # rest is not read once two tokens are kept.
    assert tokens == [PAD_TOKEN, OOV_TOKEN, "a", "b"]
    assert read == ["[OOV]", "a", "b"]
    from_dict = write_vocabulary(
        counter.counts(), str(tmp_path / "d.txt"), max_size=2
    )
    assert from_dict == tokens


def test_too_varied_column_is_hashed(tmp_path, caplog):
    columns = (tabular.Column("id", "categorical"),)
    ids = np.array([f"v{i % 40}" for i in range(400)], object)
    data = ctr.from_arrays("toy", columns, {"id": ids},
                           np.zeros(400, np.float32), 0)  # fmt: skip
    (spec,) = tabular.fit_features(
        data, str(tmp_path / "a"), max_vocabulary_size=50, max_distinct=60
    )
    assert spec.vocabulary_size == 42 and not spec.hash_buckets
    (spec,) = tabular.fit_features(
        data, str(tmp_path / "b"), max_vocabulary_size=8, max_distinct=20
    )
    # Ids: padding, OOV, then the 8 buckets.
    assert spec.hash_buckets == 8 and spec.vocabulary_size == 10
    assert "column id has more than 10 distinct values" in caplog.text


def test_deepfm_pipeline_cache(criteo_files, tmp_path):
    folder, _ = criteo_files
    task = get_task("deepfm")
    config = mmzoo.get_config("deepfm", "tiny", cache="memory")
    prepared = task.prepare(config, "criteo", folder, str(tmp_path), 0)
    assert prepared.config.cache == "memory"
    train = task.pipeline(prepared, "train", 16, training=True, seed=0)
    epochs = [
        sorted(map(tuple, np.concatenate([y.numpy()[:, None] for _, y in train]
                                         ).tolist()))
        for _ in range(2)
    ]  # fmt: skip
    assert epochs[0] == epochs[1]
    # File cache: written under the prefix, one file set per split.
    on_disk = mmzoo.get_config("deepfm", "tiny", cache=str(tmp_path / "c"))
    prepared = task.prepare(on_disk, "criteo", folder, str(tmp_path / "p"), 0)
    count = sum(1 for _ in task.pipeline(prepared, "val", 16))
    assert count > 0
    assert any(name.startswith("c-val") for name in os.listdir(tmp_path)), (
        os.listdir(tmp_path)
    )
