"""Clustered ROC data: several units (lesions, breasts, regions) per patient.

Obuchowski (1997), "Nonparametric analysis of clustered ROC curve data", Biometrics
53:567-578. With I patients, patient i contributing m_i positive and n_i negative units
(M = sum m_i, N = sum n_i), the empirical AUC is the Mann-Whitney statistic over all
positive x negative unit pairs. Its variance treats the patient, not the unit, as the
independent sampling unit. With V10(x) the fraction of all negative units a positive unit
beats (ties 1/2), V01(y) the fraction of positive units beating a negative unit, and the
patient sums V10_i, V01_i:

    S10 = I10 / ((I10 - 1) M) sum_i (V10_i - m_i A)^2
    S01 = I01 / ((I01 - 1) N) sum_i (V01_i - n_i A)^2
    S11 = I / (I - 1) sum_i (V10_i - m_i A)(V01_i - n_i A)
    Var(A) = S10 / M + S01 / N + 2 S11 / (M N)

(I10, I01 = patients with at least one positive / negative unit). The covariance of two
readers' or treatments' AUCs uses the cross-products; with one unit per patient it is
exactly DeLong's covariance (a test checks this). A patient-level jackknife (leave one
patient out, Efron 1982) is offered as an alternative; both give the covariance the OR
analysis needs for an MRMC study with the patient as the case unit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.stats.delong import placements
from engine.stats.mrmc import Design, MrmcResult, jackknife_covariance, or_analysis
from engine.stats.roc import check_binary

__all__ = ["clustered_auc_covariance", "clustered_mrmc"]

ClusterCov = Literal["obuchowski", "jackknife"]


def _cluster_index(clusters: ArrayLike) -> tuple[NDArray[np.int64], int]:
    labels = np.asarray(clusters)
    if labels.ndim != 1:
        raise ValueError("clusters must be 1-D (one patient id per unit)")
    _, inv = np.unique(labels, return_inverse=True)
    return inv.astype(np.int64), int(inv.max()) + 1


def clustered_auc_covariance(
    clusters: ArrayLike, truth: ArrayLike, scores: ArrayLike, method: ClusterCov = "obuchowski"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Empirical AUCs of k readers/treatments on clustered units and their patient-level covariance.

    Args:
        clusters: (N,) patient id of each unit.
        truth: (N,) 0/1 unit truth.
        scores: (k, N) or (N,) ratings.
        method: "obuchowski" (Obuchowski 1997) or "jackknife" (leave one patient out).

    Returns:
        ``(aucs, cov)``: (k,) AUCs and (k, k) covariance.
    """
    t = check_binary(truth)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    cl, n_cl = _cluster_index(clusters)
    if cl.size != t.size or s.shape[1] != t.size:
        raise ValueError("clusters, truth and scores must describe the same units")
    p = placements(t, s)
    a = p.aucs
    cl_pos, cl_neg = cl[t], cl[~t]
    m_i = np.bincount(cl_pos, minlength=n_cl).astype(float)
    n_i = np.bincount(cl_neg, minlength=n_cl).astype(float)
    big_m, big_n = float(t.sum()), float((~t).sum())
    v10 = np.stack([np.bincount(cl_pos, weights=row, minlength=n_cl) for row in p.v10])  # (k, I)
    v01 = np.stack([np.bincount(cl_neg, weights=row, minlength=n_cl) for row in p.v01])
    if method == "obuchowski":
        i10, i01 = int((m_i > 0).sum()), int((n_i > 0).sum())
        if i10 < 2 or i01 < 2:
            raise ValueError("clustered AUC variance needs at least 2 patients with positive and 2 with negative units")
        d10 = v10 - m_i[None, :] * a[:, None]
        d01 = v01 - n_i[None, :] * a[:, None]
        s10 = i10 / ((i10 - 1) * big_m) * d10 @ d10.T
        s01 = i01 / ((i01 - 1) * big_n) * d01 @ d01.T
        s11 = n_cl / (n_cl - 1) * d10 @ d01.T
        cov = s10 / big_m + s01 / big_n + (s11 + s11.T) / (big_m * big_n)
        return a, np.asarray(cov, dtype=np.float64)
    if method != "jackknife":
        raise ValueError(f"unknown clustered covariance {method!r} (use obuchowski or jackknife)")
    # leave patient i out: S_(i) = M N A - N V10_i - M V01_i + W_i (pairs inside patient i)
    total = big_m * big_n * a[:, None]
    within = np.zeros((s.shape[0], n_cl))
    for ci in np.unique(cl):
        pos = np.nonzero(t & (cl == ci))[0]
        neg = np.nonzero(~t & (cl == ci))[0]
        if pos.size and neg.size:
            x = s[:, pos][:, :, None]
            y = s[:, neg][:, None, :]
            within[:, ci] = ((x > y) + 0.5 * (x == y)).sum(axis=(1, 2))
    keep_m = big_m - m_i
    keep_n = big_n - n_i
    if np.any(keep_m * keep_n == 0):
        raise ValueError("a patient holds all positive or all negative units; the patient jackknife is undefined")
    loo = (total - big_n * v10 - big_m * v01 + within) / (keep_m * keep_n)[None, :]
    return a, jackknife_covariance(loo)


def clustered_mrmc(
    clusters: ArrayLike,
    truth: ArrayLike,
    ratings: ArrayLike,
    *,
    treatments: list[str] | None = None,
    readers: list[str] | None = None,
    method: ClusterCov = "obuchowski",
    design: Design = "rrrc",
    alpha: float = 0.05,
) -> MrmcResult:
    """OR MRMC analysis with the patient as the case unit (units clustered within patients).

    Args:
        clusters: (N,) patient of each unit.
        truth: (N,) 0/1 unit truth.
        ratings: (t, r, N) ratings.
        treatments, readers: Names.
        method: "obuchowski" or "jackknife" patient-level covariance.
        design: "rrrc", "frrc" or "rrfc".
        alpha: 1 - confidence level.

    Returns:
        :class:`~engine.stats.mrmc.MrmcResult` (``cov_method`` "clustered-<method>").
    """
    s = np.asarray(ratings, dtype=float)
    if s.ndim != 3:
        raise ValueError(f"ratings must have shape (treatments, readers, units), got {s.shape}")
    t, r, n = s.shape
    aucs, cov = clustered_auc_covariance(clusters, truth, s.reshape(t * r, n), method)
    return or_analysis(aucs.reshape(t, r), cov, treatments=treatments, readers=readers, design=design, alpha=alpha,
                       cov_method=f"clustered-{method}")
