"""Sensitivity/specificity at chosen thresholds with Wilson score intervals.

Wilson (1927), "Probable inference, the law of succession, and statistical inference",
JASA 22:209-212; recommended over the Wald interval by Brown, Cai & DasGupta (2001),
Stat Sci 16:101-133.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from engine.stats.roc import check_binary

__all__ = ["OperatingPoint", "sens_spec_at", "wilson_ci"]


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
