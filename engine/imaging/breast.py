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


#: Film cleaning works on a grid of at most this many pixels per side (mini-MIAS, the training
#: data, is 1024 x 1024: cleaned at full resolution). A full-field film (4560 x 2864 CBIS-DDSM)
#: is analysed on a strided copy and its masks are spread back to full resolution: the
#: morphology at full size cost ~4.5 s per film, against ~0.2 s on the grid.
FILM_GRID = 1024


def _film_levels(a: np.ndarray) -> tuple[float, float]:
    """``(background, top)`` levels of a film: the median of its darkest tenth and its 99th
    order statistic, exactly as a full sort gives them, by partial partition (a full sort of a
    13 MP film is ~1 s)."""
    flat = np.asarray(a, np.float32).ravel()
    n = max(1, flat.size // 10)
    top = min(flat.size - 1, int(0.99 * flat.size))
    mid = [(n - 1) // 2, n // 2]
    part = np.partition(flat, sorted({*mid, top}))
    bg = float(np.median(part[mid]) if n % 2 == 0 else part[mid[0]])
    return bg, float(part[top])


def film_artefacts(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Burned-in film labels/markers and film-border strips of a digitised film mammogram.

    Digitised screen-film mammograms (mini-MIAS) carry lead-letter labels, orientation markers
    and the film's own edge (bright strips along the image border). They sit *outside* the
    breast: everything brighter than the background that is not the breast component of
    :func:`breast_mask` (grown by ``~2 %`` of the image side so the skin line and a lesion on it
    stay) is an artefact. A bright strip that touches an image edge and is long and thin
    with dark film on both sides (a film edge) is also removed where the opening did not
    separate it from the breast.

    Args:
        img: ``(rows, cols)`` (or RGB) mammogram, MONOCHROME2 (tissue bright), any dtype.

    Returns:
        ``(keep, artefacts)``: boolean masks of the same rows/cols -- the breast region that is
        kept, and the bright pixels outside it that are removed.
    """
    keep, artefacts, _ = _film_analysis(np.asarray(_grey(img), dtype=np.float32))
    return keep, artefacts


def _film_analysis(a: np.ndarray, grid: int = FILM_GRID) -> tuple[np.ndarray, np.ndarray, float]:
    """``(keep, artefacts, background level)`` of a float32 grey film.

    A film larger than ``grid`` pixels a side is analysed on its strided copy: the kept region
    found there is spread back (each grid pixel stands for the step x step block it samples),
    and the bright pixels outside it are taken at full resolution with the grid's levels.
    """
    rows, cols = a.shape
    step = int(np.ceil(max(rows, cols) / grid))
    g = np.ascontiguousarray(a[::step, ::step]) if step > 1 else a
    bg, hi = _film_levels(g)
    threshold = bg + 0.08 * max(hi - bg, 1e-6)
    bright = g > threshold
    keep = _film_keep(g, bright)
    if step > 1:
        keep = np.ascontiguousarray(np.repeat(np.repeat(keep, step, axis=0), step, axis=1)[:rows, :cols])
        bright = a > threshold
    return keep, bright & ~keep, bg


def _film_keep(a: np.ndarray, bright: np.ndarray) -> np.ndarray:
    """The kept region of a film at its own resolution (``bright``: above its threshold)."""
    import cv2

    rows, cols = a.shape
    breast = breast_mask(a)
    if not breast.any():
        return np.ones(a.shape, bool)
    # film-edge strips: long straight bright runs (>= 40 % of the image side) a few per cent
    # wide with dark film on BOTH sides -- mini-MIAS pads each film, so its edge lies anywhere
    # in the frame. A chest wall is bright on its inner side too, so it is never taken, nor is
    # a line with breast on both sides (a scanner streak across the breast is tissue's business).
    strips = np.zeros(a.shape, bool)
    for axis in (0, 1):  # 0: vertical strips (runs down columns), 1: horizontal strips
        b = bright if axis == 0 else bright.T
        n_rows, n_lines = b.shape
        per_line = np.cumsum((breast if axis == 0 else breast.T).sum(axis=0))
        total = float(per_line[-1])
        tall = max(15, int(0.4 * n_rows))
        v = cv2.morphologyEx(b.astype(np.uint8), cv2.MORPH_OPEN, np.ones((tall, 1), np.uint8)) > 0
        cov = v.mean(axis=0)
        on = np.concatenate([[False], cov > 0.4, [False]])
        starts, ends = np.flatnonzero(on[1:] & ~on[:-1]), np.flatnonzero(~on[1:] & on[:-1])
        for s0, e0 in zip(starts, ends):
            if e0 - s0 > max(3, int(0.05 * n_lines)):
                continue
            level = float(cov[s0:e0].mean())
            outer = [cov[j] if 0 <= j < n_lines else 0.0 for j in [*range(s0 - 8, s0 - 2), *range(e0 + 2, e0 + 8)]]
            before = float(per_line[s0 - 1]) if s0 > 0 else 0.0
            after = total - float(per_line[e0 - 1])
            if min(before, after) > 0.02 * total:
                continue
            if max(np.mean(outer[:6]), np.mean(outer[6:])) < 0.5 * level:
                lo, hi_ = max(0, s0 - 2), min(n_lines, e0 + 2)
                if axis == 0:
                    strips[:, lo:hi_] |= bright[:, lo:hi_]
                else:
                    strips[lo:hi_, :] |= bright[lo:hi_, :]
    if strips.any():
        strips = np.asarray(cv2.dilate(strips.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        breast = breast & ~strips
    grow = max(3, int(0.02 * max(rows, cols)) | 1)
    keep = np.asarray(cv2.dilate(breast.astype(np.uint8),
                                 cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))) > 0) & ~strips
    return keep


def clean_film(img: np.ndarray) -> np.ndarray:
    """The mammogram with film labels, markers and border strips masked to the background level.

    Masking (not inpainting): the removed pixels lie outside the breast, where the film is
    black, so the background level (median of the darkest tenth) is the right fill. Only the
    detected artefacts (grown by 2 px to take their halo) are filled: faint tissue beyond the
    mask's threshold (the skin line, where mini-MIAS marks a few calcifications) stays.

    Args:
        img: ``(rows, cols)`` mammogram, any dtype (RGB is reduced to grey first).

    Returns:
        Array of the input's grey dtype and shape, artefacts set to the background level.
    """
    a = _grey(img)
    keep, art, bg = _film_analysis(np.asarray(a, dtype=np.float32))
    if not art.any():
        return np.asarray(a)
    import cv2

    fill = np.asarray(cv2.dilate(art.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~keep
    out = np.array(a, copy=True)
    out[fill] = np.asarray(bg).astype(out.dtype)
    return out


def breast_view_box(array: np.ndarray, *, margin: float = 0.02, band: float = 0.06) -> tuple[int, int, int, int]:
    """The breast's box for crop-to-breast display: :func:`breast_mask` without film-edge bands.

    Digitised films (CBIS-DDSM) carry bright bands along their edges that touch the breast and
    join its mask component, so :func:`breast_bbox` of such a film is the whole film. Here the
    same mask is opened with a kernel of ``band`` x the shorter side (bands and label strips
    thinner than that vanish; the breast is far wider), the largest component kept, and its box
    grown by ``margin`` x the image size. Falls back to :func:`breast_bbox` when nothing is left.
    On a strided thumbnail (about 512 px), so it costs milliseconds on a full-field mammogram,
    where :func:`film_artefacts` (full resolution, for model input) would take far longer.

    Args:
        array: ``(rows, cols)`` or RGB mammogram, any dtype.
        margin: Border added around the box, as a fraction of the image width/height.
        band: Thickest edge band removed, as a fraction of the shorter side.

    Returns:
        ``(x0, y0, x1, y1)`` in pixels, end-exclusive.
    """
    import cv2

    g = _grey(array)
    rows, cols = g.shape
    if g.size == 0 or float(g.max()) == float(g.min()):
        return 0, 0, cols, rows
    step = max(1, int(np.ceil(max(g.shape) / 512)))
    m = breast_mask(g[::step, ::step]).astype(np.uint8)
    m_before = m
    k = max(3, int(min(m.shape) * band) | 1)
    m = np.asarray(cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))),
                   np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return breast_bbox(g)
    kbest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[kbest, cv2.CC_STAT_AREA] < 0.5 * max(1, int(m_before.sum())):
        return 0, 0, cols, rows  # the opening ate the mask itself (no compact breast): no crop
    x, y, w, h = (int(v) for v in stats[kbest, :4])
    mx, my = int(margin * cols), int(margin * rows)
    return (max(0, x * step - mx), max(0, y * step - my),
            min(cols, (x + w) * step + mx), min(rows, (y + h) * step + my))
