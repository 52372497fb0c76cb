"""Cluster (patient) bootstrap of a mean and of a paired mean difference.

Images of one patient are not independent (mini-MIAS: the two breasts of one woman), so the
resampling unit is the cluster: each replicate draws clusters with replacement and takes the
mean over all their images (Field & Welsh 2007, "Bootstrapping clustered data").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BootstrapCI", "cluster_bootstrap_mean", "paired_cluster_bootstrap"]


@dataclass(frozen=True)
class BootstrapCI:
    """A mean with its percentile confidence interval.

    Attributes:
        mean: The mean over all items.
        lo: Lower bound (``alpha / 2`` percentile of the replicates).
        hi: Upper bound.
        n: Items.
        n_clusters: Clusters (resampling units).
        p_two_sided: For a difference: twice the smaller share of replicates on either side of
            0 (``nan`` for a plain mean).
    """

    mean: float
    lo: float
    hi: float
    n: int
    n_clusters: int
    p_two_sided: float = float("nan")


def _replicates(values: NDArray[np.float64], clusters: Sequence[object], n_boot: int,
                seed: int) -> tuple[NDArray[np.float64], int]:
    if values.ndim != 1 or values.size == 0:
        raise ValueError("values must be a non-empty 1-D array")
    if len(clusters) != values.size:
        raise ValueError(f"{values.size} values but {len(clusters)} cluster ids")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite")
    _, idx = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    k = int(idx.max()) + 1
    sums = np.bincount(idx, weights=values, minlength=k)
    counts = np.bincount(idx, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, k, size=(n_boot, k))
    # mean over the images of the drawn clusters (a cluster drawn twice counts twice)
    return sums[draw].sum(1) / counts[draw].sum(1), k


def cluster_bootstrap_mean(values: ArrayLike, clusters: Sequence[object], *, n_boot: int = 2000,
                           seed: int = 0, alpha: float = 0.05) -> BootstrapCI:
    """Mean of ``values`` with a cluster-bootstrap percentile CI.

    Args:
        values: One value per item (image).
        clusters: Cluster (patient) id per item.
        n_boot: Replicates.
        seed: Random seed.
        alpha: 1 - confidence level.

    Raises:
        ValueError: empty, non-finite or mismatched input.
    """
    v = np.asarray(values, dtype=np.float64)
    reps, k = _replicates(v, clusters, n_boot, seed)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(float(v.mean()), float(lo), float(hi), int(v.size), k)


def paired_cluster_bootstrap(a: ArrayLike, b: ArrayLike, clusters: Sequence[object], *, n_boot: int = 2000,
                             seed: int = 0, alpha: float = 0.05) -> BootstrapCI:
    """Mean paired difference ``a - b`` (same items) with a cluster-bootstrap CI and p-value.

    Raises:
        ValueError: ``a`` and ``b`` of different lengths, or as :func:`cluster_bootstrap_mean`.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same items: {x.shape} vs {y.shape}")
    d = x - y
    reps, k = _replicates(d, clusters, n_boot, seed)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2.0 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0))))
    return BootstrapCI(float(d.mean()), float(lo), float(hi), int(d.size), k, p)
