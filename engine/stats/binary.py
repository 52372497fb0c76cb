"""Sensitivity/specificity at chosen thresholds: Wilson intervals, and as MRMC endpoints.

Wilson (1927), "Probable inference, the law of succession, and statistical inference",
JASA 22:209-212; recommended over the Wald interval by Brown, Cai & DasGupta (2001),
Stat Sci 16:101-133.

As multi-reader endpoints (e.g. "BI-RADS >= 4 is a recall"), sensitivity and specificity are
figures of merit like the AUC: their jackknife covariance over cases goes into the
Obuchowski-Rockette analysis with Hillis' df (Obuchowski & Rockette 1995 apply the OR model
to any accuracy index; Chakraborty 2017 sec. 9; RJafroc FOMs ``"SpROC"``/sensitivity). The
leave-one-case-out value has a closed form: leaving out positive i gives (m Se - y_i)/(m - 1),
and a negative case leaves the sensitivity unchanged (and vice versa for specificity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from engine.stats.mrmc import Design, MrmcResult, jackknife_covariance, or_analysis
from engine.stats.roc import check_binary

__all__ = ["OperatingPoint", "binary_fom_jackknife", "binary_mrmc", "sens_spec_at", "wilson_ci"]


def wilson_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n.

    Args:
        k: Successes (0 <= k <= n).
        n: Trials (> 0).
        alpha: 1 - confidence level.

    Returns:
        ``(lo, hi)``.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = float(norm.ppf(1 - alpha / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass(frozen=True)
class OperatingPoint:
    """Binary performance when ``score >= threshold`` is called positive.

    Attributes:
        threshold: The threshold.
        tp, fn, tn, fp: Counts.
        sensitivity, specificity: Point estimates.
        sensitivity_ci, specificity_ci: Wilson intervals.
    """

    threshold: float
    tp: int
    fn: int
    tn: int
    fp: int
    sensitivity: float
    specificity: float
    sensitivity_ci: tuple[float, float]
    specificity_ci: tuple[float, float]


def sens_spec_at(
    truth: ArrayLike, scores: ArrayLike, thresholds: ArrayLike, alpha: float = 0.05
) -> list[OperatingPoint]:
    """Sensitivity and specificity (Wilson CIs) at each threshold.

    Args:
        truth: (N,) 0/1 labels.
        scores: (N,) scores; ``score >= threshold`` is positive.
        thresholds: Thresholds to evaluate.
        alpha: 1 - confidence level.

    Returns:
        One :class:`OperatingPoint` per threshold.
    """
    t = check_binary(truth)
    s = np.asarray(scores, dtype=float)
    out: list[OperatingPoint] = []
    for thr in np.atleast_1d(np.asarray(thresholds, dtype=float)):
        pos = s >= thr
        tp = int((pos & t).sum())
        fn = int((~pos & t).sum())
        tn = int((~pos & ~t).sum())
        fp = int((pos & ~t).sum())
        out.append(
            OperatingPoint(
                threshold=float(thr),
                tp=tp,
                fn=fn,
                tn=tn,
                fp=fp,
                sensitivity=tp / (tp + fn),
                specificity=tn / (tn + fp),
                sensitivity_ci=wilson_ci(tp, tp + fn, alpha),
                specificity_ci=wilson_ci(tn, tn + fp, alpha),
            )
        )
    return out


def binary_fom_jackknife(
    truth: ArrayLike, ratings: ArrayLike, threshold: float, endpoint: str = "sensitivity"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sensitivity or specificity of every treatment x reader at ``rating >= threshold``, with jackknife values.

    Args:
        truth: (c,) 0/1 truth.
        ratings: (t, r, c) ratings (e.g. BI-RADS as numbers 0..5, 4A/4B/4C as 4.1/4.2/4.3).
        threshold: A rating >= threshold is a positive call.
        endpoint: "sensitivity" or "specificity".

    Returns:
        ``(foms, loo)``: (t, r) proportions and (t r, c) leave-one-case-out values.
    """
    t_arr = check_binary(truth)
    s = np.asarray(ratings, dtype=float)
    if s.ndim != 3 or s.shape[2] != t_arr.size:
        raise ValueError(f"ratings must be (treatments, readers, {t_arr.size}), got {s.shape}")
    t, r, c = s.shape
    if endpoint == "sensitivity":
        sel = t_arr
        hit = (s >= threshold)[:, :, sel]
    elif endpoint == "specificity":
        sel = ~t_arr
        hit = (s < threshold)[:, :, sel]
    else:
        raise ValueError(f"unknown endpoint {endpoint!r} (use sensitivity or specificity)")
    n = int(sel.sum())
    if n < 2:
        raise ValueError(f"{endpoint} needs at least 2 {'positive' if endpoint == 'sensitivity' else 'negative'} cases")
    y = hit.reshape(t * r, n).astype(float)
    p = y.mean(axis=1)
    loo = np.repeat(p[:, None], c, axis=1)
    loo[:, sel] = (n * p[:, None] - y) / (n - 1)
    return p.reshape(t, r), loo


def binary_mrmc(
    truth: ArrayLike, ratings: ArrayLike, threshold: float, endpoint: str = "sensitivity", *,
    treatments: list[str] | None = None, readers: list[str] | None = None, design: Design = "rrrc",
    alpha: float = 0.05,
) -> MrmcResult:
    """ORH analysis of sensitivity or specificity at a stated threshold (jackknife covariance).

    Returns:
        :class:`engine.stats.mrmc.MrmcResult` with ``fom`` = endpoint.
    """
    foms, loo = binary_fom_jackknife(truth, ratings, threshold, endpoint)
    return or_analysis(foms, jackknife_covariance(loo), treatments=treatments, readers=readers,
                       design=design, alpha=alpha, cov_method="jackknife",
                       fom=f"{endpoint}@>={threshold:g}")
