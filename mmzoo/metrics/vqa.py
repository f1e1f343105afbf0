"""Visual question answering metrics in NumPy.

A VQA model picks one answer of a fixed vocabulary per question. Its
score on a question is the VQA accuracy of that answer, min(#annotators
who gave it / 3, 1), read from the soft-score matrix that
`mmzoo.data.vqa.soft_scores` builds from the annotators' answers; exact
match against the multiple-choice answer is reported beside it. Both are
broken down by answer type ("yes/no", "number", "other"), as the official
evaluation reports them.
"""

import numpy as np

# The VQA v2 answer types in report order; the same tuple as
# `mmzoo.data.vqa.ANSWER_TYPES` (metrics do not import the data package,
# which needs TensorFlow).
ANSWER_TYPES = ("yes/no", "number", "other")


def _rows(scores, predicted):
    """Checked `scores [N, A]` and `predicted [N]`, and each row's score."""
    scores = np.asarray(scores, dtype=np.float64)
    predicted = np.asarray(predicted)
    if predicted.size == 0:  # `[]` arrives as float64
        predicted = predicted.astype(np.int64)
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be a [N, num_answers] matrix, got shape "
            f"{scores.shape}"
        )
    if predicted.ndim != 1 or len(predicted) != len(scores):
        raise ValueError(
            f"predicted must be [N] = [{len(scores)}] answer indices (one "
            f"per row of scores), got shape {predicted.shape}"
        )
    if not np.issubdtype(predicted.dtype, np.integer):
        raise ValueError(
            f"predicted must hold integer answer indices, got dtype "
            f"{predicted.dtype}"
        )
    if len(predicted) and (
        predicted.min() < 0 or predicted.max() >= scores.shape[1]
    ):
        bad = predicted[(predicted < 0) | (predicted >= scores.shape[1])]
        raise ValueError(
            f"predicted answer index {int(bad[0])} out of range for "
            f"{scores.shape[1]} answers"
        )
    return scores[np.arange(len(predicted)), predicted]


def vqa_accuracy(scores, predicted):
    """Mean VQA accuracy of the predicted answers.

    Args:
        scores: float `[N, A]`. Soft score of each vocabulary answer per
            question (`mmzoo.data.vqa.soft_scores`).
        predicted: int `[N]`. Index of the predicted answer per question.

    Returns:
        float, the mean of `scores[i, predicted[i]]` (NaN for no rows).

    Example:
    >>> vqa_accuracy([[1.0, 1 / 3], [0.0, 2 / 3]], [1, 1])
    0.5
    """
    per_row = _rows(scores, predicted)
    if not len(per_row):
        return float("nan")
    return float(np.mean(per_row))


def exact_match_accuracy(multiple_choice_answers, predicted_answers):
    """Fraction of predicted answer strings equal to the multiple-choice
    answers.

    Args:
        multiple_choice_answers: sequence of str. The reference answers.
        predicted_answers: sequence of str. The predicted answers, in the
            same order.

    Returns:
        float (NaN for no rows).
    """
    truth, predicted = list(multiple_choice_answers), list(predicted_answers)
    if len(truth) != len(predicted):
        raise ValueError(
            f"exact_match_accuracy: {len(truth)} reference answers but "
            f"{len(predicted)} predicted answers"
        )
    if not truth:
        return float("nan")
    return sum(t == p for t, p in zip(truth, predicted)) / len(truth)


def per_answer_type(values, answer_types):
    """Mean of a per-question value for each answer type.

    Args:
        values: float `[N]`. A value per question (e.g. its VQA accuracy).
        answer_types: sequence of str `[N]`. Each question's answer type.

    Returns:
        dict of answer type to float: the types of `ANSWER_TYPES` first,
        in that order, then any others in first-seen order; types with no
        question are left out.

    Example:
    >>> per_answer_type([1.0, 0.0, 0.5], ["other", "yes/no", "other"])
    {'yes/no': 0.0, 'other': 0.75}
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    answer_types = list(answer_types)
    if len(values) != len(answer_types):
        raise ValueError(
            f"per_answer_type: {len(values)} values but "
            f"{len(answer_types)} answer types"
        )
    present = dict.fromkeys(answer_types)
    order = [t for t in ANSWER_TYPES if t in present]
    order += [t for t in present if t not in ANSWER_TYPES]
    types = np.asarray(answer_types, dtype=object)
    return {t: float(np.mean(values[types == t])) for t in order}


def vqa_metrics(
    scores, predicted, vocabulary, multiple_choice_answers, answer_types
):
    """VQA accuracy and exact match, overall and per answer type.

    Args:
        scores: float `[N, A]`. Soft scores (`mmzoo.data.vqa.soft_scores`).
        predicted: int `[N]`. Index of the predicted answer per question.
        vocabulary: sequence of str `[A]`. The answer of each index.
        multiple_choice_answers: sequence of str `[N]`. Reference answers.
        answer_types: sequence of str `[N]`. Each question's answer type.

    Returns:
        dict of str to float: `vqa_accuracy`, `accuracy` (exact match),
        then `vqa_accuracy/<type>` and `accuracy/<type>` for each answer
        type present (e.g. `vqa_accuracy/yes/no`), in `per_answer_type`
        order.

    Example:
    >>> vqa_metrics(scores, predicted, vocabulary,
    ...             records.multiple_choice_answers, records.answer_types)
    """
    per_row = _rows(scores, predicted)
    vocabulary = list(vocabulary)
    if np.shape(scores)[1] != len(vocabulary):
        raise ValueError(
            f"vqa_metrics: vocabulary has {len(vocabulary)} answers but "
            f"scores has {np.shape(scores)[1]} columns"
        )
    truth = list(multiple_choice_answers)
    if len(truth) != len(per_row):
        raise ValueError(
            f"vqa_metrics: {len(truth)} multiple-choice answers for "
            f"{len(per_row)} rows of scores"
        )
    exact = np.array(
        [vocabulary[p] == t for p, t in zip(np.asarray(predicted), truth)],
        dtype=np.float64,
    )
    metrics = {
        "vqa_accuracy": float(np.mean(per_row)) if len(per_row) else np.nan,
        "accuracy": float(np.mean(exact)) if len(exact) else np.nan,
    }
    for name, values in (("vqa_accuracy", per_row), ("accuracy", exact)):
        for answer_type, value in per_answer_type(values, answer_types).items():
            metrics[f"{name}/{answer_type}"] = value
    return {key: float(value) for key, value in metrics.items()}
