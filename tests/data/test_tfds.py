"""Tests for `tfds:` datasets (`mmzoo.data.tfds`), offline.

TFDS's own builders are mocked (`tfds.testing.mock_data`: random examples
of the builder's feature spec, nothing downloaded); two toy builders
defined here are prepared for real in a temporary `data_dir`, for what a
mock does not do (split slices, split metadata, rows without labels).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mmzoo import registry
from mmzoo.data import ctr
from mmzoo.data import tfds as tfds_data
from mmzoo.data.captions import read_image_text_pairs
from mmzoo.data.examples import read_labeled

MOVIELENS = "tfds:movielens/100k-ratings"
COCO = "tfds:coco_captions"


class MmzooToyImages(tfds.core.GeneratorBasedBuilder):
    """Single-label images with a description and a file name; splits
    train/validation/test plus `extra`."""

    VERSION = tfds.core.Version("1.0.0")
    SIZES = {"train": 6, "validation": 4, "test": 4, "extra": 2}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 3)),
                    "label": tfds.features.ClassLabel(
                        names=["cat", "dog", "owl"]
                    ),
                    "description": tfds.features.Text(),
                    "file_name": tfds.features.Text(),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            split: self._generate_examples(split, size)
            for split, size in self.SIZES.items()
        }

    def _generate_examples(self, split, size):
        rng = np.random.default_rng(size)
        for i in range(size):
            yield (
                f"{split}{i}",
                {
                    "image": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                    "label": i % 3,
                    "description": f"{split} picture {i}",
                    "file_name": f"dog_{i}.png",
                },
            )


class MmzooToyTags(tfds.core.GeneratorBasedBuilder):
    """Multi-label tags and captions, some rows without either; `train`
    only."""

    VERSION = tfds.core.Version("1.0.0")
    ROWS = (  # (tags, captions)
        ([0, 2, 0], ["a red  ball", "a\nball"]),
        ([], ["nothing tagged"]),
        ([1], []),
        ([2, 1], ["two things"]),
    )

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(6, 6, 3), encoding_format="jpeg"
                    ),
                    "tags": tfds.features.Sequence(
                        tfds.features.ClassLabel(names=["ball", "cup", "red"])
                    ),
                    "captions": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, (tags, captions) in enumerate(self.ROWS):
            yield (
                i,
                {
                    "image": np.full((6, 6, 3), 40 * i, np.uint8),
                    "tags": tags,
                    "captions": captions,
                },
            )


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    """A TFDS data_dir with both toy builders prepared."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for builder in (MmzooToyImages, MmzooToyTags):
        builder(data_dir=data_dir).download_and_prepare()
    return data_dir


def _mocked_ratings(self, split, decoders=None, read_config=None, **kwargs):
    """Three known MovieLens ratings (`mock_data(as_dataset_fn=...)`)."""
    return tf.data.Dataset.from_tensor_slices(
        {
            "user_id": ["u1", "u2", "u3"],
            "movie_id": ["m1", "m2", "m1"],
            "user_gender": [True, False, True],
            "user_occupation_text": ["writer", "student", "writer"],
            "user_zip_code": ["90210", "10001", "90210"],
            "raw_user_age": [33.0, 21.0, 33.0],
            "bucketized_user_age": [25.0, 18.0, 25.0],
            "movie_genres": tf.ragged.constant([[0, 3], [], [7]], tf.int64),
            "movie_title": ["Toy Story (1995)", "Heat (1995)", "Toy Story"],
            "user_rating": [4.0, 3.5, 5.0],
            "timestamp": tf.zeros([3], tf.int64),
        }
    )


# ---------------------------------------------------------------- names --


@pytest.mark.parametrize(
    "dataset, name, split_slice",
    [
        ("tfds:movielens/100k-ratings", "movielens/100k-ratings", ""),
        ("tfds:movielens:100k-ratings", "movielens/100k-ratings", ""),
        ("tfds:coco_captions[:2000]", "coco_captions", "[:2000]"),
        ("tfds:mnist:3.0.1[10:20%]", "mnist:3.0.1", "[10:20%]"),
        (
            "tfds:movielens:1m-ratings:0.1.1",
            "movielens/1m-ratings:0.1.1",
            "",
        ),
    ],
)
def test_parse_accepts_both_config_forms_and_a_slice(
    dataset, name, split_slice
):
    source = tfds_data.parse(dataset)
    assert (source.name, source.split_slice) == (name, split_slice)


@pytest.mark.parametrize(
    "dataset", ["tfds:", "tfds:a:b:c", "tfds:a/b:c", "tfds:[:3]", "tfds:x[:3"]
)
def test_parse_rejects_malformed_names(dataset):
    with pytest.raises(ValueError, match="expected tfds:NAME"):
        tfds_data.parse(dataset)


@pytest.mark.parametrize(
    "names, plan",
    [
        (
            ["train", "validation", "test", "extra"],
            {"train": "train", "validation": "val", "test": "test"},
        ),
        (
            ["train", "val", "test", "restval"],
            {"train": "train", "val": "val", "test": "test"},
        ),
        (["train", "test", "unlabelled"], {"train": None, "test": None}),
        ([], {"train": None}),
        (["full"], {"full": None}),
    ],
)
def test_split_plan_keeps_train_val_test_only_when_all_three(names, plan):
    assert tfds_data.split_plan(names) == plan


def test_models_list_tfds_where_a_mapping_exists():
    with_tfds = {
        name
        for name in registry.list_models()
        if registry.TFDS_DATASET in registry.get_entry(name).datasets
    }
    assert {"deepfm", "vision_language_classifier", "dual_encoder"} <= (
        with_tfds
    )
    assert not {"vqa", "av_monitor"} & with_tfds


# ------------------------------------------------------------------ CTR --


def test_movielens_maps_to_the_movielens_columns():
    with tfds.testing.mock_data(as_dataset_fn=_mocked_ratings):
        data = tfds_data.read_ctr(MOVIELENS, None, 0, "deepfm")
        genres = tfds.builder("movielens/100k-ratings").info.features[
            "movie_genres"
        ]
    assert data.columns == ctr.MOVIELENS_COLUMNS
    rows = [
        ({k: v.numpy() for k, v in features.items()}, float(label))
        for split in ("train", "val", "test")
        for features, label in data.splits[split]
    ]
    by_user = {row["user_id"].decode(): (row, label) for row, label in rows}
    assert sorted(by_user) == ["u1", "u2", "u3"]
    row, label = by_user["u1"]
    names = genres.feature.names
    assert row["item_id"] == b"m1" and row["gender"] == b"M"
    assert row["occupation"] == b"writer" and row["zip_code"] == b"90210"
    assert row["age"] == np.float32(33.0) and row["age"].dtype == np.float32
    assert row["genres"].decode() == f"{names[0]}|{names[3]}"
    assert row["title"] == b"Toy Story (1995)"
    assert label == 1.0  # rating 4 >= 4
    row, label = by_user["u2"]
    assert (row["gender"], row["genres"], label) == (b"F", b"", 0.0)
    assert by_user["u3"][1] == 1.0


def test_movielens_1m_takes_the_bucketized_age():
    with tfds.testing.mock_data(as_dataset_fn=_mocked_ratings):
        data = tfds_data.read_ctr(
            "tfds:movielens:1m-ratings", None, 0, "deepfm"
        )
    ages = {
        features["user_id"].numpy(): features["age"].numpy()
        for split in data.splits.values()
        for features, _ in split
    }
    assert ages == {b"u1": 25.0, b"u2": 18.0, b"u3": 25.0}


def test_deepfm_trains_on_mocked_movielens(tmp_path):
    from mmzoo.training import train

    with tfds.testing.mock_data(num_examples=200):
        run = train(
            "deepfm",
            dataset=MOVIELENS,
            variant="tiny",
            epochs=1,
            steps_per_epoch=2,
            logdir=str(tmp_path),
            export_dir=None,
            verbose=0,
        )
    assert run["dataset"] == MOVIELENS
    metrics = run["metrics"]["test"]
    assert metrics and all(np.isfinite(v) for v in metrics.values())


# -------------------------------------------------------- image layouts --


def _mocked_coco(self, split, decoders=None, read_config=None, **kwargs):
    """Three known coco_captions examples (`as_dataset_fn`)."""
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.arange(3 * 8 * 8 * 3, dtype=np.uint8).reshape(
                3, 8, 8, 3
            ),
            "image/filename": ["a.jpg", "b.jpg", "c.jpg"],
            "image/id": [1, 2, 3],
            "captions": {
                "text": tf.ragged.constant(
                    [["A dog  runs.", "a dog"], ["no objects"], []]
                ),
                "id": tf.ragged.constant([[1, 2], [3], []], tf.int64),
            },
            "objects": {
                "label": tf.ragged.constant([[3, 3, 1], [], [0]], tf.int64),
            },
        }
    )


def test_coco_as_image_text_labels_and_pairs(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_mocked_coco):
        labels_dir = tfds_data.materialize(
            COCO, "image-text-labels", None, tmp_path, "model"
        )
        pairs_dir = tfds_data.materialize(
            COCO, "image-text-pairs", None, tmp_path, "model"
        )
    assert labels_dir == os.path.join(
        tmp_path, "tfds", "coco_captions", "image-text-labels"
    )
    examples = read_labeled("image-text-labels", labels_dir)
    # The image without objects is left out; text = the first caption.
    assert len(examples) == 2 and examples.multi_label
    assert examples.splits is None  # train only: split by seed
    assert examples.columns["text"] == ["A dog runs.", ""]
    # Class names are the ClassLabel's (numbers without coco's metadata).
    assert examples.label_names == ("0", "1", "3")
    np.testing.assert_array_equal(examples.labels, [[0, 1, 1], [1, 0, 0]])
    pairs = read_image_text_pairs(pairs_dir)
    # The image without captions is left out.
    assert [list(c) for c in pairs.captions] == [
        ["A dog runs.", "a dog"],
        ["no objects"],
    ]
    assert all(p.endswith(".jpg") for p in pairs.image_paths)  # coco: JPEG


def test_labeled_builder_keeps_its_splits_and_slice(toy_dir, tmp_path):
    folder = tfds_data.materialize(
        "tfds:mmzoo_toy_images[:3]", "image-text-labels", toy_dir, tmp_path, "m"
    )
    examples = read_labeled("image-text-labels", folder)
    # 3 of each of train, validation, test; `extra` is not read.
    assert examples.splits == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
    assert examples.label_names == ("cat", "dog", "owl")
    assert not examples.multi_label
    # The Text feature is the text; the file name is not.
    texts = examples.columns["text"]
    assert texts[0].startswith("train picture") and "dog_" not in texts[0]
    assert texts[3].startswith("validation picture")
    for text, row in zip(texts, examples.labels, strict=True):
        index = int(text.rsplit(" ", 1)[1])
        assert (
            examples.label_names[int(row.argmax())]
            == ("cat", "dog", "owl")[index % 3]
        )


def test_rows_without_labels_or_captions_are_skipped(toy_dir, tmp_path):
    folder = tfds_data.materialize(
        "tfds:mmzoo_toy_tags", "image-text-labels", toy_dir, tmp_path, "m"
    )
    examples = read_labeled("image-text-labels", folder)
    assert len(examples) == 3  # row 1 has no tag
    assert examples.multi_label and examples.splits is None
    assert examples.label_names == ("ball", "cup", "red")
    # (TFDS stores examples in its own order.) Duplicate tags count once.
    labels = {
        text: {examples.label_names[k] for k in np.flatnonzero(row)}
        for text, row in zip(
            examples.columns["text"], examples.labels, strict=True
        )
    }
    assert labels == {
        "a red ball": {"ball", "red"},
        "": {"cup"},
        "two things": {"cup", "red"},
    }
    pairs = read_image_text_pairs(
        tfds_data.materialize(
            "tfds:mmzoo_toy_tags", "image-text-pairs", toy_dir, tmp_path, "m"
        )
    )
    # Row 2 has no caption; a caption's line breaks become spaces.
    assert sorted(pairs.captions) == [
        ("a red ball", "a ball"),
        ("nothing tagged",),
        ("two things",),
    ]


def test_prepare_through_a_classifier_and_a_captioner(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        for name in ("vision_language_classifier", "vit_lstm_captioner"):
            task = registry.get_task(name)
            prepared = task.prepare(
                registry.get_config(name, "tiny"),
                COCO,
                None,
                str(tmp_path / name),
                0,
            )
            parts = getattr(prepared, "data", None) or prepared.examples
            sizes = {split: len(part) for split, part in parts.items()}
            assert sizes == {"train": 10, "val": 1, "test": 1}, name
            if name == "vision_language_classifier":
                assert prepared.config.head == "sigmoid"  # multi-label
                assert prepared.config.num_labels > 1
    assert prepared.config.vocabulary_size > 4  # the captions' words


# ---------------------------------------------------------------- errors --


def test_a_builder_without_the_features_names_what_is_missing(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        with pytest.raises(
            ValueError,
            match=r"deepfm: TFDS builder 'coco_captions' has no mapping .*"
            r"needs user_id.*found image \(Image\)",
        ):
            tfds_data.read_ctr(COCO, None, 0, "deepfm")
        task = registry.get_task("vision_language_classifier")
        with pytest.raises(
            ValueError,
            match="vision_language_classifier: TFDS builder "
            "'movielens/100k-ratings' .*needs an Image feature",
        ):
            task.prepare(
                registry.get_config("vision_language_classifier", "tiny"),
                MOVIELENS,
                None,
                str(tmp_path),
                0,
            )
        with pytest.raises(
            ValueError, match="needs an Image feature and captions"
        ):
            tfds_data.materialize(
                "tfds:oxford_flowers102",
                "image-text-pairs",
                None,
                tmp_path,
                "cnn_text_captioner",
            )


@pytest.mark.parametrize("model", ["vqa", "av_monitor"])
def test_models_without_a_mapping_refuse_tfds(model):
    with pytest.raises(ValueError, match=f"{model}: TensorFlow Datasets"):
        registry.get_task(model).check_dataset(COCO, None)


def test_check_dataset_needs_no_data_dir_but_a_well_formed_name():
    task = registry.get_task("deepfm")
    task.check_dataset(MOVIELENS, None)
    with pytest.raises(ValueError, match="expected tfds:NAME"):
        task.check_dataset("tfds:a:b:c", None)


def test_data_not_prepared_names_builder_dir_and_command(tmp_path):
    with pytest.raises(ValueError) as error:
        tfds_data.read_ctr(MOVIELENS, str(tmp_path), 0, "deepfm")
    message = str(error.value)
    assert "'movielens/100k-ratings' has no prepared data" in message
    assert str(tmp_path) in message
    assert "tfds build movielens/100k-ratings --data_dir DIR" in message


def test_unknown_builder(tmp_path):
    with pytest.raises(ValueError, match="no TFDS builder 'no_such_builder'"):
        tfds_data.materialize(
            "tfds:no_such_builder",
            "image-text-labels",
            str(tmp_path),
            tmp_path,
            "m",
        )
