"""The VQA v2 dataset layout: reader, splits, answer targets and a
synthetic shapes VQA writer.

A dataset folder holds the official VQA v2 files under fixed names:

- `questions.json`: `{"questions": [{"image_id": int, "question": str,
  "question_id": int}, ...]}`.
- `annotations.json`: `{"annotations": [{"question_id": int, "image_id":
  int, "answers": [{"answer": str, ...}, ...], "multiple_choice_answer":
  str, "answer_type": str, "question_type": str}, ...]}`, usually ten
  annotator answers a question. `answer_type` ("yes/no", "number" or
  "other") defaults to "other"; `multiple_choice_answer` to the most
  common of the answers.
- `images/`: one file an image, `<image_id>.jpg` (or `.jpeg`, `.png`) or
  COCO's `COCO_<split>_<12-digit image_id>.jpg`.

Extra keys are ignored, so the files of the official release can be copied
in as they are (`v2_OpenEnded_mscoco_train2014_questions.json` becomes
`questions.json`, `v2_mscoco_train2014_annotations.json` becomes
`annotations.json`, `train2014/` becomes `images/`).

Every answer is compared after `normalize_answer`, the normalization of
the official evaluation, so "Two" and "2", or "the dog." and "dog", are
the same answer. A candidate answer scores min(#annotators who gave it / 3,
1) (`soft_scores`), the VQA accuracy that training targets and the
metrics in `mmzoo.metrics.vqa` use.
"""

import collections
import dataclasses
import functools
import json
import os
import re

import numpy as np

from mmzoo.data.splits import SPLITS
from mmzoo.data.synthetic_images import (
    _CHUNK,
    _PLACE,
    COLOURS,
    POSITIONS,
    SHAPES,
    _check_count,
    _draw_scenes,
    _sample_scenes,
    _write_png,
)
from mmzoo.data.text import standardize_py
from mmzoo.data.textfile import open_text

QUESTIONS_FILE = "questions.json"
ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The official answer types, in the order reports list them. The same
# tuple lives in `mmzoo.metrics.vqa`, which may not import this package.
ANSWER_TYPES = ("yes/no", "number", "other")
IMAGE_NAME_PATTERNS = (
    "<image_id>.jpg/.jpeg/.png",
    "COCO_<split>_<12-digit image_id>.jpg",
)
_PLAIN_NAME = re.compile(r"\d+", re.ASCII)
_COCO_NAME = re.compile(r"COCO_.+_(\d{12})", re.ASCII)
_MAX_LISTED = 5  # ids named in an error message

# --------------------------------------------------------------------------
# Answer normalization, as `vqaEval.py` of the official VQA API does it
# (`processPunctuation`, then `processDigitArticle`).
# --------------------------------------------------------------------------

# Replaced by a space, or removed when the answer has it next to a space
# or has a comma between digits ("1,000"). Periods, apostrophes and colons
# are not in the list: "3.5", "don't" and "10:30" keep them.
_PUNCTUATION = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# The official pattern, bug included: `(?!<=\d)` is a lookahead, not a
# lookbehind, so a period goes unless a digit follows it ("5." -> "5",
# "3.5" stays). The official call also passes `re.UNICODE` (32) as the
# count, so at most 32 periods go.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_COUNT = 32
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset(("a", "an", "the"))
# The official contractions, less the keys with capitals ("Im", "Ive",
# "Id've", "I'dve"), which never match a lower-cased word. Oddities such
# as "somebody'd" -> "somebodyd" are the official behaviour and kept.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't",
    "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd",
    "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am",
    "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't",
    "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll",
    "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}  # fmt: skip


def normalize_answer(answer):
    """Normalizes an answer as the official VQA evaluation does.

    The steps of `vqaEval.py` (VQA API), in its order: newlines and tabs
    become spaces and the ends are stripped; each of the marks
    ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is removed where the
    answer has it next to a space (or anywhere when the answer has a comma
    between two digits, so "1,000" -> "1000") and replaced by a space
    otherwise ("t-shirt" -> "t shirt"); a period not followed by a digit
    is removed ("dog." -> "dog", "3.5" stays); then the answer is lower
    cased, number words "none", "zero" .. "ten" become digits, the
    articles "a", "an", "the" are dropped, the official contractions map
    restores apostrophes ("isnt" -> "isn't") and runs of spaces become one.

    Args:
        answer: str. A predicted or annotated answer.

    Returns:
        str. The normalized answer.

    Example:
    >>> normalize_answer("Two.")
    '2'
    """
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    # Decisions look at the text before any replacement, as the official
    # loop does (it tests `inText` while editing `outText`).
    digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if mark not in out:
            continue
        if digit_comma or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    out = _PERIOD.sub("", out, count=_PERIOD_COUNT)
    words = []
    for word in out.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


# --------------------------------------------------------------------------
# Reader.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class VQARecords:
    """Questions about images with their annotators' answers, one row a
    question.

    Attributes:
        image_paths: list of str. Path of the image the question is about.
        image_ids: list of int. Its image id.
        question_ids: list of int. The question id.
        questions: list of str. The question text, as written.
        answers: list of list of str. The annotators' answers (usually
            ten), normalized with `normalize_answer`.
        multiple_choice_answers: list of str. The most common answer,
            normalized.
        answer_types: list of str. "yes/no", "number" or "other" (or what
            the annotation file says).
    """

    image_paths: list
    image_ids: list
    question_ids: list
    questions: list
    answers: list
    multiple_choice_answers: list
    answer_types: list

    def __len__(self):
        return len(self.question_ids)

    def take(self, indices):
        """The rows at `indices` (ints, e.g. a split of `split_by_image`).

        Args:
            indices: iterable of int. Row indices, in the order wanted.

        Returns:
            A new `VQARecords` with those rows.
        """
        indices = [int(i) for i in indices]
        return VQARecords(
            **{
                field.name: [getattr(self, field.name)[i] for i in indices]
                for field in dataclasses.fields(self)
            }
        )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value):
    return isinstance(value, str)


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listed(ids):
    """`"1, 2, 3"`: the first few of `ids`, for an error message."""
    shown = ", ".join(str(i) for i in ids[:_MAX_LISTED])
    return shown + (", ..." if len(ids) > _MAX_LISTED else "")


def _json_type(value):
    """The JSON name of a parsed value's type, for an error message."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean"}
    return names.get(type(value), "null" if value is None else "number")


def _majority(values):
    """Most common value; ties go to the alphabetically first."""
    counts = collections.Counter(values)
    return min(counts, key=lambda value: (-counts[value], value))


def _load_entries(path, key):
    """The list under `key` in the JSON object of file `path`."""
    if not os.path.isfile(path):
        raise ValueError(f"vqa: {path} not found")
    try:
        with open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})"
        ) from e
    if not isinstance(data, dict) or key not in data:
        got = (
            f"keys {_short(sorted(data))}"
            if isinstance(data, dict)
            else f"a JSON {_json_type(data)}"
        )
        raise ValueError(
            f"{path}: expected a JSON object with the key '{key}' (a list "
            f"of entries); got {got}"
        )
    entries = data[key]
    if not isinstance(entries, list):
        raise ValueError(
            f"{path}: '{key}' must be a list of entries, got a JSON "
            f"{_json_type(entries)}"
        )
    return entries


class _Entry:
    """One entry of a VQA JSON file, for checked access to its keys."""

    def __init__(self, path, index, entry):
        if not isinstance(entry, dict):
            raise ValueError(
                f"{path}: entry {index}: expected a JSON object, got "
                f"{_short(entry)}"
            )
        self.entry = entry
        qid = entry.get("question_id")
        known = f" (question_id {qid})" if _is_int(qid) else ""
        self.where = f"{path}: entry {index}{known}"

    def require(self, key, check, expected):
        if key not in self.entry:
            raise ValueError(f"{self.where}: missing key '{key}'")
        return self.optional(key, check, expected)

    def optional(self, key, check, expected, default=None):
        value = self.entry.get(key, default)
        if key in self.entry and not check(value):
            raise ValueError(
                f"{self.where}: '{key}' must be {expected}, got {_short(value)}"
            )
        return value

    def error(self, message):
        return ValueError(f"{self.where}: {message}")


def _read_questions(path):
    """`[(question_id, image_id, question)]` in file order."""
    rows, first_entry = [], {}
    for index, raw in enumerate(_load_entries(path, "questions")):
        entry = _Entry(path, index, raw)
        qid = entry.require("question_id", _is_int, "an integer")
        image_id = entry.require("image_id", _is_int, "an integer")
        text = entry.require("question", _is_str, "a string")
        if qid in first_entry:
            raise entry.error(
                f"question_id {qid} repeats entry {first_entry[qid]}"
            )
        first_entry[qid] = index
        rows.append((qid, image_id, text))
    if not rows:
        raise ValueError(f"{path}: 'questions' is empty")
    return rows


def _read_annotations(path):
    """question_id -> `(image_id, answers, mc_answer, answer_type)`, in file
    order, answers normalized."""
    # Answers repeat a lot ("yes", "2"); normalize each string once.
    normalize = functools.lru_cache(maxsize=None)(normalize_answer)
    by_question = {}
    first_entry = {}
    for index, raw in enumerate(_load_entries(path, "annotations")):
        entry = _Entry(path, index, raw)
        qid = entry.require("question_id", _is_int, "an integer")
        image_id = entry.require("image_id", _is_int, "an integer")
        answers = entry.require(
            "answers",
            lambda v: isinstance(v, list),
            "a list of {'answer': str} objects",
        )
        if not answers:
            raise entry.error("empty 'answers' list")
        normalized = []
        for k, item in enumerate(answers):
            if not isinstance(item, dict) or not _is_str(item.get("answer")):
                raise entry.error(
                    f"answers[{k}] must be an object with a string "
                    f"'answer', got {_short(item)}"
                )
            normalized.append(normalize(item["answer"]))
        mc = entry.optional("multiple_choice_answer", _is_str, "a string")
        mc = _majority(normalized) if mc is None else normalize(mc)
        answer_type = entry.optional(
            "answer_type", _is_str, "a string", default="other"
        )
        if qid in first_entry:
            raise entry.error(
                f"question_id {qid} repeats entry {first_entry[qid]}"
            )
        first_entry[qid] = index
        by_question[qid] = (image_id, normalized, mc, answer_type)
    return by_question


def _index_images(images_dir):
    """image_id -> path of each image file directly in `images_dir`.

    When several files name one image id (`9.jpg` and `9.png`), the first
    in sorted name order is used.
    """
    with os.scandir(images_dir) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file())
    paths = {}
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        if _PLAIN_NAME.fullmatch(stem):
            image_id = int(stem)
        elif match := _COCO_NAME.fullmatch(stem):
            image_id = int(match.group(1))
        else:
            continue
        paths.setdefault(image_id, os.path.join(images_dir, name))
    return paths


def read_vqa(data_dir):
    """Reads a VQA v2 folder (see the module docstring).

    Questions and annotations are joined by `question_id`; every answer is
    normalized with `normalize_answer`.

    Args:
        data_dir: str or path-like. Folder holding `questions.json`,
            `annotations.json` and `images/`.

    Returns:
        A `VQARecords`, one row a question, in `questions.json` order.

    Raises:
        ValueError: naming the folder or file that is missing; the file
            and line of invalid JSON or of bytes that are not UTF-8; the
            file, entry index and question_id of an entry with a missing
            or mistyped key, an empty `answers` list or a repeated
            question_id; a few of the question_ids (and their count) that
            have a question but no annotation or the reverse, or whose
            image_id differs between the two files; and a few of the
            image_ids (and their count) with no file in `images/`, with
            the accepted name patterns and the entry and question_id of
            the first question about one.

    Example:
    >>> records = read_vqa("data/vqa")
    >>> records.questions[0], records.multiple_choice_answers[0]
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    if not os.path.isdir(data_dir):
        raise ValueError(f"vqa: folder {data_dir} not found")
    questions_path = os.path.join(data_dir, QUESTIONS_FILE)
    annotations_path = os.path.join(data_dir, ANNOTATIONS_FILE)
    images_dir = os.path.join(data_dir, IMAGES_DIR)
    questions = _read_questions(questions_path)
    annotations = _read_annotations(annotations_path)

    asked = {qid for qid, _, _ in questions}
    unanswered = [qid for qid, _, _ in questions if qid not in annotations]
    if unanswered:
        raise ValueError(
            f"{annotations_path}: no annotation for {len(unanswered)} "
            f"question(s) of {questions_path}: question_id "
            f"{_listed(unanswered)}"
        )
    unasked = [qid for qid in annotations if qid not in asked]
    if unasked:
        raise ValueError(
            f"{annotations_path}: {len(unasked)} annotation(s) have no "
            f"question in {questions_path}: question_id {_listed(unasked)}"
        )
    question_image = {qid: image_id for qid, image_id, _ in questions}
    mismatched = [
        qid
        for qid, (image_id, *_) in annotations.items()
        if image_id != question_image[qid]
    ]
    if mismatched:
        qid = mismatched[0]
        raise ValueError(
            f"{annotations_path}: {len(mismatched)} annotation(s) name "
            f"another image than {questions_path}: question_id "
            f"{_listed(mismatched)}; e.g. question_id {qid} has image_id "
            f"{annotations[qid][0]} there and {question_image[qid]} in "
            f"{QUESTIONS_FILE}"
        )

    if not os.path.isdir(images_dir):
        raise ValueError(
            f"vqa: folder {images_dir} not found (images go in "
            f"{IMAGES_DIR}/ beside {QUESTIONS_FILE})"
        )
    image_paths = _index_images(images_dir)
    missing = list(
        dict.fromkeys(
            image_id
            for _, image_id, _ in questions
            if image_id not in image_paths
        )
    )
    if missing:
        entry, (qid, image_id, _) = next(
            (i, row)
            for i, row in enumerate(questions)
            if row[1] not in image_paths
        )
        raise ValueError(
            f"vqa: no image file in {images_dir} for {len(missing)} "
            f"image_id(s) of {questions_path}: {_listed(missing)} "
            f"(expected names: {' or '.join(IMAGE_NAME_PATTERNS)}); the "
            f"first is {questions_path}: entry {entry} (question_id {qid}), "
            f"image_id {image_id}"
        )

    records = VQARecords([], [], [], [], [], [], [])
    for qid, image_id, text in questions:
        _, answers, mc_answer, answer_type = annotations[qid]
        records.image_paths.append(image_paths[image_id])
        records.image_ids.append(image_id)
        records.question_ids.append(qid)
        records.questions.append(text)
        records.answers.append(answers)
        records.multiple_choice_answers.append(mc_answer)
        records.answer_types.append(answer_type)
    return records


# --------------------------------------------------------------------------
# Splits, answer vocabulary and soft scores.
# --------------------------------------------------------------------------


def split_by_image(image_ids, seed, fractions=(0.8, 0.1, 0.1)):
    """Splits questions into train/val/test so that no image is in two.

    The distinct image ids are shuffled with `np.random.default_rng(seed)`
    and dealt to the splits by `fractions` (each split gets at least one
    image); every question goes where its image went. The questions of an
    image share its answers' evidence, so splitting questions instead
    would let a model see test images in training.

    Args:
        image_ids: sequence of int. The image id of each question.
        seed: int. Seed of the shuffle; the same ids and seed always give
            the same split.
        fractions: tuple of three positive floats summing to 1. Fractions
            of images in train, val and test. Defaults to (0.8, 0.1, 0.1).

    Returns:
        dict of "train", "val", "test" to sorted int64 arrays of question
        indices.

    Raises:
        ValueError: if `fractions` is not three positive numbers summing to
            1, or there are fewer than 3 distinct images.

    Example:
    >>> parts = split_by_image(records.image_ids, seed=0)
    >>> train = records.take(parts["train"])
    """
    fractions = tuple(fractions)
    if (
        len(fractions) != 3
        or not all(np.isfinite(f) and f > 0 for f in fractions)
        or abs(sum(fractions) - 1.0) > 1e-6
    ):
        raise ValueError(
            "split_by_image: fractions must be three positive numbers "
            f"(train, val, test) summing to 1, got {fractions!r}"
        )
    image_ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    unique = np.unique(image_ids)
    n = len(unique)
    if n < 3:
        raise ValueError(
            f"split_by_image: {n} distinct image(s); at least 3 distinct "
            "images are needed so that train, val and test each get one"
        )
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    while n - n_val - n_test < 1:  # rounding up small splits left no train
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    n_train = n - n_val - n_test
    order = np.random.default_rng(seed).permutation(unique)
    parts = (
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val :],
    )
    return {
        name: np.flatnonzero(np.isin(image_ids, part)).astype(np.int64)
        for name, part in zip(SPLITS, parts)
    }


def answer_vocabulary(multiple_choice_answers, min_count=1, max_size=None):
    """The answers a classifier predicts, from the training answers.

    Args:
        multiple_choice_answers: iterable of str. The (normalized)
            multiple-choice answer of each training question.
        min_count: int. Keep answers given at least this often. Defaults
            to 1.
        max_size: int or None. Keep at most this many, the most frequent.
            Defaults to None (no limit).

    Returns:
        tuple of str, most frequent first, ties in alphabetical order.

    Raises:
        ValueError: if `min_count` or `max_size` is not a positive integer,
            or no answer is frequent enough.

    Example:
    >>> answer_vocabulary(["yes", "no", "yes", "2"])
    ('yes', '2', 'no')
    """
    _check_count("answer_vocabulary", "min_count", min_count)
    if max_size is not None:
        _check_count("answer_vocabulary", "max_size", max_size)
    counts = collections.Counter(multiple_choice_answers)
    kept = sorted(
        (answer for answer, count in counts.items() if count >= min_count),
        key=lambda answer: (-counts[answer], answer),
    )
    if not kept:
        raise ValueError(
            f"answer_vocabulary: no answer occurs at least min_count="
            f"{min_count} times ({len(counts)} distinct answers, the most "
            f"common {max(counts.values(), default=0)} times)"
        )
    return tuple(kept[:max_size])


def soft_scores(answers, vocabulary):
    """VQA accuracy of each vocabulary answer, the soft training targets.

    A candidate that `k` annotators gave scores min(k / 3, 1): 3 of 10
    annotators make an answer fully right, 1 of 10 a third right. (The
    official evaluation averages this over the ten leave-one-annotator-out
    subsets, which gives 0.3, 0.6, 0.9, 1 for 1, 2, 3, 4+ of 10; the
    difference matters only for answers given by 1-3 annotators.)

    Args:
        answers: sequence of sequences of str. The normalized annotator
            answers of each question (`VQARecords.answers`).
        vocabulary: sequence of distinct str. The candidate answers.

    Returns:
        float32 array `[N, len(vocabulary)]`. Answers not in the
        vocabulary contribute nothing.

    Raises:
        ValueError: if `vocabulary` repeats an answer.

    Example:
    >>> soft_scores([["yes"] * 9 + ["no"]], ("yes", "no"))
    array([[1.       , 0.3333333]], dtype=float32)
    """
    index = {answer: i for i, answer in enumerate(vocabulary)}
    if len(index) != len(vocabulary):
        repeated = [
            a for a, c in collections.Counter(vocabulary).items() if c > 1
        ]
        raise ValueError(f"soft_scores: vocabulary repeats {_listed(repeated)}")
    counts = np.zeros((len(answers), len(index)), dtype=np.float32)
    for row, given in enumerate(answers):
        for answer in given:
            column = index.get(answer)
            if column is not None:
                counts[row, column] += 1.0
    return np.minimum(counts / 3.0, 1.0).astype(np.float32)


def question_only_baseline(train_questions, train_mc_answers, questions):
    """Answers each question with its most common training answer.

    A "blind" model: the majority multiple-choice answer of the training
    questions with the same text (lower-cased, punctuation removed, as
    `mmzoo.data.text.standardize_py` does), else the overall majority.
    What it scores is what the question alone gives away.

    Args:
        train_questions: sequence of str. Training question texts.
        train_mc_answers: sequence of str. Their multiple-choice answers.
        questions: sequence of str. The questions to answer.

    Returns:
        list of str, one answer per question. Ties go to the
        alphabetically first answer.
    """
    if len(train_questions) != len(train_mc_answers) or not train_questions:
        raise ValueError(
            "question_only_baseline: need as many training answers as "
            f"training questions (at least one), got {len(train_questions)} "
            f"questions and {len(train_mc_answers)} answers"
        )
    by_text = collections.defaultdict(list)
    for text, answer in zip(train_questions, train_mc_answers):
        by_text[standardize_py(text)].append(answer)
    majority = {text: _majority(given) for text, given in by_text.items()}
    fallback = _majority(train_mc_answers)
    return [majority.get(standardize_py(q), fallback) for q in questions]


# --------------------------------------------------------------------------
# Synthetic shapes VQA.
# --------------------------------------------------------------------------

_NUM_ANNOTATORS = 10
# Chance that an annotator gives another answer of the same kind ("blue"
# for "red"); the multiple-choice answer stays the true one.
_ANSWER_NOISE = 0.1
# Question families every scene can answer (all but "colour of shape").
_MAX_QUESTIONS_PER_IMAGE = 8
_COUNTS = ("0", "1", "2")
_YES_NO = ("yes", "no")
_PLURAL_SHAPES = ("circles", "squares", "triangles")

_COLOUR_OF_SHAPE = (
    "what colour is the {shape}?",
    "what color is the {shape}?",
    "what is the colour of the {shape}?",
    "which color is the {shape}?",
)
_COLOUR_AT_PLACE = (
    "what colour is the shape {place}?",
    "what color is the shape {place}?",
    "what is the color of the object {place}?",
    "which colour is the thing {place}?",
)
_SHAPE_AT_PLACE = (
    "what shape is {place}?",
    "which shape is {place}?",
    "what kind of shape is {place}?",
)
_PLACE_OF = (
    "where is the {object}?",
    "where is the {object} located?",
    "in which part of the picture is the {object}?",
)
_COUNT_ALL = (
    "how many shapes are there?",
    "how many objects are in the picture?",
    "how many shapes can you see?",
)
_COUNT_COLOUR = (
    "how many {what} shapes are there?",
    "how many {what} objects are there?",
    "how many {what} things can you see?",
)
_COUNT_SHAPE = (
    "how many {what} are there?",
    "how many {what} can you see?",
    "how many {what} are in the picture?",
)
_EXISTS = (
    "is there a {object}?",
    "is there a {object} in the picture?",
    "do you see a {object}?",
    "can you see a {object}?",
)
_IS_AT_PLACE = (
    "is the {object} {place}?",
    "is the {object} located {place}?",
)

_Object = collections.namedtuple("_Object", "shape colour position")


def _pick(rng, options):
    return options[rng.integers(len(options))]


def _unique_shape(objects, obj):
    return sum(other.shape == obj.shape for other in objects) == 1


def _name(rng, objects, obj):
    """Words that pick out `obj` alone, "circle" or "red circle" (two
    objects of one scene differ in shape or colour)."""
    shape = SHAPES[obj.shape]
    if _unique_shape(objects, obj) and rng.random() < 0.5:
        return shape
    return f"{COLOURS[obj.colour]} {shape}"


def _ask_colour_of_shape(rng, objects):
    candidates = [obj for obj in objects if _unique_shape(objects, obj)]
    if not candidates:  # two circles: "the circle" means neither
        return None
    obj = _pick(rng, candidates)
    text = _pick(rng, _COLOUR_OF_SHAPE).format(shape=SHAPES[obj.shape])
    return text, COLOURS[obj.colour]


def _ask_colour_at_place(rng, objects):
    obj = _pick(rng, objects)
    text = _pick(rng, _COLOUR_AT_PLACE).format(place=_PLACE[obj.position])
    return text, COLOURS[obj.colour]


def _ask_shape_at_place(rng, objects):
    obj = _pick(rng, objects)
    text = _pick(rng, _SHAPE_AT_PLACE).format(place=_PLACE[obj.position])
    return text, SHAPES[obj.shape]


def _ask_place_of(rng, objects):
    obj = _pick(rng, objects)
    text = _pick(rng, _PLACE_OF).format(object=_name(rng, objects, obj))
    return text, POSITIONS[obj.position]


def _ask_count_all(rng, objects):
    return _pick(rng, _COUNT_ALL), str(len(objects))


def _ask_count_by(rng, objects, attribute, words, templates):
    # Draw the answer first, uniformly among the counts the scene allows,
    # then a value with that count: asking about a random colour would
    # make "0" the answer most of the time, which the text alone guesses.
    counts = [
        sum(getattr(obj, attribute) == value for obj in objects)
        for value in range(len(words))
    ]
    answer = _pick(rng, sorted(set(counts)))
    value = _pick(rng, [v for v, c in enumerate(counts) if c == answer])
    return _pick(rng, templates).format(what=words[value]), str(answer)


def _ask_count_colour(rng, objects):
    return _ask_count_by(rng, objects, "colour", COLOURS, _COUNT_COLOUR)


def _ask_count_shape(rng, objects):
    return _ask_count_by(rng, objects, "shape", _PLURAL_SHAPES, _COUNT_SHAPE)


def _ask_exists(rng, objects):
    # Yes and no equally often; a "no" names a colour-shape pair the scene
    # lacks, drawn uniformly, so each question text is yes half the time.
    if rng.random() < 0.5:
        obj = _pick(rng, objects)
        shape, colour, answer = obj.shape, obj.colour, "yes"
    else:
        present = {(obj.shape, obj.colour) for obj in objects}
        absent = [
            (shape, colour)
            for shape in range(len(SHAPES))
            for colour in range(len(COLOURS))
            if (shape, colour) not in present
        ]
        (shape, colour), answer = _pick(rng, absent), "no"
    text = _pick(rng, _EXISTS).format(
        object=f"{COLOURS[colour]} {SHAPES[shape]}"
    )
    return text, answer


def _ask_is_at_place(rng, objects):
    obj = _pick(rng, objects)
    if rng.random() < 0.5:
        position, answer = obj.position, "yes"
    else:
        others = [p for p in range(len(POSITIONS)) if p != obj.position]
        position, answer = _pick(rng, others), "no"
    text = _pick(rng, _IS_AT_PLACE).format(
        object=_name(rng, objects, obj), place=_PLACE[position]
    )
    return text, answer


_Family = collections.namedtuple(
    "_Family", "ask question_type answer_type choices weight"
)
# Weights make yes/no, number and other about 31/27/42% of the questions
# (measured at 600 images, seed 0).
_FAMILIES = (
    _Family(_ask_colour_of_shape, "what color", "other", COLOURS, 1.0),
    _Family(_ask_colour_at_place, "what color", "other", COLOURS, 1.0),
    _Family(_ask_shape_at_place, "what shape", "other", SHAPES, 1.0),
    _Family(_ask_place_of, "where is", "other", POSITIONS, 1.0),
    _Family(_ask_count_all, "how many", "number", _COUNTS, 0.5),
    _Family(_ask_count_colour, "how many", "number", _COUNTS, 1.0),
    _Family(_ask_count_shape, "how many", "number", _COUNTS, 1.0),
    _Family(_ask_exists, "is there", "yes/no", _YES_NO, 1.5),
    _Family(_ask_is_at_place, "is the", "yes/no", _YES_NO, 1.5),
)
_WEIGHTS = np.array([family.weight for family in _FAMILIES])


def _scene_questions(rng, objects, count):
    """`count` questions of different families about one scene, as
    `(family, text, true answer)`."""
    # A weighted order without replacement (Efraimidis-Spirakis keys):
    # different families give an image's questions different answers.
    order = np.argsort(-(rng.random(len(_FAMILIES)) ** (1.0 / _WEIGHTS)))
    asked = []
    for f in order:
        family = _FAMILIES[f]
        question = family.ask(rng, objects)
        if question is not None:
            text, answer = question
            asked.append((family, text[0].upper() + text[1:], answer))
            if len(asked) == count:
                break
    return asked


def _annotator_answers(rng, answer, choices):
    """Ten answers: the true one, or another of `choices` by chance."""
    others = [choice for choice in choices if choice != answer]
    wrong = rng.random(_NUM_ANNOTATORS) < _ANSWER_NOISE
    # At most four err, so the true answer keeps a strict majority and is
    # the multiple-choice answer (five or more would err 1 time in 600).
    wrong &= np.cumsum(wrong) <= 4
    picks = rng.integers(0, len(others), _NUM_ANNOTATORS)
    return [others[k] if w else answer for w, k in zip(wrong, picks)]


def _write_json(path, data):
    # `json.dumps` uses the C encoder; `json.dump` to a file does not.
    text = json.dumps(data, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def write_synthetic_vqa(
    out_dir, num_images=600, seed=0, image_size=64, questions_per_image=3
):
    """Writes a synthetic shapes VQA dataset in the VQA v2 layout.

    Each image is a scene of `write_synthetic_captions`: one or two shapes
    (circle, square, triangle; red, green, blue, yellow; small or large) at
    the left, right, top or bottom. Each gets `questions_per_image`
    questions of different kinds, only ones the scene answers exactly:

    - colour: "What colour is the circle?" (asked only when there is one
      circle), "What color is the shape on the left?";
    - shape: "What shape is at the top?";
    - position: "Where is the green square?" (left/right/top/bottom);
    - count: "How many shapes are there?", "How many red shapes are
      there?", "How many circles can you see?" ("0", "1" or "2");
    - yes/no: "Is there a blue square?", "Is the triangle on the left?".

    Answers are drawn so that the question text alone gives little away:
    yes and no equally often, counts drawn among those the scene allows,
    colours, shapes and positions uniform. And one image's questions
    usually have different answers, so the image alone does not answer
    them either. Ten annotators answer each question; each gives another
    answer of the same kind with probability 0.1 (at most four of the ten
    do), so the `multiple_choice_answer`, the majority, is the true one.

    Files: `out_dir/images/<image_id>.png` (image ids 1..num_images),
    `out_dir/questions.json` and `out_dir/annotations.json` (question id
    = image id * 1000 + k, `answer_type` "yes/no", "number" or "other",
    `question_type` "what color", "what shape", "where is", "how many",
    "is there" or "is the").

    Args:
        out_dir: str or path-like. Folder to write; created if missing.
        num_images: int. Number of images. Defaults to 600.
        seed: int. Non-negative random seed; the same seed writes the same
            bytes. Defaults to 0.
        image_size: int. Image height and width (>= 16). Defaults to 64.
        questions_per_image: int. Questions per image, 1 to 8. Defaults
            to 3.

    Returns:
        str. `out_dir`, ready for `read_vqa`.

    Example:
    >>> records = read_vqa(write_synthetic_vqa("/tmp/shapes_vqa"))
    """
    where = "write_synthetic_vqa"
    _check_count(where, "num_images", num_images)
    _check_count(where, "seed", seed, minimum=0)
    _check_count(where, "image_size", image_size, 16)
    _check_count(where, "questions_per_image", questions_per_image)
    if questions_per_image > _MAX_QUESTIONS_PER_IMAGE:
        raise ValueError(
            f"{where}: questions_per_image must be at most "
            f"{_MAX_QUESTIONS_PER_IMAGE} (the kinds of question every "
            f"scene answers), got {questions_per_image}"
        )
    scenes = _sample_scenes(num_images, np.random.default_rng([seed, 0]))
    text_rng = np.random.default_rng([seed, 1])
    pixel_rng = np.random.default_rng([seed, 2])
    out_dir = os.fspath(out_dir)
    image_dir = os.path.join(out_dir, IMAGES_DIR)
    os.makedirs(image_dir, exist_ok=True)
    for start in range(0, num_images, _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in scenes.items()}
        pixels = _draw_scenes(part, image_size, pixel_rng)
        for offset, image in enumerate(pixels):
            image_id = start + offset + 1
            _write_png(os.path.join(image_dir, f"{image_id}.png"), image)

    questions, annotations = [], []
    for i in range(num_images):
        image_id = i + 1
        objects = [
            _Object(
                int(scenes["shape"][i, slot]),
                int(scenes["colour"][i, slot]),
                int(scenes["position"][i, slot]),
            )
            for slot in range(2)
            if scenes["present"][i, slot]
        ]
        asked = _scene_questions(text_rng, objects, questions_per_image)
        for k, (family, text, answer) in enumerate(asked):
            question_id = image_id * 1000 + k
            given = _annotator_answers(text_rng, answer, family.choices)
            questions.append(
                {
                    "image_id": image_id,
                    "question": text,
                    "question_id": question_id,
                }
            )
            annotations.append(
                {
                    "question_id": question_id,
                    "image_id": image_id,
                    "question_type": family.question_type,
                    "answer_type": family.answer_type,
                    "multiple_choice_answer": answer,
                    "answers": [
                        {
                            "answer": a,
                            "answer_confidence": "yes",
                            "answer_id": j + 1,
                        }
                        for j, a in enumerate(given)
                    ],
                }
            )
    info = {"description": f"mmzoo synthetic shapes VQA, seed {seed}"}
    _write_json(
        os.path.join(out_dir, QUESTIONS_FILE),
        {"info": info, "questions": questions},
    )
    _write_json(
        os.path.join(out_dir, ANNOTATIONS_FILE),
        {"info": info, "annotations": annotations},
    )
    return out_dir
