"""Boxes (the one mask bounding box), crops and Qi et al. 2019's five crops (the one implementation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[float, float, float, float]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), end-exclusive, of the non-zero pixels of a mask.

    Args:
        mask: 2-D array; non-zero = lesion.

    Returns:
        The box, or None for an empty mask.
    """
    rows = np.flatnonzero((mask > 0).any(axis=1))
    cols = np.flatnonzero((mask > 0).any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def expand_box(box: Box, shape: tuple[int, int], margin: float = 0.15, min_side: int = 16) -> tuple[int, int, int, int]:
    """Box ``(x0, y0, x1, y1)`` grown by ``margin`` of its size per side, clipped to ``shape``.

    Returns:
        Integer ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1``.

    Raises:
        ValueError: the box lies outside the image.
    """
    rows, cols = shape
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my, y1 + my
    if x1 - x0 < min_side:
        c = (x0 + x1) / 2
        x0, x1 = c - min_side / 2, c + min_side / 2
    if y1 - y0 < min_side:
        c = (y0 + y1) / 2
        y0, y1 = c - min_side / 2, c + min_side / 2
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(cols, int(np.ceil(x1))), min(rows, int(np.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"box {box} lies outside the image ({cols} x {rows})")
    return ix0, iy0, ix1, iy1


def shorter_side_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """``(rows, cols)`` after scaling ``shape`` so that its shorter side is ``size`` (aspect kept)."""
    h, w = shape
    s = size / min(h, w)
    return max(size, round(h * s)), max(size, round(w * s))


def resize_shorter_side(img: torch.Tensor, size: int, *, mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """Scale ``(C, H, W)`` so that its shorter side is ``size`` (aspect ratio kept)."""
    nh, nw = shorter_side_shape((int(img.shape[-2]), int(img.shape[-1])), size)
    return resize(img, (nh, nw), mode=mode, antialias=antialias)


def resize(img: torch.Tensor, size: tuple[int, int], *, mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """``(C, H, W)`` float tensor to ``size`` with a named interpolation (torchvision v2 ``resize``).

    ``area`` is box averaging (``F.interpolate(mode="area")``), which torchvision does not name.
    """
    if mode == "area":
        return F.interpolate(img[None], size=size, mode="area")[0]
    from engine import _torchvision_shim

    _torchvision_shim.ensure()
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    interp = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
              "nearest": InterpolationMode.NEAREST}[mode]
    out: torch.Tensor = TF.resize(img, list(size), interpolation=interp, antialias=antialias and mode != "nearest")
    return out


def five_offsets(total: int, size: int) -> list[int]:
    """Start offsets of Qi's five crops along a side of length ``total``: uniformly spaced from
    0 to ``total - size`` (first flush with the near edge, last with the far edge)."""
    return [int(v) for v in torch.linspace(0, max(0, total - size), 5).round().long().tolist()]


def five_crop_layout(shape: tuple[int, int], size: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Where :func:`five_crops` takes its crops from an image of ``shape`` (rows, cols).

    Qi et al. 2019 Sec. 3.3 / Fig. 4: the shorter side is scaled to ``size`` and five
    ``size x size`` crops are taken at uniformly spaced offsets along the longer side, the first
    at 0 and the last flush with the far edge.

    Returns:
        ``((rows, cols) after resizing the shorter side to size, [(top, left) of each crop])``.
    """
    nh, nw = shorter_side_shape(shape, size)
    starts = five_offsets(max(nh, nw), size)
    if nw >= nh:
        return (nh, nw), [(0, v) for v in starts]
    return (nh, nw), [(v, 0) for v in starts]


def five_crops(img: torch.Tensor, size: int, *, mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """Five uniformly spaced ``size x size`` crops along the longer side -> ``(5, C, size, size)``."""
    x = resize_shorter_side(img, size, mode=mode, antialias=antialias)
    _, offsets = five_crop_layout((int(img.shape[-2]), int(img.shape[-1])), size)
    return torch.stack([x[:, t:t + size, left:left + size] for t, left in offsets])


def center_crop(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size`` crop of ``(..., H, W)`` (Qi's single-input evaluation crop)."""
    h, w = size
    r0, c0 = (int(img.shape[-2]) - h) // 2, (int(img.shape[-1]) - w) // 2
    return img[..., r0:r0 + h, c0:c0 + w]


def random_crop(img: torch.Tensor, size: tuple[int, int], draw: Callable[[int], int]) -> torch.Tensor:
    """A ``size`` crop of ``(..., H, W)`` at a random offset (Qi's training crop): ``draw(n)``
    returns an integer in ``[0, n]``, first for the top, then for the left offset."""
    h, w = size
    r0 = draw(int(img.shape[-2]) - h)
    c0 = draw(int(img.shape[-1]) - w)
    return img[..., r0:r0 + h, c0:c0 + w]


def random_crop_views(img: torch.Tensor, size: int, n: int, gen: torch.Generator, *, mirror: bool = True) -> torch.Tensor:
    """Qi 2019 random-crop training views: shorter side to ``size``, ``n`` random crops (and their mirrors).

    Args:
        img: ``(C, H, W)`` float image.
        size: Crop side.
        n: Number of random crops.
        gen: Generator; each crop draws ``top`` then ``left`` (the only randomness).
        mirror: Also add each crop's left-right mirror (Hijab's flips).

    Returns:
        ``(n or 2n, C, size, size)``: crop, mirror, crop, mirror, ...
    """
    rs = resize_shorter_side(img, size)
    h, w = rs.shape[-2:]
    crops = []
    for _ in range(n):
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
        c = rs[:, top:top + size, left:left + size]
        crops += [c, c.flip(-1)] if mirror else [c]
    return torch.stack(crops)
