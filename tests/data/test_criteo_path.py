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
from mmzoo.data import ctr, tabular
from mmzoo.data.vocab import StreamingCounter
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
    for features, labels in batches:
        for label, number, category in zip(
            labels.numpy(),
            features["I1"].numpy(),
            features["C1"].numpy(),
            strict=True,
        ):
            rows.append((float(label), float(np.nan_to_num(number, nan=-1)),
                         category.decode()))  # fmt: skip
    return rows


def test_batches_hold_every_row_of_the_split_once(criteo_files):
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


def test_shuffle_differs_per_epoch_and_repeats_per_seed(criteo_files):
    folder, _ = criteo_files
    data = ctr.read_criteo(folder, seed=0)
    dataset = data.batches("train", 32, shuffle=True, seed=5)
    first, second = _label_and_ids(dataset), _label_and_ids(dataset)
    assert first != second and sorted(first) == sorted(second)
    again = data.batches("train", 32, shuffle=True, seed=5)
    assert _label_and_ids(again) == first


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
