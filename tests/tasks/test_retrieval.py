"""The retrieval task end to end: `dual_encoder` trained once by `mmzoo
train` on a Flickr8k-layout folder, its whole-split recall against chance, the
export's signatures, a gallery embedded by `mmzoo export --gallery` and
searched in a TensorFlow-only process, and the errors of bad galleries and
bad requests."""

import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.cli import main as cli_main
from mmzoo.data.synthetic_images import write_synthetic_captions
from mmzoo.export import export_model, read_metadata
from mmzoo.export.verify import verify
from mmzoo.tasks import get_task
from mmzoo.tasks.retrieval import Gallery
from mmzoo.training import load_run

NAME = "dual_encoder"


@pytest.fixture(scope="module")
def task():
    return get_task(NAME)


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    """`mmzoo train dual_encoder --dataset flickr8k --variant tiny` on a
    Flickr8k-layout folder (500 synthetic scenes), as a new user runs it;
    the run reloaded (`load_run`) and its splits (the same seed)."""
    tmp = tmp_path_factory.mktemp("retrieval")
    data_dir = write_synthetic_captions(
        str(tmp / "flickr8k"), 500, seed=0, image_size=32
    )
    logs = tmp / "logs"
    argv = ["train", NAME, "--dataset", "flickr8k", "--data-dir", data_dir]
    argv += ["--variant", "tiny", "--logdir", str(logs)]
    argv += ["--export-dir", str(tmp / "export")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(argv) == 0, out.getvalue()[-3000:]
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    (run,) = os.listdir(logs / NAME)
    run_dir = str(logs / NAME / run)
    _, model, config, preprocessor, _ = load_run(run_dir)
    prepared = task.prepare(
        mmzoo.get_config(NAME, "tiny"), "flickr8k", data_dir, str(tmp / "p"), 0
    )
    prepared.config, prepared.preprocessor = config, preprocessor
    return {
        **summary,
        "run_dir": run_dir,
        "keras_model": model,
        "prepared": prepared,
        "tmp": tmp,
    }


def test_recall_is_far_above_chance_both_ways(trained):
    test = trained["metrics"]["test"]
    chance = test["chance_recall@5"]
    assert chance == pytest.approx(5 / 50)  # 50 test images
    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5, 10):
            assert 0 <= test[f"{direction}_recall@{k}"] <= 1
        assert test[f"{direction}_recall@1"] <= test[f"{direction}_recall@5"]
        # Measured 0.98 (image→text) and 0.995 (text→image).
        assert test[f"{direction}_recall@5"] > 0.6 > 5 * chance, direction
    assert test["median_rank"] == test["text_to_image_median_rank"]
    assert test["median_rank"] <= 2
    assert np.isfinite(test["loss"])
    with open(os.path.join(trained["run_dir"], "metrics.json")) as f:
        assert json.load(f)["test"] == pytest.approx(test)


def test_tensorboard_projector_holds_the_test_embeddings(trained):
    folder = os.path.join(trained["run_dir"], "projector")
    rows = open(os.path.join(folder, "metadata.tsv")).read().splitlines()
    assert rows[0] == "modality\titem\ttext"
    test = trained["prepared"].data["test"]
    captions = sum(len(group) for group in test.captions)
    modalities = [row.split("\t")[0] for row in rows[1:]]
    assert modalities == ["image"] * 50 + ["text"] * captions
    reader = tf.train.load_checkpoint(folder)
    vectors = reader.get_tensor("embeddings/.ATTRIBUTES/VARIABLE_VALUE")
    assert vectors.shape[0] == 50 + captions
    # Unit vectors of the shared space.
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    # Sample predictions were served every epoch (3 for `tiny`).
    from tests.tensorboard_events import summaries

    records = summaries(os.path.join(trained["run_dir"], "samples"))
    steps = [step for step, _ in records[("samples", "text")]]
    assert steps == list(range(1, len(steps) + 1)) and steps
    assert "similarity" in records[("samples", "text")][-1][1].item().decode()


def test_export_serves_similarity_and_embeddings(task, trained):
    loaded = tf.saved_model.load(trained["export"])
    assert {"serving_default", "embed_image", "embed_text"} <= set(
        loaded.signatures
    )
    assert "search_by_text" not in loaded.signatures  # no gallery given
    prepared = trained["prepared"]
    raw = task.raw_examples(prepared, "test", 6)
    images = tf.constant(raw["image"])
    texts = tf.constant(raw["text"])
    image_embedding = loaded.signatures["embed_image"](image=images)
    text_embedding = loaded.signatures["embed_text"](text=texts)
    a = image_embedding["embedding"].numpy()
    b = text_embedding["embedding"].numpy()
    assert a.shape == b.shape == (6, 32)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    similarity = loaded.signatures["serving_default"](image=images, text=texts)
    np.testing.assert_allclose(
        similarity["similarity"].numpy(), np.sum(a * b, axis=1), atol=1e-5
    )
    # The Python-side embeddings are the export's.
    python_images, python_texts = task.embed(
        trained["keras_model"],
        prepared.preprocessor,
        images=list(raw["image"]),
        texts=list(raw["text"]),
    )
    np.testing.assert_allclose(python_images, a, atol=1e-5)
    np.testing.assert_allclose(python_texts, b, atol=1e-5)
    metadata = read_metadata(trained["export"])
    assert metadata["signatures"]["embed_text"] == ["text"]
    assert metadata["signatures"]["serving_default"] == ["image", "text"]


@pytest.fixture(scope="module")
def gallery_export(trained):
    """`mmzoo export RUN_DIR --gallery <test images> --top-k 5`."""
    prepared = trained["prepared"]
    gallery = trained["tmp"] / "gallery"
    gallery.mkdir()
    for path in prepared.data["test"].image_paths:
        shutil.copy(path, gallery / os.path.basename(path))
    out = trained["tmp"] / "gallery-export"
    argv = ["export", trained["run_dir"], "--export-dir", str(out)]
    argv += ["--gallery", str(gallery), "--top-k", "5"]
    assert cli_main(argv) == 0
    return str(out / NAME / "1"), prepared


def test_gallery_search_finds_the_captioned_image(gallery_export):
    path, prepared = gallery_export
    loaded = tf.saved_model.load(path)
    data = prepared.data["test"]
    first_captions = [group[0] for group in data.captions]
    found = loaded.signatures["search_by_text"](
        text=tf.constant(first_captions)
    )
    keys = found["keys"].numpy().astype(str)
    scores = found["scores"].numpy()
    assert keys.shape == scores.shape == (len(data), 5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    wanted = np.array([os.path.basename(p) for p in data.image_paths])
    hit_rate = np.mean([w in row for w, row in zip(wanted, keys)])
    assert hit_rate > 0.6  # measured 1.0
    with open(data.image_paths[0], "rb") as f:
        by_image = loaded.signatures["search_by_image"](
            image=tf.constant([f.read()])
        )
    # The query image is in the gallery: it finds itself first.
    assert by_image["keys"].numpy()[0, 0].decode() == wanted[0]
    assert by_image["scores"].numpy()[0, 0] == pytest.approx(1, abs=1e-4)


def test_gallery_export_verifies_in_a_tensorflow_only_process(gallery_export):
    path, _ = gallery_export
    report = verify(path)
    assert report.ok, report.table()
    assert {"search_by_text", "search_by_image"} <= set(report.signatures)


def test_corrupt_image_fails_only_its_request(gallery_export):
    path, prepared = gallery_export
    loaded = tf.saved_model.load(path)
    search = loaded.signatures["search_by_image"]
    with open(prepared.data["test"].image_paths[0], "rb") as f:
        good = f.read()
    with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
        search(image=tf.constant([good[: len(good) // 2]]))
    assert search(image=tf.constant([good]))["keys"].shape == (1, 5)


def test_caption_gallery_from_a_text_file(task, trained, tmp_path):
    name, model, config, preprocessor, examples = load_run(trained["run_dir"])
    lines = tmp_path / "captions.txt"
    captions = ["A large blue square at the top.", "", "A small red circle."]
    lines.write_text("\n".join(captions) + "\n")
    path = export_model(
        model,
        task,
        config,
        preprocessor,
        str(tmp_path / "export"),
        examples=examples,
        gallery=str(lines),
        top_k=50,
    )
    loaded = tf.saved_model.load(path)
    found = loaded.signatures["search_by_text"](
        text=tf.constant(["A small red circle."])
    )
    keys = found["keys"].numpy().astype(str)
    assert keys.shape == (1, 2)  # top_k capped at the two non-empty lines
    assert keys[0, 0] == "A small red circle."


def test_precomputed_gallery_and_bad_galleries(task, trained, tmp_path):
    model = trained["keras_model"]
    preprocessor = trained["prepared"].preprocessor
    index = task.attach_gallery(
        model,
        preprocessor,
        Gallery(("a", "b"), np.eye(2, 32, dtype=np.float32)),
        top_k=1,
    )
    assert index.size == 2 and index.top_k == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        task.gallery_from(model, preprocessor, str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no such folder or file"):
        task.gallery_from(model, preprocessor, str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    with pytest.raises(ValueError, match="broken.png"):
        task.gallery_from(model, preprocessor, str(bad))
    with pytest.raises(ValueError, match="keys and embeddings"):
        task.attach_gallery(
            model, preprocessor, Gallery(("a",), np.zeros((2, 32)))
        )
    del preprocessor.gallery


def test_gallery_on_a_model_without_search_is_refused(tmp_path):
    task = get_task("deepfm")
    with pytest.raises(ValueError, match="retrieval models"):
        export_model(
            None, task, None, None, str(tmp_path), gallery=str(tmp_path)
        )


def test_reads_image_text_pairs_folder(task, tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        (folder / f"p{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
        (folder / f"p{i}.txt").write_text(f"picture {i}\nanother view {i}\n")
    config = mmzoo.get_config(NAME, "tiny")
    prepared = task.prepare(
        config, "image-text-pairs", str(folder), str(tmp_path / "p"), 0
    )
    sizes = {k: len(v) for k, v in prepared.data.items()}
    assert sizes == {"train": 8, "val": 1, "test": 1}
    # Every caption of an image is a pair labelled with the image's index.
    train = prepared.examples["train"]
    assert len(train) == 16
    np.testing.assert_array_equal(train.labels[:4, 0], [0, 0, 1, 1])
    inputs, targets = next(iter(task.pipeline(prepared, "train", 16)))
    assert inputs["image"].shape == (16, 32, 32, 3)
    assert targets["logits"].dtype == tf.int32


def test_siglip_variant_trains(task, tmp_path):
    from mmzoo.testing import prepare_model

    _, _, model, history = prepare_model(
        NAME, str(tmp_path), fit_batch_size=8, loss="siglip"
    )
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("logits").use_bias
