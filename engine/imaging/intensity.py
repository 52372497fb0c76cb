"""Intensity scaling and colour policy (pure functions on arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_unit_range(pixels: np.ndarray, windows: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """Intensities to float32 [0, 1]: uint8 / 255, else the first DICOM window, else 0.5-99.5 percentiles.

    Args:
        pixels: Any-dtype array (2-D grey or (rows, cols, 3) colour).
        windows: DICOM ``(centre, width)`` pairs; the first with ``width > 0`` is used.
    """
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if windows:
        c, w = windows[0]
        if w > 0:
            return np.clip((a - (c - w / 2.0)) / w, 0.0, 1.0)
    return percentile_unit(a)


def percentile_unit(a: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    """Robust min-max to [0, 1] between two percentiles (float32)."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = np.percentile(a, [lo_pct, hi_pct]) if a.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def to_gray(a: np.ndarray) -> np.ndarray:
    """Colour to luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B); 2-D unchanged.

    uint8 input goes through OpenCV's fixed-point conversion, so a colour PNG gives exactly the
    bytes ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` gives (what the shipped models were trained on).
    """
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        if a.dtype == np.uint8:
            import cv2

            code = cv2.COLOR_RGBA2GRAY if a.shape[-1] == 4 else cv2.COLOR_RGB2GRAY
            return np.asarray(cv2.cvtColor(np.ascontiguousarray(a), code))
        return (a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114).astype(np.float32)
    return a
