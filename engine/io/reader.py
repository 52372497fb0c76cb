"""One entry point for every image breast-reader opens: ``read_image(path)``.

The format is decided from the file's *content* (magic bytes, :mod:`engine.io.sniff`), never
from its extension alone: a text file named ``.dcm`` or a JPEG named ``.png`` is recognised for
what it is. A directory is read as one series of DICOM slices (sorted by position along the
slice normal) or, failing that, as a stack of same-sized raster slices sorted by name.

Every failure is an :class:`engine.errors.ImageReadError` subclass (see
:mod:`engine.io.errors`) naming the file and the reason; sizes are checked from headers
against :data:`MAX_PIXELS` / :data:`MAX_DECODED_BYTES` before any decoding.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import numpy as np

from engine.errors import ImageReadError, UnsupportedImageError
from engine.io import dicom as _dicom
from engine.io import raster as _raster
from engine.io.errors import EmptyFileError, HeaderMismatchError, UnknownFormatError
from engine.io.limits import MAX_DECODED_BYTES, MAX_PIXELS, MAX_SIDE, check_dimensions
from engine.io.sniff import describe_unknown, read_head, sniff_format
from engine.io.types import ImageMeta, LoadedImage, Modality
from engine.progress import CancelToken, ProgressCallback

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "detect_format",
    "list_series_files",
    "probe",
    "read_image",
    "read_series",
]

_IGNORED_NAMES = {"DICOMDIR", "Thumbs.db", "desc.txt"}


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def detect_format(path: str | PathLike[str]) -> str:
    """Identify a file from its content.

    Args:
        path: A regular file.

    Returns:
        "DICOM", "PNG", "JPEG", "TIFF", "PGM", "PPM" or "BMP".

    Raises:
        ImageReadError: Missing/unreadable file, empty file (:class:`EmptyFileError`) or content
            that is no supported image (:class:`UnknownFormatError`).
    """
    p = str(path)
    try:
        head = read_head(p)
    except FileNotFoundError:
        raise ImageReadError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory") from None
    except OSError as exc:
        raise ImageReadError(p, f"cannot be opened ({exc.strerror or exc})") from None
    if not head:
        raise EmptyFileError(p, "the file is empty (0 bytes)")
    fmt = sniff_format(head, os.path.basename(p))
    if fmt is None:
        raise UnknownFormatError(p, describe_unknown(head))
    if fmt in ("GIF", "PBM", "JPEG2000"):
        raise UnknownFormatError(p, f"{fmt} images are not supported (use DICOM, PNG, JPEG, TIFF or PGM/PPM)")
    return fmt


def list_series_files(folder: str | PathLike[str]) -> tuple[str, list[str]]:
    """The image files of a slice folder and their common kind.

    Hidden files, ``DICOMDIR`` and non-image files are skipped.

    Args:
        folder: A directory.

    Returns:
        ("DICOM" or a raster format, naturally sorted file paths).

    Raises:
        ImageReadError: No readable slices, or a mixture of DICOM and raster files.
    """
    d = Path(folder)
    kinds: dict[str, list[str]] = {}
    for entry in sorted(d.iterdir(), key=lambda e: _natural_key(e.name)):
        if entry.name.startswith(".") or entry.name in _IGNORED_NAMES or entry.name.startswith("DICOMDIR"):
            continue
        if not entry.is_file():
            continue
        try:
            fmt = detect_format(entry)
        except ImageReadError:
            continue
        kinds.setdefault(fmt, []).append(str(entry))
    if not kinds:
        subdirs = sum(1 for e in d.iterdir() if e.is_dir() and not e.name.startswith("."))
        hint = f"; it has {subdirs} sub-folder(s): open one series folder" if subdirs else ""
        raise ImageReadError(str(d), f"directory holds no readable image slices{hint}")
    if len(kinds) > 1:
        summary = ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items()))
        raise UnsupportedImageError(str(d), f"directory mixes image formats ({summary}); keep one series per folder")
    (fmt, files), = kinds.items()
    return fmt, files


def read_series(
    paths: Iterable[str | PathLike[str]],
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> LoadedImage:
    """Read slices into one (frames, rows, cols) stack.

    DICOM slices are sorted by ImagePositionPatient projected on the slice normal, else
    InstanceNumber (see :func:`engine.io.dicom.sort_slices`); raster slices (PNG/TIFF/...) keep
    the given order.

    Args:
        paths: Slice files of one series.
        modality_hint: Modality when the files do not say.
        max_pixels: Limit on rows x cols x slices.
        name: Path to report (e.g. the folder).
        progress: Progress callback.
        cancel: Cancellation token.

    Returns:
        The stacked :class:`LoadedImage`.

    Raises:
        ImageReadError: Unreadable slice, mismatched sizes, several series, over the limit.
    """
    files = [str(p) for p in paths]
    if not files:
        raise ImageReadError(name or "", "no slices given")
    where = name or os.path.dirname(files[0])
    formats = {detect_format(f) for f in files}
    if formats == {"DICOM"}:
        return _dicom.read_dicom_series(
            files, modality_hint=modality_hint, max_pixels=max_pixels, name=where, progress=progress, cancel=cancel
        )
    if "DICOM" in formats:
        raise UnsupportedImageError(where, "mixes DICOM and other image files")
    probes = [_raster.probe_raster(f, detect_format(f)) for f in files]
    shapes = {s for _, s in probes}
    if len(shapes) > 1:
        raise HeaderMismatchError(where, f"slices have different sizes {sorted(shapes)}")
    shape = next(iter(shapes))
    if len(shape) != 2:
        raise UnsupportedImageError(where, f"only grey 2-D raster slices can be stacked (got shape {shape})")
    check_dimensions(where, shape[0], shape[1], frames=len(files), max_pixels=max_pixels)
    slices = [read_image(f, modality_hint=modality_hint, max_pixels=max_pixels).pixels for f in files]
    stack = np.stack(slices)
    meta = probes[0][0]
    meta.path = where
    meta.modality = modality_hint or "OT"
    meta.extra["files"] = str(len(files))
    meta.extra["slice_order"] = "file name"
    return LoadedImage(pixels=stack, meta=meta)


def read_image(
    path: str | PathLike[str],
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LoadedImage:
    """Read any supported image (or a folder of slices) into a :class:`LoadedImage`.

    Args:
        path: A DICOM, PNG, JPEG, TIFF, PGM/PPM or BMP file, or a directory of slices of one
            series (DICOM, or same-sized raster slices sorted by name).
        modality_hint: "MG", "US", "MR" or "OT" for formats that do not record the modality
            (all raster formats, DICOM without Modality); DICOM's own Modality wins.
        max_pixels: Refuse images whose header claims more rows x cols x frames.

    Returns:
        pixels (rows, cols), (frames, rows, cols), (rows, cols, 3) or, for multi-frame colour
        ultrasound, (frames, rows, cols, 3); display metadata in ``meta``; DICOM identifiers in
        ``ids``.

    Raises:
        ImageReadError: A specific subclass (see :mod:`engine.io.errors`) naming the file.
    """
    p = str(path)
    if os.path.isdir(p):
        fmt, files = list_series_files(p)
        if len(files) == 1:
            img = read_image(files[0], modality_hint=modality_hint, max_pixels=max_pixels)
            return img
        return read_series(files, modality_hint=modality_hint, max_pixels=max_pixels, name=p)
    fmt = detect_format(p)
    if fmt == "DICOM":
        force = read_head(p, 132)[128:132] != b"DICM"
        return _dicom.read_dicom(p, modality_hint=modality_hint, max_pixels=max_pixels, force=force)
    return _raster.read_raster(p, fmt, modality_hint=modality_hint, max_pixels=max_pixels)


def probe(path: str | PathLike[str], *, modality_hint: Modality | None = None) -> ImageMeta:
    """Header-only metadata of a file or slice folder (no pixel decoding).

    ``meta.extra["shape"]`` holds the shape :func:`read_image` would return, written like
    ``"4096x3328"``. For a folder the first slice (in file-name order) is probed and
    ``extra["files"]`` gives the slice count.

    Args:
        path: File or slice directory.
        modality_hint: As for :func:`read_image`.

    Returns:
        The :class:`ImageMeta` (identifiers are not returned: they are PHI).

    Raises:
        ImageReadError: As for :func:`read_image`, for header-level problems only.
    """
    p = str(path)
    if os.path.isdir(p):
        fmt, files = list_series_files(p)
        meta = probe(files[0], modality_hint=modality_hint)
        if len(files) > 1:
            shape = meta.extra.get("shape", "")
            meta.extra["shape"] = f"{len(files)}x{shape}"
            meta.extra["files"] = str(len(files))
        meta.path = p
        return meta
    fmt = detect_format(p)
    if fmt == "DICOM":
        force = read_head(p, 132)[128:132] != b"DICM"
        meta, _ids, dims = _dicom.probe_dicom(p, modality_hint=modality_hint, force=force)
    else:
        meta, dims = _raster.probe_raster(p, fmt, modality_hint=modality_hint)
    meta.extra["shape"] = "x".join(str(s) for s in dims)
    return meta
