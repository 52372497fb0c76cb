"""Out-of-distribution score: Mahalanobis distance in a frozen feature space.

Lee K, Lee K, Lee H, Shin J, "A simple unified framework for detecting out-of-distribution
samples and adversarial attacks", NeurIPS 2018: the distance of a feature vector from the
training features' mean under their covariance measures how unlike the training images an
input is. Here the features are first reduced by PCA to ``k`` dimensions (the covariance of
~10^3-d features from a few hundred images is singular) and the covariance in that space is
shrunk (Ledoit O, Wolf M, "A well-conditioned estimator for large-dimensional covariance
matrices", J. Multivariate Anal. 88, 2004). The fit is one matrix ``W`` (``k × d``) and a mean:
``distance(f) = ||W (f - mean)||``. A shift *outside* the top-``k`` principal subspace is invisible
to that distance, so :func:`subspace_distance` adds the PCA reconstruction residual (the
classical subspace novelty score; Hoffmann H, "Kernel PCA for novelty detection", Pattern
Recognition 40, 2007, linear case), scaled so that its training mean is ``k``:
``d^2 = ||W (f - mean)||^2 + k ||r||^2 / mean_train ||r||^2``. The warning threshold is a high percentile of the
distances of *held-out* dev images (out-of-fold), so about that share of in-distribution
images is flagged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_mahalanobis", "fit_subspace_distance", "mahalanobis", "ood_threshold", "subspace_distance"]


def fit_mahalanobis(features: np.ndarray, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and whitening matrix ``W`` ``(k, d)`` of training features ``(n, d)``.

    Raises:
        ValueError: fewer than 3 samples or a bad shape.
    """
    X = np.asarray(features, np.float64)
    if X.ndim != 2 or X.shape[0] < 3:
        raise ValueError(f"need (n >= 3, d) features, got shape {X.shape}")
    mean = X.mean(axis=0)
    Xc = X - mean
    k = int(max(1, min(k, X.shape[0] // 3, X.shape[1])))  # n // 3: leave residual variance to measure
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    P = vt[:k]  # (k, d)
    Z = Xc @ P.T
    n = Z.shape[0]
    S = Z.T @ Z / n
    # Ledoit-Wolf shrinkage towards mu * I.
    mu = float(np.trace(S) / k)
    d2 = float(np.sum((S - mu * np.eye(k)) ** 2))
    b2 = float(sum(np.sum((np.outer(z, z) - S) ** 2) for z in Z) / n**2)
    shrink = 0.0 if d2 <= 0 else min(1.0, b2 / d2)
    cov = (1 - shrink) * S + shrink * mu * np.eye(k)
    evals, evecs = np.linalg.eigh(cov)
    inv_sqrt = evecs @ np.diag(1.0 / np.sqrt(np.maximum(evals, 1e-12))) @ evecs.T
    W = inv_sqrt @ P
    return mean.astype(np.float32), W.astype(np.float32)


def mahalanobis(features: np.ndarray, mean: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Distances ``(n,)`` of features ``(n, d)`` from a :func:`fit_mahalanobis` fit."""
    X = np.atleast_2d(np.asarray(features, np.float64))
    Z = (X - np.asarray(mean, np.float64)) @ np.asarray(W, np.float64).T
    return np.asarray(np.sqrt((Z**2).sum(axis=1)))


def ood_threshold(held_out_distances: np.ndarray, percentile: float = 95.0) -> float:
    """Warning threshold: the ``percentile`` of held-out in-distribution distances."""
    d = np.asarray(held_out_distances, np.float64)
    if d.size == 0:
        raise ValueError("no distances")
    return float(np.percentile(d, percentile))


def fit_subspace_distance(features: np.ndarray, k: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mean, whitening ``W`` (k × d), orthonormal basis ``P`` (k × d) and residual scale of training features."""
    X = np.asarray(features, np.float64)
    mean, W = fit_mahalanobis(X, k)
    Xc = X - mean
    kk = W.shape[0]
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    P = vt[:kk]
    r2 = ((Xc - (Xc @ P.T) @ P) ** 2).sum(axis=1)
    scale = float(max(r2.mean(), 1e-12))
    return mean, W, P.astype(np.float32), scale


def subspace_distance(features: np.ndarray, mean: np.ndarray, W: np.ndarray, P: np.ndarray, scale: float) -> np.ndarray:
    """``sqrt(||W (f - mean)||^2 + k ||residual||^2 / scale)`` per row (see module docstring)."""
    X = np.atleast_2d(np.asarray(features, np.float64)) - np.asarray(mean, np.float64)
    Pm = np.asarray(P, np.float64)
    z2 = ((X @ np.asarray(W, np.float64).T) ** 2).sum(axis=1)
    r2 = ((X - (X @ Pm.T) @ Pm) ** 2).sum(axis=1)
    return np.asarray(np.sqrt(z2 + Pm.shape[0] * r2 / scale))
