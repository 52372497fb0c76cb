"""Evaluation report (JSON-ready dict) and ROC plot (PNG) for one set of scores."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from engine.metrics.classification import (
    _pair,
    accuracy,
    auc,
    best_threshold,
    confusion_matrix,
    fbeta,
    precision,
    roc_points,
    sensitivity,
    specificity,
)


def auc_with_ci(truth: ArrayLike, scores: ArrayLike, level: float = 0.95) -> dict[str, float]:
    """AUC with its DeLong (1988) confidence interval.

    The variance is DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837-845),
    computed with the midrank algorithm of Sun & Xu (2014, IEEE SPL 21:1389-1393) by
    :mod:`engine.stats.delong` (the reader-study module; one implementation in the project).

    Args:
        truth: 0/1 ground truth with both classes.
        scores: Higher means more likely positive.
        level: Confidence level.

    Returns:
        ``{"auc", "ci_low", "ci_high", "se"}``; the CI and SE are NaN with fewer than two
        cases of a class (the variance is undefined).
    """
    t, s = _pair(truth, scores)
    n_pos = int(t.sum())
    if n_pos < 2 or t.size - n_pos < 2:
        # DeLong's variance needs two cases of each class; report the AUC without a CI
        return {"auc": auc(t, s), "ci_low": float("nan"), "ci_high": float("nan"), "se": float("nan")}
    from engine.stats.delong import auc_ci, delong_covariance

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # one positive or one negative: the DeLong variance is undefined (NaN CI), not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        a, lo, hi = auc_ci(t, s, alpha=1.0 - level)
        _, cov = delong_covariance(t, s)
    return {"auc": float(a), "ci_low": float(lo), "ci_high": float(hi),
            "se": float(np.sqrt(max(float(cov[0, 0]), 0.0)))}


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def evaluation_report(
    truth: ArrayLike,
    scores: ArrayLike,
    threshold: float | None = None,
    *,
    threshold_metric: str = "f2",
    level: float = 0.95,
) -> dict[str, Any]:
    """Everything a results table needs for one set of binary scores.

    Args:
        truth: 0/1 ground truth.
        scores: Scores (higher = more malignant).
        threshold: Operating threshold; ``None`` selects it on these scores with
            :func:`best_threshold` (``threshold_metric``; F2 as in Qi et al. 2019) and
            says so in ``threshold_source`` (an optimistic, in-sample choice).
        threshold_metric: Metric for the automatic threshold.
        level: CI level for the AUC.

    Returns:
        A JSON-serialisable dict: n, n_pos, n_neg, auc, auc_ci [lo, hi], auc_se,
        threshold, threshold_source, confusion [[TN, FP], [FN, TP]], accuracy,
        sensitivity, specificity, precision, f1, f2. Undefined values are ``None``.
    """
    t, s = _pair(truth, scores)
    n_pos = int(t.sum())
    out: dict[str, Any] = {"n": int(t.size), "n_pos": n_pos, "n_neg": int(t.size - n_pos)}
    both = 0 < n_pos < t.size
    if both:
        ci = auc_with_ci(t, s, level)
        out.update(auc=ci["auc"], auc_ci=[_clean(ci["ci_low"]), _clean(ci["ci_high"])],
                   auc_se=_clean(ci["se"]), ci_level=level)
    else:
        out.update(auc=None, auc_ci=[None, None], auc_se=None, ci_level=level)
    if threshold is None:
        threshold = best_threshold(t, s, threshold_metric) if both else 0.5  # type: ignore[arg-type]
        out["threshold_source"] = f"best {threshold_metric} on these scores" if both else "default 0.5"
    else:
        out["threshold_source"] = "given"
    out["threshold"] = float(threshold)
    pred = (s >= threshold).astype(np.int64)
    out["confusion"] = confusion_matrix(t, pred).tolist()
    for name, fn in (("accuracy", accuracy), ("sensitivity", sensitivity),
                     ("specificity", specificity), ("precision", precision)):
        out[name] = _clean(fn(t, pred))
    out["f1"] = _clean(fbeta(t, pred, 1.0))
    out["f2"] = _clean(fbeta(t, pred, 2.0))
    return out


def plot_roc(
    truth: ArrayLike,
    scores: ArrayLike | None = None,
    path: str | PathLike[str] = "roc.png",
    *,
    curves: dict[str, tuple[ArrayLike, ArrayLike]] | None = None,
    title: str = "ROC",
    operating_point: tuple[float, float] | None = None,
) -> Path:
    """Save an ROC plot (PNG, matplotlib Agg; no display needed).

    Args:
        truth: 0/1 ground truth of the main curve.
        scores: Scores of the main curve (``None`` when only ``curves`` are drawn).
        path: Output PNG path (parent folders are created).
        curves: Extra labelled curves ``{label: (truth, scores)}`` (e.g. one per fold).
        title: Plot title.
        operating_point: ``(1 - specificity, sensitivity)`` marked on the plot.

    Returns:
        The written path.
    """
    # A bare Figure renders with Agg without touching pyplot's global backend (GUI-safe).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for label, (ct, cs) in (curves or {}).items():
        fpr, tpr, _ = roc_points(ct, cs)
        ax.plot(fpr, tpr, lw=1, alpha=0.5, label=f"{label} (AUC {auc(ct, cs):.3f})")
    if scores is not None:
        fpr, tpr, _ = roc_points(truth, scores)
        ax.plot(fpr, tpr, lw=2, color="k", label=f"pooled (AUC {auc(truth, scores):.3f})")
    if operating_point is not None:
        ax.plot([operating_point[0]], [operating_point[1]], "o", color="C3", ms=7,
                label=f"operating point (sens {operating_point[1]:.2f}, spec {1 - operating_point[0]:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 - specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def save_reliability(metrics: dict[str, Any], path: str | PathLike[str], *,
                     title: str = "out-of-fold reliability (partition 0)") -> Path:
    """Save the reliability diagram of a recipe's calibration metrics (PNG, matplotlib Agg).

    Draws the equal-width-bin curves the recipe reported (``calibration_raw`` and
    ``calibration_platt_crossfit`` of :func:`engine.train.calibrate_ood.calibration_metrics`),
    each labelled with its ECE and Brier score, and the lesions per bin.

    Args:
        metrics: ``--protocol recipe`` metrics of a ``ship.calibrate = "platt"`` config.
        path: Output PNG path (parent folders are created).
        title: Plot title.

    Returns:
        The written path.

    Raises:
        KeyError: the metrics hold no calibration (``ship.calibrate`` unset).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.4), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    for key, name, colour in (("calibration_raw", "raw", "tab:red"),
                              ("calibration_platt_crossfit", "Platt (cross-fitted)", "tab:blue")):
        r = metrics[key]
        pts = [(p, f, c) for p, f, c in zip(r["mean_predicted"], r["fraction_positive"], r["counts"]) if c]
        ax.plot([p for p, _, _ in pts], [f for _, f, _ in pts], marker="o", color=colour,
                label=f"{name}: ECE {r['ece']:.3f}, Brier {r['brier']:.3f}")
        for p, f, c in pts:
            ax.annotate(str(c), (p, f), textcoords="offset points", xytext=(4, -10), fontsize=7, color=colour)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (5 equal-width bins)")
    ax.set_ylabel("fraction malignant")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.text(0.01, 0.01, f"n = {metrics['n']} lesions ({metrics['n_malignant']} malignant); numbers = lesions per bin",
             fontsize=6, color="0.3")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
