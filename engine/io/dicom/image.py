"""One DICOM file -> :class:`LoadedImage` (:func:`read_dicom`), its header only
(:func:`probe_dicom`), and a quick reduced-resolution first view (:func:`decode_preview`)."""

from __future__ import annotations

from os import PathLike

import numpy as np

from engine.io.dicom.codecs import J2K_SYNTAXES, compressed_frames, reduced_j2k
from engine.io.dicom.codestream import check_codestreams
from engine.io.dicom.dataset import header_errors, read_dataset, transfer_syntax
from engine.io.dicom.layout import check_size, pixel_layout
from engine.io.dicom.meta import build_ids, build_meta
from engine.io.dicom.pixels import decode_pixels, frame_positions, grey_values
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


def decode_preview(
    path: str | PathLike[str],
    *,
    max_side: int = 1024,
    full_size: bool = False,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LoadedImage | None:
    """A quick first view of a JPEG 2000 image from its reduced-resolution levels.

    Only the coarse wavelet levels are decoded (1/2^r of each side, the smallest ``r`` that
    brings the longer side to ``max_side`` or below): tens of milliseconds for a 4096 x 3328
    mammogram whose full decode takes seconds. The values are the full image's (Modality LUT,
    MONOCHROME1 inverted), so the same window/level applies; :func:`read_dicom` gives the full
    resolution afterwards.

    Args:
        path: The DICOM file.
        max_side: Longest side wanted.
        full_size: Repeat each pixel 2^r times so the preview has the full image's geometry
            (rows, cols, pixel spacing): a viewer can show it, and later swap in the full
            decode, without changing any coordinates.
        modality_hint: As for :func:`read_dicom`.
        max_pixels: As for :func:`read_dicom`.

    Returns:
        The preview (``meta.extra["preview_reduce"]`` = r, ``meta.extra["preview"] = "1"``),
        or None when the file has no quicker first view (not single-frame grey JPEG 2000,
        already small, or the reduced decode failed); bad files raise as :func:`read_dicom`.

    Raises:
        ImageReadError: A specific subclass naming the file and the reason.
    """
    p = str(path)
    ds = read_dataset(p)
    with header_errors(p):
        layout = pixel_layout(ds, p)
        if (transfer_syntax(ds) not in J2K_SYNTAXES or layout.frames != 1 or layout.samples != 1
                or not layout.photometric.startswith("MONO")):
            return None
        check_size(ds, p, layout, max_pixels)
        meta = build_meta(ds, p, layout, modality_hint)
        ids = build_ids(ds)
    check_codestreams(ds, p, layout)
    frames = compressed_frames(ds, layout)
    if len(frames) != 1:
        return None
    got = reduced_j2k(frames[0], layout.rows, layout.cols, max_side)
    if got is None:
        return None
    small, r = got
    small = small.astype(np.dtype(f"{'i' if layout.signed else 'u'}{layout.bits_allocated // 8}"), copy=False)
    if layout.bits_stored < layout.bits_allocated and not layout.signed:
        small = small & ((1 << layout.bits_stored) - 1)
    pixels = grey_values(ds, np.ascontiguousarray(small), layout)
    f = 2**r
    if full_size:
        import cv2  # resize releases the GIL (np.repeat of 13 Mpixels holds it for ~30 ms)

        big = cv2.resize(pixels, (pixels.shape[1] * f, pixels.shape[0] * f), interpolation=cv2.INTER_NEAREST)
        pixels = np.ascontiguousarray(big[: layout.rows, : layout.cols])
    elif meta.pixel_spacing is not None:
        meta.pixel_spacing = (meta.pixel_spacing[0] * f, meta.pixel_spacing[1] * f)
    meta.extra["preview"] = "1"
    meta.extra["preview_reduce"] = str(r)
    return LoadedImage(pixels=pixels, meta=meta, ids=ids)
