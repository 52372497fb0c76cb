"""One series from many single-frame files: slices sorted along their normal (or by
InstanceNumber, else file name) into one (frames, rows, cols) stack."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from engine.errors import ImageReadError, UnsupportedImageError
from engine.io.dicom.dataset import floats, header_errors, read_dataset
from engine.io.dicom.layout import PixelLayout, check_size, pixel_layout
from engine.io.dicom.meta import build_ids, build_meta
from engine.io.dicom.pixels import decode_pixels
from engine.io.errors import (
    HeaderMismatchError,
)
from engine.io.limits import MAX_PIXELS, check_dimensions
from engine.io.types import LoadedImage, Modality
from engine.progress import CancelToken, ProgressCallback, check, report


@dataclass
class _Slice:
    path: str
    ds: Any
    layout: PixelLayout
    position: float | None
    instance: int | None


def _slice_position(ds: Any) -> tuple[float | None, tuple[float, ...] | None]:
    pos = floats(ds.get("ImagePositionPatient"))
    orient = floats(ds.get("ImageOrientationPatient"))
    if len(pos) != 3 or len(orient) != 6:
        return None, None
    normal = np.cross(orient[:3], orient[3:])
    return float(np.dot(normal, pos)), tuple(round(v, 4) for v in orient)


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def sort_slices(items: Sequence[tuple[str, Any]]) -> tuple[list[int], list[float] | None, str]:
    """Order slices of one series.

    Slices are sorted by ImagePositionPatient projected on the slice normal
    (ImageOrientationPatient row x column cosines) when every slice has both and they share one
    orientation, else by InstanceNumber, else by file name.

    Args:
        items: (file path, header data set) pairs.

    Returns:
        (order, positions along the normal in that order or None, the rule used).
    """
    info = [_slice_position(ds) for _, ds in items]
    orients = {o for _, o in info}
    if all(p is not None for p, _ in info) and len(orients) == 1:
        positions = [float(p) for p, _ in info]  # type: ignore[arg-type]
        inst_no = [_int_or(ds.get("InstanceNumber"), 0) for _, ds in items]
        # Ties (several phases of a dynamic series at one position) keep acquisition order.
        order = sorted(range(len(items)), key=lambda i: (round(positions[i], 4), inst_no[i], items[i][0]))
        return order, [positions[i] for i in order], "ImagePositionPatient"
    inst = [ds.get("InstanceNumber") for _, ds in items]
    if all(_int_or(v, -1) >= 0 for v in inst):
        order = sorted(range(len(items)), key=lambda i: (int(inst[i]), items[i][0]))
        return order, None, "InstanceNumber"
    order = sorted(range(len(items)), key=lambda i: items[i][0])
    return order, None, "file name"


def read_dicom_series(
    paths: Iterable[str | PathLike[str]],
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> LoadedImage:
    """Read single-frame slices of one series into a sorted (frames, rows, cols) stack.

    Args:
        paths: The slice files (any order).
        modality_hint: Modality when the files say none.
        max_pixels: Limit on rows x cols x slices, checked from the headers first.
        name: Path reported in errors and in ``meta.path`` (e.g. the directory).
        progress: Progress callback (done, total, message).
        cancel: Cancellation token.

    Returns:
        The stack with ``meta.slice_positions`` (mm along the normal) when known.

    Raises:
        ImageReadError: A slice cannot be read, slices differ in size, or several series.
    """
    files = [str(p) for p in paths]
    where = name or (os.path.dirname(files[0]) if files else "")
    if not files:
        raise ImageReadError(where, "no DICOM slices given")
    headers = []
    for i, f in enumerate(files):
        check(cancel)
        ds = read_dataset(f, force=True)
        with header_errors(f):
            headers.append((f, ds, pixel_layout(ds, f)))
        report(progress, i + 1, 2 * len(files), "reading headers")
    series = {str(ds.get("SeriesInstanceUID") or "") for _, ds, _ in headers}
    if len(series) > 1:
        raise UnsupportedImageError(where, f"holds {len(series)} different series; open one series at a time")
    multi = [f for f, _, lay in headers if lay.frames > 1]
    if multi and len(files) > 1:
        raise UnsupportedImageError(where, f"mixes multi-frame files ({os.path.basename(multi[0])}) with other slices")
    shapes = {lay.shape for _, _, lay in headers}
    if len(shapes) > 1:
        raise HeaderMismatchError(where, f"slices have different sizes {sorted(shapes)}")
    lay0 = headers[0][2]
    check_dimensions(where, lay0.rows, lay0.cols, frames=len(files), max_pixels=max_pixels,
                     samples=3 if len(lay0.shape) == 3 else 1, bytes_per_sample=4 if lay0.bits_allocated > 8 else 1)
    order, positions, rule = sort_slices([(f, ds) for f, ds, _ in headers])
    slices: list[np.ndarray] = []
    for k, i in enumerate(order):
        check(cancel)
        f, ds, lay = headers[i]
        check_size(ds, f, lay, max_pixels)
        slices.append(decode_pixels(ds, f, lay))
        report(progress, len(files) + k + 1, 2 * len(files), os.path.basename(f))
    dtype = np.result_type(*[s.dtype for s in slices])
    stack = np.stack([s.astype(dtype, copy=False) for s in slices]) if len(slices) > 1 else slices[0][None]
    first_ds = headers[order[0]][1]
    with header_errors(headers[order[0]][0]):
        meta = build_meta(first_ds, where, lay0, modality_hint)
    meta.slice_positions = positions
    meta.extra["slice_order"] = rule
    meta.extra["files"] = str(len(files))
    if positions and len(positions) > 1:
        meta.extra["slice_spacing"] = f"{float(np.median(np.diff(positions))):g}"
        repeats = len(positions) - len({round(p, 4) for p in positions})
        if repeats:
            # e.g. a DCE series holding every phase: frames at one position stay in
            # InstanceNumber order, but the stack is not a plain volume.
            meta.extra["repeated_positions"] = str(repeats)
    return LoadedImage(pixels=stack, meta=meta, ids=build_ids(first_ds))
