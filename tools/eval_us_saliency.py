#!/usr/bin/env python
"""Does the US model's Grad-CAM point at the lesion? Out-of-fold localisation on BUSI masks.

Each image is explained by the model of the cross-validation fold that did NOT train on it
(``train_default_us_finetune.py --save-folds`` keeps them), through the same code path the
viewer uses (:meth:`engine.inference.Predictor.analyse`: five crops, one Grad-CAM per crop,
placed where the crop came from). BUSI's expert lesion masks are the reference.

Metrics, per image, then summarised with 95 % CIs:

* **pointing game** (Zhang et al., ECCV 2016): the map's maximum lies inside the lesion mask,
  or within 15 px of it (the original tolerance) — a hit rate with a Wilson interval;
* **mass in lesion**: share of the map's total mass inside the mask, and its ratio to the
  mask's share of the image area (1 = no better than spreading the map uniformly);
* the same for a **centre-prior baseline** (a Gaussian at the image centre, σ = ¼ of each side):
  BUSI lesions are usually centred by the sonographer, so a map must beat this to mean anything.

Writes ``docs/results/us_saliency_oof.json``.

Example:
    python tools/eval_us_saliency.py --folds /tmp/lab/us_ft --data ../shared/data/busi-dev
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def centre_prior(shape: tuple[int, int]) -> np.ndarray:
    """Gaussian at the image centre, σ = a quarter of each side."""
    h, w = shape
    yy = (np.arange(h) - (h - 1) / 2) / (h / 4)
    xx = (np.arange(w) - (w - 1) / 2) / (w / 4)
    return np.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)


def localisation(sal: np.ndarray, mask: np.ndarray, tol_px: int = 15) -> dict[str, float]:
    """Pointing-game hits and mass share of one map against one binary mask (same shape)."""
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


def summarise(rows: list[dict[str, float]]) -> dict[str, object]:
    """Hit rates with Wilson CIs; mass share / enrichment as mean (t CI) and median."""
    from scipy.stats import t

    from engine.stats.binary import wilson_ci

    n = len(rows)
    out: dict[str, object] = {"n": n}
    for key in ("hit", "hit_tol"):
        k = int(sum(r[key] for r in rows))
        lo, hi = wilson_ci(k, n)
        out[key] = {"rate": round(k / n, 4), "k": k, "ci95": [round(lo, 4), round(hi, 4)]}
    for key in ("mass_share", "enrichment"):
        v = np.array([r[key] for r in rows], float)
        v = v[np.isfinite(v)]
        h = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
        out[key] = {"mean": round(float(v.mean()), 4), "ci95": [round(float(v.mean() - h), 4),
                                                                 round(float(v.mean() + h), 4)],
                    "median": round(float(np.median(v)), 4)}
    out["area_share_median"] = round(float(np.median([r["area_share"] for r in rows])), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    """Evaluate every fold model on its own held-out images."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="/tmp/lab/us_ft", help="folder holding fold0 … fold4 (WeightsSpec folders)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "busi-dev"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "us_saliency_oof.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", default=None, help="saliency method (default: the model's first, as in the viewer)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.data.busi import load_busi, read_gray
    from engine.inference import Predictor

    recs = {r.image_id: r for r in load_busi(args.data)}
    per: dict[str, list[dict[str, float]]] = {"model": [], "centre_prior": []}
    by_class: dict[str, dict[str, list[dict[str, float]]]] = {"benign": {"model": [], "centre_prior": []},
                                                              "malignant": {"model": [], "centre_prior": []}}
    t0 = time.time()
    folders = sorted(Path(args.folds).glob("fold[0-9]"))
    if not folders:
        raise SystemExit(f"no fold models under {args.folds}: run train_default_us_finetune.py --save-folds first")
    for folder in folders:
        pred = Predictor(folder, device="cpu")
        test_ids = json.loads((folder / "spec.json").read_text())["metrics"]["test_ids"]
        for iid in test_ids:
            r = recs[iid]
            if r.mask is None:
                continue
            img = read_gray(r.image)
            mask = read_gray(r.mask) > 127
            if not mask.any():
                continue
            sal = pred.saliency(img, args.method).map
            for name, m in (("model", sal), ("centre_prior", centre_prior(img.shape))):
                row = localisation(m, mask)
                per[name].append(row)
                by_class[r.label_name][name].append(row)
        print(f"{folder.name}: {len(test_ids)} images ({time.time() - t0:.0f}s)", flush=True)
    res = {
        "what": "Saliency of the US model (out-of-fold: each image explained by the fold model that did not train "
                "on it) against BUSI expert lesion masks; centre_prior = Gaussian at the image centre",
        "tolerance_px": 15,
        "method": args.method or "model default",
        "all": {k: summarise(v) for k, v in per.items()},
        "by_class": {c: {k: summarise(v) for k, v in d.items() if v} for c, d in by_class.items()},
        "wall_s": round(time.time() - t0, 1),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    }
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res["all"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
