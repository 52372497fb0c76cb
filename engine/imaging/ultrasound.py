"""Clean ultrasound input: find the scan area, remove burned-in calipers, markers and text.

Why: a model trained on one hospital's images learns that hospital's screen — rulers, colour
bars, the black frame, caliper crosses and annotation text burned into the pixels — instead of
the lesion (shortcut learning). Every US lesion model of this project sees only the cleaned scan
area (:func:`clean_ultrasound`):

1. :func:`scan_area`: the B-mode sector/rectangle is the largest connected region of non-black
   pixels after a morphological opening large enough to cut off ruler ticks and text; its
   bounding box (tightened to rows/columns that are mostly inside the region) is kept.
2. :func:`marker_mask`: burned-in marks are thin, bright, sharp-edged and small. Candidates are
   pixels of a white top-hat (structures narrower than 7 px, far brighter than their
   surroundings); connected candidates are kept as *glyphs* (crosses, digits, letters: at least
   5 × 5 px, sparse, not an elongated tissue streak), and small *dots* only where they join a
   glyph (the dotted line between two caliper crosses). Saturated colour (a colour caliper,
   Doppler box or colour bar) is always a mark: B-mode is grey.
3. The marks are dilated by one pixel and filled by OpenCV's Telea inpainting
   (Telea A, "An image inpainting technique based on the fast marching method", J. Graphics
   Tools 9(1), 2004) from the surrounding speckle.

Everything is pure NumPy/OpenCV and deterministic; coordinates are pixels of the input image
(x = column, y = row, exclusive ``x1``/``y1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CleanedUS", "clean_ultrasound", "marker_mask", "scan_area", "scanner_shift", "to_gray_u8"]


def to_gray_u8(pixels: np.ndarray) -> np.ndarray:
    """Any 2-D or RGB(A) array to uint8 grey (non-uint8 data: 0.5-99.5 percentile window)."""
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim != 2:
        raise ValueError(f"expected a 2-D or RGB image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    if a.size == 0:
        raise ValueError("empty image")
    lo, hi = np.percentile(a, [0.5, 99.5])
    if np.issubdtype(np.asarray(pixels).dtype, np.integer) and float(a.max()) <= 255 and float(a.min()) >= 0:
        lo, hi = 0.0, 255.0
    hi = max(float(hi), float(lo) + 1.0)
    out: np.ndarray = np.clip((a - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def scan_area(gray: np.ndarray, *, black: int = 6, min_fraction: float = 0.15) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` of the B-mode scan area of a grey uint8 image.

    Args:
        gray: Grey image (uint8).
        black: Grey level at or below which a (median-filtered) pixel is screen background.
        min_fraction: When the found region covers less than this share of the image, the whole
            image is returned (nothing trustworthy was found, e.g. an already cropped dark image).
    """
    rows, cols = gray.shape
    small_scale = max(1, int(round(max(rows, cols) / 256)))
    g = gray[::small_scale, ::small_scale] if small_scale > 1 else gray
    g = cv2.medianBlur(np.ascontiguousarray(g), 5)
    fg0 = (g > black).astype(np.uint8)
    k = max(3, int(round(min(g.shape) * 0.04)) | 1)
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    fg = np.asarray(cv2.morphologyEx(cv2.morphologyEx(fg0, cv2.MORPH_OPEN, kern), cv2.MORPH_CLOSE, kern))
    n, lab, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return 0, 0, cols, rows
    i = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
    region = lab == i
    if region.sum() < min_fraction * region.size:
        return 0, 0, cols, rows
    x, y, w, h = (int(v) for v in st[i, :4])
    sub = region[y:y + h, x:x + w]
    # Tighten to rows/columns mostly inside the region (drops a thin ruler glued to the frame).
    rr = np.flatnonzero(sub.mean(axis=1) > 0.5)
    cc = np.flatnonzero(sub.mean(axis=0) > 0.5)
    if rr.size and cc.size:
        y, h = y + int(rr[0]), int(rr[-1] - rr[0] + 1)
        x, w = x + int(cc[0]), int(cc[-1] - cc[0] + 1)
    s = small_scale
    return (max(0, x * s), max(0, y * s), min(cols, (x + w) * s), min(rows, (y + h) * s))


def marker_mask(gray: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of burned-in calipers, markers and text (see module docstring).

    Args:
        gray: Grey uint8 image.
        rgb: The same image in colour when it has colour (saturated pixels are marks).
    """
    g = np.ascontiguousarray(gray)
    th = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7)))
    cand = ((th > 60) & (g > 160)).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    w = st[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    h = st[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    area = st[:, cv2.CC_STAT_AREA].astype(np.float64)
    fill = area / np.maximum(w * h, 1.0)
    glyph = (w >= 5) & (h >= 5) & (area <= 200) & (fill <= 0.6) & (np.maximum(w, h) <= 40)
    glyph &= (w <= 2.2 * h) & (h <= 2.2 * w)  # not an elongated (curved) tissue streak
    dot = (area <= 12) & ~glyph
    glyph[0] = dot[0] = False
    gm = glyph[lab]
    dm = dot[lab]
    out: np.ndarray = gm.copy()
    if gm.any() and dm.any():
        joined = cv2.dilate((gm | dm).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
        m, cl = cv2.connectedComponents(joined, connectivity=8)
        has_glyph = np.zeros(m, bool)
        has_glyph[np.unique(cl[gm])] = True
        has_glyph[0] = False
        out |= dm & has_glyph[cl]
    if rgb is not None and rgb.ndim == 3 and rgb.shape[-1] >= 3:
        c = rgb[..., :3].astype(np.int16)
        spread = c.max(axis=-1) - c.min(axis=-1)
        out |= spread > 60
    return out


@dataclass
class CleanedUS:
    """A cleaned ultrasound image and where it came from.

    Attributes:
        image: Grey uint8 scan area with the marks inpainted (what models see).
        area: ``(x0, y0, x1, y1)`` of the scan area in the input image.
        marks: Boolean mask (input-image grid) of the pixels found as marks and inpainted.
    """

    image: np.ndarray
    area: tuple[int, int, int, int]
    marks: np.ndarray

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        """A point of :attr:`image` in input-image pixels."""
        return x + self.area[0], y + self.area[1]


def clean_ultrasound(pixels: np.ndarray, *, crop: bool = True, inpaint: bool = True) -> CleanedUS:
    """Scan area + mark removal of one ultrasound image (2-D grey or RGB).

    Args:
        pixels: The decoded image (any dtype; RGB allowed).
        crop: Cut to :func:`scan_area`.
        inpaint: Fill marks by Telea inpainting (else they are only reported).
    """
    a = np.asarray(pixels)
    rgb = a if (a.ndim == 3 and a.shape[-1] in (3, 4)) else None
    gray = to_gray_u8(a)
    rows, cols = gray.shape
    area = scan_area(gray) if crop else (0, 0, cols, rows)
    x0, y0, x1, y1 = area
    sub = np.ascontiguousarray(gray[y0:y1, x0:x1])
    sub_rgb = None
    if rgb is not None:
        sub_rgb = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        if sub_rgb.dtype != np.uint8:
            sub_rgb = None
    m = marker_mask(sub, sub_rgb)
    marks = np.zeros((rows, cols), bool)
    marks[y0:y1, x0:x1] = m
    if inpaint and m.any():
        mm = cv2.dilate(m.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
        sub = cv2.inpaint(sub, mm, 3, cv2.INPAINT_TELEA)
    return CleanedUS(sub, (int(x0), int(y0), int(x1), int(y1)), marks)


def scanner_shift(gray: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0,
                  geometry: bool = True) -> np.ndarray:
    """A random scanner/preset change of a grey uint8 B-mode image (training augmentation).

    Simulates what differs between machines and sites: overall gain and gamma (log-compression
    curve), a smooth depth-dependent gain (time-gain compensation), multiplicative speckle,
    blur (a softer transducer / smoothing preset), a lower lateral or axial resolution (down-
    then up-sampling), and an aspect change (anisotropic rescale). Output has the input's shape.

    Args:
        gray: Grey uint8 image.
        rng: Random generator (reproducible augmentation).
        strength: 0 = identity, 1 = the ranges used in training.
        geometry: Allow the aspect change (off when a pixel mask must stay aligned).
    """
    a = gray.astype(np.float32) / 255.0
    rows, cols = a.shape
    s = float(strength)
    gamma = float(np.exp(rng.uniform(-0.35, 0.35) * s))
    a = np.power(np.clip(a, 0, 1), gamma) * float(np.exp(rng.uniform(-0.3, 0.3) * s))
    knots = rng.uniform(-0.35, 0.35, size=4) * s  # TGC: smooth gain over depth
    depth = np.interp(np.linspace(0, 3, rows), np.arange(4), knots)
    a = a * np.exp(depth)[:, None].astype(np.float32)
    if rng.random() < 0.5 * s + 1e-9:
        a = a * rng.gamma(8.0, 1.0 / 8.0, size=a.shape).astype(np.float32)
    sigma = float(rng.uniform(0, 1.5) * s)
    if sigma > 0.3:
        a = cv2.GaussianBlur(a, (0, 0), sigma)
    fx, fy = float(np.exp(rng.uniform(-0.6, 0) * s)), float(np.exp(rng.uniform(-0.6, 0) * s))
    if fx < 0.95 or fy < 0.95:
        small = cv2.resize(a, (max(8, int(cols * fx)), max(8, int(rows * fy))), interpolation=cv2.INTER_AREA)
        a = cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)
    asp = float(np.exp(rng.uniform(-0.2, 0.2) * s))
    if geometry and abs(asp - 1.0) > 0.03:
        w2 = max(8, int(round(cols * asp)))
        b = cv2.resize(a, (w2, rows), interpolation=cv2.INTER_LINEAR)
        a = b[:, (w2 - cols) // 2:(w2 - cols) // 2 + cols] if w2 >= cols else cv2.copyMakeBorder(
            b, 0, 0, (cols - w2) // 2, cols - w2 - (cols - w2) // 2, cv2.BORDER_REFLECT)
    out: np.ndarray = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out
