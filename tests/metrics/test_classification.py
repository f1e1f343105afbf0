"""Classification metrics against values computed by hand (and the layout
of scikit-learn's `classification_report`, copied from its documentation).
"""

import math

import numpy as np
import pytest

from mmzoo.metrics import classification as m

# scikit-learn's documented example of `classification_report`.
TRUE = [0, 1, 2, 2, 2]
PRED = [0, 0, 2, 2, 1]
SKLEARN_REPORT = """\
              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5
"""

# Multi-label: 4 examples, labels a, b, c.
MULTI_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
MULTI_PRED = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])


def test_accuracy_and_macro_f1_single_label():
    assert m.accuracy(TRUE, PRED) == pytest.approx(0.6)
    # One-hot truth and score rows give the same (arg-max).
    onehot = np.eye(3)[TRUE]
    scores = np.eye(3)[PRED] * 0.8 + 0.05
    assert m.accuracy(onehot, scores) == pytest.approx(0.6)
    # Per-class F1: 2/3, 0, 0.8.
    assert m.macro_f1(TRUE, PRED) == pytest.approx((2 / 3 + 0 + 0.8) / 3)
    # A class never seen counts with F1 0 when num_classes says it exists.
    assert m.macro_f1(TRUE, PRED, num_classes=4) == pytest.approx(
        (2 / 3 + 0.8) / 4
    )
    # Micro F1 of single-label predictions is the accuracy.
    assert m.micro_f1(TRUE, PRED) == pytest.approx(0.6)


def test_precision_recall_f1_support():
    precision, recall, f1, support = m.precision_recall_f1(TRUE, PRED)
    np.testing.assert_allclose(precision, [0.5, 0.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 0.0, 2 / 3])
    np.testing.assert_allclose(f1, [2 / 3, 0.0, 0.8])
    np.testing.assert_array_equal(support, [1, 1, 3])


def test_multi_label_f1():
    # tp/fp/fn per label: a 2/0/0, b 1/0/1, c 1/1/1 → pooled 4/1/2.
    assert m.micro_f1(MULTI_TRUE, MULTI_PRED) == pytest.approx(8 / 11)
    assert m.macro_f1(MULTI_TRUE, MULTI_PRED) == pytest.approx(
        (1.0 + 2 / 3 + 0.5) / 3
    )


def test_average_precision_by_hand():
    # Ranked: + - + + -; P at each positive 1, 2/3, 3/4 over 3 positives.
    ap = m.average_precision([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1])
    assert ap == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # Tied scores form one threshold: P = 1/2 at recall 1.
    assert m.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(m.average_precision([0, 0], [0.1, 0.2]))


def test_mean_average_precision_skips_labels_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    # Label 0 ranked + - +: (1 + 2/3) / 2; label 1 has no positive.
    assert m.mean_average_precision(y, scores) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="one shape"):
        m.mean_average_precision(y, scores[:, :1])


def test_regression_metrics_use_finite_targets_only():
    true = np.array([[1.0], [2.0], [np.nan], [4.0]])
    pred = np.array([2.0, 2.0, 100.0, 3.0])
    assert m.mae(true, pred) == pytest.approx(2 / 3)
    assert m.rmse(true, pred) == pytest.approx(math.sqrt(2 / 3))
    # Finite rows: (1, 2), (2, 2), (4, 3).
    t, p = np.array([1, 2, 4.0]), np.array([2, 2, 3.0])
    t, p = t - t.mean(), p - p.mean()
    want = np.sum(t * p) / math.sqrt(np.sum(t * t) * np.sum(p * p))
    assert m.pearson(true, pred) == pytest.approx(want)
    assert m.pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) > 0.99
    assert math.isnan(m.pearson([1.0, 2.0], [3.0, 3.0]))
    assert math.isnan(m.mae([np.nan], [1.0]))


def test_reconstruction_mse():
    images = np.zeros((2, 2, 2, 3))
    recon = np.full((2, 2, 2, 3), 0.5)
    assert m.reconstruction_mse(images, recon) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        m.reconstruction_mse(images, recon[:1])


def test_classification_report_matches_sklearn_layout():
    report = m.classification_report(
        TRUE, PRED, ["class 0", "class 1", "class 2"]
    )
    assert report == SKLEARN_REPORT


def test_classification_report_multi_label():
    report = m.classification_report(MULTI_TRUE, MULTI_PRED, "abc", digits=3)
    lines = [line.split() for line in report.splitlines() if line.strip()]
    assert lines[0] == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == ["a", "1.000", "1.000", "1.000", "2"]
    assert lines[2] == ["b", "1.000", "0.500", "0.667", "2"]
    assert lines[3] == ["c", "0.500", "0.500", "0.500", "2"]
    # Pooled: tp 4, fp 1, fn 2.
    assert lines[4] == ["micro", "avg", "0.800", "0.667", "0.727", "6"]
    assert lines[5] == ["macro", "avg", "0.833", "0.667", "0.722", "6"]
    # Per example: P 1, 1/2, 1, 1; R 1/2, 1, 1/2, 1; F1 2/3, 2/3, 2/3, 1.
    assert lines[7] == ["samples", "avg", "0.875", "0.750", "0.750", "6"]


def test_mismatched_inputs_name_the_shapes():
    with pytest.raises(ValueError, match="differ in form"):
        m.macro_f1([0, 1], np.eye(2))
    with pytest.raises(ValueError, match="3 label_names for 2 classes"):
        m.classification_report(np.eye(2), np.eye(2), "abc")
