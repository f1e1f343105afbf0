"""Tests for the VQA v2 reader, answer targets, splits and the synthetic
shapes VQA writer."""

import collections
import json
import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from mmzoo.data import vqa
from mmzoo.data.synthetic_images import (
    _POS_XY,
    _RGB,
    COLOURS,
    POSITIONS,
    SHAPES,
)
from mmzoo.metrics import vqa as vqa_metrics

# --------------------------------------------------------------------------
# normalize_answer: cases worked through the official `vqaEval.py`.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Two", "2"),
        ("none", "0"),  # the official number map includes "none"
        ("the dog.", "dog"),
        ("A Man\tWalking\n", "man walking"),
        ("3.5", "3.5"),
        ("5.", "5"),  # a period goes unless a digit follows it
        ("U.S.A.", "usa"),
        ("yes!", "yes"),
        ("yes !", "yes"),
        ("(3)", "3"),
        ("isnt", "isn't"),
        ("Whats", "what's"),
        ("don't", "don't"),  # apostrophes are not punctuation here
        ("10:30", "10:30"),  # nor colons
        ("1,000", "1000"),  # comma between digits: removed, not spaced
        ("1,000/2", "10002"),  # ... and then every mark is removed
        ("red,white", "red white"),
        ("red, white", "red white"),
        ("t-shirt", "t shirt"),
        ("  an   apple  ", "apple"),
        ("", ""),
    ],
)
def test_normalize_answer_follows_official_evaluation(answer, expected):
    assert vqa.normalize_answer(answer) == expected


# --------------------------------------------------------------------------
# read_vqa on hand-written folders.
# --------------------------------------------------------------------------

QUESTIONS = [
    {"image_id": 9, "question": "What color is it?", "question_id": 90},
    {"image_id": 3, "question": "How many dogs?", "question_id": 30},
    {"image_id": 9, "question": "Is it a cat?", "question_id": 91, "x": 1},
]


def _answers(*given):
    return [
        {"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
        for k, a in enumerate(given)
    ]


def _annotations():
    return [
        {
            "question_id": 30,
            "image_id": 3,
            "answers": _answers(*["Two"] * 7, "three", "3", "2."),
            "multiple_choice_answer": "2",
            "answer_type": "number",
            "question_type": "how many",
        },
        {
            "question_id": 90,
            "image_id": 9,
            "answers": _answers("Red.", "red", "dark red"),
            "multiple_choice_answer": "red",
            # no answer_type: "other"
        },
        {
            "question_id": 91,
            "image_id": 9,
            "answers": _answers("no", "yes", "no"),
            # no multiple_choice_answer: the majority
            "answer_type": "yes/no",
        },
    ]


def _folder(tmp_path, questions=None, annotations=None, images=None):
    """A VQA folder; `None` writes the default content of a part."""
    images_dir = tmp_path / "images"
    images_dir.mkdir(exist_ok=True)
    names = images or ("COCO_val2014_000000000009.jpg", "3.png", "notes.txt")
    for name in names:
        (images_dir / name).write_bytes(b"\x89PNG\r\n\x1a\n")  # never decoded
    for name, key, entries in (
        ("questions.json", "questions", questions),
        ("annotations.json", "annotations", annotations),
    ):
        if entries is None:
            entries = QUESTIONS if key == "questions" else _annotations()
        text = (
            entries if isinstance(entries, str) else json.dumps({key: entries})
        )
        (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_read_vqa_joins_files_in_question_order(tmp_path):
    records = vqa.read_vqa(_folder(tmp_path))
    images = os.path.join(str(tmp_path), "images")
    assert len(records) == 3
    assert records.question_ids == [90, 30, 91]
    assert records.image_ids == [9, 3, 9]
    assert records.image_paths == [
        os.path.join(images, "COCO_val2014_000000000009.jpg"),
        os.path.join(images, "3.png"),
        os.path.join(images, "COCO_val2014_000000000009.jpg"),
    ]
    assert records.questions == [q["question"] for q in QUESTIONS]
    assert records.answers == [
        ["red", "red", "dark red"],
        ["2"] * 7 + ["3", "3", "2"],
        ["no", "yes", "no"],
    ]
    assert records.multiple_choice_answers == ["red", "2", "no"]
    assert records.answer_types == ["other", "number", "yes/no"]


def test_take_selects_rows(tmp_path):
    records = vqa.read_vqa(_folder(tmp_path))
    part = records.take(np.array([2, 0]))
    assert part.question_ids == [91, 90]
    assert part.answers == [records.answers[2], records.answers[0]]
    assert part.answer_types == ["yes/no", "other"]
    assert len(records.take([])) == 0


def test_plain_image_names_are_preferred_in_sorted_order(tmp_path):
    images = ("9.jpg", "9.png", "0003.jpeg", "COCO_x_000000000009.jpg")
    records = vqa.read_vqa(_folder(tmp_path, images=images))
    names = [os.path.basename(p) for p in records.image_paths]
    assert names == ["9.jpg", "0003.jpeg", "9.jpg"]


def _without(entries, index, key):
    entries = [dict(e) for e in entries]
    del entries[index][key]
    return entries


def _with(entries, index, **changes):
    entries = [dict(e) for e in entries]
    entries[index].update(changes)
    return entries


ERRORS = {
    "invalid json": (
        {"questions": '{"questions": [\n  {"image_id": 1,,}\n]}'},
        r"questions\.json:2: invalid JSON",
    ),
    "no top-level key": (
        {"annotations": json.dumps({"questions": []})},
        r"annotations\.json: expected a JSON object with the key "
        r"'annotations'.*got keys \['questions'\]",
    ),
    "top-level list": (
        {"questions": "[]"},
        r"questions\.json: expected a JSON object .* got a JSON array",
    ),
    "no questions": (
        {"questions": []},
        r"questions\.json: 'questions' is empty",
    ),
    "missing key": (
        {"questions": _without(QUESTIONS, 1, "image_id")},
        r"questions\.json: entry 1 \(question_id 30\): missing key "
        r"'image_id'",
    ),
    "missing question_id": (
        {"annotations": _without(_annotations(), 2, "question_id")},
        r"annotations\.json: entry 2: missing key 'question_id'",
    ),
    "mistyped key": (
        {"questions": _with(QUESTIONS, 0, image_id="9")},
        r"questions\.json: entry 0 \(question_id 90\): 'image_id' must be "
        r"an integer, got '9'",
    ),
    "entry not an object": (
        {"questions": [*QUESTIONS, "oops"]},
        r"questions\.json: entry 3: expected a JSON object, got 'oops'",
    ),
    "repeated question_id": (
        {"questions": [*QUESTIONS, QUESTIONS[1]]},
        r"questions\.json: entry 3 \(question_id 30\): question_id 30 "
        r"repeats entry 1",
    ),
    "empty answers": (
        {"annotations": _with(_annotations(), 1, answers=[])},
        r"annotations\.json: entry 1 \(question_id 90\): empty 'answers' "
        r"list",
    ),
    "answer without text": (
        {"annotations": _with(_annotations(), 0, answers=[{"answer_id": 1}])},
        r"annotations\.json: entry 0 \(question_id 30\): answers\[0\] must "
        r"be an object with a string 'answer'",
    ),
    "question without annotation": (
        {"annotations": _annotations()[:1]},
        r"annotations\.json: no annotation for 2 question\(s\) of "
        r".*questions\.json: question_id 90, 91$",
    ),
    "annotation without question": (
        {"questions": QUESTIONS[:2]},
        r"annotations\.json: 1 annotation\(s\) have no question in "
        r".*questions\.json: question_id 91$",
    ),
    "image_id differs": (
        {"annotations": _with(_annotations(), 2, image_id=3)},
        r"annotations\.json: 1 annotation\(s\) name another image than "
        r".*questions\.json: question_id 91; e\.g\. question_id 91 has "
        r"image_id 3 there and 9 in questions\.json$",
    ),
    "image file missing": (
        {"images": ("3.png",)},
        r"no image file in .*images for 1 image_id\(s\) of "
        r".*questions\.json: 9 \(expected names: <image_id>\.jpg/\.jpeg/"
        r"\.png or COCO_<split>_<12-digit image_id>\.jpg\)",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_read_vqa_errors_name_file_and_entry(tmp_path, case):
    parts, pattern = ERRORS[case]
    folder = _folder(tmp_path, **parts)
    with pytest.raises(ValueError, match=pattern):
        vqa.read_vqa(folder)


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"vqa: folder .*nowhere not found"):
        vqa.read_vqa(tmp_path / "nowhere")
    folder = _folder(tmp_path)
    os.remove(os.path.join(folder, "annotations.json"))
    with pytest.raises(ValueError, match=r"annotations\.json not found"):
        vqa.read_vqa(folder)
    _folder(tmp_path)
    for name in os.listdir(os.path.join(folder, "images")):
        os.remove(os.path.join(folder, "images", name))
    os.rmdir(os.path.join(folder, "images"))
    with pytest.raises(ValueError, match=r"folder .*images not found"):
        vqa.read_vqa(folder)


def test_many_missing_images_lists_five_and_the_count(tmp_path):
    questions = [
        {"image_id": i, "question": "Why?", "question_id": i} for i in range(8)
    ]
    annotations = [
        {"question_id": i, "image_id": i, "answers": _answers("because")}
        for i in range(8)
    ]
    folder = _folder(tmp_path, questions, annotations, images=("5.jpg",))
    message = r"for 7 image_id\(s\) of .*: 0, 1, 2, 3, 4, \.\.\. \(expected"
    with pytest.raises(ValueError, match=message):
        vqa.read_vqa(folder)


# --------------------------------------------------------------------------
# Splits, vocabulary, soft scores, blind baseline.
# --------------------------------------------------------------------------


def test_split_by_image_keeps_each_image_in_one_split():
    rng = np.random.default_rng(0)
    image_ids = rng.integers(0, 50, 400)
    parts = vqa.split_by_image(image_ids, seed=3)
    assert sorted(parts) == ["test", "train", "val"]
    together = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(together), np.arange(400))
    images = {name: set(image_ids[idx]) for name, idx in parts.items()}
    assert not images["train"] & images["val"]
    assert not images["train"] & images["test"]
    assert not images["val"] & images["test"]
    assert [len(images[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    for idx in parts.values():
        assert idx.dtype == np.int64
        assert np.all(np.diff(idx) > 0)
    again = vqa.split_by_image(list(image_ids), seed=3)
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    other = vqa.split_by_image(image_ids, seed=4)
    assert not np.array_equal(parts["test"], other["test"])


def test_split_by_image_gives_every_split_an_image():
    image_ids = np.array([7, 7, 8, 9])
    parts = vqa.split_by_image(image_ids, seed=0)
    assert [len(set(image_ids[idx])) for idx in parts.values()] == [1, 1, 1]
    parts = vqa.split_by_image(
        [1, 2, 3, 4], seed=0, fractions=(0.1, 0.45, 0.45)
    )
    assert min(len(idx) for idx in parts.values()) == 1
    with pytest.raises(ValueError, match=r"2 distinct image\(s\); at least 3"):
        vqa.split_by_image([5, 6, 5], seed=0)
    with pytest.raises(ValueError, match=r"fractions must be three positive"):
        vqa.split_by_image([1, 2, 3], seed=0, fractions=(0.9, 0.1, 0.0))


def test_answer_vocabulary_orders_by_count_then_alphabet():
    answers = ["yes"] * 3 + ["no"] * 2 + ["2"] * 2 + ["red", "blue"]
    assert vqa.answer_vocabulary(answers) == ("yes", "2", "no", "blue", "red")
    assert vqa.answer_vocabulary(answers, min_count=2) == ("yes", "2", "no")
    assert vqa.answer_vocabulary(answers, max_size=2) == ("yes", "2")
    message = r"no answer occurs at least min_count=4 times \(5 distinct"
    with pytest.raises(ValueError, match=message):
        vqa.answer_vocabulary(answers, min_count=4)
    with pytest.raises(ValueError, match=r"max_size must be an integer >= 1"):
        vqa.answer_vocabulary(answers, max_size=0)


def test_soft_scores_are_vqa_accuracy():
    answers = [
        ["yes"] * 3 + ["no"] * 7,
        ["2"] * 8 + ["3", "two-ish"],
        [],
    ]
    scores = vqa.soft_scores(answers, ("yes", "no", "2", "3"))
    assert scores.dtype == np.float32
    np.testing.assert_allclose(
        scores,
        [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1 / 3], [0.0, 0.0, 0.0, 0.0]],
        rtol=1e-6,
    )
    scores = vqa.soft_scores([["a", "b", "a"]], ("a", "b"))
    np.testing.assert_allclose(scores, [[2 / 3, 1 / 3]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"vocabulary repeats a"):
        vqa.soft_scores(answers, ("a", "b", "a"))


def test_question_only_baseline_uses_majority_per_text():
    train = ["Is it red?", "is it red", "Is it red?", "What is it?"]
    answers = ["no", "yes", "no", "cat"]
    predicted = vqa.question_only_baseline(
        train, answers, ["IS IT RED?!", "What is it", "Unseen?"]
    )
    assert predicted == ["no", "cat", "no"]  # unseen: overall majority


def test_answer_types_agree_with_metrics():
    assert vqa.ANSWER_TYPES == vqa_metrics.ANSWER_TYPES


# --------------------------------------------------------------------------
# Synthetic shapes VQA.
# --------------------------------------------------------------------------

SYNTHETIC_IMAGES = 600
SYNTHETIC_SIZE = 32


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes_vqa")
    written = vqa.write_synthetic_vqa(
        out, SYNTHETIC_IMAGES, seed=0, image_size=SYNTHETIC_SIZE
    )
    assert written == os.fspath(out)
    return out, vqa.read_vqa(out)


def test_synthetic_round_trip(synthetic):
    out, records = synthetic
    assert len(records) == 3 * SYNTHETIC_IMAGES
    assert sorted(set(records.image_ids)) == list(
        range(1, SYNTHETIC_IMAGES + 1)
    )
    assert len(set(records.question_ids)) == len(records)
    assert set(records.answer_types) == set(vqa.ANSWER_TYPES)
    assert all(len(given) == 10 for given in records.answers)
    # At most four of ten annotators err: the majority is never in doubt.
    for given, mc in zip(records.answers, records.multiple_choice_answers):
        assert given.count(mc) >= 6
    with open(out / "annotations.json", encoding="utf-8") as f:
        question_types = {
            a["question_type"] for a in json.load(f)["annotations"]
        }
    assert question_types == {
        "what color",
        "what shape",
        "where is",
        "how many",
        "is there",
        "is the",
    }
    for path in sorted(set(records.image_paths)):
        with Image.open(path) as image:
            assert image.size == (SYNTHETIC_SIZE, SYNTHETIC_SIZE)
            assert image.mode == "RGB"
            image.load()


def test_synthetic_answers_are_balanced(synthetic):
    _, records = synthetic
    by_type = collections.defaultdict(collections.Counter)
    for answer, kind in zip(
        records.multiple_choice_answers, records.answer_types
    ):
        by_type[kind][answer] += 1
    # Measured at 600 images, seed 0: 263 yes / 294 no; 205 "1", 191 "0",
    # 92 "2"; the most common "other" answer, "yellow", 114 of 755.
    yes_no = by_type["yes/no"]
    assert set(yes_no) == {"yes", "no"}
    assert 0.4 < yes_no["yes"] / yes_no.total() < 0.6
    assert set(by_type["number"]) == {"0", "1", "2"}
    assert max(by_type["number"].values()) / by_type["number"].total() < 0.5
    other = by_type["other"]
    assert set(other) == {*COLOURS, *SHAPES, *POSITIONS}
    assert max(other.values()) / other.total() < 0.2


def test_synthetic_questions_need_the_image_and_the_question(synthetic):
    _, records = synthetic
    parts = vqa.split_by_image(records.image_ids, seed=0)
    train, test = records.take(parts["train"]), records.take(parts["test"])
    predicted = vqa.question_only_baseline(
        train.questions, train.multiple_choice_answers, test.questions
    )
    # The question alone: 0.42 on this split (0.34-0.44 over split seeds
    # 0-4), where a model that also looks at the image can reach ~1.
    blind = vqa_metrics.exact_match_accuracy(
        test.multiple_choice_answers, predicted
    )
    assert blind < 0.55
    # In VQA accuracy the blind guess gets partial credit from the
    # annotators who erred (0.55 here), while the true answer, which six
    # or more of ten annotators give, always scores 1.
    vocabulary = vqa.answer_vocabulary(train.multiple_choice_answers)
    scores = vqa.soft_scores(test.answers, vocabulary)
    guessed = [vocabulary.index(answer) for answer in predicted]
    assert vqa_metrics.vqa_accuracy(scores, guessed) < 0.65
    truth = [vocabulary.index(a) for a in test.multiple_choice_answers]
    assert vqa_metrics.vqa_accuracy(scores, truth) == 1.0
    # The image alone: an image's questions have different answers
    # (measured: all 600 images have two or more distinct answers).
    by_image = collections.defaultdict(set)
    for image_id, answer in zip(
        records.image_ids, records.multiple_choice_answers
    ):
        by_image[image_id].add(answer)
    assert np.mean([len(a) >= 2 for a in by_image.values()]) > 0.9


def test_synthetic_colour_answers_match_the_pixels(synthetic):
    _, records = synthetic
    place = re.compile(r"(?:on|at) the (left|right|top|bottom)\?$")
    checked = agree = 0
    for question, answer, path in zip(
        records.questions,
        records.multiple_choice_answers,
        records.image_paths,
    ):
        match = place.search(question)
        if not question.lower().startswith(("what col", "which col")):
            continue
        if not match or answer not in COLOURS:
            continue
        x, y = _POS_XY[POSITIONS.index(match.group(1))]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        centre = pixels[int(y * SYNTHETIC_SIZE), int(x * SYNTHETIC_SIZE)]
        nearest = int(np.argmin(np.sum((_RGB - centre) ** 2, axis=1)))
        checked += 1
        agree += COLOURS[nearest] == answer
    assert checked > 50
    assert agree == checked


def test_synthetic_same_seed_same_bytes(tmp_path):
    def files(folder):
        root = pathlib.Path(folder)
        return {
            str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    first = vqa.write_synthetic_vqa(tmp_path / "a", 30, seed=5, image_size=16)
    second = vqa.write_synthetic_vqa(tmp_path / "b", 30, seed=5, image_size=16)
    other = vqa.write_synthetic_vqa(tmp_path / "c", 30, seed=6, image_size=16)
    assert files(first) == files(second)
    assert len(files(first)) == 32
    assert files(first) != files(other)
    assert len(vqa.read_vqa(other)) == 90


def test_synthetic_questions_per_image_and_arguments(tmp_path):
    out = vqa.write_synthetic_vqa(
        tmp_path / "q", 20, seed=1, image_size=16, questions_per_image=8
    )
    records = vqa.read_vqa(out)
    assert len(records) == 160
    for image_id in range(1, 21):
        texts = [
            q
            for q, i in zip(records.questions, records.image_ids)
            if i == image_id
        ]
        assert len(set(texts)) == 8
    with pytest.raises(ValueError, match=r"questions_per_image must be at"):
        vqa.write_synthetic_vqa(tmp_path / "x", 5, questions_per_image=9)
    with pytest.raises(ValueError, match=r"num_images must be an integer"):
        vqa.write_synthetic_vqa(tmp_path / "x", 0)
    with pytest.raises(ValueError, match=r"image_size must be an integer"):
        vqa.write_synthetic_vqa(tmp_path / "x", 5, image_size=8)
