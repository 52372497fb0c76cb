"""``breast-engine evaluate --protocol saliency``: does a model's overlay point at the lesion, out of fold?

For a ``linear_probe`` config on ``busi`` (images + expert lesion masks), e.g.
``configs/us_effnet_lite0_busi.toml``: the recipe's partition-0 folds (``ship.folds``, seed
``train.seed``, :func:`engine.train.recipes.stratified_folds`); per fold the probe is fitted on
the other folds exactly as the recipe fits it (``ship.c``), folded into the model, written to a
temporary weights folder and loaded by the app's :class:`~engine.inference.Predictor`; each
held-out lesion image is explained through :meth:`~engine.inference.Predictor.saliency` (the
viewer's code path: Qi five crops, one map per crop placed where it came from) with the model's
default method. BUSI's expert mask is the reference.

Per image, then summarised with 95 % CIs (Wilson for rates, t for means):

* **pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
  2016): the map's maximum lies inside the mask, or within 15 px of it (their tolerance);
* **mass in lesion**: the map's share of its total mass inside the mask, and its ratio to the
  mask's share of the image area (1 = no better than a uniform map);
* the same for a **centre prior** (a Gaussian at the image centre, sigma = 1/4 of each side):
  sonographers centre the lesion, so a map must beat it to mean anything.

Writes nothing itself: ``evaluate --out FILE.json`` stores the result
(``docs/results/us_saliency_oof.json``).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig

#: Pointing-game tolerance of Zhang et al. 2016 (pixels).
TOLERANCE_PX = 15


def centre_prior(shape: tuple[int, int]) -> np.ndarray:
    """Gaussian at the image centre, sigma = a quarter of each side."""
    h, w = shape
    yy = (np.arange(h) - (h - 1) / 2) / (h / 4)
    xx = (np.arange(w) - (w - 1) / 2) / (w / 4)
    return np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)


def localisation(sal: np.ndarray, mask: np.ndarray, tol_px: int = TOLERANCE_PX) -> dict[str, float]:
    """Pointing-game hits and mass share of one map against one binary mask (same shape).

    Args:
        sal: Non-negative saliency map.
        mask: Lesion mask (non-zero = lesion).
        tol_px: Tolerance of the ``hit_tol`` hit (pixels).

    Returns:
        ``hit``, ``hit_tol`` (0/1), ``mass_share``, ``area_share`` and ``enrichment``
        (mass share / area share; NaN for an empty mask).
    """
    import cv2

    m = mask > 0
    r, c = np.unravel_index(int(np.argmax(sal)), sal.shape)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tol_px + 1, 2 * tol_px + 1))
    m_tol = cv2.dilate(m.astype(np.uint8), k) > 0
    total = float(sal.sum())
    share = float(sal[m].sum() / total) if total > 0 else 0.0
    area = float(m.mean())
    return {"hit": float(m[r, c]), "hit_tol": float(m_tol[r, c]), "mass_share": share, "area_share": area,
            "enrichment": share / area if area > 0 else float("nan")}


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Hit rates with Wilson 95 % CIs; mass share / enrichment as mean (t 95 % CI) and median."""
    from scipy.stats import t

    from engine.stats.binary import wilson_ci

    n = len(rows)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return out
    for key in ("hit", "hit_tol"):
        k = int(sum(r[key] for r in rows))
        lo, hi = wilson_ci(k, n)
        out[key] = {"rate": round(k / n, 4), "k": k, "ci95": [round(lo, 4), round(hi, 4)]}
    for key in ("mass_share", "enrichment"):
        v = np.array([r[key] for r in rows], float)
        v = v[np.isfinite(v)]
        h = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
        out[key] = {"mean": round(float(v.mean()), 4), "ci95": [round(float(v.mean() - h), 4),
                                                                 round(float(v.mean() + h), 4)],
                    "median": round(float(np.median(v)), 4)}
    out["area_share_median"] = round(float(np.median([r["area_share"] for r in rows])), 4)
    return out


def evaluate_saliency_oof(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Out-of-fold pointing game of a ``linear_probe`` config's default saliency (module docstring).

    Raises:
        ConfigError: not a ``linear_probe`` config on ``busi`` data.
    """
    from engine.data.busi import load_busi, read_gray
    from engine.inference import Predictor
    from engine.models.registry import model_info
    from engine.models.weights import save_weights
    from engine.train.recipes import fit_probe, make_spec, prepare, stratified_folds, write_probe

    if cfg.train.mode != "linear_probe" or cfg.data.kind != "busi":
        raise ConfigError("--protocol saliency needs a train.mode = 'linear_probe' config on data.kind = 'busi' "
                          f"(images + expert masks), not {cfg.train.mode} / {cfg.data.kind}")
    t0 = time.time()
    st = prepare(cfg, progress=progress)
    assert st.eval_feats is not None and st.train_feats is not None and st.model is not None
    masks = {r.image_id: r.mask for r in load_busi(cfg.data.path)}
    folds = stratified_folds(st.labels, st.groups, cfg.ship.folds, cfg.train.seed)
    method = model_info(cfg.model.name).saliency[0]
    names = {0: "benign", 1: "malignant"}
    per: dict[str, list[dict[str, float]]] = {"model": [], "centre_prior": []}
    by_class: dict[str, dict[str, list[dict[str, float]]]] = {
        c: {"model": [], "centre_prior": []} for c in names.values()}
    peaks: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="saliency_oof_") as tmp:
        for f in range(cfg.ship.folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            model = copy.deepcopy(st.model)
            write_probe(model, fit_probe(st.train_feats, st.labels, tr, float(cfg.ship.c)))
            folder = Path(tmp) / f"fold{f}"
            save_weights(model.eval(), make_spec(cfg), folder)
            pred = Predictor(folder, device="cpu")
            for i in te:
                it = st.items[int(i)]
                mp = masks.get(it.item_id)
                if mp is None:
                    continue
                mask = read_gray(mp) > 127
                if not mask.any():
                    continue
                sal = pred.saliency(it.image, method).map
                if sal.shape != mask.shape:
                    raise ConfigError(f"{it.path}: saliency map {sal.shape} is not in the mask's grid {mask.shape}")
                py, px = np.unravel_index(int(np.argmax(sal)), sal.shape)
                peaks[it.item_id] = [int(px), int(py)]
                for name, m in (("model", sal), ("centre_prior", centre_prior(mask.shape))):
                    row = localisation(m, mask)
                    per[name].append(row)
                    by_class[names[int(it.label)]][name].append(row)
            report(progress, f + 1, cfg.ship.folds, f"fold {f + 1}/{cfg.ship.folds}: {len(per['model'])} images")
    return {
        "what": (f"{method} of {cfg.ship.name} out of fold (each busi-dev lesion image explained by the fold model "
                 "that did not train on it, through Predictor.saliency) against BUSI expert lesion masks; "
                 "centre_prior = Gaussian at the image centre"),
        "model": cfg.ship.name, "architecture": cfg.model.name, "method": method,
        "protocol": f"partition 0 of the recipe: stratified {cfg.ship.folds}-fold CV (seed {cfg.train.seed}), "
                    f"probe C = {cfg.ship.c}",
        "tolerance_px": TOLERANCE_PX,
        "all": {k: summarise(v) for k, v in per.items()},
        "by_class": {c: {k: summarise(v) for k, v in d.items() if v} for c, d in by_class.items()},
        "peaks_xy": peaks,
        "wall_s": round(time.time() - t0, 1),
        "licence": "BUSI (Al-Dhabyani et al. 2020, doi:10.1016/j.dib.2019.104863), CC BY 4.0",
    }
