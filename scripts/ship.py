"""Helpers to turn lab training outputs into shipped model folders (resources/models/<name>/).

A shipped folder follows the weights contract of :mod:`engine.models.weights`: ``weights.pt``
(state_dict of the REGISTERED architecture), ``spec.json`` and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "resources" / "models"

DISCLAIMER = (
    "**Decision support, not a diagnosis.** This model is a research tool. Its score is one input "
    "for a qualified reader, who makes every clinical decision. It has not been cleared by any "
    "regulator and must not be used on its own to diagnose, triage or exclude disease."
)


def raw_effnet_to_registered(raw: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map an ``efficientnet-lite-pytorch`` state_dict onto the registered ``efficientnet_lite0``.

    The registered model keeps the package network as ``net`` (with ``_fc`` removed) and adds
    ``head.fc``. Keys are mapped by name and checked for shape.

    Args:
        raw: state_dict of ``EfficientNet.from_name("efficientnet-lite0", num_classes=2)``.
        model: The registered model instance (its state_dict gives the target keys).

    Returns:
        A state_dict for ``model``.
    """
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in raw.items():
        nk = "head.fc." + k[len("_fc."):] if k.startswith("_fc.") else "net." + k
        if nk not in own:
            raise KeyError(f"{k} -> {nk} not in the registered model")
        if own[nk].shape != v.shape:
            raise ValueError(f"{nk}: shape {tuple(v.shape)} vs {tuple(own[nk].shape)}")
        out[nk] = v.detach().clone()
    missing = [k for k in own if k not in out]
    if missing:
        raise KeyError(f"registered keys not filled: {missing[:5]}")
    return out


def fold_logistic_into_linear(
    fc: nn.Linear, coef: np.ndarray, intercept: float, mean: np.ndarray, scale: np.ndarray
) -> None:
    """Write a (StandardScaler → LogisticRegression) into a 2-class softmax ``fc`` in place.

    softmax([0, z])[1] = sigmoid(z), z = Σ w_i (x_i − μ_i)/σ_i + b.
    """
    w = coef.reshape(-1) / scale
    b = float(intercept) - float(np.sum(coef.reshape(-1) * mean / scale))
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[1] = torch.as_tensor(w, dtype=fc.weight.dtype)
        fc.bias[1] = b


def fmt_ci(m: float, lo: float, hi: float, nd: int = 3) -> str:
    """``0.912 (95% CI 0.88–0.94)``."""
    return f"{m:.{nd}f} (95% CI {lo:.{nd}f}–{hi:.{nd}f})"


def summarize_oof(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Metrics of out-of-fold scores: per-fold AUC mean ± t-CI, pooled AUC with DeLong CI,
    and sensitivity/specificity/F2 at the F2-selected threshold on the pooled scores."""
    import labkit
    from engine.stats.delong import auc_ci

    aucs = labkit.fold_aucs(labels, scores, folds)
    m, lo, hi = labkit.mean_ci(aucs)
    pooled, plo, phi = auc_ci(labels, scores)
    thr, sens, spec, f2 = f2_threshold(labels, scores)
    return {
        "fold_auc": [round(a, 4) for a in aucs],
        "auc_mean": round(m, 4), "auc_ci95": [round(lo, 4), round(hi, 4)],
        "pooled_auc": round(pooled, 4), "pooled_auc_delong_ci95": [round(float(plo), 4), round(float(phi), 4)],
        "f2_threshold": round(thr, 4), "sensitivity": round(sens, 4), "specificity": round(spec, 4),
        "f2": round(f2, 4), "n": int(len(labels)), "n_malignant": int(np.sum(labels)),
    }


def f2_threshold(labels: np.ndarray, scores: np.ndarray, beta: float = 2.0) -> tuple[float, float, float, float]:
    """Threshold maximising F-β (Qi 2019's selection metric) and its sens/spec/F-β."""
    y = np.asarray(labels).astype(bool)
    best = (0.5, 0.0, 0.0, -1.0)
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & y)
        fp = np.sum(pred & ~y)
        fn = np.sum(~pred & y)
        tn = np.sum(~pred & ~y)
        prec = tp / max(tp + fp, 1)
        rec = tp / max(tp + fn, 1)
        f = (1 + beta**2) * prec * rec / max(beta**2 * prec + rec, 1e-12)
        if f > best[3]:
            best = (float(t), float(rec), float(tn / max(tn + fp, 1)), float(f))
    return best


def write_defaults(mapping: dict[str, str]) -> None:
    """Merge ``mapping`` (modality -> folder) into resources/models/defaults.json."""
    f = MODELS / "defaults.json"
    data = json.loads(f.read_text()) if f.is_file() else {}
    data.update(mapping)
    f.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
