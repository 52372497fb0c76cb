"""``--protocol an_heatmap``: An 2019's heatmap regression with and without the local map.

Per fold of a patient-grouped, stratified K-fold (no woman in two parts):

1. with a local-map model (``an_heatmap_fcn_local``), the tissue classifier
   (``an_patch_classifier``) is trained on patches of the fold's *training* images only, sampled
   by :func:`engine.models.an.sample_patches` (positives centred on each annotation, very large
   ones ignored; negatives on a fixed stride not touching any annotation disc), with the config's
   ``[augment]`` (An 2019 Sec. 4.1: flips, 90-degree rotations, brightness), class-weighted cross-entropy; it is
   then run densely (:func:`engine.models.an.local_map_dense`) on every image of the fold;
2. the heatmap FCN is trained on the training images against the blurred annotation map
   (:func:`engine.models.an.heatmap_loss`, MSE);
3. each test image is scored: pixel-wise MSE against its blurred target, and *pointing*
   (the arg-max of the predicted heatmap lies inside an annotation circle; images with a
   finding only).

Means carry 95 % patient-bootstrap CIs (:mod:`engine.stats.bootstrap`); with ``paired`` (the
result of the other arm on the same data, folds and seed) the paired differences too.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.models.an import AnPatchClassifier
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.augment import augment
from engine.train.config import AugmentConfig, TrainConfig
from engine.train.datasets.paper import HeatmapImages
from engine.train.loop import build_model
from engine.train.protocols import Fold, split_indices
from engine.train.runtime import seed_everything


def train_patch_classifier(ds: HeatmapImages, train_idx: NDArray[np.int64], *, seed: int, aug: AugmentConfig,
                           cancel: CancelToken | None = None) -> tuple[AnPatchClassifier, dict[str, int]]:
    """The tissue classifier of one fold, from the training images' patches only, each patch
    augmented by the one pipeline (:func:`engine.train.augment.augment` with the config's
    ``[augment]``: An's flips, 90-degree rotations and brightness).

    Returns:
        ``(classifier in eval mode, {"n_pos", "n_neg"})``.
    """
    from engine.models.an import an_patch_classifier, sample_patches

    h = ds.h
    pats: list[NDArray[np.float32]] = []
    labs: list[NDArray[np.int64]] = []
    rng = random.Random(seed)
    for i in train_idx:
        c = ds.crop(int(i))
        tp = sample_patches(c.image, ds.crop_lesions(int(i)), scale=h.patch_scale, patch=h.patch,
                            stride=h.neg_stride, max_negatives=h.max_negatives or None, rng=rng)
        pats.append(tp.patches)
        labs.append(tp.labels)
    x = torch.from_numpy(np.concatenate(pats))[:, None]
    y = torch.from_numpy(np.concatenate(labs))
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    torch.manual_seed(seed)
    net = an_patch_classifier(patch=h.patch, widths=list(h.patch_widths), hidden=64)
    if n_pos == 0 or n_neg == 0:
        net.eval()
        return net, {"n_pos": n_pos, "n_neg": n_neg}
    w = torch.tensor([len(y) / (2.0 * n_neg), len(y) / (2.0 * n_pos)])
    opt = torch.optim.Adam(net.parameters(), lr=h.patch_lr)
    g = torch.Generator().manual_seed(seed)
    for ep in range(h.patch_epochs):
        net.train()
        perm = torch.randperm(len(y), generator=g)
        for b in range(0, len(y), 32):
            check(cancel)
            j = perm[b:b + 32]
            xb = torch.stack([augment(x[int(k)], aug, np.random.default_rng([seed, ep, int(k)])) for k in j])
            loss = F.cross_entropy(net(xb), y[j], weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net, {"n_pos": n_pos, "n_neg": n_neg}


def heatmap_folds(ds: HeatmapImages, folds: int, seed: int) -> list[Fold]:
    """Patient-grouped k-fold stratified on has-finding (mini-MIAS: mdbNNN odd/even pairs are
    one woman, :func:`engine.data.mias.load_mias`): no patient is in two parts."""
    return split_indices("kfold", ds.labels, ds.groups, folds=folds, seed=seed)


def pointing_hit(pred: NDArray[np.float32], lesions: list[tuple[float, float, float]], crop: int) -> bool:
    """Whether the arg-max cell centre of ``pred`` ``(o, o)`` lies inside an annotation circle
    (radius at least half a cell, as in the target) of a ``crop``-px image."""
    o = pred.shape[-1]
    r, c = np.unravel_index(int(np.argmax(pred)), pred.shape)
    x, y = (c + 0.5) * crop / o, (r + 0.5) * crop / o
    return any((x - cx) ** 2 + (y - cy) ** 2 <= max(rad, 0.5 * crop / o) ** 2 for cx, cy, rad in lesions)


def pointing_chance(lesions: list[tuple[float, float, float]], crop: int, out: int) -> float:
    """Share of the ``out x out`` cells that :func:`pointing_hit` counts as inside: the pointing
    rate of a uniformly random arg-max (the chance level)."""
    c = (np.arange(out) + 0.5) * crop / out
    xx, yy = np.meshgrid(c, c)
    inside = np.zeros((out, out), bool)
    for cx, cy, rad in lesions:
        inside |= (xx - cx) ** 2 + (yy - cy) ** 2 <= max(rad, 0.5 * crop / out) ** 2
    return float(inside.mean())


def local_map_pointing(lm: NDArray[np.float32], lesions: list[tuple[float, float, float]], *, scale: float,
                       patch: int, stride: int) -> bool:
    """Whether the local map's peak window centre lies inside an annotation circle (radius at
    least half a stride) of the full-resolution crop: how well the tissue classifier alone
    localises."""
    r, c = np.unravel_index(int(np.argmax(lm)), lm.shape)
    x, y = (c * stride + patch / 2) / scale, (r * stride + patch / 2) / scale
    return any((x - cx) ** 2 + (y - cy) ** 2 <= max(rad, 0.5 * stride / scale) ** 2 for cx, cy, rad in lesions)


def _ci(v: Any, groups: list[str], n_boot: int, seed: int) -> dict[str, Any]:
    from engine.stats.bootstrap import cluster_bootstrap_mean

    b = cluster_bootstrap_mean(np.asarray(v, np.float64), groups, n_boot=n_boot, seed=seed)
    return {"mean": b.mean, "ci": [b.lo, b.hi], "n_images": b.n, "n_patients": b.n_clusters}


def evaluate_an_heatmap(cfg: TrainConfig, ds: HeatmapImages, *, folds: int = 5,
                        paired: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None) -> dict[str, Any]:
    """Cross-validate the heatmap FCN of ``cfg.model.name`` (see the module docstring).

    Args:
        cfg: Config (``data.kind`` mias_heatmap / synthetic_heatmap, ``[heatmap]``).
        ds: Its dataset.
        folds: K.
        paired: A previous result of this protocol on the same data (the other arm): adds
            ``paired`` (this minus that) for MSE and pointing.

    Raises:
        ConfigError: a model that is not a heatmap FCN, a ``paired`` result on other images/folds.
    """
    from engine.models.an import AnHeatmapFCN, heatmap_loss, local_map_dense

    t0 = time.time()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    probe = build_model(cfg)
    if not isinstance(probe, AnHeatmapFCN):
        raise ConfigError(f"--protocol an_heatmap needs an_heatmap_fcn or an_heatmap_fcn_local, not {cfg.model.name}")
    use_local = probe.use_local_map
    parts = heatmap_folds(ds, folds, cfg.train.seed)
    n = len(ds)
    mse = np.full(n, np.nan)
    point = np.full(n, np.nan)
    chance = np.full(n, np.nan)
    zero = np.full(n, np.nan)
    lm_point = np.full(n, np.nan)
    fold_of = np.full(n, -1, np.int64)
    per_fold: list[dict[str, Any]] = []
    h = ds.h
    for fold in parts:
        check(cancel)
        tr, te = fold.train, fold.test
        info: dict[str, Any] = {"fold": fold.fold, "n_train": int(tr.size), "n_test": int(te.size)}
        ds.local_maps = {}
        if use_local:
            clf, counts = train_patch_classifier(ds, tr, seed=cfg.train.seed + fold.fold, aug=cfg.augment,
                                                 cancel=cancel)
            info["patches"] = counts
            for i in np.concatenate([tr, te]):
                ds.local_maps[int(i)] = local_map_dense(clf, ds.patch_image(int(i)), stride=h.map_stride)
        seed_everything(cfg.train.seed + fold.fold)
        model = build_model(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        items = {int(i): ds[int(i)] for i in np.concatenate([tr, te])}
        g = torch.Generator().manual_seed(cfg.train.seed + fold.fold)
        for ep in range(cfg.train.epochs):
            model.train()
            perm = tr[torch.randperm(tr.size, generator=g).numpy()]
            losses = []
            for b in range(0, perm.size, cfg.train.batch_size):
                check(cancel)
                j = [int(k) for k in perm[b:b + cfg.train.batch_size]]
                if len(j) < 2:
                    continue  # BatchNorm needs two
                x, lm, t = (torch.stack([items[k][m] for k in j]) for m in range(3))
                loss = heatmap_loss(model(x, lm if use_local else None), t)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            info.setdefault("train_loss", []).append(float(np.mean(losses)) if losses else None)
            report(progress, fold.fold * cfg.train.epochs + ep + 1, len(parts) * cfg.train.epochs,
                   f"fold {fold.fold} epoch {ep + 1}")
        model.eval()
        with torch.no_grad():
            for i in te:
                x, lm, t = items[int(i)]
                pred = model(x[None], lm[None] if use_local else None)[0]
                mse[i] = float(F.mse_loss(pred, t))
                zero[i] = float((t.double() ** 2).mean())
                les = ds.crop_lesions(int(i))
                if les:
                    point[i] = float(pointing_hit(pred[0].numpy(), les, h.crop))
                    chance[i] = pointing_chance(les, h.crop, ds.out)
                    if use_local:
                        lm_point[i] = float(local_map_pointing(ds.local_maps[int(i)], les, scale=h.patch_scale,
                                                               patch=h.patch, stride=h.map_stride))
                fold_of[i] = fold.fold
        info["mse"] = float(np.mean(mse[te]))
        per_fold.append(info)
    ds.local_maps = {}
    groups = ds.groups
    les = ~np.isnan(point)
    gl = [groups[i] for i in np.nonzero(les)[0]]
    nb, sd = h.n_boot, cfg.train.seed
    res: dict[str, Any] = {
        "protocol": "an_heatmap",
        "model": cfg.model.name,
        "local_map": use_local,
        "synthetic": ds.synthetic,
        "data": ds.source,
        "folds": folds,
        "grouping": "patient (stratified grouped k-fold on has-finding)",
        "budget": {"crop": h.crop, "fcn_input": ds.size, "fcn_output": ds.out, "sigma": h.sigma,
                   "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size, "lr": cfg.optim.lr,
                   "fcn_widths": list(cfg.model.cfg.get("widths", [32, 64, 128, 128])),
                   **({"patch_scale": h.patch_scale, "patch": h.patch, "patch_widths": list(h.patch_widths),
                       "neg_stride": h.neg_stride, "map_stride": h.map_stride, "map_grid": list(ds.map_grid()),
                       "max_negatives": h.max_negatives, "patch_epochs": h.patch_epochs,
                       "patch_augment": {k: v for k, v in asdict(cfg.augment).items() if k != "preset"}}
                      if use_local else {})},
        "n_images": n,
        "n_lesion_images": int(les.sum()),
        "n_patients": len(set(groups)),
        "mse": _ci(mse, groups, nb, sd),
        "mse_lesion": _ci(mse[les], gl, nb, sd) if les.any() else None,
        "pointing": _ci(point[les], gl, nb, sd) if les.any() else None,
        # references: an all-zero heatmap's MSE, a uniformly random peak's pointing rate
        "mse_zero_prediction": float(np.mean(zero)),
        "pointing_chance": float(np.mean(chance[les])) if les.any() else None,
        # the tissue classifier alone: its local map's peak (held-out images of each fold)
        "local_map_pointing": _ci(lm_point[les], gl, nb, sd) if use_local and les.any() else None,
        "per_fold": per_fold,
        "per_image": [{"id": s.id, "group": groups[i], "fold": int(fold_of[i]), "mse": float(mse[i]),
                       "pointing": None if np.isnan(point[i]) else int(point[i])} for i, s in enumerate(ds.samples)],
        "device": "cpu",
        "wall_s": time.time() - t0,
    }
    if paired is not None:
        res["paired"] = paired_difference(res, paired, n_boot=nb, seed=sd)
    return res


def paired_difference(a: dict[str, Any], b: dict[str, Any], *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``a - b`` per image (MSE, pointing) with patient-bootstrap CIs; ``a``, ``b`` results of
    :func:`evaluate_an_heatmap` on the same images and folds.

    Raises:
        ConfigError: the two results hold other images or folds.
    """
    from engine.stats.bootstrap import paired_cluster_bootstrap

    ia = {r["id"]: r for r in a["per_image"]}
    ib = {r["id"]: r for r in b.get("per_image", [])}
    if set(ia) != set(ib) or any(ia[k]["fold"] != ib[k]["fold"] for k in ia):
        raise ConfigError("the paired result holds other images or folds; run both arms with the same data, "
                          "--folds and train.seed")
    ids = sorted(ia)
    out: dict[str, Any] = {"against": b.get("model"), "a_minus_b": f"{a.get('model')} - {b.get('model')}"}
    for key in ("mse", "pointing"):
        keep = [k for k in ids if ia[k][key] is not None]
        if not keep:
            continue
        d = paired_cluster_bootstrap([ia[k][key] for k in keep], [ib[k][key] for k in keep],
                                     [ia[k]["group"] for k in keep], n_boot=n_boot, seed=seed)
        out[key] = {"mean": d.mean, "ci": [d.lo, d.hi], "p_two_sided": d.p_two_sided, "n_images": d.n,
                    "n_patients": d.n_clusters}
    return out


def load_result(path: str | Path) -> dict[str, Any]:
    """A result JSON of this protocol (for ``--paired``), with a clear error."""
    import json

    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p}: cannot read the paired result ({exc})") from None
    if not isinstance(d, dict) or d.get("protocol") != "an_heatmap":
        raise ConfigError(f"{p}: not an --protocol an_heatmap result")
    return d
