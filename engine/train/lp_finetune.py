"""Trainer mode ``lp_finetune``: light fine-tuning of the last Lite0 blocks after a linear probe.

LP-FT (Kumar et al., ICLR 2022, "Fine-tuning can distort pretrained features"): the linear head
is first fitted on the frozen features (the ``linear_probe`` recipe's class-balanced L2
logistic, folded into the head), then the last ``ship.unfreeze_blocks`` MBConv blocks, the head
conv and the head are fine-tuned with a low learning rate (AdamW ``optim.lr``, head
``10 x`` that, cosine decay), class-balanced cross-entropy, BatchNorm statistics kept
(``eval`` mode: a 58-lesion training fold cannot re-estimate them) and strong augmentation.

Augmentation: each lesion gets a bank of ``ship.bank_views`` views prepared by the weights' own
``spec.transforms()`` -- the scoring input, its mirror, then the box at each ``ship.margins``
margin with the :mod:`engine.train.augment` pipeline (``[augment]``: rot90, flips, shift, zoom,
shear) on top. The frozen front of the network does not change, so its output on every bank
view is computed once and each fold trains only the unfrozen tail on those activations (the
same gradients as a full forward pass, a fraction of the CPU). Geometric augmentation commutes
with the per-channel normalisation, so it is applied to the normalised tensor.

Cross-validation is the linear probe's: ``ship.repeats`` partitions (seeds ``train.seed + r``)
of ``ship.folds`` stratified folds grouped by patient, out-of-fold scores of the scoring input
(view 0). The metrics carry every partition's out-of-fold scores in item order, so
``breast-engine evaluate --protocol compare`` pairs them with other recipes (DeLong).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig


def _bank(cfg: TrainConfig, items: list[Any], tf: Any, spec: Any) -> torch.Tensor:
    """``(N, V, C, H, W)`` normalised views per lesion: scoring input, its mirror, augmented margins."""
    from engine.train.augment import augment
    from engine.transforms import EvalTransform

    sh = cfg.ship
    n_views = int(sh.bank_views)
    if n_views < 2:
        raise ConfigError("ship.bank_views must be >= 2 (the scoring input and its mirror at least)")
    margins = list(sh.margins) or [float(spec.pre.box_margin)]
    by_margin = {m: EvalTransform(spec.pre.with_(box_margin=float(m)), default_modality=spec.modality)
                 for m in margins}
    out = []
    for i, it in enumerate(items):
        ev = tf(it.image, box=it.box, modality=it.modality or None).tensor
        views = [ev, ev.flip(-1)]
        prepared = {m: t(it.image, box=it.box, modality=it.modality or None).tensor for m, t in by_margin.items()}
        rng = np.random.default_rng([cfg.train.seed, i])
        for k in range(n_views - 2):
            views.append(augment(prepared[margins[k % len(margins)]], cfg.augment, rng))
        out.append(torch.stack(views))
    return torch.stack(out)


def _split(model: Any, n_unfrozen: int) -> tuple[int, nn.Module]:
    """Index of the first unfrozen MBConv block and the trainable tail (blocks, head conv, BN, heads)."""
    net = model.net
    n = len(net._blocks)
    if not 0 <= n_unfrozen <= n:
        raise ConfigError(f"ship.unfreeze_blocks = {n_unfrozen}: Lite0 has {n} MBConv blocks")
    if getattr(model, "taps", ()) or len(getattr(model, "scales", (1.0,))) != 1:
        raise ConfigError("lp_finetune reads the head conv at one scale (model.cfg taps = [], scales = [1.0])")
    return n - n_unfrozen, nn.ModuleList([*list(net._blocks)[n - n_unfrozen:], net._conv_head, net._bn1, model.heads])


@torch.no_grad()
def _front(model: Any, x: torch.Tensor, start: int) -> torch.Tensor:
    """Frozen front: stem and the MBConv blocks before ``start`` (eval mode, no drop-connect)."""
    net = model.net
    h: torch.Tensor = net._swish(net._bn0(net._conv_stem(model.backbone_input(x))))
    for block in list(net._blocks)[:start]:
        h = block(h)
    return h


def _tail(model: Any, h: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unfrozen tail: pooled head-conv features ``(B, 1280)`` and logits ``(B, 2)``."""
    net = model.net
    for block in list(net._blocks)[start:]:
        h = block(h)
    f = net._swish(net._bn1(net._conv_head(h))).mean(dim=(2, 3))
    return f, model.heads[0](f)


def _fit_fold(cfg: TrainConfig, base: Any, start: int, acts: torch.Tensor, y: np.ndarray, tr: np.ndarray,
              seed: int) -> Any:
    """LP then FT on the training lesions ``tr``; returns the fine-tuned model copy."""
    from engine.train.recipes import fit_probe, write_probe

    model = copy.deepcopy(base)
    with torch.no_grad():
        feats = torch.stack([_tail(model, acts[:, v], start)[0] for v in range(acts.shape[1])], 1)  # (N, V, D)
    write_probe(model, fit_probe(feats.numpy()[:, :, None], y, tr, float(cfg.ship.c)))  # LP: all bank views
    _, tail = _split(model, int(cfg.ship.unfreeze_blocks))
    for p in model.parameters():
        p.requires_grad_(False)
    head_params = list(model.heads.parameters())
    body = [p for p in tail.parameters() if all(p is not q for q in head_params)]
    for p in tail.parameters():
        p.requires_grad_(True)
    o = cfg.optim
    opt = torch.optim.AdamW([{"params": body, "lr": o.lr}, {"params": head_params, "lr": 10 * o.lr}],
                            weight_decay=o.weight_decay)
    epochs, bs = int(cfg.train.epochs), int(cfg.train.batch_size)
    steps = math.ceil(len(tr) / bs) * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    pos = float(y[tr].mean())
    weight = torch.tensor([0.5 / max(1 - pos, 1e-6), 0.5 / max(pos, 1e-6)], dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(y, dtype=torch.long)
    model.eval()  # BatchNorm keeps the ImageNet statistics; dropout-free tail
    trt = torch.as_tensor(tr)
    for _ in range(epochs):
        perm = trt[torch.randperm(len(tr), generator=gen)]
        for s in range(0, len(perm), bs):
            idx = perm[s:s + bs]
            view = torch.randint(0, acts.shape[1], (len(idx),), generator=gen)
            _, logits = _tail(model, acts[idx, view], start)
            loss = nn.functional.cross_entropy(logits.float(), yt[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def evaluate_lp_finetune(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Repeated grouped CV of LP-FT; the same metric keys as the linear probe's recipe."""
    from scipy.special import expit

    from engine.stats.roc import empirical_auc
    from engine.train.recipes import build_model, load_items, make_spec, stratified_folds, summarize_oof

    if cfg.data.kind != "mias_lesions":
        raise ConfigError(f"lp_finetune reads data.kind = 'mias_lesions', not {cfg.data.kind!r}")
    torch.manual_seed(cfg.train.seed)
    t0 = time.time()
    items = load_items(cfg, progress=progress)
    y = np.array([it.label for it in items])
    g = np.array([it.group for it in items])
    spec = make_spec(cfg)
    base = build_model(cfg).eval()
    start, _ = _split(base, int(cfg.ship.unfreeze_blocks))
    bank = _bank(cfg, items, spec.transforms(), spec)
    n, v = bank.shape[:2]
    acts = torch.cat([_front(base, bank.flatten(0, 1)[i:i + 64], start) for i in range(0, n * v, 64)])
    acts = acts.reshape(n, v, *acts.shape[1:])
    report(progress, 0, 1, f"front activations {tuple(acts.shape)} ({time.time() - t0:.0f} s)")
    sh = cfg.ship
    partitions = [stratified_folds(y, g, sh.folds, cfg.train.seed + r) for r in range(sh.repeats)]
    oofs = []
    runs = []
    for r, folds in enumerate(partitions):
        z = np.zeros(n)
        for f in range(sh.folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            model = _fit_fold(cfg, base, start, acts, y, tr, seed=1000 * (cfg.train.seed + r) + f)
            with torch.no_grad():
                logits = _tail(model, acts[te, 0], start)[1].float()
            z[te] = (logits[:, 1] - logits[:, 0]).numpy()
            report(progress, r * sh.folds + f + 1, sh.repeats * sh.folds, f"partition {r} fold {f}")
        oofs.append(np.asarray(expit(z), np.float64))
        runs.append(summarize_oof(y, oofs[-1], folds))
    pooled = [r["pooled_auc"] for r in runs]
    means = [r["auc_mean"] for r in runs]
    metrics: dict[str, Any] = {
        "protocol": (f"stratified {sh.folds}-fold CV grouped by patient, {sh.repeats} partition(s) "
                     f"(seeds {cfg.train.seed}-{cfg.train.seed + sh.repeats - 1}); out-of-fold scores; "
                     "figures without a suffix are partition 0's"),
        "recipe": (f"lp_finetune: {cfg.model.name}, logistic probe C={sh.c} then the last {sh.unfreeze_blocks} "
                   f"MBConv block(s) + head conv + head fine-tuned ({cfg.train.epochs} epochs, AdamW lr {cfg.optim.lr}, "
                   f"head x10, wd {cfg.optim.weight_decay}, batch {cfg.train.batch_size}), {sh.bank_views} views "
                   f"per lesion (margins {list(sh.margins)}, rot90 {cfg.augment.rotate90}, flips, shift "
                   f"{cfg.augment.shift}, zoom {cfg.augment.zoom}, shear {cfg.augment.shear})"),
        **runs[0],
        "partition_seed": cfg.train.seed,
        "auc_mean_over_partitions": round(float(np.mean(means)), 4),
        "auc_range_over_partitions": [min(means), max(means)],
        "pooled_auc_mean_over_partitions": round(float(np.mean(pooled)), 4),
        "pooled_auc_range_over_partitions": [min(pooled), max(pooled)],
        "fold_auc_all_partitions": [a for r in runs for a in r["fold_auc"]],
        "pooled_auc_all_partitions": [round(float(empirical_auc(y, o)), 4) for o in oofs],
        "wall_s": round(time.time() - t0, 1),
        "oof_ids": [it.item_id for it in items],
        "oof_labels": [int(v) for v in y],
        "oof_scores_all_partitions": [[round(float(s), 6) for s in o] for o in oofs],
    }
    return metrics


__all__ = ["evaluate_lp_finetune"]
