"""Modality of a raster image (PNG/JPEG/TIFF/PGM carry none) from its content, when confident.

The rule (stated, conservative; anything in between is "cannot tell"):

* **MG** when the samples are deeper than 8 bits (16-bit exports are mammography/film scans;
  ultrasound frames are 8-bit), or when the image is large (long side >= 1000 px), grey and
  mostly dark background (>= 40 % of pixels below 5 % of the maximum: a breast on black).
* **US** when the image is small (long side < 1000 px), 8-bit, and has less than 35 % dark
  background.
* otherwise None, with the reason, so the caller asks for ``--modality`` or a manifest column.

On the shared dev data (BUSI 780 PNGs, mini-MIAS 322 PGM/PNGs, MIMBCD ultrasound PNGs) the rule
is measured in ``tests/engine/test_modality_guess.py``; DICOM files carry their Modality and
never reach this rule.
"""

from __future__ import annotations

import numpy as np

from engine.io.types import LoadedImage

__all__ = ["guess_raster_modality"]


def guess_raster_modality(image: LoadedImage) -> tuple[str | None, str]:
    """``(modality or None, reason)`` for a raster image (see module docstring)."""
    px = image.pixels
    if px.ndim == 4 or (px.ndim == 3 and not image.is_rgb):
        return None, "a multi-frame raster stack"
    rgb = image.is_rgb
    grey = px if not rgb else px[..., :3].mean(axis=-1)
    if rgb:
        chroma = float(np.abs(px[..., 0].astype(np.int32) - px[..., 1].astype(np.int32)).mean())
        if chroma < 1.0:
            rgb = False  # grey stored as RGB (common for exported ultrasound frames)
    long_side = max(px.shape[0], px.shape[1])
    bits = int(image.meta.bits_stored or 8)
    top = float(grey.max())
    if top <= 0:
        return None, "the image is blank"
    step = max(1, int(np.ceil(np.sqrt(grey.size / 250_000))))  # a bounded sample of pixels
    dark = float((grey[::step, ::step] < 0.05 * top).mean())
    if bits > 8 and not rgb:
        return "MG", f"{bits}-bit grey raster (ultrasound frames are 8-bit)"
    if long_side >= 1000 and not rgb and dark >= 0.40:
        return "MG", f"large grey image ({long_side} px) with {dark:.0%} dark background"
    if long_side < 1000 and bits <= 8 and dark < 0.35:
        return "US", f"small 8-bit image ({long_side} px) with {dark:.0%} dark background"
    return None, (f"{long_side} px, {bits}-bit, {'colour' if rgb else 'grey'}, {dark:.0%} dark background "
                  "fits neither the mammography nor the ultrasound rule")
