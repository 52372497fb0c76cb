"""Calibration of predicted probabilities: Platt / temperature scaling, reliability diagram, ECE.

* Platt scaling (Platt JC, "Probabilistic outputs for support vector machines and comparisons to
  regularized likelihood methods", Advances in Large Margin Classifiers, 1999):
  ``p = sigmoid(a · logit + b)`` fitted by maximum likelihood.
* Temperature scaling (Guo C, Pleiss G, Sun Y, Weinberger KQ, "On calibration of modern neural
  networks", ICML 2017): the special case ``b = 0``, ``a = 1/T``.
* Reliability diagram and expected calibration error with equal-width bins (Naeini MP, Cooper
  GF, Hauskrecht M, "Obtaining well calibrated probabilities using Bayesian binning", AAAI 2015;
  Guo et al. 2017 Eq. 3): ``ECE = sum_b n_b/n |frac_pos_b - mean_pred_b|``.

Fit these on out-of-fold scores only (a model's own training scores are over-confident).
Pure functions on NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Reliability", "apply_platt", "expected_calibration_error", "fit_platt", "fit_temperature",
           "logit", "reliability"]


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    q = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.asarray(np.log(q) - np.log1p(-q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _nll(X: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float) -> float:
    z = X @ w
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * ridge * float(w @ w))


def _newton(z: np.ndarray, y: np.ndarray, fit_bias: bool, ridge: float = 1e-6, iters: int = 100) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``sigmoid(a z + b)``: Newton's method from 0 with step halving."""
    X = np.stack([z, np.ones_like(z)], axis=1) if fit_bias else z[:, None]
    w = np.zeros(X.shape[1])
    f = _nll(X, y, w, ridge)
    for _ in range(iters):
        p = _sigmoid(X @ w)
        g = X.T @ (p - y) + ridge * w
        H = (X * (p * (1 - p))[:, None]).T @ X + ridge * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        t = 1.0
        while t > 1e-8:
            f_new = _nll(X, y, w - t * step, ridge)
            if f_new <= f:
                break
            t *= 0.5
        w = w - t * step
        done = abs(f - f_new) < 1e-12 * max(1.0, abs(f))
        f = f_new
        if done or float(np.abs(t * step).max()) < 1e-10:
            break
    return float(w[0]), float(w[1]) if fit_bias else 0.0


def fit_platt(scores: np.ndarray, labels: np.ndarray, *, from_probability: bool = True) -> tuple[float, float]:
    """Platt's ``(a, b)``: ``p_cal = sigmoid(a · logit(p) + b)``.

    Args:
        scores: Probabilities (``from_probability``) or logits, shape ``(n,)``.
        labels: 0/1 truth, shape ``(n,)``.
        from_probability: Whether ``scores`` are probabilities (turned into logits first).

    Raises:
        ValueError: when both classes are not present or shapes differ.
    """
    z, y = _check(scores, labels, from_probability)
    return _newton(z, y, fit_bias=True)


def fit_temperature(scores: np.ndarray, labels: np.ndarray, *, from_probability: bool = True) -> float:
    """Temperature ``T`` (Guo 2017): ``p_cal = sigmoid(logit / T)``."""
    z, y = _check(scores, labels, from_probability)
    a, _ = _newton(z, y, fit_bias=False)
    return float(1.0 / a) if a > 1e-9 else float("inf")


def apply_platt(scores: np.ndarray, a: float, b: float, *, from_probability: bool = True) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(a · z + b)``."""
    s = np.asarray(scores, np.float64)
    z = logit(s) if from_probability else s
    return _sigmoid(a * z + b)


def _check(scores: np.ndarray, labels: np.ndarray, from_probability: bool) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels, np.float64).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length ({s.size} vs {y.size})")
    if not ((y == 0).any() and (y == 1).any()) or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 with both classes present")
    return (logit(s) if from_probability else s), y


@dataclass(frozen=True)
class Reliability:
    """Reliability-diagram data over equal-width probability bins.

    Attributes:
        edges: ``(n_bins + 1,)`` bin edges on [0, 1].
        mean_predicted: Mean predicted probability per bin (NaN for empty bins).
        fraction_positive: Observed fraction of positives per bin (NaN for empty bins).
        counts: Number of cases per bin.
        ece: Expected calibration error.
    """

    edges: np.ndarray
    mean_predicted: np.ndarray
    fraction_positive: np.ndarray
    counts: np.ndarray
    ece: float


def reliability(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> Reliability:
    """Reliability diagram data and ECE (Naeini 2015; Guo 2017) with ``n_bins`` equal-width bins."""
    p = np.asarray(probabilities, np.float64).ravel()
    y = np.asarray(labels, np.float64).ravel()
    if p.shape != y.shape or p.size == 0:
        raise ValueError("probabilities and labels must be non-empty and the same length")
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sp = np.bincount(idx, weights=p, minlength=n_bins)
    sy = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = np.where(counts > 0, sp / np.maximum(counts, 1), np.nan)
        fp = np.where(counts > 0, sy / np.maximum(counts, 1), np.nan)
    ok = counts > 0
    ece = float(np.sum(counts[ok] / p.size * np.abs(fp[ok] - mp[ok])))
    return Reliability(edges, mp, fp, counts, ece)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins (see :func:`reliability`)."""
    return reliability(probabilities, labels, n_bins).ece
