"""One DICOM file -> :class:`LoadedImage` (:func:`read_dicom`), its header only
(:func:`probe_dicom`), and a quick reduced-resolution first view (:func:`decode_preview`)."""

from __future__ import annotations

from os import PathLike

import numpy as np

from engine.io.dicom.dataset import header_errors, read_dataset
from engine.io.dicom.layout import check_size, pixel_layout
from engine.io.dicom.meta import build_ids, build_meta
from engine.io.dicom.pixels import decode_pixels, frame_positions
from engine.io.limits import MAX_PIXELS
from engine.io.types import Identifiers, ImageMeta, LoadedImage, Modality


def read_dicom(
    path: str | PathLike[str],
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
    force: bool = False,
) -> LoadedImage:
    """Read one DICOM file into a :class:`LoadedImage`.

    Args:
        path: The file.
        modality_hint: Modality to use when the file says none / OT.
        max_pixels: Refuse headers claiming more rows x cols x frames than this.
        force: Accept files without preamble / ``DICM`` prefix.

    Returns:
        Grey (rows, cols) / (frames, rows, cols) after the Modality LUT with MONOCHROME1
        inverted; colour (rows, cols, 3) / (frames, rows, cols, 3) RGB.

    Raises:
        ImageReadError: A specific subclass naming the file and the reason.
    """
    p = str(path)
    ds = read_dataset(p, force=force)
    with header_errors(p):
        layout = pixel_layout(ds, p)
        check_size(ds, p, layout, max_pixels)
        meta = build_meta(ds, p, layout, modality_hint)
        ids = build_ids(ds)
    arr = decode_pixels(ds, p, layout)
    if layout.frames > 1 and arr.ndim == 3 and not (layout.samples == 3 or layout.photometric == "PALETTE COLOR"):
        positions = frame_positions(ds, layout.frames)
        if positions is not None:
            order = np.argsort(positions, kind="stable")
            if np.any(order != np.arange(len(order))):
                arr = arr[order]
            meta.slice_positions = [positions[i] for i in order]
            repeats = len(positions) - len({round(p, 4) for p in positions})
            if repeats:
                meta.extra["repeated_positions"] = str(repeats)
    return LoadedImage(pixels=arr, meta=meta, ids=ids)


def probe_dicom(
    path: str | PathLike[str], *, modality_hint: Modality | None = None, force: bool = False
) -> tuple[ImageMeta, Identifiers, tuple[int, ...]]:
    """Header-only: metadata, identifiers and the shape :func:`read_dicom` would return."""
    p = str(path)
    ds = read_dataset(p, force=force)
    with header_errors(p):
        layout = pixel_layout(ds, p)
        return build_meta(ds, p, layout, modality_hint), build_ids(ds), layout.shape
