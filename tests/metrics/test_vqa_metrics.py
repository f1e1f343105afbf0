"""VQA metrics against values computed by hand."""

import math

import numpy as np
import pytest

from mmzoo.metrics import vqa as m

VOCABULARY = ("yes", "no", "2", "red")
# Soft scores of four questions (min(#annotators / 3, 1)).
SCORES = np.array(
    [
        [1.0, 1 / 3, 0.0, 0.0],  # yes/no: 9 yes, 1 no
        [0.0, 0.0, 2 / 3, 0.0],  # number: 2 of 10 said "2"
        [0.0, 0.0, 0.0, 1.0],  # other: red
        [1 / 3, 1.0, 0.0, 0.0],  # yes/no: 1 yes, 9 no
    ]
)
MC_ANSWERS = ["yes", "3", "red", "no"]
TYPES = ["yes/no", "number", "other", "yes/no"]
PREDICTED = np.array([1, 2, 3, 1])  # no, 2, red, no


def test_vqa_accuracy_reads_the_predicted_scores():
    # 1/3 + 2/3 + 1 + 1 = 3 over 4 questions.
    assert m.vqa_accuracy(SCORES, PREDICTED) == pytest.approx(0.75)
    assert m.vqa_accuracy(SCORES, [0, 0, 0, 0]) == pytest.approx(4 / 3 / 4)
    assert math.isnan(m.vqa_accuracy(np.zeros((0, 4)), []))


def test_vqa_accuracy_checks_shapes_and_indices():
    with pytest.raises(ValueError, match=r"predicted must be \[N\] = \[4\]"):
        m.vqa_accuracy(SCORES, [0, 1])
    with pytest.raises(ValueError, match=r"index 4 out of range for 4"):
        m.vqa_accuracy(SCORES, [0, 1, 4, 0])
    with pytest.raises(ValueError, match=r"integer answer indices"):
        m.vqa_accuracy(SCORES, [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"scores must be a \[N, num_ans"):
        m.vqa_accuracy(SCORES[0], [0])


def test_exact_match_accuracy():
    predicted = ["no", "2", "red", "no"]
    assert m.exact_match_accuracy(MC_ANSWERS, predicted) == 0.5
    assert math.isnan(m.exact_match_accuracy([], []))
    with pytest.raises(ValueError, match=r"2 reference answers but 1"):
        m.exact_match_accuracy(["a", "b"], ["a"])


def test_per_answer_type_orders_official_types_first():
    values = [1.0, 0.5, 0.0, 0.25, 1.0]
    types = ["other", "custom", "yes/no", "other", "yes/no"]
    result = m.per_answer_type(values, types)
    assert list(result) == ["yes/no", "other", "custom"]
    assert result == {"yes/no": 0.5, "other": 0.625, "custom": 0.5}
    assert m.per_answer_type([], []) == {}
    with pytest.raises(ValueError, match=r"2 values but 1 answer types"):
        m.per_answer_type([1.0, 2.0], ["other"])


def test_vqa_metrics_overall_and_per_type():
    result = m.vqa_metrics(SCORES, PREDICTED, VOCABULARY, MC_ANSWERS, TYPES)
    assert list(result) == [
        "vqa_accuracy",
        "accuracy",
        "vqa_accuracy/yes/no",
        "vqa_accuracy/number",
        "vqa_accuracy/other",
        "accuracy/yes/no",
        "accuracy/number",
        "accuracy/other",
    ]
    expected = {
        "vqa_accuracy": 0.75,
        "accuracy": 0.5,  # "no" != "yes", "2" != "3"
        "vqa_accuracy/yes/no": (1 / 3 + 1.0) / 2,
        "vqa_accuracy/number": 2 / 3,
        "vqa_accuracy/other": 1.0,
        "accuracy/yes/no": 0.5,
        "accuracy/number": 0.0,
        "accuracy/other": 1.0,
    }
    assert result == pytest.approx(expected)
    assert all(type(value) is float for value in result.values())
    only_yes_no = m.vqa_metrics(
        SCORES[[0, 3]], [0, 0], VOCABULARY, ["yes", "no"], ["yes/no"] * 2
    )
    assert only_yes_no == pytest.approx(
        {
            "vqa_accuracy": 2 / 3,
            "accuracy": 0.5,
            "vqa_accuracy/yes/no": 2 / 3,
            "accuracy/yes/no": 0.5,
        }
    )


def test_vqa_metrics_checks_vocabulary_and_answers():
    with pytest.raises(ValueError, match=r"vocabulary has 3 answers but"):
        m.vqa_metrics(SCORES, PREDICTED, VOCABULARY[:3], MC_ANSWERS, TYPES)
    with pytest.raises(ValueError, match=r"3 multiple-choice answers for 4"):
        m.vqa_metrics(SCORES, PREDICTED, VOCABULARY, MC_ANSWERS[:3], TYPES)
