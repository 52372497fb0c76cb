"""The one breast mask and the one chest-wall test (mammograms, MONOCHROME2: tissue bright).

Used by the MG input preparation (chest wall turned to the left, An et al. 2019 "Data
Preparation"), An's nipple-aligned crop and patch sampler, entropy saliency, the viewer's
hanging and the demo builder: they all agree on where the breast is.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Side = Literal["left", "right"]


def _grey(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32).mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D (or RGB) image, got shape {a.shape}")
    return a


def breast_mask(img: np.ndarray) -> np.ndarray:
    """Boolean breast mask: low threshold above the background, opening, largest component.

    Otsu on a mammogram often separates dense from fatty tissue rather than breast from
    background, so the threshold is 8 % of the way from the background level (median of the
    darkest tenth) to the 99th percentile; an opening cuts thin links to film labels and
    artefacts, and the largest connected component is the breast.

    Args:
        img: ``(rows, cols)`` (or RGB) mammogram, any dtype.

    Returns:
        Boolean mask of the same rows/cols.
    """
    import cv2

    a = np.asarray(_grey(img), dtype=np.float32)
    flat = np.sort(a.ravel())
    if flat.size == 0 or flat[-1] <= flat[0]:
        return np.zeros(a.shape, bool)
    bg = float(np.median(flat[: max(1, flat.size // 10)]))
    hi = float(flat[min(flat.size - 1, int(0.99 * flat.size))])
    if hi <= bg:
        hi = float(flat[-1])
    m = (a > bg + 0.08 * (hi - bg)).astype(np.uint8)
    k = max(3, (min(a.shape) // 100) | 1)
    m = np.asarray(cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))),
                   np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return m > 0
    kbest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return np.asarray(lab == kbest)


def thumbnail_step(shape: tuple[int, ...], target: int = 256) -> int:
    """Stride that brings the longer side to about ``target`` pixels."""
    return max(1, int(max(shape[:2])) // target)


def chest_wall_side(array: np.ndarray) -> Side:
    """Which image edge the chest wall is on: the half of the breast mask holding more tissue.

    The breast is widest at the chest wall and tapers to the nipple. Computed on a strided
    thumbnail (about 256 px), so it costs about a millisecond on a full-field mammogram.

    Args:
        array: ``(rows, cols)`` or RGB mammogram, any dtype.

    Returns:
        ``"left"`` or ``"right"``.
    """
    g = _grey(array)
    rs = max(1, g.shape[0] // 256)
    cs = max(1, g.shape[1] // 256)
    m = breast_mask(g[::rs, ::cs])
    half = m.shape[1] // 2
    return "right" if int(m[:, half:].sum()) > int(m[:, :half].sum()) else "left"


def breast_bbox(array: np.ndarray, *, margin: int = 0) -> tuple[int, int, int, int]:
    """Bounding box of the breast mask: ``(x0, y0, x1, y1)`` in pixels, end-exclusive.

    Flat images give the whole image.
    """
    g = _grey(array)
    rows, cols = g.shape
    if g.size == 0 or float(g.max()) == float(g.min()):
        return 0, 0, cols, rows
    step = max(1, int(np.ceil(max(g.shape) / 512)))
    mask = breast_mask(g[::step, ::step])
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0, 0, cols, rows
    x0, x1 = int(xs.min()) * step, min(cols, (int(xs.max()) + 1) * step)
    y0, y1 = int(ys.min()) * step, min(rows, (int(ys.max()) + 1) * step)
    return max(0, x0 - margin), max(0, y0 - margin), min(cols, x1 + margin), min(rows, y1 + margin)
