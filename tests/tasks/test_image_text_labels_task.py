"""The classification task on `image-text-labels` folders written as a new
user would: single-label, multi-label with regression targets and a split
column; what the data sets in the config, the served `label`, `score` and
`reconstruction`, the metric names and the report `mmzoo train` writes."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.export import export_model
from mmzoo.tasks import get_task
from mmzoo.tasks.classification import (
    REPORT_FILE,
    predicted_labels,
    target_statistics,
)
from mmzoo.training import train

VL = "vision_language_classifier"
MT = "image_text_multitask"
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 40), "blue": (40, 40, 220)}
NAMES = tuple(sorted(COLOURS))  # label_names are the sorted class names


def _png(left, right, size=24, seed=0):
    """Bytes of a PNG whose left and right halves have the given colours."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size, size, 3), np.int32)
    pixels[:, : size // 2] = COLOURS[left]
    pixels[:, size // 2 :] = COLOURS[right]
    pixels += rng.integers(-20, 20, pixels.shape)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    return tf.io.encode_png(pixels).numpy()


def write_folder(path, count=40, multi_label=False, targets=False, split=None):
    """Writes `index.csv` and images; returns the folder.

    The text names the left colour; single-label rows are labelled with it,
    multi-label rows with both colours of the image (`red|blue`). Targets
    are in 10..30 (every fifth row has none); `split` is a function of the
    row number giving its split, or None (no split column).
    """
    rng = np.random.default_rng(1)
    os.makedirs(os.path.join(path, "pics"), exist_ok=True)
    header = ["image", "text", "label"]
    header += ["target"] * targets + ["split"] * (split is not None)
    rows = []
    for i in range(count):
        left, right = rng.choice(NAMES, 2)
        name = f"pics/{i:03d}.png"
        with open(os.path.join(path, name), "wb") as f:
            f.write(_png(left, right, seed=i))
        label = "|".join(sorted({left, right})) if multi_label else left
        row = [name, f"The left side is {left}, isn't it?", label]
        if targets:
            row.append("" if i % 5 == 4 else f"{10 + 20 * rng.random():.3f}")
        if split is not None:
            row.append(split(i))
        rows.append(row)
    with open(os.path.join(path, "index.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _split(i):
    return {8: "val", 9: "test"}.get(i % 10, "train")


def _train(name, folder, directory, **overrides):
    task = get_task(name)
    keras.utils.set_random_seed(0)
    config = mmzoo.get_config(name, "tiny", **overrides)
    prepared = task.prepare(config, "image-text-labels", folder, directory, 0)
    model = mmzoo.build(name, config=prepared.config)
    task.compile(model, prepared.config)
    model.fit(
        task.pipeline(prepared, "train", 16, training=True),
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    return task, prepared, model


def _raw(task, prepared, count=5):
    raw = task.raw_examples(prepared, "test", count)
    return {k: tf.constant(v) for k, v in raw.items()}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """`mmzoo.training.train` (what `mmzoo train` runs) on a single-label
    folder with a target column: one epoch, evaluated, saved, exported."""
    tmp = tmp_path_factory.mktemp("single")
    folder = write_folder(tmp / "data", targets=True)
    return train(
        VL,
        dataset="image-text-labels",
        data_dir=folder,
        variant="tiny",
        epochs=1,
        logdir=str(tmp / "logs"),
        export_dir=str(tmp / "export"),
        verbose=0,
    )


@pytest.fixture(scope="module")
def single(single_run):
    task = get_task(VL)
    prepared, model = single_run["prepared"], single_run["keras_model"]
    return task, prepared, model, single_run["export"]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tagged")
    folder = write_folder(
        tmp / "data", multi_label=True, targets=True, split=_split
    )
    task, prepared, model = _train(MT, folder, str(tmp / "assets"))
    path = export_model(
        model, task, prepared.config, prepared.preprocessor, str(tmp / "ex")
    )
    return task, prepared, model, path


def test_single_label_data_sets_the_config(single):
    _, prepared, _, _ = single
    config = prepared.config
    assert config.head == "softmax" and config.num_labels == 3
    assert config.label_names == NAMES
    assert config.num_targets == 1  # the target column
    sizes = {k: len(v) for k, v in prepared.examples.items()}
    assert sizes == {"train": 32, "val": 4, "test": 4}  # 80/10/10 by seed


def test_single_label_serving_gives_the_class_name(single):
    task, prepared, model, path = single
    serving = tf.saved_model.load(path).signatures["serving_default"]
    raw = _raw(task, prepared)
    served = serving(**raw)
    assert set(served) == {"probabilities", "label", "score"}
    assert served["label"].dtype == tf.string
    probabilities = model(prepared.preprocessor(raw), training=False)[
        "probabilities"
    ]
    want = [NAMES[i] for i in np.argmax(probabilities, axis=-1)]
    assert [v.decode() for v in served["label"].numpy()] == want
    np.testing.assert_allclose(
        served["probabilities"], probabilities, atol=1e-5
    )


def test_single_label_metrics_and_report(single):
    task, prepared, model, _ = single
    metrics = task.evaluate(model, prepared, "test", 8)
    assert {"loss", "auroc", "accuracy", "macro_f1"} <= set(metrics)
    assert not {"map", "micro_f1", "reconstruction_mse"} & set(metrics)
    reports = task.reports(model, prepared, "test")
    text = reports[REPORT_FILE]
    for word in (*NAMES, "precision", "accuracy", "macro avg"):
        assert word in text
    assert "4 examples" in text


def test_multi_label_targets_and_splits_set_the_config(tagged):
    _, prepared, _, _ = tagged
    config = prepared.config
    assert config.head == "sigmoid" and config.label_names == NAMES
    assert config.num_targets == 1
    sizes = {k: len(v) for k, v in prepared.examples.items()}
    assert sizes == {"train": 32, "val": 4, "test": 4}  # the split column
    train = prepared.examples["train"].targets[:, 0]
    train = train[np.isfinite(train)]
    np.testing.assert_allclose(config.target_mean, [train.mean()], rtol=1e-5)
    np.testing.assert_allclose(config.target_std, [train.std()], rtol=1e-5)


def test_multi_label_serving(tagged):
    task, prepared, model, path = tagged
    serving = tf.saved_model.load(path).signatures["serving_default"]
    raw = _raw(task, prepared, 4)
    served = {k: v.numpy() for k, v in serving(**raw).items()}
    assert set(served) == {"probabilities", "label", "score", "reconstruction"}
    assert served["score"].shape == (4,)
    assert served["reconstruction"].shape == (4, 32, 32, 3)
    want = model(prepared.preprocessor(raw), training=False)
    np.testing.assert_allclose(served["score"], want["score"][:, 0], atol=1e-4)
    expected = [
        "|".join(n for n, p in zip(NAMES, row) if p > 0.5)
        for row in np.asarray(want["probabilities"])
    ]
    assert [v.decode() for v in served["label"]] == expected


def test_multi_label_metrics(tagged):
    task, prepared, model, _ = tagged
    metrics = task.evaluate(model, prepared, "val", 8)
    names = {"micro_f1", "macro_f1", "map", "mae", "rmse", "pearson"}
    assert names | {"reconstruction_mse", "auroc", "loss"} <= set(metrics)
    assert "accuracy" not in metrics
    assert 0.0 <= metrics["reconstruction_mse"] <= 1.0
    assert metrics["rmse"] >= metrics["mae"] >= 0.0
    report = task.reports(model, prepared, "test")[REPORT_FILE]
    assert "micro avg" in report and "samples avg" in report


def test_split_column_must_fill_every_split(tmp_path):
    folder = write_folder(tmp_path / "data", count=20, split=lambda i: "train")
    task = get_task(VL)
    config = mmzoo.get_config(VL, "tiny")
    with pytest.raises(ValueError, match="val, test split"):
        task.prepare(config, "image-text-labels", folder, str(tmp_path), 0)


def test_empty_target_column_gives_no_regression_head(tmp_path):
    folder = write_folder(tmp_path / "data", count=20, targets=True)
    index = os.path.join(folder, "index.csv")
    with open(index) as f:
        rows = list(csv.reader(f))
    with open(index, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r[:3] + [""] for r in rows[1:]])
    task = get_task(MT)
    config = mmzoo.get_config(MT, "tiny")
    prepared = task.prepare(
        config, "image-text-labels", folder, str(tmp_path / "a"), 0
    )
    assert prepared.config.num_targets == 0
    assert prepared.config.target_mean == ()
    _, targets = next(iter(task.pipeline(prepared, "train", 4)))
    assert set(targets) == {"probabilities", "reconstruction"}


def test_predicted_labels():
    probabilities = tf.constant([[0.6, 0.2, 0.9], [0.1, 0.3, 0.2]])
    softmax = predicted_labels(probabilities, ("a", "b", "c"), "softmax")
    assert softmax.numpy().tolist() == [b"c", b"b"]
    sigmoid = predicted_labels(probabilities, ("a", "b", "c"), "sigmoid")
    assert sigmoid.numpy().tolist() == [b"a|c", b""]


def test_target_statistics():
    targets = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    mean, std = target_statistics(targets)
    assert mean == (2.0, 5.0)
    assert std == (1.0, 1.0)  # NaN ignored; a constant column gets 1
    assert target_statistics(np.full((2, 1), np.nan)) == ((0.0,), (1.0,))


def test_train_writes_report_and_new_metric_names(single_run):
    test = single_run["metrics"]["test"]
    assert {"accuracy", "macro_f1", "mae", "rmse", "pearson"} <= set(test)
    with open(os.path.join(single_run["run_dir"], REPORT_FILE)) as f:
        report = f.read()
    assert "weighted avg" in report and "blue" in report
    with open(os.path.join(single_run["run_dir"], "metrics.json")) as f:
        assert json.load(f) == single_run["metrics"]
    # The export answers raw PNG bytes and text with a class name and a
    # score per example.
    serving = tf.saved_model.load(single_run["export"]).signatures[
        "serving_default"
    ]
    served = serving(
        image=tf.constant([_png("red", "blue"), _png("green", "green")]),
        text=tf.constant(["The left side is red.", ""]),
    )
    assert set(served["label"].numpy()) <= {n.encode() for n in NAMES}
    assert served["score"].shape == (2,)
