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
The chest-wall test, the breast mask and the breast's box are
:func:`engine.imaging.breast.chest_wall_side`, :func:`~engine.imaging.breast.breast_mask` and
:func:`~engine.imaging.breast.breast_bbox` (the one implementation; import them from there).
"""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np

from engine.io.types import LoadedImage

from engine.imaging.breast import chest_wall_side


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
