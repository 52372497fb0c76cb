"""DeLong variance/covariance of correlated empirical AUCs, by the fast midrank algorithm.

DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more correlated
receiver operating characteristic curves: a nonparametric approach", Biometrics 44:837-845,
give the covariance of k empirical AUCs computed on the same cases from the structural
components (placement values) V10 (per positive) and V01 (per negative). Sun & Xu (2014),
"Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
operating characteristic curves", IEEE SPL 21:1389-1393, obtain those components from three
midrank vectors in O(N log N) instead of the O(m n) pairwise form.

Convention: truth 1 = positive (malignant), higher score = more suspicious.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm, rankdata

from engine.stats.roc import check_binary

__all__ = [
    "Placements",
    "auc_ci",
    "delong_covariance",
    "naive_placements",
    "paired_delong_test",
    "placements",
]


@dataclass(frozen=True)
class Placements:
    """DeLong structural components for k modalities/readers.

    Attributes:
        aucs: (k,) empirical AUCs.
        v10: (k, m) placement of each positive: fraction of negatives it beats (ties 1/2).
        v01: (k, n) placement of each negative: fraction of positives that beat it.
    """

    aucs: NDArray[np.float64]
    v10: NDArray[np.float64]
    v01: NDArray[np.float64]


def _as_matrix(truth: ArrayLike, scores_matrix: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    t = check_binary(truth)
    s = np.asarray(scores_matrix, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != t.size:
        raise ValueError(f"scores must have shape (k, {t.size}), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return t, s


def placements(truth: ArrayLike, scores_matrix: ArrayLike) -> Placements:
    """Structural components by the Sun & Xu (2014) midrank algorithm, O(k N log N).

    With Tz the midranks in the pooled sample, Tx within positives and Ty within
    negatives: V10_i = (Tz_i - Tx_i) / n, V01_j = 1 - (Tz_j - Ty_j) / m, and
    AUC = mean(V10) = mean(V01) (Sun & Xu 2014, eqs. 6-9).

    Args:
        truth: (N,) 0/1 labels.
        scores_matrix: (k, N) or (N,) scores.

    Returns:
        :class:`Placements`.
    """
    t, s = _as_matrix(truth, scores_matrix)
    x = s[:, t]
    y = s[:, ~t]
    m = x.shape[1]
    n = y.shape[1]
    tz = rankdata(np.concatenate([x, y], axis=1), method="average", axis=1)
    tx = rankdata(x, method="average", axis=1)
    ty = rankdata(y, method="average", axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    aucs = v10.mean(axis=1)
    return Placements(aucs=aucs, v10=v10, v01=v01)


def naive_placements(truth: ArrayLike, scores_matrix: ArrayLike) -> Placements:
    """Structural components by the O(k m n) pairwise kernel psi (DeLong et al. 1988, eq. 1).

    Reference implementation for tests and benchmarks.

    Args:
        truth: (N,) 0/1 labels.
        scores_matrix: (k, N) or (N,) scores.

    Returns:
        :class:`Placements`.
    """
    t, s = _as_matrix(truth, scores_matrix)
    x = s[:, t][:, :, None]
    y = s[:, ~t][:, None, :]
    psi = (x > y).astype(float) + 0.5 * (x == y)
    v10 = psi.mean(axis=2)
    v01 = psi.mean(axis=1)
    return Placements(aucs=v10.mean(axis=1), v10=v10, v01=v01)


def covariance_from_placements(p: Placements) -> NDArray[np.float64]:
    """DeLong covariance S = S10/m + S01/n (DeLong et al. 1988, eq. 5).

    S10 and S01 are the sample covariance matrices (divisor m-1 and n-1) of the
    structural components.

    Args:
        p: Structural components.

    Returns:
        (k, k) covariance matrix of the AUCs.
    """
    m = p.v10.shape[1]
    n = p.v01.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"a DeLong variance needs at least 2 positive and 2 negative cases (got {m} and {n})")
    s10 = np.atleast_2d(np.cov(p.v10, ddof=1))
    s01 = np.atleast_2d(np.cov(p.v01, ddof=1))
    return np.asarray(s10 / m + s01 / n, dtype=np.float64)


def delong_covariance(
    truth: ArrayLike, scores_matrix: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUCs and their DeLong (1988) covariance, via Sun & Xu (2014) midranks.

    Args:
        truth: (N,) 0/1 labels (1 = positive).
        scores_matrix: (k, N) scores of k readers/modalities on the same N cases, or (N,).

    Returns:
        ``(aucs, cov)``: (k,) AUCs and (k, k) covariance matrix.

    Raises:
        ValueError: On bad shapes, non-finite scores or a single class.
    """
    p = placements(truth, scores_matrix)
    return p.aucs, covariance_from_placements(p)


def auc_ci(
    truth: ArrayLike, scores: ArrayLike, alpha: float = 0.05, method: str = "normal"
) -> tuple[float, float, float]:
    """AUC with a DeLong-variance confidence interval.

    ``method="normal"`` (default): Wald interval AUC +/- z * SE on the AUC scale, clipped to
    [0, 1] (as pROC's ``ci.auc(method="delong")``). ``method="logit"``: Wald interval on
    logit(AUC) with SE / (AUC (1 - AUC)) by the delta method, back-transformed (stays inside
    (0, 1); Pepe 2003, sec. 5.2). With AUC of exactly 0 or 1 the logit interval degenerates to
    that point.

    Args:
        truth: (N,) 0/1 labels.
        scores: (N,) scores.
        alpha: 1 - confidence level.
        method: "normal" or "logit".

    Returns:
        ``(auc, lo, hi)``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    aucs, cov = delong_covariance(truth, scores)
    auc = float(aucs[0])
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = float(norm.ppf(1.0 - alpha / 2.0))
    if method == "normal":
        return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)
    if method == "logit":
        if auc <= 0.0 or auc >= 1.0:
            return auc, auc, auc
        lg = np.log(auc / (1.0 - auc))
        se_l = se / (auc * (1.0 - auc))
        lo, hi = lg - z * se_l, lg + z * se_l
        return auc, float(1.0 / (1.0 + np.exp(-lo))), float(1.0 / (1.0 + np.exp(-hi)))
    raise ValueError(f"unknown CI method {method!r} (use 'normal' or 'logit')")


def paired_delong_test(
    truth: ArrayLike, a: ArrayLike, b: ArrayLike
) -> tuple[float, float, float, float]:
    """Two-sided DeLong test of AUC(a) - AUC(b) on the same cases (DeLong et al. 1988, eq. 6).

    Args:
        truth: (N,) 0/1 labels.
        a: (N,) scores of the first reader/model.
        b: (N,) scores of the second.

    Returns:
        ``(diff, se, z, p)`` with diff = AUC(a) - AUC(b); z and p are ``nan`` when se == 0
        and diff == 0 (identical curves), and z = +/-inf, p = 0 when only se == 0.
    """
    aucs, cov = delong_covariance(truth, np.vstack([np.asarray(a, float), np.asarray(b, float)]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    if se <= 1e-15:
        if abs(diff) <= 1e-15:
            return diff, 0.0, float("nan"), float("nan")
        return diff, 0.0, float(np.sign(diff) * np.inf), 0.0
    z = diff / se
    p = float(2.0 * norm.sf(abs(z)))
    return diff, se, float(z), p
