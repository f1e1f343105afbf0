"""Tests for the classification task (on the diagnosis model): data,
pipelines, export and the CLI."""

import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.data.synthetic_images import write_synthetic_diagnosis
from mmzoo.export import export_model
from mmzoo.tasks import get_task
from mmzoo.tasks.classification import ClassificationTask

NAME = "lstnet_diagnosis"
SIZE = 32


VOCABULARY_FILE = "report_vocabulary.txt"


def _task(examples=120):
    task = get_task(NAME)
    task.synthetic_examples = examples
    return task


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diagnosis")
    task = _task()
    keras.utils.set_random_seed(0)
    config = mmzoo.get_config(NAME, "tiny", image_size=SIZE, fusion="attention")
    prepared = task.prepare(config, "synthetic", None, str(tmp / "assets"), 0)
    model = mmzoo.build(NAME, config=prepared.config)
    task.compile(model, prepared.config)
    path = export_model(
        model, task, prepared.config, prepared.preprocessor, str(tmp / "export")
    )
    serving = tf.saved_model.load(path).signatures["serving_default"]
    return task, prepared, model, path, serving


def _raw(prepared, count, split="test"):
    raw = get_task(NAME).raw_examples(prepared, split, count)
    return {k: tf.constant(v) for k, v in raw.items()}


def _keras(model, prepared, raw):
    outputs = model(prepared.preprocessor(raw), training=False)
    return {k: np.asarray(v) for k, v in outputs.items()}


def test_task_is_registered():
    assert isinstance(get_task(NAME), ClassificationTask)
    assert "lstnet_diagnosis" in mmzoo.list_models()


def test_prepare_sets_config_from_data(setup):
    _, prepared, _, _, _ = setup
    config = prepared.config
    assert config.num_labels == 3
    assert config.label_names == ("pneumonia", "malignancy", "effusion")
    vocab = os.path.join(prepared.directory, VOCABULARY_FILE)
    with open(vocab) as f:
        tokens = f.read().splitlines()
    assert tokens[:2] == ["[PAD]", "[OOV]"]
    report = {spec.name: spec for spec in config.specs}["report"]
    assert report.vocabulary_size == len(tokens) > 20
    assert 10 < report.max_length <= 64
    sizes = {name: len(part) for name, part in prepared.examples.items()}
    assert sizes == {"train": 96, "val": 12, "test": 12}


def test_pipeline_shapes_and_targets(setup):
    task, prepared, _, _, _ = setup
    inputs, targets = next(iter(task.pipeline(prepared, "train", 8, True)))
    assert inputs["image"].shape == (8, SIZE, SIZE, 3)
    assert inputs["image"].dtype == tf.float32
    report = {spec.name: spec for spec in prepared.config.specs}["report"]
    assert inputs["report"].shape == (8, report.max_length)
    assert inputs["report"].dtype == tf.int32
    # A weighted fusion: a dict target with a placeholder for the weights.
    assert targets["probabilities"].shape == (8, 3)
    assert targets["modality_weights"].shape == (8, 2)
    dataset = task.pipeline(prepared, "val", 5)
    assert int(dataset.cardinality()) == 3  # 12 examples in batches of 5


def test_evaluation_pipeline_runs_the_serving_preprocessor(setup):
    task, prepared, _, _, _ = setup
    inputs, _ = next(iter(task.pipeline(prepared, "test", 4)))
    raw = _raw(prepared, 4)
    direct = prepared.preprocessor(raw)
    for key in ("image", "report"):
        np.testing.assert_array_equal(inputs[key], direct[key])


def test_augmentation_only_in_training(setup):
    task, prepared, _, _, _ = setup
    train = task.pipeline(prepared, "train", 96, training=True, seed=1)
    plain = task.pipeline(prepared, "train", 96)
    augmented = next(iter(train))[0]["image"].numpy()
    original = next(iter(plain))[0]["image"].numpy()
    # Shuffled and augmented: the multiset of pixels changes.
    assert not np.allclose(
        np.sort(augmented.ravel()), np.sort(original.ravel())
    )
    assert augmented.min() >= 0 and augmented.max() <= 255


def test_reconstruction_targets_are_rescaled_images(setup):
    task, prepared, _, _, _ = setup
    config = dataclasses.replace(prepared.config, reconstruction_weight=0.5)
    fn = task.targets(config)
    inputs = {"image": tf.fill([2, SIZE, SIZE, 3], 255.0)}
    out = fn(inputs, tf.zeros([2, 3]))
    np.testing.assert_allclose(out["reconstruction"], 1.0)
    model = mmzoo.build(NAME, config=config)
    served = task.serve(model, prepared.preprocessor, _raw(prepared, 2))
    # Trained but not served (serve_reconstruction is False).
    assert set(served) == {"probabilities", "label", "modality_weights"}


def test_vocabulary_travels_as_asset(setup):
    _, _, _, path, _ = setup
    assets = os.listdir(os.path.join(path, "assets"))
    assert VOCABULARY_FILE in assets


@pytest.mark.parametrize("size", [1, 5])
def test_served_equals_keras(setup, size):
    _, prepared, model, _, serving = setup
    raw = _raw(prepared, size)
    served = {k: v.numpy() for k, v in serving(**raw).items()}
    want = _keras(model, prepared, raw)
    assert set(served) == {"probabilities", "label", "modality_weights"}
    for key in ("probabilities", "modality_weights"):
        assert served[key].shape == (size, 3 if key == "probabilities" else 2)
        np.testing.assert_allclose(served[key], want[key], atol=1e-5)
    # Multi-label (sigmoid): the names over 0.5 joined by "|".
    names = prepared.config.label_names
    expected = [
        "|".join(n for n, p in zip(names, row) if p > 0.5)
        for row in want["probabilities"]
    ]
    assert [v.decode() for v in served["label"]] == expected


def test_empty_report_is_a_missing_modality(setup):
    _, prepared, model, _, serving = setup
    raw = _raw(prepared, 3)
    raw["report"] = tf.constant(["", "   ", "Fever and cough."])
    served = {k: v.numpy() for k, v in serving(**raw).items()}
    assert np.all(np.isfinite(served["probabilities"]))
    np.testing.assert_array_equal(served["modality_weights"][:2, 1], 0.0)
    assert served["modality_weights"][2, 1] > 0
    want = _keras(model, prepared, raw)
    np.testing.assert_allclose(
        served["probabilities"], want["probabilities"], atol=1e-5
    )


def _encoded(kind, shape, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    if kind == "png":
        return tf.io.encode_png(pixels).numpy()
    return tf.io.encode_jpeg(pixels).numpy()


@pytest.mark.parametrize(
    "bad",
    [
        b"not an image at all",
        b"",
        _encoded("png", (20, 30, 3))[:60],
        _encoded("jpeg", (20, 30, 3))[:-40],
    ],
    ids=["garbage", "empty", "truncated-png", "truncated-jpeg"],
)
def test_corrupt_image_fails_the_request_naming_image(setup, bad):
    _, prepared, _, _, serving = setup
    raw = _raw(prepared, 2)
    images = raw["image"].numpy()
    images[1] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
        serving(image=tf.constant(images), report=raw["report"])
    # The next good request is answered.
    served = serving(**raw)
    assert np.all(np.isfinite(served["probabilities"].numpy()))


def test_any_jpeg_or_png_decodes(setup):
    _, prepared, _, _, serving = setup
    images = [
        _encoded("jpeg", (37, 53, 1)),  # grayscale JPEG, odd size
        _encoded("png", (41, 29, 4)),  # RGBA PNG
        _encoded("png", (300, 200, 1)),  # large grayscale PNG
    ]
    served = serving(
        image=tf.constant(images), report=tf.constant(["a", "", "b c"])
    )
    assert served["probabilities"].shape == (3, 3)


def _write_folder(path, examples=24, corrupt=False):
    """An image-report folder as a user makes it: synthetic PNGs plus a
    grayscale JPEG and an RGBA PNG of odd sizes, in subfolders."""
    write_synthetic_diagnosis(
        path, num_examples=examples, seed=3, image_size=40
    )
    os.makedirs(os.path.join(path, "extra"), exist_ok=True)
    extra = {
        "extra/gray.jpg": _encoded("jpeg", (37, 53, 1)),
        "extra/rgba.png": _encoded("png", (41, 29, 4)),
    }
    if corrupt:
        extra["extra/broken.png"] = _encoded("png", (20, 20, 3))[:50]
    rows = []
    for name, data in extra.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
        rows.append([name, 'Cough, "fever"; smoker.', "1", "0", "1"])
    with open(os.path.join(path, "index.csv"), "a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def test_image_report_folder_and_corrupt_file(tmp_path):
    task = _task()
    config = mmzoo.get_config(NAME, "tiny", image_size=SIZE)
    folder = _write_folder(str(tmp_path / "good"))
    prepared = task.prepare(
        config, "image-report", folder, str(tmp_path / "a"), 0
    )
    assert sum(len(p) for p in prepared.examples.values()) == 26
    inputs, labels = next(iter(task.pipeline(prepared, "train", 32)))
    assert inputs["image"].shape[1:] == (SIZE, SIZE, 3)

    broken = _write_folder(str(tmp_path / "bad"), corrupt=True)
    with pytest.raises(ValueError, match="broken.png"):
        task.prepare(config, "image-report", broken, str(tmp_path / "b"), 0)
    with pytest.raises(ValueError, match="needs --data-dir"):
        task.prepare(config, "image-report", None, str(tmp_path / "c"), 0)
    with pytest.raises(ValueError, match="unknown dataset 'mimic'"):
        task.prepare(config, "mimic", folder, str(tmp_path / "d"), 0)


def test_too_few_examples_is_an_error(tmp_path):
    folder = str(tmp_path / "few")
    write_synthetic_diagnosis(folder, num_examples=4, seed=0, image_size=16)
    config = mmzoo.get_config(NAME, "tiny", image_size=SIZE)
    with pytest.raises(ValueError, match="need at least 10 examples"):
        _task().prepare(config, "image-report", folder, str(tmp_path / "a"), 0)


def test_evaluate_reports_auroc(setup):
    task, prepared, model, _, _ = setup
    metrics = task.evaluate(model, prepared, "val", 8)
    # Keras metrics, and the multi-label metrics of the predictions.
    assert {"auroc", "binary_accuracy", "loss"} <= set(metrics)
    assert {"micro_f1", "macro_f1", "map"} <= set(metrics)
    assert 0.0 <= metrics["auroc"] <= 1.0


def test_cli_train_on_image_report_folder(tmp_path, capsys):
    # In-process (`mmzoo.cli.main`) and without `mmzoo verify`: the console
    # script and the fresh-process check have their own tests
    # (tests/test_cli.py, the contract).
    folder = _write_folder(str(tmp_path / "data"))
    code = cli.main(
        [
            "train", NAME, "--dataset", "image-report", "--data-dir", folder,
            "--variant", "tiny", "--epochs", "1",
            "--set", "fusion=attention", "--set", f"image_size={SIZE}",
            "--logdir", str(tmp_path / "logs"),
            "--export-dir", str(tmp_path / "export"), "--no-verify",
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["model"] == NAME and summary["dataset"] == "image-report"
    assert {"auroc", "micro_f1", "macro_f1", "map"} <= set(
        summary["metrics"]["test"]
    )
    assert os.path.isfile(os.path.join(summary["export"], "saved_model.pb"))
    # The per-label report of the test split is in the run folder.
    (run_dir,) = os.listdir(tmp_path / "logs" / NAME)
    report = tmp_path / "logs" / NAME / run_dir / "classification_report.txt"
    assert "pneumonia" in report.read_text()
    # The confusion matrices (multi-label: one 2x2 per finding) as a PNG
    # and in TensorBoard, and the served labels of test images.
    from tests.tensorboard_events import summaries

    run = tmp_path / "logs" / NAME / run_dir
    assert (run / "confusion_matrix.png").stat().st_size > 1000
    records = summaries(str(run / "confusion"))
    assert [s for s, _ in records[("confusion_matrix", "images")]] == [0]
    records = summaries(str(run / "samples"))
    table = records[("samples", "text")][-1][1].item().decode()
    assert table.splitlines()[0].startswith("| # | report | probabilities")
    assert ("samples", "images") in records


def test_ablated_modality_is_not_a_served_input(tmp_path):
    task = _task(examples=40)
    config = mmzoo.get_config(
        NAME, "tiny", image_size=SIZE, modalities=("image",)
    )
    prepared = task.prepare(config, "synthetic", None, str(tmp_path / "a"), 0)
    model = mmzoo.build(NAME, config=prepared.config)
    assert [i.name for i in model.inputs] == ["image"]
    path = export_model(
        model, task, prepared.config, prepared.preprocessor, str(tmp_path)
    )
    serving = tf.saved_model.load(path).signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == {"image"}
    raw = _raw(prepared, 2)
    served = serving(image=raw["image"])
    assert served["probabilities"].shape == (2, 3)


def test_with_overrides_gives_an_ablation_of_a_prepared_dataset(tmp_path):
    task = _task(examples=40)
    config = mmzoo.get_config(NAME, "tiny", image_size=SIZE)
    prepared = task.prepare(config, "synthetic", None, str(tmp_path), 0)
    image_only = task.with_overrides(prepared, modalities=("image",))
    assert image_only.config.modalities == ("image",)
    assert image_only.examples is prepared.examples
    assert prepared.config.modalities == ("image", "report")
    x, _ = next(iter(task.pipeline(image_only, "train", 4)))
    assert set(x) == {"image"}
