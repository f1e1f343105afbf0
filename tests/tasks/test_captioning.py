"""Tests for the captioning task: data layouts, vocabulary, pipeline,
evaluation, Python API vs SavedModel, bad images and the CLI."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.data import caption_pipeline
from mmzoo.export import export_model
from mmzoo.export.verify import verify
from mmzoo.heads import generation
from mmzoo.tasks import get_task
from mmzoo.tasks.captioning import CaptioningTask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}


def _pixels(colour, height, width, channels=3):
    rng = np.random.default_rng(height * width)
    image = np.full((height, width, 3), 235, np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = COLOURS[
        colour
    ]
    image = np.clip(image + rng.integers(-5, 6, image.shape), 0, 255)
    image = image.astype(np.uint8)
    if channels == 1:
        return image.mean(axis=2, keepdims=True).astype(np.uint8)
    if channels == 4:
        alpha = np.full((height, width, 1), 255, np.uint8)
        alpha[0, 0] = 0
        return np.concatenate([image, alpha], axis=2)
    return image


def _encode(pixels, fmt):
    if fmt == "jpg":
        return tf.io.encode_jpeg(pixels).numpy()
    return tf.io.encode_png(pixels).numpy()


# Ten images: odd sizes, grayscale JPEGs, RGBA PNGs, RGB of both formats.
IMAGES = [
    (f"img{i}", colour, size, channels, fmt)
    for i, (colour, size, channels, fmt) in enumerate(
        [
            ("red", (37, 23), 3, "jpg"),
            ("blue", (50, 31), 4, "png"),
            ("green", (19, 61), 1, "jpg"),
            ("red", (64, 64), 4, "png"),
            ("blue", (33, 33), 3, "jpg"),
            ("green", (41, 29), 3, "png"),
            ("red", (28, 45), 1, "jpg"),
            ("blue", (17, 17), 3, "png"),
            ("green", (70, 35), 4, "png"),
            ("red", (21, 52), 3, "jpg"),
        ]
    )
]


def _captions(colour):
    return [f"A {colour} square, in the middle.", f"a {colour} box"]


def _write_images(folder):
    names = {}
    for stem, colour, (h, w), channels, fmt in IMAGES:
        name = f"{stem}.{fmt}"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(_encode(_pixels(colour, h, w, channels), fmt))
        names[name] = colour
    return names


def _flickr_csv(root):
    os.makedirs(root / "Images")
    names = _write_images(root / "Images")
    lines = ["image,caption"]
    for name, colour in names.items():
        lines += [f"{name},{c}" for c in _captions(colour)]  # commas unquoted
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    return str(root)


def _flickr_token(root):
    os.makedirs(root / "Images")
    names = _write_images(root / "Images")
    lines = [
        f"{name}#{k}\t{c}"
        for name, colour in names.items()
        for k, c in enumerate(_captions(colour))
    ]
    (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    return str(root)


def _image_text_pairs(root):
    for folder in ("a", "b/c"):
        os.makedirs(root / folder)
    for i, (stem, colour, (h, w), channels, fmt) in enumerate(IMAGES):
        folder = root / ("a" if i % 2 else "b/c")
        with open(folder / f"{stem}.{fmt}", "wb") as f:
            f.write(_encode(_pixels(colour, h, w, channels), fmt))
        (folder / f"{stem}.txt").write_text("\n".join(_captions(colour)))
    return str(root)


LAYOUTS = {
    "flickr8k-csv": ("flickr8k", _flickr_csv),
    "flickr8k-token": ("flickr8k", _flickr_token),
    "image-text-pairs": ("image-text-pairs", _image_text_pairs),
}


@pytest.fixture(scope="module")
def task():
    return get_task("vit_lstm_captioner")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_prepare_reads_every_layout(layout, task, tmp_path):
    dataset, write = LAYOUTS[layout]
    data_dir = write(tmp_path / "data")
    config = mmzoo.get_config("vit_lstm_captioner", "tiny")
    prepared = task.prepare(config, dataset, data_dir, str(tmp_path / "p"), 0)
    sizes = {name: len(part) for name, part in prepared.data.items()}
    assert sizes == {"train": 8, "val": 1, "test": 1}
    paths = [p for part in prepared.data.values() for p in part.image_paths]
    assert len(set(paths)) == 10  # images, not captions, are split
    tokens = prepared.preprocessor.tokens
    assert tokens[:4] == ["[PAD]", "[OOV]", "[START]", "[END]"]
    assert {"a", "square", "in", "the", "middle", "box"} <= set(tokens)
    assert prepared.config.vocabulary_size == len(tokens)
    # "a <colour> square in the middle" + start + end = 8 tokens.
    assert prepared.config.max_length == 8
    # Every caption of every training image is an example.
    batches = list(task.pipeline(prepared, "train", 5, training=True))
    assert sum(len(y) for _, y in batches) == 16
    x, y = batches[0]
    assert x["image"].shape[1:] == (32, 32, 3)
    assert x["token_ids"].shape[1:] == y.shape[1:] == (7,)
    assert np.all(x["token_ids"].numpy()[:, 0] == generation.START_ID)
    np.testing.assert_array_equal(
        x["token_ids"].numpy()[:, 1:], y.numpy()[:, :-1]
    )
    # What a client sends: the file's bytes.
    raw = task.raw_examples(prepared, "test", 8)
    path = prepared.data["test"].image_paths[0]
    with open(path, "rb") as f:
        assert raw["image"].tolist() == [f.read()]


def test_vocabulary_ids_and_detokenize(task, tmp_path):
    data_dir = _flickr_csv(tmp_path / "data")
    config = mmzoo.get_config("vit_lstm_captioner", "tiny")
    prepared = task.prepare(config, "flickr8k", data_dir, str(tmp_path), 0)
    pre = prepared.preprocessor
    tokens = pre.tokens
    ids = pre.encode_captions(
        tf.constant(["A RED square, in the middle of it!", "zebra", ""])
    ).numpy()
    expected = [
        tokens.index(w) for w in ("a", "red", "square", "in", "the", "middle")
    ]
    assert ids.shape == (3, 8)
    # Cut to max_length - 2 words; the end token is kept.
    assert ids[0].tolist() == [2, *expected, 3]
    assert ids[1].tolist() == [2, generation.OOV_ID, 3, 0, 0, 0, 0, 0]
    assert ids[2].tolist() == [2, 3, 0, 0, 0, 0, 0, 0]
    # In-graph detokenization stops at the first end or padding id.
    square = tokens.index("square")
    generated = np.array(
        [
            [expected[0], square, generation.END_ID, square, 0, 0],
            [square, 0, square, 0, 0, 0],
            [generation.END_ID, 0, 0, 0, 0, 0],
            [square] * 6,
        ],
        "int32",
    )
    captions = pre.detokenize(tf.constant(generated)).numpy().tolist()
    assert captions == [b"a square", b"square", b"", b" ".join([b"square"] * 6)]
    assert [c.decode() for c in captions] == generation.ids_to_text(
        generated, tokens
    )


def test_prepare_rejects_corrupt_image_and_tiny_folder(task, tmp_path):
    data_dir = _flickr_csv(tmp_path / "data")
    bad = os.path.join(data_dir, "Images", "img4.jpg")
    with open(bad, "rb") as f:
        content = f.read()
    with open(bad, "wb") as f:
        f.write(content[: len(content) // 2])
    config = mmzoo.get_config("vit_lstm_captioner", "tiny")
    with pytest.raises(ValueError, match=r"img4\.jpg"):
        task.prepare(config, "flickr8k", data_dir, str(tmp_path / "p"), 0)
    small = tmp_path / "small"
    os.makedirs(small)
    (small / "x.png").write_bytes(_encode(_pixels("red", 9, 9), "png"))
    (small / "x.txt").write_text("a red square\n")
    with pytest.raises(ValueError, match="at least 8 images"):
        task.prepare(
            config, "image-text-pairs", str(small), str(tmp_path / "q"), 0
        )
    with pytest.raises(ValueError, match="needs --data-dir"):
        task.prepare(config, "flickr8k", None, str(tmp_path / "r"), 0)


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    """A tiny captioner trained briefly on 300 synthetic scenes, exported."""
    tmp = tmp_path_factory.mktemp("captioning")
    keras.utils.set_random_seed(0)
    original = task.synthetic_images
    task.synthetic_images = 300
    try:
        config = mmzoo.get_config("vit_lstm_captioner", "tiny")
        prepared = task.prepare(config, "synthetic", None, str(tmp / "p"), 0)
    finally:
        task.synthetic_images = original
    model = mmzoo.build("vit_lstm_captioner", config=prepared.config)
    task.compile(model, prepared.config)
    model.fit(
        task.pipeline(prepared, "train", 32, training=True),
        epochs=3,
        shuffle=False,
        verbose=0,
    )
    raw = task.raw_examples(prepared, "test", 16)
    path = export_model(
        model,
        task,
        prepared.config,
        prepared.preprocessor,
        str(tmp / "export"),
        examples=raw,
    )
    return prepared, model, raw, path


def test_export_equals_python_decoding(task, trained):
    prepared, model, raw, path = trained
    loaded = tf.saved_model.load(path)
    images = list(raw["image"])
    for signature, width in (("serving_default", None), ("greedy", 1)):
        served = loaded.signatures[signature](image=tf.constant(raw["image"]))
        captions = [c.decode() for c in served["caption"].numpy()]
        expected, scores = task.caption(
            model, prepared.preprocessor, images, beam_width=width
        )
        assert captions == expected
        np.testing.assert_allclose(served["score"].numpy(), scores, atol=1e-4)
        assert np.all(scores < 0)
        # The batched tf.function path used by `evaluate` agrees too.
        fast, _ = task.caption(
            model,
            prepared.preprocessor,
            images,
            beam_width=width,
            batch_size=5,
            graph=True,
        )
        assert fast == expected
    # A short training already produces words, not empty captions.
    assert all(captions)


def test_export_verifies_in_fresh_process(trained):
    _, _, _, path = trained
    report = verify(path)
    assert report.ok, report.table()
    assert set(report.signatures) == {"serving_default", "greedy"}
    outputs = report.signatures["serving_default"]["outputs"]
    assert outputs == {
        "caption": ["string", [None]],
        "score": ["float32", [None]],
    }


def test_bad_image_fails_the_request_naming_image(trained):
    _, _, raw, path = trained
    serving = tf.saved_model.load(path).signatures["serving_default"]
    good = raw["image"][0]
    png = _encode(_pixels("red", 20, 20), "png")
    jpeg = _encode(_pixels("blue", 20, 20), "jpg")
    for bad in (b"not an image", png[: len(png) // 2], jpeg[: len(jpeg) - 40]):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            serving(image=tf.constant([good, bad]))
        message = str(error.value)
        assert "image" in message.split("[[")[0], message
    # The next good request is served normally.
    out = serving(image=tf.constant([good, png, jpeg]))
    assert out["caption"].shape == (3,)
    assert np.all(np.isfinite(out["score"].numpy()))


def test_evaluate_reports_caption_metrics_and_baseline(task, trained):
    prepared, model, _, _ = trained
    original = task.with_meteor
    task.with_meteor = False  # no Java process in the unit tests
    try:
        metrics = task.evaluate(model, prepared, "test", 16)
    finally:
        task.with_meteor = original
    for key in (
        "bleu_1",
        "bleu_4",
        "rouge_l",
        "cider",
        "loss",
        "baseline_bleu_4",
        "baseline_cider",
    ):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["bleu_4"] <= metrics["bleu_1"] <= 1
    assert prepared.baseline_caption in {
        " ".join(c.lower().replace(",", " ").replace(".", " ").split())
        for group in prepared.data["train"].captions
        for c in group
    }


def test_attention_maps_cover_the_patch_grid(task, trained):
    prepared, model, raw, _ = trained
    words, maps, pixels = task.attention(
        model, prepared.preprocessor, raw["image"][0], beam_width=1
    )
    assert words and maps.shape == (len(words), 4, 4)  # 32 px / 8 px patches
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert pixels.shape == (32, 32, 3)
    captions, _ = task.caption(
        model, prepared.preprocessor, [raw["image"][0]], beam_width=1
    )
    assert " ".join(w for w in words if w != "[END]") == captions[0]


def test_cli_train_on_image_text_pairs(tmp_path, capsys, monkeypatch):
    # The command line in-process (`mmzoo.cli.main`, what the console script
    # calls): `tests/test_cli.py` runs the console script itself. METEOR
    # (a Java process) is tests/metrics/test_captioning.py's.
    monkeypatch.setattr(CaptioningTask, "with_meteor", False)
    data_dir = _image_text_pairs(tmp_path / "data")
    code = cli.main(
        [
            "train", "vit_lstm_captioner", "--dataset", "image-text-pairs",
            "--data-dir", data_dir, "--variant", "tiny", "--epochs", "1",
            "--logdir", str(tmp_path / "logs"),
            "--export-dir", str(tmp_path / "export"),
            # A captioner export in a fresh process is
            # `test_export_verifies_in_fresh_process`; the command's
            # verification is `tests/test_cli.py`'s.
            "--no-verify",
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["model"] == "vit_lstm_captioner"
    assert result["dataset"] == "image-text-pairs"
    for split in ("val", "test"):
        metrics = result["metrics"][split]
        assert {"bleu_4", "cider", "rouge_l", "loss"} <= set(metrics)
    assert os.path.isfile(os.path.join(result["export"], "saved_model.pb"))
    assert result["export"].endswith(os.path.join("vit_lstm_captioner", "1"))
    # TensorBoard shows test images with their served captions each epoch.
    from tests.tensorboard_events import summaries

    (run,) = os.listdir(tmp_path / "logs" / "vit_lstm_captioner")
    records = summaries(
        str(tmp_path / "logs" / "vit_lstm_captioner" / run / "samples")
    )
    ((step, table),) = records[("samples", "text")]
    assert step == 1
    assert table.item().decode().splitlines()[0] == "| # | caption | score |"
    assert [s for s, _ in records[("samples", "images")]] == [1]
    # `mmzoo export RUN_DIR` (re-exporting a run folder) is
    # tests/test_cli.py's and tests/tasks/test_retrieval.py's.


def test_pipeline_caches_small_splits(trained):
    prepared, _, _, _ = trained
    data = prepared.data["val"]
    dataset = caption_pipeline.make_pipeline(
        data, prepared.preprocessor, 8, training=True
    )
    first = sum(len(y) for _, y in dataset)
    second = sum(len(y) for _, y in dataset)
    assert first == second == sum(len(g) for g in data.captions)
