"""``train.mode = "us_lesion"``: the ultrasound lesion finder + lesion-centred classifier recipe.

Builds ``lite0_lesion_attention`` (:mod:`engine.models.us_lesion`; scored by
:mod:`engine.lesion_us`) from a config (``configs/us_lesion_lite0_busi.toml``):

1. every ``busi`` image (normal ones too: empty masks) is cleaned
   (:func:`engine.imaging.ultrasound.clean_ultrasound`); whole images (``WHOLE_SIZE``, + mirror,
   + a scanner-shift copy) and lesion crops (mask box + ``data.box_margin``, ``CROP_SIZE``,
   + mirror, + 2 scanner-shift copies with jittered margins and shifts) are encoded once by the
   frozen trunk (features stored in float16);
2. stratified ``ship.folds``-fold CV (seed ``train.seed``; BUSI has no patient ids: image = group):
   per fold the finder's decoder is trained on the other folds' whole images and crops
   (BCE + soft Dice, ``train.epochs``), the head is a class-balanced L2 logistic regression
   (``ship.c``) on the attention-pooled + plain features; out of fold: Dice / box IoU of the
   finder, AUC with the mask box ("reader box") and with the finder's box ("no box"), pointing
   game of the attention and CAM maps against the image centre, OOD distances;
3. whole-image context: the out-of-fold scores of the whole-image model come from its **own
   recipe run through the engine** (``ship.context_config``, evaluated by
   :func:`engine.train.recipes.evaluate_recipe`, every partition); the shipped score is the
   mean of the two logits (``ship.context_weight``);
4. Platt scaling of the combined logit fitted on the out-of-fold scores (reader box and finder
   box separately), its ECE cross-fitted over the folds; OOD threshold = ``ship.ood_percentile``
   of the held-out images' distances;
5. the final model on all images; with ``ship.lso_data`` the leave-source-out check on
   ``mimbcd-dev`` ultrasound through the shipped :class:`~engine.inference.Predictor`
   (BI-RADS >= 4 vs <= 3 per patient: a BI-RADS figure, **not** pathology).

:func:`evaluate_us_lesion` is what ``breast-engine evaluate --protocol recipe`` runs (the final
model goes to a temporary folder for the leave-source-out check); :func:`ship_us_lesion` is what
``breast-engine ship`` runs; both produce the same figures. Same config + seed -> same bytes.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.stats.binary import wilson_ci
from engine.train.config import TrainConfig

#: Encoder taps the head pools (classifier crops) and the decoder reads (finder).
TAPS = (2, 4, 10, 14, 15, 16)
DEC = (2, 4, 10, 15)
#: OOD features: block averages of the whole cleaned image.
OOD_TAPS = (4, 10, 15)


@dataclass
class LesionData:
    """The encoded data set (computed once, shared by the CV and the final fit)."""

    ids: list[str]
    labels: np.ndarray  # 1 malignant, 0 benign, -1 normal
    cleaned: list[np.ndarray]
    masks: list[np.ndarray]
    W: dict[int, np.ndarray]  # whole-image maps (3 variants per image), float16
    C: dict[int, np.ndarray]  # lesion-crop maps (4 variants per lesion image), float16
    wmask: np.ndarray
    cmask: np.ndarray
    w_owner: np.ndarray
    c_owner: np.ndarray
    c_kind: np.ndarray


def _r(v: float, nd: int = 4) -> float:
    return round(float(v), nd)


def _encode(model: Any, xs: list[torch.Tensor], keys: tuple[int, ...]) -> dict[int, np.ndarray]:
    out: dict[int, list[np.ndarray]] = {k: [] for k in keys}
    with torch.no_grad():
        for i in range(0, len(xs), 32):
            maps = model.encode(torch.stack(xs[i:i + 32]))
            for k in keys:
                out[k].append(maps[k].half().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def _mask_small(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)


def dice_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss over the images that have a lesion (empty masks do not count)."""
    p = torch.sigmoid(logit)
    inter = (p * target).sum(dim=(1, 2, 3))
    den = p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    has = (target.sum(dim=(1, 2, 3)) > 0).float()
    d = 1 - (2 * inter + 1) / (den + 1)
    return (d * has).sum() / has.sum().clamp_min(1)


def prepare_lesion_data(cfg: TrainConfig, model: Any, *, progress: ProgressCallback | None = None) -> LesionData:
    """Read, clean, augment and encode every image of ``data.path`` (a BUSI folder with masks).

    Raises:
        ConfigError: ``data.kind`` is not ``busi`` or the folder has no lesion images.
    """
    from engine.data.busi import load_busi, mask_box, read_gray
    from engine.imaging.ultrasound import clean_ultrasound, scanner_shift
    from engine.lesion_us import CROP_SIZE, WHOLE_SIZE, crop_box, to_tensor, whole_tensor

    if cfg.data.kind != "busi":
        raise ConfigError(f"train.mode = 'us_lesion' reads data.kind = 'busi' (images + masks), not {cfg.data.kind!r}")
    recs = load_busi(cfg.data.path, include_normal=True)
    labels = np.array([{"benign": 0, "malignant": 1, "normal": -1}[r.label_name] for r in recs])
    if int((labels >= 0).sum()) < 2 * max(2, cfg.ship.folds) or len(set(labels[labels >= 0].tolist())) < 2:
        raise ConfigError(f"{cfg.data.path}: too few benign/malignant images for {cfg.ship.folds}-fold CV")
    rng = np.random.default_rng(cfg.train.seed)
    margin = float(cfg.data.box_margin)
    cleaned, cmasks = [], []
    for r in recs:
        g = read_gray(r.image)
        m = (read_gray(r.mask) > 127) if r.mask else np.zeros_like(g, bool)
        c = clean_ultrasound(g)
        x0, y0, x1, y1 = c.area
        cleaned.append(c.image)
        cmasks.append(m[y0:y1, x0:x1])
    report(progress, 1, 3, f"cleaned {len(recs)} images")
    wx, wm, w_owner = [], [], []
    cx, cm, c_owner, c_kind = [], [], [], []
    for i, (g, m) in enumerate(zip(cleaned, cmasks)):
        for gv, mv in ((g, m), (g[:, ::-1], m[:, ::-1]), (scanner_shift(g, rng, geometry=False), m)):
            wx.append(whole_tensor(np.ascontiguousarray(gv)))
            wm.append(_mask_small(np.ascontiguousarray(mv), (WHOLE_SIZE // 4, WHOLE_SIZE // 4)))
            w_owner.append(i)
        box = mask_box(m.astype(np.uint8)) if m.any() else None
        if box is None:
            continue
        for kind in range(4):
            gv, mv, mg = g, m, margin
            bx: tuple[float, float, float, float] = tuple(float(v) for v in box)  # type: ignore[assignment]
            if kind >= 2:  # scanner shift + jittered margin and box position
                gv = scanner_shift(g, rng)
                mg = float(rng.uniform(0.1, 0.6))
                bw, bh = box[2] - box[0], box[3] - box[1]
                dx, dy = rng.uniform(-0.15, 0.15) * bw, rng.uniform(-0.15, 0.15) * bh
                bx = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
            x0, y0, x1, y1 = crop_box(bx, gv.shape, mg)
            cg, cmk = gv[y0:y1, x0:x1], mv[y0:y1, x0:x1]
            if kind % 2 == 1:
                cg, cmk = cg[:, ::-1], cmk[:, ::-1]
            cx.append(to_tensor(np.ascontiguousarray(cg), CROP_SIZE))
            cm.append(_mask_small(np.ascontiguousarray(cmk), (CROP_SIZE // 4, CROP_SIZE // 4)))
            c_owner.append(i)
            c_kind.append(kind)
    report(progress, 2, 3, f"encoding {len(wx)} whole images and {len(cx)} crops")
    W = _encode(model, wx, DEC)
    C = _encode(model, cx, TAPS)
    report(progress, 3, 3, "encoded")
    return LesionData([r.image_id for r in recs], labels, cleaned, cmasks, W, C, np.stack(wm), np.stack(cm),
                      np.array(w_owner), np.array(c_owner), np.array(c_kind))


def train_decoder(model: Any, sets: list[tuple[dict[int, torch.Tensor], torch.Tensor, np.ndarray]],
                  epochs: int, seed: int) -> None:
    """Train the decoder (re-initialised) on batches drawn alternately from each (maps, masks, rows) set:
    AdamW 2e-3 one-cycle, BCE (positive-weighted) + soft Dice."""
    torch.manual_seed(seed)
    dec = model.decoder
    for m in dec.modules():
        if m is not dec and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    opt = torch.optim.AdamW(dec.parameters(), lr=2e-3, weight_decay=1e-4)
    per_epoch = sum(max(1, len(idx) // 32) for _, _, idx in sets)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(1, epochs * per_epoch))
    rng = np.random.default_rng(seed)
    dec.train()
    for _ in range(epochs):
        order = [(si, b) for si, (_, _, idx) in enumerate(sets)
                 for b in np.array_split(rng.permutation(idx), max(1, len(idx) // 32))]
        rng.shuffle(order)
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


def fit_head(X: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression on standardised features, folded back to raw features."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(0), X.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit((X - mu) / sd, y)
    w = clf.coef_[0] / sd
    return w, float(clf.intercept_[0] - np.sum(w * mu))


def set_head(model: Any, w: np.ndarray, b: float) -> None:
    """Write the logistic head into the model's two-class linear head (benign logit 0)."""
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(np.stack([np.zeros_like(w), w]), dtype=torch.float32))
        model.head.bias.copy_(torch.tensor([0.0, b], dtype=torch.float32))


def _crop_feats(model: Any, Ct: dict[int, torch.Tensor], rows: np.ndarray) -> np.ndarray:
    fe = []
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            b = torch.from_numpy(rows[i:i + 64])
            mp = {k: Ct[k][b].float() for k in TAPS}
            att = torch.sigmoid(model.decoder([mp[k] for k in DEC]))
            fe.append(model.pooled(mp, att).numpy())
    return np.concatenate(fe) if fe else np.zeros((0, 2 * model.num_pool), np.float32)


def _whole_feats(W: dict[int, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """OOD features (blocks 4/10/15 averages) of whole-image rows (variant 0 of image i = row 3 i)."""
    return np.concatenate([W[k][rows].astype(np.float32).mean(axis=(2, 3)) for k in OOD_TAPS], axis=1)


def _ci_mean(v: np.ndarray) -> list[float]:
    """Mean and bootstrap 95 % CI (2000 resamples, seed 0)."""
    v = v[~np.isnan(v)]
    if v.size == 0:
        return [float("nan")] * 3
    bs = np.random.default_rng(0).choice(v, (2000, v.size)).mean(1)
    return [_r(v.mean()), _r(np.percentile(bs, 2.5)), _r(np.percentile(bs, 97.5))]


def _wilson(hits: np.ndarray) -> list[float]:
    """Proportion of hits (NaN = not scored) with the Wilson 95 % CI, and n."""
    h = hits[np.isfinite(hits)]
    m, k = int(h.size), int(h.sum())
    if m == 0:
        return [float("nan")] * 3 + [0]
    lo, hi = wilson_ci(k, m)
    return [_r(k / m), _r(lo), _r(hi), m]


def _folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    strat = np.where(labels < 0, 2, labels)
    folds = np.zeros(len(labels), int)
    for f, (_, te) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), strat)):
        folds[te] = f
    return folds


def cross_validate_lesion(cfg: TrainConfig, model: Any, d: LesionData, *,
                          progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Out-of-fold finder, head, pointing and OOD figures (step 2 of the module docstring).

    Returns:
        ``{"folds", "box", "finder" (out-of-fold lesion logits per image, NaN for normal images),
        "ood" (out-of-fold distances), "finder_metrics", "pointing"}``.
    """
    from engine.data.busi import mask_box
    from engine.lesion_us import CROP_SIZE, box_from_prob, candidate_boxes, crop_box, to_tensor
    from engine.stats.ood import fit_subspace_distance, subspace_distance

    k, seed, epochs, c = int(cfg.ship.folds), int(cfg.train.seed), int(cfg.train.epochs), float(cfg.ship.c)
    margin = float(cfg.data.box_margin)
    finder_margins = [float(v) for v in cfg.ship.finder_margins] or [margin]
    ood_k = int(model.ood_proj.shape[0])
    n = len(d.labels)
    labels = d.labels
    folds = _folds(labels, k, seed)
    Wt = {kk: torch.from_numpy(d.W[kk]) for kk in DEC}
    Ct = {kk: torch.from_numpy(d.C[kk]) for kk in TAPS}
    wmask_t = torch.from_numpy(d.wmask)[:, None].float()
    cmask_t = torch.from_numpy(d.cmask)[:, None].float()
    box_s, finder_s = np.full(n, np.nan), np.full(n, np.nan)
    dice, iou, ood = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    p_cam, p_att, p_centre = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for f in range(k):
        tr_img, te_img = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        train_decoder(model, [(Wt, wmask_t, np.flatnonzero(np.isin(d.w_owner, tr_img))),
                              (Ct, cmask_t, np.flatnonzero(np.isin(d.c_owner, tr_img)))], epochs, seed + f)
        te_w = np.flatnonzero(np.isin(d.w_owner, te_img))[::3]
        with torch.no_grad():
            probs = torch.sigmoid(model.decoder([Wt[kk][te_w].float() for kk in DEC]))[:, 0].numpy()
            if cfg.ship.finder_tta:  # whole-image variant 1 is the mirror image: its map flipped back
                probs = 0.5 * (probs + torch.sigmoid(model.decoder([Wt[kk][te_w + 1].float() for kk in DEC]))[:, 0].numpy()[:, :, ::-1])
        tr_c = np.flatnonzero(np.isin(d.c_owner, tr_img))
        w, b = fit_head(_crop_feats(model, Ct, tr_c), labels[d.c_owner[tr_c]], c)
        set_head(model, w, b)
        ood[te_img] = subspace_distance(_whole_feats(d.W, 3 * te_img), *fit_subspace_distance(_whole_feats(d.W, 3 * tr_img), ood_k))
        rows0 = np.flatnonzero(np.isin(d.c_owner, te_img) & (d.c_kind == 0))
        if rows0.size:  # reader box: crop variant 0 and its mirror (stored right after)
            box_s[d.c_owner[rows0]] = 0.5 * ((_crop_feats(model, Ct, rows0) @ w + b) + (_crop_feats(model, Ct, rows0 + 1) @ w + b))
        xs: list[list[torch.Tensor]] = [[] for _ in finder_margins]
        xs_m: list[list[torch.Tensor]] = [[] for _ in finder_margins]
        owners, info = [], []
        cand: dict[int, list[tuple[tuple[int, int, int, int], float]]] = {}
        for j, i in enumerate(te_w):
            img_i = int(d.w_owner[i])
            g, m = d.cleaned[img_i], d.masks[img_i]
            pr = cv2.resize(probs[j], (g.shape[1], g.shape[0]), interpolation=cv2.INTER_LINEAR)
            bx, comp = box_from_prob(pr)
            if m.any():
                dice[img_i] = 2 * (comp & m).sum() / (comp.sum() + m.sum())
                mb = mask_box(m.astype(np.uint8))
                assert mb is not None
                ia = max(0, min(bx[2], mb[2]) - max(bx[0], mb[0])) * max(0, min(bx[3], mb[3]) - max(bx[1], mb[1]))
                ua = (bx[2] - bx[0]) * (bx[3] - bx[1]) + (mb[2] - mb[0]) * (mb[3] - mb[1]) - ia
                iou[img_i] = ia / ua if ua > 0 else 0.0
                p_centre[img_i] = float(m[g.shape[0] // 2, g.shape[1] // 2])
            if labels[img_i] < 0:
                continue
            if cfg.ship.finder_candidates > 1:
                cand[img_i] = candidate_boxes(pr, keep=float(cfg.ship.finder_candidate_mass),
                                              most=int(cfg.ship.finder_candidates))
            for mi, mg in enumerate(finder_margins):
                x0, y0, x1, y1 = crop_box(bx, g.shape, mg)
                cg = np.ascontiguousarray(g[y0:y1, x0:x1])
                xs[mi].append(to_tensor(cg, CROP_SIZE))
                xs_m[mi].append(to_tensor(np.ascontiguousarray(cg[:, ::-1]), CROP_SIZE))
                if mi == 0:
                    owners.append(img_i)
                    info.append((x0, y0, x1, y1))
        if owners:
            lg = np.zeros(len(owners))
            with torch.no_grad():
                for mi in range(len(finder_margins)):  # mean logit over margins, each with its mirror
                    maps, maps_m = model.encode(torch.stack(xs[mi])), model.encode(torch.stack(xs_m[mi]))
                    a_, a_m = torch.sigmoid(model.decode(maps)), torch.sigmoid(model.decode(maps_m))
                    fa, fb = model.pooled(maps, a_).numpy(), model.pooled(maps_m, a_m).numpy()
                    lg += 0.5 * ((fa @ w + b) + (fb @ w + b)) / len(finder_margins)
                    if mi == 0:  # the overlay is the first margin's crop
                        att = a_
                        ev = model.evidence(maps, a_, (CROP_SIZE, CROP_SIZE)).numpy()
            finder_s[np.array(owners)] = lg
            if cfg.ship.finder_candidates > 1:
                finder_s[np.array(owners)] = _other_candidates(cfg, model, w, b, d, owners, cand, lg, finder_margins)
            for j, img_i in enumerate(owners):  # pointing game: peak of the map inside the mask?
                m = d.masks[img_i]
                x0, y0, x1, y1 = info[j]
                for arr, store in ((ev[j], p_cam), (att[j, 0].numpy(), p_att)):
                    mm = cv2.resize(arr.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                    py, px = np.unravel_index(int(np.argmax(mm)), mm.shape)
                    store[img_i] = float(m[y0 + py, x0 + px])
        report(progress, f + 1, k, f"fold {f + 1}/{k}: Dice so far {np.nanmean(dice):.3f}")
    lesion, mal, ben = labels >= 0, labels == 1, labels == 0
    finder_metrics = {"dice": _ci_mean(dice[lesion]), "box_iou": _ci_mean(iou[lesion]),
                      "box_iou_ge_0.5": _wilson((iou[lesion] >= 0.5).astype(float)),
                      "dice_malignant": _ci_mean(dice[mal]), "dice_benign": _ci_mean(dice[ben])}
    pointing = {f"{name}_{part}": _wilson(arr[sel]) for name, arr in (("attention", p_att), ("cam", p_cam),
                                                                        ("centre", p_centre))
                for part, sel in (("malignant", mal), ("benign", ben), ("all", lesion))}
    return {"folds": folds, "box": box_s, "finder": finder_s, "ood": ood, "finder_metrics": finder_metrics,
            "pointing": pointing}


def _other_candidates(cfg: TrainConfig, model: Any, w: np.ndarray, b: float, d: LesionData, owners: list[int],
                      cand: dict[int, list[tuple[tuple[int, int, int, int], float]]], lg: np.ndarray,
                      margins: list[float]) -> np.ndarray:
    """Finder logits with the other candidate regions (``ship.finder_candidates``): each region's
    logit (mean over the margins, each with its mirror), weighted by its probability mass."""
    from engine.lesion_us import CROP_SIZE, crop_box, to_tensor

    out = lg.copy()
    jobs: list[tuple[int, int, torch.Tensor]] = []  # (owner index, candidate, tensor)
    for j, img_i in enumerate(owners):
        g = d.cleaned[img_i]
        for ci, (cb, _) in enumerate(cand[img_i][1:], start=1):
            for mg in margins:
                x0, y0, x1, y1 = crop_box(cb, g.shape, mg)
                cg = np.ascontiguousarray(g[y0:y1, x0:x1])
                jobs += [(j, ci, to_tensor(cg, CROP_SIZE)), (j, ci, to_tensor(np.ascontiguousarray(cg[:, ::-1]), CROP_SIZE))]
    vals: dict[tuple[int, int], list[float]] = {}
    with torch.no_grad():
        for s in range(0, len(jobs), 64):
            chunk = jobs[s:s + 64]
            maps = model.encode(torch.stack([t for _, _, t in chunk]))
            fe = model.pooled(maps, torch.sigmoid(model.decode(maps))).numpy() @ w + b
            for (j, ci, _), v in zip(chunk, fe):
                vals.setdefault((j, ci), []).append(float(v))
    for j, img_i in enumerate(owners):
        cs = cand[img_i]
        if len(cs) > 1:
            tot = cs[0][1] * lg[j] + sum(cs[ci][1] * float(np.mean(vals[(j, ci)])) for ci in range(1, len(cs)))
            out[j] = tot / sum(m for _, m in cs)
    return out


def context_oof(cfg: TrainConfig, ids: list[str], *, progress: ProgressCallback | None = None
                ) -> tuple[str, list[np.ndarray]]:
    """The whole-image context model's out-of-fold probabilities, every partition, in ``ids`` order.

    They come from the context config's own recipe (:func:`engine.train.recipes.evaluate_recipe`),
    so the combination is out of fold for both parts.

    Raises:
        ConfigError: the context config's images do not cover ``ids``.
    """
    from engine.train.config import load_config
    from engine.train.recipes import evaluate_recipe

    ccfg = load_config(cfg.ship.context_config)
    if ccfg.data.path != cfg.data.path:
        ccfg = ccfg.override([f"data.path={json.dumps(cfg.data.path)}"])
    m, _ = evaluate_recipe(ccfg, progress=progress)
    pos = {i: j for j, i in enumerate(m["oof_ids"])}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ConfigError(f"{cfg.ship.context_config}: no out-of-fold score for {len(missing)} images ({missing[:3]})")
    order = np.array([pos[i] for i in ids])
    return str(ccfg.ship.name), [np.asarray(p, np.float64)[order] for p in m["oof_scores_all_partitions"]]


def _auc(y: np.ndarray, s: np.ndarray) -> list[float]:
    from engine.stats.delong import auc_ci

    a, lo, hi = auc_ci(y, s)
    return [_r(a), _r(lo), _r(hi)]


def _reliability(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from engine.stats.calibration import reliability

    r = reliability(p, y)
    return {"ece": _r(r.ece), "mean_predicted": [None if v != v else _r(v) for v in r.mean_predicted],
            "fraction_positive": [None if v != v else _r(v) for v in r.fraction_positive],
            "counts": [int(v) for v in r.counts]}


def summarise(cfg: TrainConfig, cv: dict[str, Any], labels: np.ndarray,
              context: tuple[str, list[np.ndarray]] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card's figures and the spec's calibration / OOD entries from the out-of-fold arrays."""
    from engine.stats.calibration import apply_platt, fit_platt, logit
    from engine.stats.delong import paired_delong_test
    from engine.stats.ood import ood_threshold

    lesion = labels >= 0
    y = labels[lesion]
    fl = cv["folds"][lesion]
    k = int(cfg.ship.folds)
    wctx = float(cfg.ship.context_weight) if context else 0.0
    wfind = (float(cfg.ship.context_weight_finder) if cfg.ship.context_weight_finder >= 0 else wctx) if context else 0.0
    metrics: dict[str, Any] = {
        "protocol": (f"stratified {k}-fold CV (seed {cfg.train.seed}) grouped by image (BUSI has no patient ids); "
                     "decoder, head and OOD fit on the other folds; out-of-fold figures"),
        "recipe": (f"us_lesion: frozen {cfg.model.name} trunk; finder decoder {cfg.train.epochs} epochs (BCE + Dice); "
                   f"lesion box + {cfg.data.box_margin:.0%} margin; attention+plain pooled head, logistic C={cfg.ship.c}"
                   + ("; finder map averaged with its mirror's" if cfg.ship.finder_tta else "")
                   + (f"; finder box scored at margins {cfg.ship.finder_margins} (mean logit)" if cfg.ship.finder_margins else "")
                   + (f"; finder: up to {cfg.ship.finder_candidates} regions, mass-weighted" if cfg.ship.finder_candidates > 1 else "")
                   + (f"; logit averaged with the whole-image model {context[0]} (weight {wctx}"
                      + (f", {wfind} with the finder's box" if wfind != wctx else "") + ")" if context else "")),
        "n_images": int(len(labels)), "n_lesion": int(lesion.sum()), "n_malignant": int((labels == 1).sum()),
        "finder": cv["finder_metrics"], "pointing": cv["pointing"]}
    lesion_only: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for scen in ("box", "finder"):
        s = cv[scen][lesion]
        fold_aucs = [_r(_auc(y[fl == f], s[fl == f])[0]) for f in range(k) if 0 < y[fl == f].sum() < (fl == f).sum()]
        lesion_only[scen] = {"pooled_auc": _auc(y, s), "fold_auc_mean": _r(float(np.mean(fold_aucs))) if fold_aucs else None,
                             "fold_aucs": fold_aucs}
    metrics["cv_auc_lesion_only"] = lesion_only
    shipped: dict[str, Any] = {}
    calib: dict[str, Any] = {}
    for scen in ("box", "finder"):
        s = cv[scen][lesion]
        ws = wfind if scen == "finder" else wctx
        zs = [s] if not context else [(1 - ws) * s + ws * logit(p[lesion]) for p in context[1]]
        rows = []
        for r, z in enumerate(zs):
            row: dict[str, Any] = {"partition": r, "combined": _auc(y, z)}
            if context:
                o = logit(context[1][r][lesion])
                diff = paired_delong_test(y, z, o)
                row["context_only"] = _auc(y, o)
                row["paired_diff_se_z_p"] = [_r(v) for v in diff]
            rows.append(row)
        shipped[scen] = {"partitions": rows, "mean_over_partitions": _r(np.mean([rw["combined"][0] for rw in rows]))}
        z = zs[0]
        cross = np.zeros_like(z)
        for f in np.unique(fl):
            a, b = fit_platt(z[fl != f], y[fl != f], from_probability=False)
            cross[fl == f] = apply_platt(z[fl == f], a, b, from_probability=False)
        a_all, b_all = fit_platt(z, y, from_probability=False)
        calib[scen] = {"raw": _reliability(1 / (1 + np.exp(-z)), y), "platt_crossfit": _reliability(cross, y),
                       "platt_all": [_r(a_all, 6), _r(b_all, 6)]}
        extra["platt" if scen == "box" else "platt_finder"] = [_r(a_all, 6), _r(b_all, 6)]
    metrics["cv_auc"] = shipped
    metrics["calibration"] = calib
    oo = cv["ood"][np.isfinite(cv["ood"])]
    thr = _r(ood_threshold(oo, float(cfg.ship.ood_percentile)), 6)
    metrics["ood"] = {"threshold": thr, "percentile": float(cfg.ship.ood_percentile), "busi_oof_median": _r(float(np.median(oo))),
                      "features": "whole cleaned image, blocks 4/10/15", "n_images": int(oo.size)}
    extra["ood_threshold"] = thr
    if context:
        extra["context_model"] = context[0]
        extra["context_weight"] = wctx
        if wfind != wctx:
            extra["context_weight_finder"] = wfind
        # the whole-image model alone shows its own (uncalibrated) probabilities: their ECE
        metrics["context_model_ece"] = [_r(reliability_ece(p[lesion], y)) for p in context[1]]
    return metrics, extra


def reliability_ece(p: np.ndarray, y: np.ndarray) -> float:
    """Expected calibration error (10 bins) of probabilities ``p`` for labels ``y``."""
    from engine.stats.calibration import reliability

    return float(reliability(p, y).ece)


def final_fit(cfg: TrainConfig, model: Any, d: LesionData) -> Any:
    """Decoder, head and OOD measure fitted on every image (decoder seed ``train.seed + 100``)."""
    from engine.stats.ood import fit_subspace_distance

    Wt = {kk: torch.from_numpy(d.W[kk]) for kk in DEC}
    Ct = {kk: torch.from_numpy(d.C[kk]) for kk in TAPS}
    train_decoder(model, [(Wt, torch.from_numpy(d.wmask)[:, None].float(), np.arange(len(d.w_owner))),
                          (Ct, torch.from_numpy(d.cmask)[:, None].float(), np.arange(len(d.c_owner)))],
                  int(cfg.train.epochs), int(cfg.train.seed) + 100)
    w, b = fit_head(_crop_feats(model, Ct, np.arange(len(d.c_owner))), d.labels[d.c_owner], float(cfg.ship.c))
    set_head(model, w, b)
    o_mean, o_w, o_basis, o_scale = fit_subspace_distance(_whole_feats(d.W, 3 * np.arange(len(d.labels))),
                                                          int(model.ood_proj.shape[0]))
    with torch.no_grad():
        model.ood_mean.copy_(torch.from_numpy(o_mean))
        model.ood_proj.copy_(torch.from_numpy(o_w))
        model.ood_basis.copy_(torch.from_numpy(o_basis))
        model.ood_resid_scale.fill_(o_scale)
    return model.float().eval()


def mimbcd_us_scores(pred: Any, root: str | Path) -> dict[str, Any]:
    """Every mimbcd-dev ultrasound image through one :class:`~engine.inference.Predictor` (what
    ``score`` does), per patient: no box, and the mapped outline's bounding box.

    Returns:
        ``{"birads": {patient: BI-RADS}, "source": {patient: "physician" | "AI assistant"},
        "per": {"no box" | "outline box": {patient: [scores]}}, "files", "ood_flags"}`` — the
        label is the physician's final BI-RADS where it exists, else the UTA11 AI assistant's;
        ``ood_flags`` only for lesion pipelines (empty otherwise).
    """
    from engine.io.reader import read_image

    root = Path(root)
    birads: dict[str, int] = {}
    source: dict[str, str] = {}
    with open(root / "labels.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            v = r.get("birads_final") or r.get("ai_birads_uta11")
            if v:
                birads[r["patient_id"]] = int(v)
                source[r["patient_id"]] = "physician" if r.get("birads_final") else "AI assistant"
    boxes: dict[str, list[float]] = {}
    for o in json.loads((root / "outlines.json").read_text(encoding="utf-8"))["outlines"]:
        if o["modality"] == "US" and o["path"] not in boxes:
            boxes[o["path"]] = o["bbox"]
    files = sorted(p.relative_to(root).as_posix() for p in (root / "us").glob("*/*.dcm"))
    per: dict[str, dict[str, list[float]]] = {"no box": {}, "outline box": {}}
    flags: list[int] = []
    for f in files:
        pid = f.split("/")[1]
        img = read_image(root / f)
        if pred.lesion is not None:
            a = pred.assess(img, None)
            per["no box"].setdefault(pid, []).append(float(a.score))
            flags.append(int(a.ood_flag))
        else:
            per["no box"].setdefault(pid, []).append(float(pred.predict(img)))
        if f in boxes:
            bx = boxes[f]
            per["outline box"].setdefault(pid, []).append(float(pred.predict(img, (bx[0], bx[1], bx[2], bx[3]))))
    return {"birads": birads, "source": source, "per": per, "files": files,
            "n_outlined": len(set(boxes) & set(files)), "ood_flags": flags}


#: The leave-source-out scenarios: (name, which scores, which patients).
LSO_SCENARIOS = (("no box", "no box", 0), ("outline box", "outline box", 0), ("no box, BI-RADS 2-3 vs >=4", "no box", 2))


def lso_patients(s: dict[str, Any], scores: str, min_birads: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(patients, BI-RADS >= 4 as 0/1, mean score)`` of one scenario of :func:`mimbcd_us_scores`."""
    dd = s["per"][scores]
    pids = [p for p in sorted(dd) if p in s["birads"] and s["birads"][p] >= min_birads]
    y = np.array([s["birads"][p] >= 4 for p in pids], int)
    return pids, y, np.array([np.mean(dd[p]) for p in pids])


def leave_source_out(folder: str | Path, root: str | Path) -> dict[str, Any]:
    """mimbcd-dev ultrasound through the shipped Predictor: BI-RADS >= 4 vs <= 3 per patient.

    **Not pathology**: the label is the physician's final BI-RADS where it exists, else the UTA11
    AI assistant's; the patient is the unit (mean score over the patient's images). Scenarios:
    no box (the finder) and the mapped outline's bounding box. With a context model the same
    images are also scored by the lesion crop alone (context weight 0) and by the installed
    context model alone, with the paired DeLong difference shipped - context model.
    """
    from engine.inference import Predictor
    from engine.stats.delong import paired_delong_test

    pred = Predictor(str(folder), "cpu")
    s = mimbcd_us_scores(pred, root)
    source = s["source"]
    out: dict[str, Any] = {"label": "BI-RADS >= 4 vs <= 3 (physician's, else the UTA11 AI assistant's): NOT pathology",
                           "n_images": len(s["files"]),
                           "birads_sources": {k: sum(1 for v in source.values() if v == k) for k in sorted(set(source.values()))}}
    others: dict[str, dict[str, Any]] = {}
    ctx_name = pred.lesion.context_name if pred.lesion is not None else None
    if ctx_name:
        crop = Predictor(str(folder), "cpu")
        assert crop.lesion is not None
        crop.lesion.context_name, crop.lesion.context_weight = None, 0.0
        others["lesion_crop_only"] = mimbcd_us_scores(crop, root)
        others["context_model"] = mimbcd_us_scores(Predictor(str(ctx_name), "cpu"), root)
        out["context_model"] = {"name": str(ctx_name)}
        out["lesion_crop_only"] = {}
    for scen, scores, min_b in LSO_SCENARIOS:
        pids, yy, sc = lso_patients(s, scores, min_b)
        if yy.size == 0 or yy.min() == yy.max():
            out[scen] = {"n_patients": len(pids), "note": "one class only"}
            continue
        out[scen] = {"auc_birads4_vs_le3": _auc(yy, sc), "n_patients": len(pids), "n_birads_ge4": int(yy.sum())}
        for key, so in others.items():
            _, _, sc_o = lso_patients(so, scores, min_b)
            out[key][scen] = _auc(yy, sc_o)
            if key == "context_model":
                out[key][scen + " paired_diff_se_z_p"] = [_r(v) for v in paired_delong_test(yy, sc, sc_o)]
    out["ood_flagged"] = [int(sum(s["ood_flags"])), len(s["ood_flags"])]
    return out


def run_us_lesion(cfg: TrainConfig, folder: str | Path, *, progress: ProgressCallback | None = None
                  ) -> tuple[dict[str, Any], Any, LesionData]:
    """CV, context, calibration, OOD, final fit, weights written to ``folder``, leave-source-out.

    Returns:
        ``(metrics, final model, encoded data)``; ``folder`` holds ``weights.pt`` + ``spec.json``.
    """
    from engine.models import get_model
    from engine.models.weights import save_weights

    if cfg.train.mode != "us_lesion":
        raise ConfigError(f"train.mode {cfg.train.mode!r} is not the us_lesion recipe")
    if not cfg.ship.name:
        raise ConfigError("[ship] needs name")
    torch.manual_seed(cfg.train.seed)
    model = get_model(cfg.model.name, **cfg.model.cfg).eval()
    d = prepare_lesion_data(cfg, model, progress=progress)
    cv = cross_validate_lesion(cfg, model, d, progress=progress)
    lesion = d.labels >= 0
    context = context_oof(cfg, [i for i, ok in zip(d.ids, lesion) if ok], progress=progress) if cfg.ship.context_config else None
    if context:  # context scores are per lesion image: spread to the full image index
        full = []
        for p in context[1]:
            a = np.full(len(d.labels), np.nan)
            a[lesion] = p
            full.append(a)
        context = (context[0], full)
    metrics, extra = summarise(cfg, cv, d.labels, context)
    model = final_fit(cfg, model, d)
    spec = lesion_spec(cfg, metrics, extra)
    save_weights(model, spec, folder)
    from engine.models.pinned import update_pin

    update_pin(Path(folder), spec.sha256)  # shipped into resources/models: the Predictor below checks the pin
    if cfg.ship.lso_data:
        metrics["leave_source_out_birads"] = leave_source_out(folder, cfg.ship.lso_data)
        spec = lesion_spec(cfg, metrics, extra)
        save_weights(model, spec, folder)
    return metrics, model, d


def lesion_spec(cfg: TrainConfig, metrics: dict[str, Any], extra: dict[str, Any]) -> Any:
    """The ``spec.json`` of the lesion pipeline (typed Preprocess describing engine.lesion_us)."""
    from engine.lesion_us import CROP_SIZE, LITE_MEAN, LITE_STD, WHOLE_SIZE
    from engine.models.weights import WeightsSpec
    from engine.transforms import Preprocess

    sh = cfg.ship
    margin = float(cfg.data.box_margin)
    pre = Preprocess(
        size=(CROP_SIZE, CROP_SIZE), in_chans=1, mean=(LITE_MEAN,), std=(LITE_STD,), crop="lesion_box",
        box="optional", box_margin=margin, resize="stretch",
        description=(f"clean_ultrasound (scan area; calipers/markers/text inpainted); no box: finder on the whole "
                     f"cleaned area at {WHOLE_SIZE}x{WHOLE_SIZE}, largest lesion region > 0.5; lesion box + "
                     f"{margin:.0%} margin per side, stretched to {CROP_SIZE}x{CROP_SIZE}, 8-bit /255, "
                     "(x-0.498)/0.502, averaged with its mirror; Platt-calibrated (engine.lesion_us)"))
    cfg_model = {k: v for k, v in cfg.model.cfg.items() if k != "pretrained"}
    return WeightsSpec(
        name=sh.name, model=cfg.model.name, model_cfg=cfg_model, modality=sh.modality or "US",
        input_size=[CROP_SIZE, CROP_SIZE], in_chans=1, mean=[LITE_MEAN], std=[LITE_STD],
        class_names=list(sh.class_names), threshold=0.5, synthetic=bool(sh.synthetic), init=sh.init,
        preprocess=pre, metrics=metrics,
        extra={"pipeline": "us_lesion", "box_margin": margin, **_finder_options(cfg), **extra,
               **({"training_data": sh.training_data} if sh.training_data else {}), **sh.extra})


def _finder_options(cfg: TrainConfig) -> dict[str, Any]:
    """The finder options the app's scorer reads from ``spec.extra`` (only those that are set)."""
    out: dict[str, Any] = {}
    if cfg.ship.finder_tta:
        out["finder_tta"] = True
    if cfg.ship.finder_margins:
        out["finder_margins"] = [float(v) for v in cfg.ship.finder_margins]
    if cfg.ship.finder_candidates > 1:
        out["finder_candidates"] = int(cfg.ship.finder_candidates)
        out["finder_candidate_mass"] = float(cfg.ship.finder_candidate_mass)
    return out


def evaluate_us_lesion(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """``breast-engine evaluate --protocol recipe`` of a ``us_lesion`` config: the card's figures
    (the final model is written to a temporary folder for the leave-source-out check)."""
    with tempfile.TemporaryDirectory(prefix="us_lesion_eval_") as tmp:
        metrics, _, _ = run_us_lesion(cfg, Path(tmp) / (cfg.ship.name or "us_lesion"), progress=progress)
    return metrics


def ship_us_lesion(cfg: TrainConfig, out: str | Path, *, config_path: str = "CONFIG",
                   progress: ProgressCallback | None = None) -> dict[str, Any]:
    """``breast-engine ship`` of a ``us_lesion`` config: weights, spec, pin, card, parity.

    Parity: the app's Predictor, reading the first lesion images from disk with their mask boxes,
    must reproduce the recipe's float32 forward pass of those crops (1e-4; the context model is
    left out of this check: it is its own shipped model with its own parity check).

    Raises:
        ParityError: the predictor differs from the recipe.
    """
    from engine.data.busi import mask_box
    from engine.imaging.ultrasound import clean_ultrasound
    from engine.inference import Predictor
    from engine.models.pinned import update_pin
    from engine.train.ship_common import ParityError

    metrics, model, d = run_us_lesion(cfg, out, progress=progress)
    folder = Path(out)
    spec_sha = json.loads((folder / "spec.json").read_text(encoding="utf-8"))["sha256"]
    update_pin(folder, spec_sha)
    (folder / "MODEL_CARD.md").write_text(lesion_card(cfg, metrics, spec_sha, config_path), encoding="utf-8")
    pred = Predictor(str(folder), device="cpu")
    assert pred.lesion is not None
    pred.lesion.context_name = None  # the lesion part only (see docstring)
    pred.lesion.context_weight = 0.0
    from engine.data.busi import load_busi
    from engine.io.reader import read_image
    from engine.lesion_us import CROP_SIZE, _plane, crop_box, to_tensor

    recs = {r.image_id: r for r in load_busi(cfg.data.path, include_normal=True)}
    diffs: list[float] = []
    for i in [j for j in range(len(d.ids)) if d.labels[j] >= 0][: max(0, cfg.ship.parity_images)]:
        g = d.cleaned[i]
        mb = mask_box(d.masks[i].astype(np.uint8))
        assert mb is not None
        x0, y0, x1, y1 = crop_box(mb, g.shape, float(cfg.data.box_margin))
        crop = np.ascontiguousarray(g[y0:y1, x0:x1])
        with torch.no_grad():  # the recipe's own float32 forward pass of the reader-box crop + mirror
            maps = model.encode(torch.stack([to_tensor(crop, CROP_SIZE), to_tensor(np.ascontiguousarray(crop[:, ::-1]), CROP_SIZE)]))
            lg = model.head(model.pooled(maps, torch.sigmoid(model.decode(maps)))).float()
        want = float(1 / (1 + np.exp(-float((lg[:, 1] - lg[:, 0]).mean()))))
        img = read_image(str(recs[d.ids[i]].image))
        ax, ay = clean_ultrasound(_plane(img)).area[:2]
        got = pred.assess(img, (mb[0] + ax, mb[1] + ay, mb[2] + ax, mb[3] + ay)).raw_score
        diffs.append(abs(float(got) - want))
    worst = max(diffs) if diffs else 0.0
    if worst > 1e-4:
        raise ParityError(f"{folder}: the app's predictor differs from the recipe by {worst:.2e}")
    return {"folder": str(folder), "sha256": spec_sha, "metrics": metrics, "parity_max_abs_diff": worst}


def _ci(v: list[Any]) -> str:
    if not v or v[0] != v[0]:
        return "n/a"
    return f"{v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f})"


def _pct(v: list[Any]) -> str:
    if not v or v[0] != v[0]:
        return "n/a"
    return f"{100 * v[0]:.1f} % ({100 * v[1]:.1f}–{100 * v[2]:.1f}; n = {v[3]})"


def lesion_card(cfg: TrainConfig, m: dict[str, Any], sha: str, config_path: str) -> str:
    """MODEL_CARD.md of a us_lesion model: every figure from the recipe's metrics."""
    from engine.train.ship_common import card_preamble

    sh = cfg.ship
    syn = " — **SYNTHETIC**" if sh.synthetic else ""
    L = card_preamble(
        f"# Model card — {sh.name} (ultrasound: lesion finder + lesion-centred, calibrated classifier){syn}",
        "> **SYNTHETIC: trained and tested only on generated images; its scores mean nothing clinically.**"
        if sh.synthetic else None,
        f"`breast-engine ship {config_path} --out resources/models/{sh.name}` (CV, context, calibration, "
        "OOD, final fit, leave-source-out); the figures below are "
        f"`breast-engine evaluate --config {config_path} --protocol recipe` of the same config.",
        sh.training_data or cfg.data.kind, sh.data_licence)
    L += ["## Protocol and recipe", f"- protocol: {m['protocol']}", f"- recipe: {m['recipe']}",
          f"- {m['n_images']} images, {m['n_lesion']} with a lesion, {m['n_malignant']} malignant", "",
          "## Lesion finder (out of fold; bootstrap / Wilson 95 % CI)", "", "| | value |", "|---|---|"]
    fm = m["finder"]
    L += [f"| Dice | {_ci(fm['dice'])}; malignant {_ci(fm['dice_malignant'])}, benign {_ci(fm['dice_benign'])} |",
          f"| box IoU | {_ci(fm['box_iou'])} |", f"| box IoU ≥ 0.5 | {_pct(fm['box_iou_ge_0.5'])} |", "",
          "## Benign vs malignant (out of fold; pooled AUC, DeLong 95 % CI)", "",
          "| scenario | lesion crop only | shipped (with context), partition 0 | mean over context partitions |",
          "|---|---|---|---|"]
    for scen, name in (("box", "reader box (mask box)"), ("finder", "no box (the finder's box)")):
        lo, sp = m["cv_auc_lesion_only"][scen], m["cv_auc"][scen]
        L.append(f"| {name} | {_ci(lo['pooled_auc'])} | {_ci(sp['partitions'][0]['combined'])} | {sp['mean_over_partitions']:.3f} |")
    if "context_only" in m["cv_auc"]["box"]["partitions"][0]:
        L += ["", "Per context partition (paired DeLong difference vs the whole-image model alone, descriptive):", "",
              "| partition | whole-image model | shipped, reader box | Δ, p | shipped, no box | Δ, p |", "|---|---|---|---|---|---|"]
        for rb, rf in zip(m["cv_auc"]["box"]["partitions"], m["cv_auc"]["finder"]["partitions"]):
            L.append(f"| {rb['partition']} | {_ci(rb['context_only'])} | {_ci(rb['combined'])} | "
                     f"{rb['paired_diff_se_z_p'][0]:+.3f}, {rb['paired_diff_se_z_p'][3]:.3f} | {_ci(rf['combined'])} | "
                     f"{rf['paired_diff_se_z_p'][0]:+.3f}, {rf['paired_diff_se_z_p'][3]:.3f} |")
    lso = m.get("leave_source_out_birads")
    if lso:
        ctx = lso.get("context_model", {}).get("name")
        cols = ["shipped"] + (["lesion crop only", f"`{ctx}` alone"] if ctx else [])
        L += ["", "## Leave-source-out: mimbcd-dev ultrasound — **BI-RADS ≥ 4 vs ≤ 3, not pathology**", "",
              f"{lso['label']}; sources {lso['birads_sources']}; through the shipped Predictor (what `score` does); "
              "patient = unit.", "", "| scenario | " + " | ".join(f"{c} AUC (DeLong 95 % CI)" for c in cols)
              + " | patients (BI-RADS ≥ 4) |", "|---|" + "---|" * (len(cols) + 1)]
        for scen, _, _ in LSO_SCENARIOS:
            r = lso.get(scen, {})
            if "auc_birads4_vs_le3" in r:
                vals = [_ci(r["auc_birads4_vs_le3"])] + ([_ci(lso["lesion_crop_only"].get(scen, [])),
                                                          _ci(lso["context_model"].get(scen, []))] if ctx else [])
                L.append(f"| {scen} | " + " | ".join(vals) + f" | {r['n_patients']} ({r['n_birads_ge4']}) |")
            else:
                L.append(f"| {scen} | {r.get('note', 'n/a')} |" + " |" * (len(cols) - 1) + f" {r.get('n_patients', 0)} |")
        L.append(f"\nOOD-flagged: {lso['ood_flagged'][0]} of {lso['ood_flagged'][1]} images.")
        if ctx:
            L.append("The lesion crop alone is the same model with the context weight set to 0: what the lesion-centred "
                     "part carries to another site by itself.")
    L += ["", "## Overlay: pointing game (out of fold, finder's crop; peak inside the expert mask; Wilson 95 % CI)", "",
          "| map | malignant | benign | all |", "|---|---|---|---|"]
    p = m["pointing"]
    for name, label in (("attention", "**attention** (shipped overlay)"), ("cam", "CAM"), ("centre", "image centre (blind guess)")):
        L.append(f"| {label} | {_pct(p[name + '_malignant'])} | {_pct(p[name + '_benign'])} | {_pct(p[name + '_all'])} |")
    L += ["", "## Calibration (Platt on the shipped combination, partition 0; ECE cross-fitted over the folds)", "",
          "| scenario | ECE before | ECE after Platt | Platt (a, b) |", "|---|---|---|---|"]
    for scen in ("box", "finder"):
        c = m["calibration"][scen]
        L.append(f"| {scen} | {c['raw']['ece']:.3f} | {c['platt_crossfit']['ece']:.3f} | "
                 f"{c['platt_all'][0]:.4f}, {c['platt_all'][1]:.4f} |")
    o = m["ood"]
    L += ["", "## Out-of-distribution warning",
          f"Threshold **{o['threshold']:.3f}** = the {o['percentile']:g}th percentile of the held-out (out-of-fold) "
          f"distances of {o['n_images']} dev images (median {o['busi_oof_median']:.3f}); features: {o['features']}.", "",
          ] + _default_section(cfg, m) + _speed_section(cfg) + [
          "## Files", f"- `weights.pt`: `state_dict` of `{cfg.model.name}`; sha256 `{sha}`",
          "- `spec.json`: pipeline, margin, Platt parameters, OOD threshold, context model, every figure above (`metrics`)", ""]
    if sh.not_for:
        L += ["## Must not be used for"] + [f"- {v}" for v in sh.not_for] + [""]
    if sh.card_notes:
        L += ["## Notes", "", sh.card_notes.strip(), ""]
    return "\n".join(L)


def _worse(diff_p: list[float]) -> bool:
    """A paired difference that is negative and significant at 0.05."""
    return bool(diff_p[0] < 0 and diff_p[-1] < 0.05)


def _default_section(cfg: TrainConfig, m: dict[str, Any]) -> list[str]:
    """"Default?": this model against its whole-image context model (the previous US default),
    on the same images, with the rule the switch follows (from the recipe's own figures)."""
    parts = {sc: m["cv_auc"][sc]["partitions"] for sc in ("box", "finder")}
    lso = m.get("leave_source_out_birads") or {}
    ctx = lso.get("context_model", {}).get("name")
    if not ctx or "context_only" not in parts["box"][0]:
        return []
    L = ["", f"## Default? (this model vs `{ctx}`, the whole-image model and previous US default)",
         "Rule: default only if at least equal on the other-hospital check and not worse on BUSI (same images, "
         "paired DeLong; descriptive: the out-of-fold scores are treated as one reader's).", "",
         f"| check | `{ctx}` | this model | difference |", "|---|---|---|---|"]
    for sc, name in (("box", "reader box"), ("finder", "no box (finder)")):
        ps = parts[sc]
        d = [p["paired_diff_se_z_p"] for p in ps]
        L.append(f"| BUSI grouped CV, {name}, mean of {len(ps)} partitions | "
                 f"{np.mean([p['context_only'][0] for p in ps]):.3f} | {np.mean([p['combined'][0] for p in ps]):.3f} | "
                 f"Δ {min(x[0] for x in d):+.3f} … {max(x[0] for x in d):+.3f}, p {min(x[3] for x in d):.3f}–"
                 f"{max(x[3] for x in d):.3f} |")
    lso_worse = False
    for scen, _, _ in LSO_SCENARIOS[:2]:
        r = lso.get(scen, {})
        dp = lso["context_model"].get(scen + " paired_diff_se_z_p")
        if "auc_birads4_vs_le3" not in r or not dp:
            continue
        lso_worse |= _worse(dp)
        L.append(f"| mimbcd-dev, {scen} ({r['n_patients']} patients, BI-RADS ≥ 4 vs ≤ 3) | "
                 f"{_ci(lso['context_model'][scen])} | {_ci(r['auc_birads4_vs_le3'])} | "
                 f"Δ {dp[0]:+.3f} (SE {dp[1]:.3f}, p = {dp[3]:.2f}) |")
    p = m["pointing"]
    base = _baseline_pointing(cfg)
    L.append(f"| pointing game, malignant / all BUSI lesions | {base} | {100 * p['attention_malignant'][0]:.1f} % / "
             f"{100 * p['attention_all'][0]:.1f} % (attention, out of fold) | centre guess "
             f"{100 * p['centre_malignant'][0]:.1f} % / {100 * p['centre_all'][0]:.1f} % |")
    ece = m.get("context_model_ece")
    if ece:
        L.append(f"| ECE of the probability shown (out of fold) | {ece[0]:.3f} (not calibrated; partitions "
                 f"{min(ece):.3f}–{max(ece):.3f}) | {m['calibration']['box']['platt_crossfit']['ece']:.3f} reader box / "
                 f"{m['calibration']['finder']['platt_crossfit']['ece']:.3f} finder (Platt) | |")
    L.append(f"| OOD warning | none | {lso['ood_flagged'][0]} of {lso['ood_flagged'][1]} mimbcd-dev images flagged | |")
    busi_worse = any(_worse(p_["paired_diff_se_z_p"]) for ps in parts.values() for p_ in ps)
    better = sum(1 for p_ in parts["box"] if p_["paired_diff_se_z_p"][0] > 0 and p_["paired_diff_se_z_p"][3] < 0.05)
    fb = [p_["combined"][0] for p_ in parts["box"]]
    ff = [p_["combined"][0] for p_ in parts["finder"]]
    L += ["", f"Project goal \"≥ 0.95 on unseen BUSI\" (busi-dev grouped CV, not the untouched hold-out): with a reader's "
          f"box {min(fb):.3f}–{max(fb):.3f} over the partitions ({'met' if min(fb) >= 0.95 else 'not met on every partition'}); "
          f"without a box {min(ff):.3f}–{max(ff):.3f}, mean {np.mean(ff):.3f} "
          f"({'met' if min(ff) >= 0.95 else 'not met'}; the no-box arms tried are in `docs/results.md` 0c)."]
    L += ["", f"By the rule: BUSI {'significantly worse somewhere' if busi_worse else 'never significantly worse'} "
          f"(better with a reader's box on {better} of {len(parts['box'])} partitions at p < 0.05); other hospital "
          f"{'significantly worse' if lso_worse else 'not significantly different'} — the rule "
          f"{'is NOT met' if busi_worse or lso_worse else 'is met'}. The other-hospital figure is a BI-RADS separation on "
          "a few dozen patients, not a malignancy AUC. Side by side with the installed models: `breast-engine evaluate "
          "--config configs/us_lesion_lite0_busi.toml --protocol compare --out docs/results/us_default_comparison.json`.", ""]
    return L


def _baseline_pointing(cfg: TrainConfig) -> str:
    """The context model's out-of-fold pointing game (``ship.baseline_saliency``), as a table cell."""
    f = cfg.ship.baseline_saliency
    if not f or not Path(f).is_file():
        return "n/a"
    r = json.loads(Path(f).read_text(encoding="utf-8"))
    mal, al = r["by_class"]["malignant"]["model"]["hit"]["rate"], r["all"]["model"]["hit"]["rate"]
    return f"{100 * mal:.1f} % / {100 * al:.1f} % ({r['method']}, out of fold; `{Path(f).name}`)"


def _s(v: Any, unit: str = " s") -> str:
    return "n/a" if v is None else f"{float(v):.3f}{unit}"


def _speed_section(cfg: TrainConfig) -> list[str]:
    """"Speed" from a ``breast-engine bench score`` JSON (``ship.bench_result``)."""
    f = cfg.ship.bench_result
    if not f or not Path(f).is_file():
        return []
    b = json.loads(Path(f).read_text(encoding="utf-8"))
    c = b.get("cases", {}).get(cfg.ship.modality or "US")
    if not c:
        return []
    L = ["## Speed", f"`{b.get('command', 'breast-engine bench score')}` (`benchmarks/results/{Path(f).name}`; "
         f"{c.get('source', 'one image')}, score + {c['saliency']}, {'reader box' if c.get('box') else 'no box: the finder runs'}): "
         f"**{c['seconds']:.3f} s** wall, {_s(c.get('cpu_s'))} CPU per case on {b.get('threads')} threads "
         f"(target {b.get('target_s', 0.5)} s)."]
    for name, o in c.get("compare", {}).items():
        L.append(f"`{name}` in the same run (repeats interleaved): {o['seconds']:.3f} s wall, "
                 f"{_s(o.get('cpu_s'))} CPU (this model / it: {o['ratio_default_over_this']:.2f} wall, "
                 f"{_s(o.get('cpu_ratio_default_over_this'), '')} CPU).")
    L.append(f"Load average {b.get('load_avg_start')} at the start, {b.get('load_avg_end', b.get('load_avg_1min'))} at the "
             f"end, on {b.get('cpu_count')} cores.")
    if b.get("note"):
        L.append(str(b["note"]))
    return L + [""]
