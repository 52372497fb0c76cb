"""Out-of-fold calibration and OOD threshold for the ``linear_probe`` recipe (``[ship]`` options).

* ``ship.calibrate = "platt"``: Platt scaling (Platt 1999) of partition 0's out-of-fold logits is
  the shipped calibration. Its calibration error is measured **cross-fitted**: for each fold the
  Platt fit uses the other folds' out-of-fold logits only, so no case calibrates its own score;
  ECE (Naeini 2015; Guo 2017) and the reliability bins are reported before and after.
* ``ship.ood_percentile``: for each fold, the OOD measure (:func:`engine.stats.ood.fit_subspace_distance`,
  Mahalanobis in the top PCA subspace + residual) is fitted on the training folds' full-scale
  features and the held-out fold's distances are kept; the warning threshold is the given
  percentile of those held-out distances (about that share of dev lesions is not flagged).

Pure NumPy on arrays the recipe already has; no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Reliability bins: mias-dev has 72 lesions, so 5 equal-width bins (~14 per bin on average).
N_BINS = 5


def _reliability_dict(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from engine.stats.calibration import reliability

    r = reliability(p, y, N_BINS)
    return {"ece": round(r.ece, 4), "mean_predicted": [None if v != v else round(float(v), 4) for v in r.mean_predicted],
            "fraction_positive": [None if v != v else round(float(v), 4) for v in r.fraction_positive],
            "counts": [int(c) for c in r.counts]}


def _crossfit_platt(z: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    from engine.stats.calibration import apply_platt, fit_platt

    cross = np.zeros_like(z)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        af, bf = fit_platt(z[tr], y[tr], from_probability=False)
        cross[te] = apply_platt(z[te], af, bf, from_probability=False)
    return cross


def calibration_metrics(y: np.ndarray, oof_prob: np.ndarray, folds: np.ndarray,
                        more: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
    """Shipped Platt ``(a, b)`` on all out-of-fold logits, and cross-fitted ECE before/after.

    Args:
        y: 0/1 labels ``(n,)``.
        oof_prob: Out-of-fold probabilities ``(n,)`` of partition 0 (the shipped fit, the diagram).
        folds: Fold id per case ``(n,)`` of that partition.
        more: ``(oof_prob, folds)`` of further partitions: ECE / Brier are also given as means
            over all partitions (with 72 cases one partition's ECE moves by a few hundredths).
    """
    from engine.stats.calibration import expected_calibration_error, fit_platt, logit

    z = logit(np.asarray(oof_prob, np.float64))
    a, b = fit_platt(z, y, from_probability=False)
    cross = _crossfit_platt(z, y, folds)
    raw = np.asarray(oof_prob, np.float64)
    out: dict[str, Any] = {
        "platt": [round(a, 6), round(b, 6)],
        "calibration_raw": {**_reliability_dict(raw, y), "brier": round(float(np.mean((raw - y) ** 2)), 4)},
        "calibration_platt_crossfit": {**_reliability_dict(cross, y), "brier": round(float(np.mean((cross - y) ** 2)), 4)},
        "ece_raw": _reliability_dict(raw, y)["ece"],
        "ece_platt_crossfit": _reliability_dict(cross, y)["ece"],
        "brier_base_rate": round(float(np.mean((y.mean() - y) ** 2)), 4),
        "oof_calibrated_partition0": [round(float(v), 6) for v in cross],
    }
    parts = [(raw, np.asarray(folds))] + [(np.asarray(p, np.float64), np.asarray(f)) for p, f in (more or [])]
    if len(parts) > 1:
        er, ec, br, bc = [], [], [], []
        for p, f in parts:
            c = _crossfit_platt(logit(p), y, f)
            er.append(expected_calibration_error(p, y, N_BINS))
            ec.append(expected_calibration_error(c, y, N_BINS))
            br.append(float(np.mean((p - y) ** 2)))
            bc.append(float(np.mean((c - y) ** 2)))
        out.update(ece_raw_mean_over_partitions=round(float(np.mean(er)), 4),
                   ece_platt_crossfit_mean_over_partitions=round(float(np.mean(ec)), 4),
                   brier_raw_mean_over_partitions=round(float(np.mean(br)), 4),
                   brier_platt_crossfit_mean_over_partitions=round(float(np.mean(bc)), 4))
    return out


def ood_metrics(features: np.ndarray, folds: np.ndarray, k: int, percentile: float) -> dict[str, Any]:
    """Held-out OOD distances per fold and the warning threshold (see module docstring).

    Args:
        features: Full-scale eval-view features ``(n, d)``.
        folds: Fold id per case ``(n,)``.
        k: PCA dimensions of the measure (the model's ``ood_dims``).
        percentile: Threshold percentile of the held-out distances.
    """
    from engine.stats.ood import fit_subspace_distance, ood_threshold, subspace_distance

    X = np.asarray(features, np.float64)
    d = np.zeros(len(X))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        mean, W, P, scale = fit_subspace_distance(X[tr], k)
        d[te] = subspace_distance(X[te], mean, W, P, scale)
    thr = ood_threshold(d, percentile)
    return {"ood_threshold": round(float(thr), 4), "ood_percentile": float(percentile),
            "ood_heldout_distance_quartiles": [round(float(v), 3) for v in np.percentile(d, [25, 50, 75])],
            "ood_heldout_max": round(float(d.max()), 3)}
