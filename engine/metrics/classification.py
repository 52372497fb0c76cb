"""Binary and multi-task classification metrics: pure, typed functions on numpy arrays.

Conventions (used everywhere in breast-reader):

* ``truth`` is 0/1 (1 = positive = malignant), ``scores`` are higher-is-more-malignant.
* A case is called positive when ``score >= threshold``.
* The confusion matrix is ``[[TN, FP], [FN, TP]]`` (rows = truth, columns = call), as in
  Qi et al. 2019 (Med. Image Anal. 52:185-198), Fig. 9.
* F-beta follows Qi et al. 2019 Sec. 4.2 (Yates & Neto 1999), who select models by
  F-beta with beta = 2 to weight sensitivity above precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

ThresholdMetric = Literal["f1", "f2", "youden", "accuracy"]


def _binary(truth: ArrayLike) -> NDArray[np.int64]:
    t = np.asarray(truth)
    if t.ndim != 1:
        raise ValueError(f"truth must be 1-D, got shape {t.shape}")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("truth must contain only 0 (negative) and 1 (positive)")
    return t.astype(np.int64)


def _pair(truth: ArrayLike, other: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    t = _binary(truth)
    o = np.asarray(other, dtype=np.float64)
    if o.shape != t.shape:
        raise ValueError(f"truth has shape {t.shape} but scores/predictions have {o.shape}")
    return t, o


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def confusion_matrix(truth: ArrayLike, pred: ArrayLike) -> NDArray[np.int64]:
    """2x2 confusion matrix ``[[TN, FP], [FN, TP]]``.

    Args:
        truth: 0/1 ground truth.
        pred: 0/1 calls (use ``scores >= threshold`` to binarise scores).

    Returns:
        An int64 array of shape (2, 2).
    """
    t, pf = _pair(truth, pred)
    if pf.size and not np.isin(pf, (0, 1)).all():
        raise ValueError("pred must contain only 0 and 1; binarise scores first")
    p = pf.astype(np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(truth: ArrayLike, pred: ArrayLike) -> float:
    """(TP + TN) / N; NaN for empty input."""
    cm = confusion_matrix(truth, pred)
    return _div(cm[0, 0] + cm[1, 1], cm.sum())


def sensitivity(truth: ArrayLike, pred: ArrayLike) -> float:
    """True-positive rate (recall) TP / (TP + FN); NaN without positives."""
    cm = confusion_matrix(truth, pred)
    return _div(cm[1, 1], cm[1, 1] + cm[1, 0])


def specificity(truth: ArrayLike, pred: ArrayLike) -> float:
    """True-negative rate TN / (TN + FP); NaN without negatives."""
    cm = confusion_matrix(truth, pred)
    return _div(cm[0, 0], cm[0, 0] + cm[0, 1])


def precision(truth: ArrayLike, pred: ArrayLike) -> float:
    """Positive predictive value TP / (TP + FP); NaN when nothing is called positive."""
    cm = confusion_matrix(truth, pred)
    return _div(cm[1, 1], cm[1, 1] + cm[0, 1])


def fbeta(truth: ArrayLike, pred: ArrayLike, beta: float = 2.0) -> float:
    """F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP) (Qi et al. 2019, Sec. 4.2).

    Args:
        truth: 0/1 ground truth.
        pred: 0/1 calls.
        beta: Weight of recall relative to precision; Qi et al. use 2.

    Returns:
        F-beta in [0, 1]; 0 when there is no true positive, NaN for empty input.
    """
    cm = confusion_matrix(truth, pred)
    tp, fn, fp = cm[1, 1], cm[1, 0], cm[0, 1]
    b2 = beta * beta
    den = (1 + b2) * tp + b2 * fn + fp
    return _div((1 + b2) * tp, den)


def roc_points(
    truth: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Empirical ROC curve, one point per distinct score (ties move diagonally).

    Args:
        truth: 0/1 ground truth (both classes required).
        scores: Higher means more likely positive.

    Returns:
        ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf and ending at
        (1, 1); point ``i`` is the operating point of ``scores >= thresholds[i]``.
    """
    from engine.stats.roc import roc_points as _roc

    t, s = _pair(truth, scores)
    if t.size == 0 or t.all() or not t.any():
        raise ValueError("ROC needs both positive and negative cases")
    c = _roc(t, s)  # the one ROC implementation (engine.stats.roc)
    return c.fpr, c.tpr, c.thresholds


def auc(truth: ArrayLike, scores: ArrayLike) -> float:
    """Area under the empirical ROC curve (Mann-Whitney U / (n1 n0), ties count 1/2).

    A thin wrapper over :func:`engine.stats.roc.empirical_auc` (the project's one AUC). Use
    :func:`auc_with_ci` for the DeLong (1988) confidence interval.
    """
    from engine.stats.roc import empirical_auc

    t, s = _pair(truth, scores)
    if t.size == 0 or t.all() or not t.any():
        raise ValueError("AUC needs both positive and negative cases")
    return empirical_auc(t, s)  # the one AUC (engine.stats.roc, Mann-Whitney with midranks)


def _threshold_value(metric: str, cm: NDArray[np.int64]) -> float:
    tn, fp, fn, tp = (float(v) for v in cm.ravel())
    if metric in ("f1", "f2"):
        b2 = 1.0 if metric == "f1" else 4.0
        den = (1 + b2) * tp + b2 * fn + fp
        return (1 + b2) * tp / den if den else 0.0
    if metric == "youden":
        return tp / (tp + fn) + tn / (tn + fp) - 1.0
    if metric == "accuracy":
        return (tp + tn) / (tp + tn + fp + fn)
    raise ValueError(f"unknown threshold metric {metric!r}; use f1, f2, youden or accuracy")


def best_threshold(truth: ArrayLike, scores: ArrayLike, metric: ThresholdMetric = "f2") -> float:
    """Threshold maximising ``metric`` over the distinct scores (Qi et al. 2019 use F2).

    Ties between thresholds are broken towards the *highest* threshold (the more
    specific operating point with the same metric value).

    Args:
        truth: 0/1 ground truth with both classes.
        scores: Higher means more likely positive.
        metric: ``"f2"`` (default, Qi), ``"f1"``, ``"youden"`` or ``"accuracy"``.

    Returns:
        A threshold ``thr``; calls are ``scores >= thr``.
    """
    fpr, tpr, thr = roc_points(truth, scores)
    t = _binary(truth)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    best_v = -np.inf
    best_t = float(thr[1])
    for i in range(1, thr.size):  # skip +inf (nothing called positive)
        tp = round(tpr[i] * n_pos)
        fp = round(fpr[i] * n_neg)
        cm = np.array([[n_neg - fp, fp], [n_pos - tp, tp]], dtype=np.int64)
        v = _threshold_value(metric, cm)
        if v > best_v + 1e-12:
            best_v, best_t = v, float(thr[i])
    return best_t


def per_task_auc(
    truth: ArrayLike, scores: ArrayLike, names: Sequence[str] | None = None
) -> dict[str, float]:
    """One-vs-rest AUC per output of a multi-output model (MRI attention paper, Table 3).

    Args:
        truth: (N, K) 0/1 matrix, or (N,) integer class indices (one-hot expanded to K).
        scores: (N, K) scores.
        names: K task names (default ``task0``...).

    Returns:
        ``{name: auc}``; a task whose truth has one class only maps to NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {s.shape}")
    t = np.asarray(truth)
    if t.ndim == 1:
        t = np.eye(s.shape[1], dtype=np.int64)[t.astype(np.int64)]
    if t.shape != s.shape:
        raise ValueError(f"truth shape {t.shape} does not match scores shape {s.shape}")
    names = list(names) if names is not None else [f"task{k}" for k in range(s.shape[1])]
    if len(names) != s.shape[1]:
        raise ValueError(f"{len(names)} names for {s.shape[1]} tasks")
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        col = t[:, k].astype(np.int64)
        out[name] = auc(col, s[:, k]) if 0 < col.sum() < col.size else float("nan")
    return out


MRI_MALIGNANCY_WEIGHT = 0.6
"""Weight of the malignancy AUC in the JFR 2018 challenge score (MRI attention paper, Eq. 3)."""


def mri_weighted_score(auc_malignancy: float, category_aucs: Sequence[float]) -> float:
    """JFR 2018 breast-MRI challenge score (MRI supervised-attention paper, Eq. 3).

    ``score = 0.6 * AUC_malignancy + 0.4 * mean(AUC of the four lesion categories)``
    (mammary gland, other benign, invasive ductal carcinoma, other malignant). The
    paper's Eq. 3 is truncated in our copy after "0.4"; the 0.4 term is the mean of the
    category AUCs, which reproduces its Table 3: 0.6*0.869 + 0.4*mean(0.728, 0.659,
    0.805, 0.761) = 0.817, the reported overall score.

    Args:
        auc_malignancy: AUC of the benign-vs-malignant task.
        category_aucs: One-vs-rest AUCs of the lesion categories.

    Returns:
        The weighted score.
    """
    cats = np.asarray(list(category_aucs), dtype=np.float64)
    if cats.size == 0:
        raise ValueError("category_aucs is empty")
    return float(MRI_MALIGNANCY_WEIGHT * auc_malignancy + (1 - MRI_MALIGNANCY_WEIGHT) * cats.mean())


def mean_ci(values: ArrayLike, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over folds/repeats (for results tables).

    Args:
        values: Per-fold values (NaNs are dropped).
        level: Confidence level.

    Returns:
        ``(mean, low, high)``; the interval collapses to the mean for one value.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half
