"""Classification, regression and reconstruction metrics in NumPy.

What the seed documents print with scikit-learn, without it:
`accuracy`, `macro_f1`, `micro_f1`, `mean_average_precision` (the `map`
metric), `mae`, `rmse`, `pearson`, `reconstruction_mse` and
`classification_report` (sklearn's per-class precision/recall/F1/support
table and its averages, in the same layout).

Labels come in one of two forms:

- single-label: class indices `[N]` (int), or one-hot / score rows
  `[N, K]` when passed to `as_indices`;
- multi-label: 0/1 indicator matrices `[N, K]` (one column per label).

Zero-division follows scikit-learn's default: a precision with no predicted
example, a recall with no true example and an F1 of a class with neither
are 0 (not NaN). Regression metrics use only the rows whose target is
finite (NaN = no target).
"""

import numpy as np


def as_indices(values):
    """Class indices `[N]` from indices `[N]` or one-hot/scores `[N, K]`."""
    values = np.asarray(values)
    if values.ndim == 2:
        return np.argmax(values, axis=-1)
    if values.ndim != 1:
        raise ValueError(
            f"expected class indices [N] or rows [N, K]; got shape "
            f"{values.shape}"
        )
    return values.astype(np.int64)


def _indicators(values, num_classes=None):
    """0/1 matrix `[N, K]` from indices `[N]` or an indicator matrix."""
    values = np.asarray(values)
    if values.ndim == 2:
        return (values > 0.5).astype(np.int64)
    indices = as_indices(values)
    if num_classes is None:
        num_classes = int(indices.max()) + 1 if len(indices) else 0
    out = np.zeros((len(indices), num_classes), np.int64)
    out[np.arange(len(indices)), indices] = 1
    return out


def _pair(y_true, y_pred, num_classes=None):
    """Indicator matrices of `y_true` and `y_pred` with one column count."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != y_pred.ndim:
        raise ValueError(
            f"y_true and y_pred differ in form: shapes {y_true.shape} and "
            f"{y_pred.shape}; pass both as indices [N] or both as [N, K]"
        )
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} rows and y_pred {len(y_pred)}"
        )
    if y_true.ndim == 1 and num_classes is None:
        both = np.concatenate([as_indices(y_true), as_indices(y_pred)])
        num_classes = int(both.max()) + 1 if len(both) else 0
    return _indicators(y_true, num_classes), _indicators(y_pred, num_classes)


def _divide(numerator, denominator):
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _counts(true, pred, axis=0):
    tp = np.sum(true * pred, axis=axis)
    fp = np.sum((1 - true) * pred, axis=axis)
    fn = np.sum(true * (1 - pred), axis=axis)
    return tp, fp, fn


def precision_recall_f1(y_true, y_pred, num_classes=None):
    """Per-class precision, recall, F1 and support.

    Args:
        y_true: class indices `[N]` or a 0/1 matrix `[N, K]`.
        y_pred: the predictions, in the same form.
        num_classes: int or None. Classes of index inputs. Defaults to one
            more than the largest index seen.

    Returns:
        Four float64/int64 arrays `[K]`: precision, recall, F1, support
        (true examples per class).
    """
    true, pred = _pair(y_true, y_pred, num_classes)
    tp, fp, fn = _counts(true, pred)
    precision = _divide(tp, tp + fp)
    recall = _divide(tp, tp + fn)
    f1 = _divide(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1, np.sum(true, axis=0)


def accuracy(y_true, y_pred):
    """Fraction of rows whose predicted class is the true class.

    Args:
        y_true: class indices `[N]`, or one-hot rows `[N, K]`.
        y_pred: class indices `[N]`, or score rows `[N, K]` (arg-max).

    Returns:
        float (NaN for no rows).
    """
    true, pred = as_indices(y_true), as_indices(y_pred)
    if not len(true):
        return float("nan")
    return float(np.mean(true == pred))


def macro_f1(y_true, y_pred, num_classes=None):
    """Unweighted mean over classes (labels) of each one's F1.

    Args:
        y_true: class indices `[N]` (single-label) or a 0/1 matrix
            `[N, K]` (multi-label).
        y_pred: predictions in the same form.
        num_classes: int or None. Classes of index inputs (a class never
            seen counts with F1 0). Defaults to one more than the largest
            index seen.

    Returns:
        float.
    """
    return float(np.mean(precision_recall_f1(y_true, y_pred, num_classes)[2]))


def micro_f1(y_true, y_pred, num_classes=None):
    """F1 of the true/false positives and negatives pooled over labels
    (for single-label indices it equals the accuracy).

    Args:
        y_true: class indices `[N]` or a 0/1 matrix `[N, K]`.
        y_pred: predictions in the same form.
        num_classes: int or None. Classes of index inputs.

    Returns:
        float.
    """
    true, pred = _pair(y_true, y_pred, num_classes)
    tp, fp, fn = _counts(true.ravel(), pred.ravel())
    return float(_divide(2 * tp, 2 * tp + fp + fn))


def average_precision(y_true, scores):
    """Average precision of one label: `sum_n (R_n - R_{n-1}) * P_n` over
    the distinct score thresholds, highest first (scikit-learn's
    `average_precision_score`, no interpolation).

    Args:
        y_true: 0/1 array `[N]`.
        scores: float array `[N]`; higher = more likely positive.

    Returns:
        float; NaN when `y_true` has no positive example.
    """
    y_true = (np.asarray(y_true) > 0.5).astype(np.float64)
    scores = np.asarray(scores, np.float64)
    positives = y_true.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    y_true, scores = y_true[order], scores[order]
    # The last row of each run of equal scores closes one threshold.
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(y_true)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(y_true, scores):
    """Area under the ROC curve of one label: the probability that a random
    positive scores above a random negative, ties counting one half (the
    Mann-Whitney statistic; scikit-learn's `roc_auc_score`).

    Args:
        y_true: 0/1 array `[N]`.
        scores: float array `[N]`; higher = more likely positive.

    Returns:
        float; NaN when `y_true` lacks positives or negatives.
    """
    y_true = np.asarray(y_true) > 0.5
    scores = np.asarray(scores, np.float64)
    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Tied scores share their mean rank.
    _, inverse, counts = np.unique(
        scores, return_inverse=True, return_counts=True
    )
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    total = ranks[y_true].sum() - positives * (positives + 1) / 2
    return float(total / (positives * negatives))


def per_label_metrics(y_true, scores, label_names):
    """`auroc/<label>` and `ap/<label>` (average precision) of each label
    of a multi-label prediction, NaN where a label lacks positives (or
    negatives, for AUROC) in `y_true`.

    Args:
        y_true: 0/1 matrix `[N, K]`.
        scores: float matrix `[N, K]`.
        label_names: sequence of K str.

    Returns:
        dict of metric name to float.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    out = {}
    for k, name in enumerate(label_names):
        out[f"auroc/{name}"] = auroc(y_true[:, k], scores[:, k])
        out[f"ap/{name}"] = average_precision(y_true[:, k], scores[:, k])
    return out


def mean_average_precision(y_true, scores):
    """Mean over labels of `average_precision` (labels without a positive
    example are left out); the `map` metric of multi-label tagging.

    Args:
        y_true: 0/1 matrix `[N, K]`.
        scores: float matrix `[N, K]` (e.g. sigmoid probabilities).

    Returns:
        float; NaN when no label has a positive example.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(
            f"expected y_true and scores of one shape [N, K]; got "
            f"{y_true.shape} and {scores.shape}"
        )
    values = [
        average_precision(y_true[:, k], scores[:, k])
        for k in range(y_true.shape[1])
    ]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _present(y_true, y_pred):
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"targets of shape {y_true.shape} and predictions of shape "
            f"{y_pred.shape} differ"
        )
    keep = np.isfinite(y_true)
    return y_true[keep], y_pred[keep]


def mae(y_true, y_pred):
    """Mean absolute error over the finite targets (NaN = no target).

    Args:
        y_true: float array `[N]` or `[N, T]`.
        y_pred: float array of the same shape (`[N]` and `[N, 1]` mix).

    Returns:
        float; NaN when no target is finite.
    """
    true, pred = _present(y_true, y_pred)
    return float(np.mean(np.abs(pred - true))) if len(true) else float("nan")


def rmse(y_true, y_pred):
    """Root mean squared error over the finite targets; see `mae`."""
    true, pred = _present(y_true, y_pred)
    if not len(true):
        return float("nan")
    return float(np.sqrt(np.mean(np.square(pred - true))))


def pearson(y_true, y_pred):
    """Pearson correlation of predictions and the finite targets.

    Args:
        y_true: float array `[N]` or `[N, T]` (NaN = no target).
        y_pred: float array of the same shape.

    Returns:
        float; NaN with fewer than two targets or a constant side.
    """
    true, pred = _present(y_true, y_pred)
    if len(true) < 2:
        return float("nan")
    true, pred = true - true.mean(), pred - pred.mean()
    scale = np.sqrt(np.sum(true**2) * np.sum(pred**2))
    if scale == 0:
        return float("nan")
    return float(np.sum(true * pred) / scale)


def reconstruction_mse(images, reconstructions):
    """Mean squared error of reconstructions against images (same scale,
    e.g. both 0..1), over every pixel and channel.

    Args:
        images: float array `[N, H, W, C]`.
        reconstructions: float array of the same shape.

    Returns:
        float.
    """
    images = np.asarray(images, np.float64)
    reconstructions = np.asarray(reconstructions, np.float64)
    if images.shape != reconstructions.shape:
        raise ValueError(
            f"images of shape {images.shape} and reconstructions of shape "
            f"{reconstructions.shape} differ"
        )
    return float(np.mean(np.square(images - reconstructions)))


def classification_report(
    y_true, y_pred, label_names, digits=2, multi_label=None
):
    """Per-class precision, recall, F1 and support as text, laid out like
    scikit-learn's `classification_report`.

    Single-label (class indices `[N]`): one row per class, then
    `accuracy` (the micro average), `macro avg` and `weighted avg`
    (weighted by support). Multi-label (0/1 matrices `[N, K]`): one row
    per label, then `micro avg`, `macro avg`, `weighted avg` and
    `samples avg` (per-example scores, averaged).

    Args:
        y_true: class indices `[N]` or a 0/1 matrix `[N, K]`.
        y_pred: predictions in the same form.
        label_names: sequence of str, one per class (label).
        digits: int. Decimals of the scores. Defaults to 2.
        multi_label: bool or None. The multi-label layout; None = for
            0/1 matrices. Defaults to None.

    Returns:
        str.

    Example:
    ```python
    print(classification_report([0, 1, 2, 2], [0, 2, 2, 2], ("a", "b", "c")))
    ```
    """
    label_names = [str(name) for name in label_names]
    true, pred = _pair(y_true, y_pred, len(label_names))
    if true.shape[1] != len(label_names):
        raise ValueError(
            f"{len(label_names)} label_names for {true.shape[1]} classes"
        )
    if multi_label is None:
        multi_label = np.asarray(y_true).ndim == 2
    precision, recall, f1, support = precision_recall_f1(true, pred)
    total = int(support.sum())
    headers = ("precision", "recall", "f1-score", "support")
    width = max([len(n) for n in label_names] + [len("weighted avg"), digits])
    head_fmt = "{:>{width}s} " + " {:>9}" * len(headers)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    report = head_fmt.format("", *headers, width=width) + "\n\n"
    for row in zip(label_names, precision, recall, f1, support):
        report += row_fmt.format(
            row[0], *row[1:4], int(row[4]), width=width, digits=digits
        )
    report += "\n"

    tp, fp, fn = _counts(true.ravel(), pred.ravel())
    micro = (
        _divide(tp, tp + fp),
        _divide(tp, tp + fn),
        _divide(2 * tp, 2 * tp + fp + fn),
    )
    if not multi_label:
        accuracy_fmt = (
            "{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n"
        )
        report += accuracy_fmt.format(
            "accuracy", "", "", micro[2], total, width=width, digits=digits
        )
    else:
        report += row_fmt.format(
            "micro avg", *micro, total, width=width, digits=digits
        )
    weights = support / total if total else np.zeros_like(precision)
    rows = [
        ("macro avg", [np.mean(v) for v in (precision, recall, f1)]),
        (
            "weighted avg",
            [np.sum(v * weights) for v in (precision, recall, f1)],
        ),
    ]
    if multi_label:
        stp, sfp, sfn = _counts(true, pred, axis=1)
        rows.append(
            (
                "samples avg",
                [
                    np.mean(_divide(stp, stp + sfp)),
                    np.mean(_divide(stp, stp + sfn)),
                    np.mean(_divide(2 * stp, 2 * stp + sfp + sfn)),
                ],
            )
        )
    for heading, values in rows:
        report += row_fmt.format(
            heading, *values, total, width=width, digits=digits
        )
    return report
