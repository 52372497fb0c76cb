"""Training-time augmentation on the prepared [0, 1] tensor (before normalisation).

The one augmentation pipeline of the gradient trainer: Hijab et al. 2019 Sec. III.A (rotations
by multiples of 90 degrees, width/height shift, shear, zoom, horizontal flip, "nearest" filling
of the exposed border), Qi et al. 2019 Sec. 3.3 (a random crop after the shorter-side
resize) and An et al. 2019 Sec. 4.1 (random brightness, rotations, flips of the tissue patches). It acts on what ``spec.transforms()`` produced (steps 1-5 of
:class:`engine.transforms.Preprocess`), so a trained model sees exactly the evaluation input
plus these random geometric changes. Randomness comes only from the ``numpy`` generator passed
in (seeded by ``(seed, epoch, index)`` in the datasets), so it is identical across runs,
resumes, DataLoader workers and DDP processes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from engine.imaging import geometry
from engine.imaging.geometry import resize
from engine.train.config import AugmentConfig


def random_crop(t: torch.Tensor, size: tuple[int, int], rng: np.random.Generator, *, random: bool) -> torch.Tensor:
    """A ``size`` crop of ``(C, H, W)``: at a random offset (Qi's training crop) or the centre
    (:func:`engine.imaging.geometry.random_crop` / ``center_crop``, the one crop code)."""
    if random:
        return geometry.random_crop(t, size, lambda n: int(rng.integers(0, n + 1)))
    return geometry.center_crop(t, size)


def affine_matrix(aug: AugmentConfig, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
    """The random 2 x 3 pixel-space affine (zoom, shear, shift about the centre) or None."""
    if not (aug.shift or aug.shear or aug.zoom):
        return None
    h, w = shape
    sx = rng.uniform(-aug.shift, aug.shift) * w
    sy = rng.uniform(-aug.shift, aug.shift) * h
    z = rng.uniform(1 - aug.zoom, 1 + aug.zoom)
    sh = math.tan(math.radians(rng.uniform(-aug.shear, aug.shear)))
    c = np.array([w / 2.0, h / 2.0])
    a = np.array([[z, z * sh], [0.0, z]])
    t = c - a @ c + np.array([sx, sy])
    return np.hstack([a, t[:, None]]).astype(np.float64)


def warp(t: torch.Tensor, m: np.ndarray) -> torch.Tensor:
    """``dst(p) = src(M^-1 p)`` (OpenCV ``warpAffine`` convention), bilinear, edge-replicated border."""
    C, H, W = t.shape
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    grid = torch.stack([(2 * src_x + 1) / W - 1, (2 * src_y + 1) / H - 1], dim=-1).to(t.dtype)
    out = F.grid_sample(t[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0]


def augment(t: torch.Tensor, aug: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Random rotation (k * 90), flips, shift / shear / zoom and brightness of a ``(C, H, W)``
    tensor (shape kept)."""
    H, W = int(t.shape[-2]), int(t.shape[-1])
    if aug.rotate90:
        k = int(rng.integers(0, 4))
        if k:
            t = torch.rot90(t, k, dims=(-2, -1))
            if (int(t.shape[-2]), int(t.shape[-1])) != (H, W):
                t = resize(t.contiguous(), (H, W), mode="bilinear", antialias=True)
    if aug.hflip and rng.random() < 0.5:
        t = t.flip(-1)
    if aug.vflip and rng.random() < 0.5:
        t = t.flip(-2)
    m = affine_matrix(aug, (H, W), rng)
    if m is not None:
        t = warp(t.contiguous(), m)
    if aug.brightness:
        t = t * float(rng.uniform(1 - aug.brightness, 1 + aug.brightness))
    return t.contiguous()


__all__ = ["affine_matrix", "augment", "random_crop", "warp"]
