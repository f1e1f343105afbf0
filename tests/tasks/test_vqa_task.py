"""The VQA task as a new user meets it: a VQA v2-layout folder (questions
and annotations JSON, images named `<id>.png` and COCO style
`COCO_val2014_<12 digits>.jpg`) trained briefly by `mmzoo train`; its
metrics; the export answering raw bytes
and text (unseen words, an empty question, a corrupt image); what
`prepare` makes of the answers."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.data.vqa import write_synthetic_vqa
from mmzoo.tasks import get_task
from mmzoo.training import load_run

NAME = "vqa"


def _coco_style(folder, every=2):
    """Re-encodes every `every`-th image as a COCO-named JPEG."""
    images = os.path.join(folder, "images")
    for name in sorted(os.listdir(images))[::every]:
        image_id = int(name.split(".")[0])
        path = os.path.join(images, name)
        pixels = tf.io.decode_png(tf.io.read_file(path))
        jpeg = tf.io.encode_jpeg(pixels, quality=95).numpy()
        with open(
            os.path.join(images, f"COCO_val2014_{image_id:012d}.jpg"), "wb"
        ) as f:
            f.write(jpeg)
        os.remove(path)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`mmzoo train vqa --dataset vqa` (tiny, 4 epochs) on 300 synthetic
    scenes. The quality gate (30 epochs, against the question-only and
    image-only ablations) is `tests/test_quality_vqa.py`, marked slow."""
    tmp = tmp_path_factory.mktemp("vqa")
    data_dir = _coco_style(
        write_synthetic_vqa(str(tmp / "data"), 300, seed=3, image_size=32)
    )
    argv = ["train", NAME, "--dataset", "vqa", "--data-dir", data_dir]
    argv += ["--variant", "tiny", "--epochs", "4"]
    argv += ["--logdir", str(tmp / "logs")]
    argv += ["--export-dir", str(tmp / "export")]
    result = _run(argv)
    result["data_dir"] = data_dir
    return result


def _run(argv):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    assert code == 0, out.getvalue()[-3000:]
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_metrics_of_a_short_run(trained):
    test = trained["metrics"]["test"]
    for key in ("vqa_accuracy", "accuracy", "loss", "baseline_vqa_accuracy"):
        assert np.isfinite(test[key]), key
    for kind in ("yes/no", "number", "other"):
        assert 0 <= test[f"vqa_accuracy/{kind}"] <= 1
        assert 0 <= test[f"accuracy/{kind}"] <= 1
    assert test["accuracy"] <= test["vqa_accuracy"]  # credit 1/3, 2/3
    # Four epochs learn the answer prior of each kind of question, not yet
    # the image: above answering at random (1/16 of the answers; answers
    # misaligned with their questions stay near it), short of 30 epochs'
    # 0.73 (`tests/test_quality_vqa.py`).
    assert test["vqa_accuracy"] > 0.3
    assert test["baseline_vqa_accuracy"] < 0.65


def test_confusion_matrix_of_the_answers(trained, tmp_path):
    # A softmax head over the answers: one K x K matrix of the test split
    # (the 20 most frequent true answers and `(other)` at most).
    run_dir = trained["run_dir"]
    assert os.path.getsize(os.path.join(run_dir, "confusion_matrix.png")) > 1000
    name, model, config, preprocessor, _ = load_run(run_dir)
    task = get_task(name)
    prepared = task.prepare(
        mmzoo.get_config(name, "tiny"), "vqa", trained["data_dir"],
        str(tmp_path), 0,
    )  # fmt: skip
    prepared.config, prepared.preprocessor = config, preprocessor
    confusion = task.confusion(model, prepared, "test")
    assert not confusion.multi_label
    size = len(confusion.class_names)
    assert confusion.matrix.shape == (size, size) and size <= 20
    assert confusion.matrix.sum() == len(prepared.examples["test"].labels)
    truth = prepared.examples["test"].labels.argmax(-1)
    names = list(confusion.class_names)
    for index in set(truth.tolist()):
        answer = config.label_names[index]
        if answer in names:  # its row counts the questions it answers
            assert confusion.matrix[names.index(answer)].sum() == np.sum(
                truth == index
            )


def test_export_answers_bytes_and_questions(trained):
    loaded = tf.saved_model.load(trained["export"])
    serve = loaded.signatures["serving_default"]
    images = os.path.join(trained["data_dir"], "images")
    names = sorted(os.listdir(images))[:3]
    data = []
    for name in names:
        with open(os.path.join(images, name), "rb") as f:
            data.append(f.read())
    questions = [
        "What colour is the shape on the left?",
        "How many zorbles are flibbering?",  # words never seen
        "",  # an empty question: answered from the image
    ]
    out = serve(image=tf.constant(data), question=tf.constant(questions))
    answers = out["answer"].numpy().astype(str)
    probabilities = out["probabilities"].numpy()
    config = load_run(_run_dir(trained))[2]
    assert set(answers) <= set(config.label_names)
    assert probabilities.shape == (3, config.num_labels)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(
        out["score"].numpy(), probabilities.max(axis=1), atol=1e-6
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
        serve(
            image=tf.constant([data[0][:40]]),
            question=tf.constant(["Is there a red circle?"]),
        )
    again = serve(image=tf.constant(data), question=tf.constant(questions))
    np.testing.assert_array_equal(again["answer"].numpy(), out["answer"])


def _run_dir(trained):
    logs = os.path.dirname(os.path.dirname(trained["export"]))
    logs = os.path.join(os.path.dirname(logs), "logs", NAME)
    (run,) = os.listdir(logs)
    return os.path.join(logs, run)


def _write_folder(folder, rows):
    """A tiny VQA v2 folder: rows of (image_id, question, ten answers)."""
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rng = np.random.default_rng(0)
    questions, annotations = [], []
    for k, (image_id, question, answers) in enumerate(rows):
        path = os.path.join(folder, "images", f"{image_id}.png")
        if not os.path.exists(path):
            pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
            with open(path, "wb") as f:
                f.write(tf.io.encode_png(pixels).numpy())
        questions.append(
            {"image_id": image_id, "question": question, "question_id": k}
        )
        annotations.append(
            {
                "image_id": image_id,
                "question_id": k,
                "answers": [{"answer": a} for a in answers],
                "answer_type": "yes/no" if answers[0] in "yes no" else "other",
            }
        )
    with open(os.path.join(folder, "questions.json"), "w") as f:
        json.dump({"questions": questions}, f)
    with open(os.path.join(folder, "annotations.json"), "w") as f:
        json.dump({"annotations": annotations}, f)
    return folder


def test_prepare_splits_by_image_and_keeps_frequent_answers(tmp_path):
    rows = []
    for image_id in range(1, 21):
        rows.append((image_id, "Is it red?", ["Yes"] * 8 + ["no"] * 2))
        rows.append((image_id, "What is it?", ["the dog."] * 10))
        if image_id <= 3:  # a rare answer: seen on at most 3 images
            rows.append((image_id, "What colour?", ["mauve"] * 10))
    folder = _write_folder(str(tmp_path / "data"), rows)
    task = get_task(NAME)
    config = mmzoo.get_config(NAME, "tiny", min_answer_count=4)
    prepared = task.prepare(config, "vqa", folder, str(tmp_path / "p"), 0)
    names = prepared.config.label_names
    assert set(names) == {"yes", "dog"}  # normalised; "mauve" too rare
    assert prepared.config.num_labels == 2
    images = {
        split: set(records.image_ids)
        for split, records in prepared.records.items()
    }
    assert not images["train"] & images["val"]
    assert not images["train"] & images["test"]
    assert not images["val"] & images["test"]
    # Training rows whose answers are all outside the vocabulary are gone.
    assert "mauve" not in prepared.records["train"].multiple_choice_answers
    yes = names.index("yes")
    labels = prepared.examples["train"].labels
    questions = prepared.records["train"].questions
    row = questions.index("Is it red?")
    assert labels[row, yes] == 1.0  # 8 of 10 annotators: min(8/3, 1)
    inputs, targets = next(iter(task.pipeline(prepared, "train", 64)))
    np.testing.assert_allclose(tf.reduce_sum(targets, axis=-1), 1, atol=1e-6)
    assert set(inputs) == {"image", "question"}


def test_bad_folders_are_named(tmp_path):
    task = get_task(NAME)
    config = mmzoo.get_config(NAME, "tiny")
    folder = _write_folder(
        str(tmp_path / "data"),
        [(i, "Is it red?", ["yes"] * 10) for i in range(1, 11)],
    )
    os.remove(os.path.join(folder, "images", "4.png"))
    with pytest.raises(ValueError, match="4"):
        task.prepare(config, "vqa", folder, str(tmp_path / "p"), 0)
    with open(os.path.join(folder, "questions.json"), "w") as f:
        f.write('{"questions": [')
    with pytest.raises(ValueError, match="questions.json"):
        task.prepare(config, "vqa", folder, str(tmp_path / "p"), 0)
