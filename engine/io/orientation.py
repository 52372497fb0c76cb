"""Mammogram orientation: chest wall on the LEFT, nipple to the right, and the breast's box.

An et al. (2019, "Multi-scale patches", Data Preparation) first flip all scans "to one
orientation" and then crop regions "right-aligned on the nipple"; this module provides that
normalisation for the patch models and the viewer:

* :func:`normalise_mammogram_orientation` flips right breasts (as hung for reading, a right
  breast has its chest wall on the image's right edge) or, when laterality is unknown, finds
  the chest-wall side from where the tissue mass lies (the breast is widest at the chest wall,
  so more bright tissue sits on that half).
* :func:`map_points_back` / :func:`map_box_back` take coordinates found on the normalised image
  back to the original image.
* :func:`breast_bbox` finds the breast (Otsu threshold + largest connected component) for
  breast-aligned crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from engine.io.types import LoadedImage

Side = Literal["left", "right"]


def _grey(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 3:
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D (or RGB) image, got shape {a.shape}")
    return a


def _thumbnail(a: np.ndarray, target: int = 512) -> tuple[np.ndarray, int]:
    step = max(1, int(np.ceil(max(a.shape) / target)))
    return np.ascontiguousarray(a[::step, ::step]), step


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def breast_mask(array: np.ndarray) -> np.ndarray:
    """Foreground mask of the breast at thumbnail resolution (Otsu + largest component).

    Args:
        array: Grey (rows, cols) or RGB mammogram (any dtype), MONOCHROME2 (tissue bright).

    Returns:
        A boolean mask of the thumbnail (at most 512 px on the long side).
    """
    import cv2

    thumb, _ = _thumbnail(_grey(array))
    img = _to_uint8(thumb)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    otsu, _ = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu splits dense tissue from fat + background; half of it keeps the fatty margin and the
    # skin line while staying above film/detector background.
    _, mask = cv2.threshold(img, max(1.0, 0.5 * otsu), 255, cv2.THRESH_BINARY)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def breast_bbox(array: np.ndarray, *, margin: int = 0) -> tuple[int, int, int, int]:
    """Bounding box of the breast: ``(x0, y0, x1, y1)`` in pixels, end-exclusive.

    Half of Otsu's threshold on a smoothed, percentile-stretched thumbnail separates tissue from
    background; the largest connected component drops labels and markers burned into the
    film (mini-MIAS has both). Flat images return the whole image.

    Args:
        array: Grey (rows, cols) or RGB image.
        margin: Pixels added on each side (clipped to the image).

    Returns:
        (x0, y0, x1, y1) with x = column, y = row, so ``array[y0:y1, x0:x1]`` is the crop.
    """
    g = _grey(array)
    rows, cols = g.shape
    if g.size == 0 or float(g.max()) == float(g.min()):
        return 0, 0, cols, rows
    mask = breast_mask(g)
    _, step = _thumbnail(g)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0, 0, cols, rows
    x0, x1 = int(xs.min()) * step, min(cols, (int(xs.max()) + 1) * step)
    y0, y1 = int(ys.min()) * step, min(rows, (int(ys.max()) + 1) * step)
    return max(0, x0 - margin), max(0, y0 - margin), min(cols, x1 + margin), min(rows, y1 + margin)


def chest_wall_side(array: np.ndarray) -> Side:
    """Which image edge the chest wall is on, from where the breast tissue lies.

    The breast is widest at the chest wall and tapers to the nipple, so the half of the
    foreground mask holding more pixels is the chest-wall half.

    Args:
        array: Grey (rows, cols) or RGB mammogram.

    Returns:
        "left" or "right".
    """
    mask = breast_mask(array)
    cols = mask.shape[1]
    left = int(mask[:, : cols // 2].sum())
    right = int(mask[:, cols - cols // 2 :].sum())
    return "left" if left >= right else "right"


def normalise_mammogram_orientation(
    image: LoadedImage | np.ndarray,
    laterality: str | None = None,
    *,
    detect: bool = False,
) -> tuple[np.ndarray, bool]:
    """Flip a mammogram so the chest wall is on the LEFT (An et al. 2019, Data Preparation).

    With a known laterality the conventional reading orientation is assumed (right breast:
    chest wall on the right edge -> flipped; left breast: unchanged). When laterality is
    unknown -- or ``detect`` is True -- the side is found from the tissue mass
    (:func:`chest_wall_side`).

    Args:
        image: A :class:`LoadedImage` (its ``meta.laterality`` is used when ``laterality`` is
            None) or an array (rows, cols) / (rows, cols, 3).
        laterality: "L", "R" or None (unknown).
        detect: Ignore laterality and always decide from the pixels.

    Returns:
        (array, flipped): a left-right flipped *view* of the input when ``flipped`` (no copy),
        else the input array itself.
    """
    if isinstance(image, LoadedImage):
        array = image.pixels
        if laterality is None:
            laterality = image.meta.laterality
    else:
        array = np.asarray(image)
    lat = (laterality or "").strip().upper()[:1]
    if detect or lat not in ("L", "R"):
        flip = chest_wall_side(array) == "right"
    else:
        flip = lat == "R"
    return (array[:, ::-1] if flip else array), flip


def map_points_back(points: Sequence[Sequence[float]] | np.ndarray, width: int, flipped: bool) -> np.ndarray:
    """Map (x, y) pixel *centre* coordinates from the normalised image back to the original.

    A left-right flip sends column ``x`` to ``width - 1 - x``; rows are unchanged. The map is
    its own inverse, so it also maps original -> normalised.

    Args:
        points: N x 2 array-like of (x, y) (x = column index, y = row index).
        width: Image width (columns).
        flipped: The flag returned by :func:`normalise_mammogram_orientation`.

    Returns:
        An (N, 2) float array.
    """
    pts = np.array(points, dtype=np.float64).reshape(-1, 2)
    if flipped:
        pts[:, 0] = (width - 1) - pts[:, 0]
    return pts


def map_box_back(box: Sequence[float], width: int, flipped: bool) -> tuple[float, float, float, float]:
    """Map an end-exclusive box ``(x0, y0, x1, y1)`` (pixel *edges*) back through the flip.

    Edges run from 0 to ``width``, so a flip sends edge ``x`` to ``width - x`` and swaps x0/x1.

    Args:
        box: (x0, y0, x1, y1) on the normalised image.
        width: Image width.
        flipped: As returned by :func:`normalise_mammogram_orientation`.

    Returns:
        The box on the original image, still with x0 <= x1.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if flipped:
        x0, x1 = width - x1, width - x0
    return x0, y0, x1, y1
