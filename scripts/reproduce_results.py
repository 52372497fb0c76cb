#!/usr/bin/env python
"""Reproduce the seed papers' comparisons at a REDUCED budget and write docs/results.md.

Usage:
    python scripts/reproduce_results.py run EXPERIMENT [--quick]   # writes scripts/results/EXPERIMENT.json
    python scripts/reproduce_results.py render                      # docs/results.md from the JSON files

Experiments (each one JSON file with per-fold metrics, the command, wall time and device):
    habib_synthetic  Habib 2020 on the SYNTHETIC paired MG+US set: two-step vs end-to-end,
                     BCE vs LMCL, single-modality vs fused AUC (basic CNN, 48 px patches).
    an_patches       An 2019 tissue-patch classifier on mias-dev at x0.5 / x0.33 / x0.25
                     (TP/FP/TN/FN like their Table 2), patient-grouped folds.
    qi_multicrop     Qi 2019 basic (one resized image) vs multi-input (five crops along the long
                     side, shorter side to S) prediction, on BUSI with frozen ImageNet
                     EfficientNet-Lite0 features + logistic regression (no CPU budget to train
                     Mt-Net).
    busi_basic_cnn   Habib's basic CNN from scratch on BUSI (whole image, 96 px), 5-fold.
    hijab_scratch    Hijab 2019 baseline: VGG16 from scratch on BUSI with the paper's augmentation
                     and SGD, at a reduced input size / epoch budget.
The shipped-model CV results (train_default_us.py / _mg.py / _mri.py outputs) are read from
scripts/results/ as well.

Everything here ran on the shared 2-core CPU: input sizes, epochs and folds are far below the
papers' budgets; the tables say so. The numbers are what this code measured, not the papers'.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import labkit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "scripts" / "results"
DATA = REPO.parent / "shared" / "data"


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _device() -> str:
    return f"{labkit.device_name(torch.device('cpu'))}, {platform.processor() or platform.machine()}, shared with 5 other jobs"


def _save(name: str, payload: dict[str, Any], t0: float, argv: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload.update({"wall_s": round(time.time() - t0, 1), "device": _device(),
                    "command": "python scripts/reproduce_results.py " + " ".join(argv)})
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {RESULTS / name}.json ({payload['wall_s']} s)", flush=True)


def _train_steps(model: torch.nn.Module, loss_fn, data: list[torch.Tensor], y: torch.Tensor, *, epochs: int,  # noqa: ANN001
                 batch: int, lr: float, seed: int, augment: bool = True) -> None:
    """Adam + cosine; ``loss_fn(model, *batch_tensors, y)``; random flips/90° turns when ``augment``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    n = len(y)
    steps = math.ceil(n / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps * epochs) / (steps * epochs))))
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for s in range(steps):
            idx = perm[s * batch : (s + 1) * batch]
            if len(idx) < 2:
                continue
            xs = [d[idx] for d in data]
            if augment:
                k = int(torch.randint(0, 4, (1,), generator=g))
                flip = bool(torch.randint(0, 2, (1,), generator=g))
                xs = [torch.rot90(x, k, (-2, -1)) for x in xs]
                if flip:
                    xs = [x.flip(-1) for x in xs]
            loss = loss_fn(model, *xs, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


# ------------------------------------------------------------------------------------------
def exp_habib_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    """Habib 2020 comparisons on the SYNTHETIC paired set."""
    from engine.data.synthetic import synthetic_paired_lesion
    from engine.models import get_model
    from engine.models.habib import end_to_end_loss

    n, size = (120, 48) if args.quick else (args.n or 300, 48)
    les = [synthetic_paired_lesion(10_000 + i, malignant=bool(i % 2), size=size) for i in range(n)]
    mg = torch.tensor(np.stack([d["mg"] for d in les]), dtype=torch.float32)[:, None] / 4095.0
    us = torch.tensor(np.stack([d["us"] for d in les]), dtype=torch.float32)[:, None] / 255.0
    mg = (mg - mg.mean()) / mg.std()
    us = (us - us.mean()) / us.std()
    y = np.array([d["label"] for d in les])
    yt = torch.as_tensor(y)
    folds = labkit.stratified_folds(y, np.arange(n), args.folds, seed=0)
    ep = 4 if args.quick else args.epochs
    res: dict[str, Any] = {"n": n, "patch": size, "folds": args.folds, "epochs": ep, "configs": {}}

    def prob(model: Any, logits: torch.Tensor) -> np.ndarray:
        return model.malignancy(logits).detach().numpy() if hasattr(model, "malignancy") else torch.sigmoid(logits[:, 0]).numpy()

    for loss in ("bce", "lmcl"):
        for mode in ("two_step", "end_to_end"):
            key = f"{mode}/{loss}"
            per = {"mg": [], "us": [], "fused": []}
            for f in range(args.folds):
                tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
                torch.manual_seed(f)
                if mode == "two_step":
                    nets = {}
                    for mod, X in (("mg", mg), ("us", us)):
                        net = get_model("habib_basic_cnn", loss=loss)
                        _train_steps(net, lambda m, x, t: m.loss(m(x), t), [X[tr]], yt[tr], epochs=ep, batch=32,
                                     lr=1e-3, seed=f)
                        with torch.no_grad():
                            per[mod].append(_auc(y[te], net.malignancy(net(X[te])).numpy()))
                        nets[mod] = net
                    with torch.no_grad():
                        d_tr = torch.cat([nets["mg"].descriptor(mg[tr]), nets["us"].descriptor(us[tr])], 1)
                        d_te = torch.cat([nets["mg"].descriptor(mg[te]), nets["us"].descriptor(us[te])], 1)
                    fus = get_model("habib_fusion_fc", in_features=d_tr.shape[1], loss=loss)
                    _train_steps(fus, lambda m, d, t: m.loss(m(d), t), [d_tr], yt[tr], epochs=ep * 3, batch=32,
                                 lr=5e-4, seed=f, augment=False)
                    with torch.no_grad():
                        per["fused"].append(_auc(y[te], fus.malignancy(fus(d_te)).numpy()))
                else:
                    joint = get_model("habib_joint", arch="basic", loss=loss, pretrained=False)
                    _train_steps(joint, lambda m, a, b, t: end_to_end_loss(m, a, b, t), [mg[tr], us[tr]], yt[tr],
                                 epochs=ep, batch=32, lr=1e-3, seed=f)
                    with torch.no_grad():
                        lm, lu, lf = joint.forward_all(mg[te], us[te])
                        per["mg"].append(_auc(y[te], joint.mg.malignancy(lm).numpy()))
                        per["us"].append(_auc(y[te], joint.us.malignancy(lu).numpy()))
                        per["fused"].append(_auc(y[te], joint.fusion.malignancy(lf).numpy()))
                print(f"{key} fold {f + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in per.items()), flush=True)
            res["configs"][key] = {k: {"fold_auc": v, "mean_ci": labkit.mean_ci(v)} for k, v in per.items()}
    return res


# ------------------------------------------------------------------------------------------
def exp_an_patches(args: argparse.Namespace) -> dict[str, Any]:
    """An 2019 tissue-patch classifier at three magnifications on mias-dev."""
    from engine.data.busi import read_gray
    from engine.data.mias import load_mias, sample_patches
    from engine.models import get_model

    ims = load_mias(DATA / "mias-dev")
    if args.quick:
        ims = ims[:30]
    patch = 128
    rng = np.random.default_rng(0)
    res: dict[str, Any] = {"patch": patch, "folds": args.folds, "neg_per_image": args.neg_per_image, "scales": {}}
    imgs = {m.refnum: read_gray(m.path) for m in ims}
    for scale in (0.5, 0.33, 0.25):
        P, Y, G = [], [], []
        for m in ims:
            p, lab, _ = sample_patches(imgs[m.refnum], m.abnormalities, scale=scale, patch=patch, stride=32)
            pos = np.flatnonzero(lab == 1)
            neg = np.flatnonzero(lab == 0)
            neg = rng.choice(neg, size=min(len(neg), args.neg_per_image), replace=False) if len(neg) else neg
            keep = np.concatenate([pos, neg])
            P.append(p[keep])
            Y.append(lab[keep])
            G += [m.patient] * len(keep)
        X = torch.tensor(np.concatenate(P), dtype=torch.float32)[:, None] / 255.0
        X = (X - 0.5) / 0.25
        y = np.concatenate(Y)
        groups = np.array(G)
        folds = labkit.stratified_folds(y, groups, args.folds, seed=0)
        yt = torch.as_tensor(y)
        ep = 2 if args.quick else args.epochs
        pw = torch.tensor([1.0, float((y == 0).sum() / max((y == 1).sum(), 1))])
        oof = np.zeros(len(y))
        aucs, cms = [], []
        for f in range(args.folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            torch.manual_seed(f)
            net = get_model("an_patch_classifier", patch=patch)
            _train_steps(net, lambda m, x, t: F.cross_entropy(m(x), t, weight=pw), [X[tr]], yt[tr], epochs=ep,
                         batch=32, lr=1e-3, seed=f)
            with torch.no_grad():
                s = torch.cat([torch.softmax(net(X[te][i:i + 64]), 1)[:, 1] for i in range(0, len(te), 64)]).numpy()
            oof[te] = s
            pred = s >= 0.5
            tp = int(np.sum(pred & (y[te] == 1)))
            fp = int(np.sum(pred & (y[te] == 0)))
            tn = int(np.sum(~pred & (y[te] == 0)))
            fn = int(np.sum(~pred & (y[te] == 1)))
            cms.append([tp, fp, tn, fn])
            aucs.append(_auc(y[te], s))
            print(f"scale {scale} fold {f + 1}: AUC {aucs[-1]:.3f} TP {tp} FP {fp} TN {tn} FN {fn}", flush=True)
        tot = np.sum(cms, 0).tolist()
        res["scales"][str(scale)] = {"n_pos": int(y.sum()), "n_neg": int((y == 0).sum()), "fold_auc": aucs,
                                     "mean_ci": labkit.mean_ci(aucs), "confusion_per_fold": cms,
                                     "confusion_total": tot, "epochs": ep}
    return res


# ------------------------------------------------------------------------------------------
def _busi_original(limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    from engine.data.busi import load_busi, read_gray

    recs = load_busi(DATA / "busi-dev")
    if limit:
        recs = recs[:limit // 2] + recs[-limit // 2:]
    return [read_gray(r.image) for r in recs], np.array([r.label for r in recs]), np.array([r.image_id for r in recs])


def exp_qi_multicrop(args: argparse.Namespace) -> dict[str, Any]:
    """Qi 2019 basic vs five-crop multi-input prediction (frozen EfficientNet-Lite0 + LR)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engine.models import get_model
    from engine.models.qi import five_crops, resize_shorter_side

    S = args.size
    imgs, y, ids = _busi_original(60 if args.quick else None)
    net = get_model("efficientnet_lite0", num_classes=2, in_chans=3, pretrained=True).eval()
    mean, std = labkit.LITE_MEAN[0], labkit.LITE_STD[0]

    def feats(x: torch.Tensor) -> torch.Tensor:
        return net.forward_features(((x - mean) / std).expand(-1, 3, -1, -1)).mean((2, 3))

    basic, crops, random_crops = [], [], []
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for im in imgs:
            t = torch.from_numpy(im).float()[None] / 255.0
            whole = F.interpolate(t[None], size=(S, S), mode="bilinear", antialias=True, align_corners=False)
            basic.append(feats(whole)[0])
            c5 = five_crops(t, S)  # (5, 1, S, S)
            crops.append(feats(c5))
            r = resize_shorter_side(t, S)
            h, w = r.shape[-2:]
            rc = []
            for _ in range(2):  # Qi's training input: random S x S crops
                top = int(torch.randint(0, h - S + 1, (1,), generator=g))
                left = int(torch.randint(0, w - S + 1, (1,), generator=g))
                rc.append(r[:, top:top + S, left:left + S])
            random_crops.append(feats(torch.stack(rc)))
    B = torch.stack(basic).numpy()
    C5 = torch.stack(crops).numpy()
    RC = torch.stack(random_crops).numpy()
    folds = labkit.stratified_folds(y, ids, args.folds, seed=0)
    out: dict[str, list[float]] = {"basic": [], "multi_input": [], "center_crop_only": []}
    oof = {k: np.zeros(len(y)) for k in out}
    for f in range(args.folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        clf_b = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced"))
        clf_b.fit(B[tr], y[tr])
        oof["basic"][te] = clf_b.predict_proba(B[te])[:, 1]
        clf_c = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced"))
        clf_c.fit(RC[tr].reshape(-1, RC.shape[-1]), np.repeat(y[tr], RC.shape[1]))
        oof["multi_input"][te] = np.mean([clf_c.predict_proba(C5[te, j])[:, 1] for j in range(5)], 0)
        oof["center_crop_only"][te] = clf_c.predict_proba(C5[te, 2])[:, 1]
        for k in out:
            out[k].append(_auc(y[te], oof[k][te]))
        print(f"fold {f + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in out.items()), flush=True)
    import ship

    res = {"size": S, "folds": args.folds, "n": len(y), "n_malignant": int(y.sum()), "methods": {}}
    for k, v in out.items():
        res["methods"][k] = {"fold_auc": v, "mean_ci": labkit.mean_ci(v), **ship.summarize_oof(y, oof[k], folds)}
    return res


def exp_busi_basic_cnn(args: argparse.Namespace) -> dict[str, Any]:
    """Habib's basic CNN from scratch on whole BUSI images."""
    import cv2

    import ship
    from engine.models import get_model

    S = args.size
    imgs, y, ids = _busi_original(60 if args.quick else None)
    X = torch.tensor(np.stack([cv2.resize(i, (S, S), interpolation=cv2.INTER_AREA) for i in imgs]),
                     dtype=torch.float32)[:, None] / 255.0
    X = (X - 0.5) / 0.25
    folds = labkit.stratified_folds(y, ids, args.folds, seed=0)
    yt = torch.as_tensor(y)
    ep = 2 if args.quick else args.epochs
    oof = np.zeros(len(y))
    aucs = []
    for f in range(args.folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        torch.manual_seed(f)
        net = get_model("habib_basic_cnn", loss="bce")
        pw = torch.tensor(float((y[tr] == 0).sum() / max((y[tr] == 1).sum(), 1)))

        def loss_fn(m: Any, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(m(x)[:, 0], t.float(), pos_weight=pw)

        _train_steps(net, loss_fn, [X[tr]], yt[tr], epochs=ep, batch=32, lr=1e-3, seed=f)
        with torch.no_grad():
            oof[te] = torch.sigmoid(net(X[te])[:, 0]).numpy()
        aucs.append(_auc(y[te], oof[te]))
        print(f"fold {f + 1}: AUC {aucs[-1]:.3f}", flush=True)
    return {"size": S, "folds": args.folds, "epochs": ep, "fold_auc": aucs, "mean_ci": labkit.mean_ci(aucs),
            **ship.summarize_oof(y, oof, folds)}


def exp_hijab_scratch(args: argparse.Namespace) -> dict[str, Any]:
    """Hijab 2019 baseline: VGG16 trained from scratch on BUSI, with the paper's augmentation.

    Registered model ``hijab_vgg16_scratch`` (1-channel input), conv layers re-initialised as
    torchvision's VGG (Kaiming-normal, fan-out) because the plain 13-conv stack without batch
    norm does not train from PyTorch's default init. Paper: lr 1e-3, batch 20, 50 epochs at
    224 px; here SGD (momentum 0.9) lr 1e-3, ``--size`` px, ``--epochs`` epochs, batch 32.
    """
    import cv2

    import ship
    from engine.models import get_model
    from engine.models.hijab import hijab_augmentation, hijab_sgd

    S = args.size
    imgs, y, ids = _busi_original(60 if args.quick else args.n)
    X = torch.tensor(np.stack([cv2.resize(i, (S, S), interpolation=cv2.INTER_AREA) for i in imgs]),
                     dtype=torch.float32)[:, None] / 255.0
    X = (X - 0.5) / 0.25
    folds = labkit.stratified_folds(y, ids, args.folds, seed=0)
    yt = torch.as_tensor(y).long()
    ep = 1 if args.quick else args.epochs
    aug = hijab_augmentation(S)
    oof = np.zeros(len(y))
    aucs: list[float] = []
    epoch_s: list[float] = []
    for f in range(args.folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        torch.manual_seed(f)
        net = get_model("hijab_vgg16_scratch", in_chans=1, pretrained=False)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0, 0.01)
                torch.nn.init.zeros_(m.bias)
        opt = hijab_sgd(net, lr=args.lr, momentum=0.9)
        g = torch.Generator().manual_seed(f)
        for e in range(ep):
            te0 = time.time()
            net.train()
            perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=g)]
            tot = 0.0
            for s in range(0, len(perm), 32):
                idx = perm[s : s + 32]
                if len(idx) < 2:
                    continue
                xb = torch.stack([aug(X[i]) for i in idx.tolist()])
                loss = F.cross_entropy(net(xb), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
            epoch_s.append(time.time() - te0)
            print(f"fold {f + 1} epoch {e + 1}: loss {tot / len(tr):.4f} ({epoch_s[-1]:.0f} s)", flush=True)
        net.eval()
        with torch.no_grad():
            oof[te] = torch.softmax(net(X[te]), 1)[:, 1].numpy()
        aucs.append(_auc(y[te], oof[te]))
        print(f"fold {f + 1}: AUC {aucs[-1]:.3f}", flush=True)
    return {"model": "hijab_vgg16_scratch", "size": S, "folds": args.folds, "epochs": ep, "batch": 32,
            "optimizer": f"SGD lr {args.lr} momentum 0.9", "augment": "hijab (90/180/270 rot, shift, zoom, shear, h-flip)",
            "mean_epoch_s": round(float(np.mean(epoch_s)), 1), "fold_auc_raw": aucs, "mean_ci": labkit.mean_ci(aucs),
            **ship.summarize_oof(y, oof, folds)}


EXPERIMENTS = {"habib_synthetic": exp_habib_synthetic, "an_patches": exp_an_patches,
               "qi_multicrop": exp_qi_multicrop, "busi_basic_cnn": exp_busi_basic_cnn,
               "hijab_scratch": exp_hijab_scratch}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("experiment", choices=sorted(EXPERIMENTS))
    r.add_argument("--quick", action="store_true", help="tiny smoke run")
    r.add_argument("--folds", type=int, default=3)
    r.add_argument("--epochs", type=int, default=10)
    r.add_argument("--n", type=int, default=None)
    r.add_argument("--size", type=int, default=128)
    r.add_argument("--neg-per-image", type=int, default=6)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--lr", type=float, default=1e-3, help="hijab_scratch: SGD learning rate (paper 1e-3)")
    sub.add_parser("render")
    args = ap.parse_args(argv)
    if args.cmd == "render":
        from render_results import render

        render()
        return 0
    torch.set_num_threads(args.threads)
    t0 = time.time()
    payload = EXPERIMENTS[args.experiment](args)
    _save(args.experiment + ("_quick" if args.quick else ""), payload, t0, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
