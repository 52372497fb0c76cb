"""Empirical ROC curves and the trapezoidal (Mann-Whitney) AUC.

The empirical AUC equals the Mann-Whitney U statistic divided by ``m * n``: the probability
that a randomly chosen positive (malignant) case scores higher than a randomly chosen
negative (benign) one, ties counting 1/2 (Bamber 1975; Hanley & McNeil 1982; DeLong, DeLong &
Clarke-Pearson 1988, eq. 1). Higher scores mean "more likely positive" throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

__all__ = ["RocCurve", "check_binary", "empirical_auc", "naive_auc", "roc_points"]


def check_binary(truth: ArrayLike) -> NDArray[np.bool_]:
    """Validate a truth vector (1/True = positive, 0/False = negative).

    Args:
        truth: Array of 0/1 (or booleans).

    Returns:
        A boolean array, True for positive cases.

    Raises:
        ValueError: If values other than 0/1 occur or one class is missing.
    """
    t = np.asarray(truth)
    if t.ndim != 1:
        raise ValueError(f"truth must be 1-D, got shape {t.shape}")
    if t.dtype != np.bool_:
        vals = set(np.unique(t).tolist())
        if not vals <= {0, 1}:
            raise ValueError(f"truth must contain only 0/1, got {sorted(vals)}")
        t = t.astype(bool)
    if t.all() or not t.any():
        raise ValueError("truth must contain both positive (1) and negative (0) cases")
    return t


def empirical_auc(truth: ArrayLike, scores: ArrayLike) -> float:
    """Trapezoidal area under the empirical ROC curve (ties count 1/2).

    Computed from midranks in O(N log N) as the Mann-Whitney statistic
    ``(sum of positive ranks - m(m+1)/2) / (m n)`` (Hanley & McNeil 1982).

    Args:
        truth: 1-D array of 0/1 labels (1 = positive/malignant).
        scores: 1-D array of ratings, same length; higher = more suspicious.

    Returns:
        The AUC in [0, 1].

    Raises:
        ValueError: On shape mismatch, non-finite scores, or a single class.
    """
    t = check_binary(truth)
    s = np.asarray(scores, dtype=float)
    if s.shape != t.shape:
        raise ValueError(f"scores shape {s.shape} does not match truth shape {t.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    m = int(t.sum())
    n = t.size - m
    ranks = rankdata(s, method="average")
    return float((ranks[t].sum() - m * (m + 1) / 2.0) / (m * n))


def naive_auc(truth: ArrayLike, scores: ArrayLike) -> float:
    """Reference O(m n) placement form of the AUC: mean of psi(x_i, y_j).

    psi = 1 if x > y, 1/2 if x == y, 0 otherwise (DeLong et al. 1988, eq. 1). Used in
    tests and benchmarks only.

    Args:
        truth: 1-D 0/1 labels.
        scores: 1-D scores.

    Returns:
        The AUC.
    """
    t = check_binary(truth)
    s = np.asarray(scores, dtype=float)
    x = s[t][:, None]
    y = s[~t][None, :]
    psi = (x > y).astype(float) + 0.5 * (x == y)
    return float(psi.mean())


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC operating points, from (0, 0) to (1, 1).

    Attributes:
        fpr: False-positive fractions (1 - specificity), non-decreasing.
        tpr: True-positive fractions (sensitivity), non-decreasing.
        thresholds: Score threshold of each point: a case is called positive when
            ``score >= threshold`` (``+inf`` for the first point).
    """

    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    thresholds: NDArray[np.float64]

    @property
    def auc(self) -> float:
        """Trapezoidal area under these points (equals :func:`empirical_auc`)."""
        return float(np.trapezoid(self.tpr, self.fpr))


def roc_points(truth: ArrayLike, scores: ArrayLike) -> RocCurve:
    """Empirical ROC points at every distinct score threshold.

    Ties are kept as one step, so the polygon's trapezoidal area equals the Mann-Whitney
    AUC with ties counted 1/2.

    Args:
        truth: 1-D 0/1 labels.
        scores: 1-D scores; higher = more suspicious.

    Returns:
        A :class:`RocCurve`.
    """
    t = check_binary(truth)
    s = np.asarray(scores, dtype=float)
    if s.shape != t.shape:
        raise ValueError(f"scores shape {s.shape} does not match truth shape {t.shape}")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    t_sorted = t[order]
    # index of the last element of each block of equal scores
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(t_sorted)[last]
    fps = (last + 1) - tps
    m = int(t.sum())
    n = t.size - m
    tpr = np.r_[0.0, tps / m]
    fpr = np.r_[0.0, fps / n]
    thr = np.r_[np.inf, s_sorted[last]]
    return RocCurve(fpr=fpr.astype(np.float64), tpr=tpr.astype(np.float64), thresholds=thr)
