"""Mammography lesion readout comparison on mias-dev by grouped CV (frozen EfficientNet-Lite0).

Compares, on the box crop the shipped MG model sees (spec.transforms() of
``mg_effnet_lite0_mias_lesion``: box + 15 % margin, chest wall left, 224 px), three linear readouts
of the frozen ImageNet trunk: the head conv average (the shipped baseline), the multi-layer
readout (blocks 10/14/15 + head, as the US default) and a two-scale multi-layer readout (224 +
160 px crops of the same box). Class-balanced L2 logistic regression (C in a small grid, all
reported), training views = crop + mirror, stratified 5-fold CV grouped by patient, 5 repeats.
mini-MIAS: research use only (Suckling et al. 1994).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mias-dev"))
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    from engine.data.mias import circle_box, load_mias
    from engine.io.reader import read_image
    from engine.models import get_model
    from engine.models.weights import read_spec
    from engine.stats.delong import auc_ci

    spec = read_spec("mg_effnet_lite0_mias_lesion")
    tf = spec.transforms()
    net = get_model("efficientnet_lite0_multiscale", pretrained=True).eval()
    feats: dict[str, list[np.ndarray]] = {"head": [], "multi": [], "multi2": []}
    y, groups = [], []
    for im in load_mias(args.data):
        abn = [a for a in im.abnormalities if a.centre is not None and a.radius]
        if not abn:
            continue
        img = read_image(im.path, modality_hint="MG")
        for a in abn[:1]:
            x0, y0, x1, y1 = circle_box(a.centre, float(a.radius))  # type: ignore[arg-type]
            p = tf(img, box=(x0, y0, x1, y1))
            x = p.tensor[None]
            views = torch.cat([x, x.flip(-1)])
            with torch.no_grad():
                m1 = net._pooled(views, tap_cam=False)
                m2 = net._pooled(F.interpolate(views, size=(160, 160), mode="bilinear", antialias=True), tap_cam=False)
            feats["head"].append(m1[:, -1280:].numpy())
            feats["multi"].append(m1.numpy())
            feats["multi2"].append(torch.cat([m1, m2], 1).numpy())
            y.append(a.label)
            groups.append(im.patient)
    yv, gv = np.array(y), np.array(groups)
    res: dict[str, object] = {"n_lesions": int(len(yv)), "n_malignant": int(yv.sum()), "n_patients": len(set(groups))}
    for name, fl in feats.items():
        X = np.stack(fl)  # (n, 2 views, d)
        for C in (0.003, 0.01, 0.03, 0.1):
            aucs, pooled = [], []
            for seed in range(5):
                oof = np.zeros(len(yv))
                for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(X, yv, gv):
                    Xtr = X[tr].reshape(-1, X.shape[-1])
                    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
                    clf = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
                    clf.fit((Xtr - mu) / sd, np.repeat(yv[tr], 2))
                    oof[te] = clf.decision_function(((X[te] - mu) / sd).reshape(-1, X.shape[-1])).reshape(-1, 2).mean(1)
                a = auc_ci(yv, oof)
                aucs.append(a[0])
                pooled.append(a)
            res[f"{name}|C={C}"] = {"pooled_auc_mean_over_repeats": float(np.mean(aucs)),
                                    "range": [float(min(aucs)), float(max(aucs))], "seed0": pooled[0]}
            print(name, C, round(float(np.mean(aucs)), 3), [round(v, 3) for v in pooled[0]], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
