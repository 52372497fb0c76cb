"""Compressed frames: their own headers (JPEG, JPEG-LS, JPEG 2000) checked against the DICOM header
before any native decoder sees them (some abort the process on a mismatch).
"""

from __future__ import annotations

from typing import Any

from engine.errors import ImageReadError
from engine.io.dicom.dataset import transfer_syntax
from engine.io.dicom.layout import PixelLayout
from engine.io.errors import (
    CorruptImageError,
    HeaderMismatchError,
)


_JPEG_SYNTAX_PREFIX = "1.2.840.10008.1.2.4."


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}  # + JPEG-LS SOF55


def codestream_dims(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, cols, components) claimed by a JPEG / JPEG-LS / JPEG 2000 codestream header.

    Args:
        frame: One compressed frame (the bytes of its fragments).

    Returns:
        The dimensions, or None when no known header is found.
    """
    siz = frame.find(b"\xff\x4f\xff\x51")  # JPEG 2000: SOC then SIZ (ISO 15444-1 A.5.1)
    if 0 <= siz < 256 and len(frame) >= siz + 42:
        xsiz, ysiz, xo, yo = (int.from_bytes(frame[siz + 8 + 4 * i : siz + 12 + 4 * i], "big") for i in range(4))
        comps = int.from_bytes(frame[siz + 40 : siz + 42], "big")
        return ysiz - yo, xsiz - xo, comps
    pos = _jpeg_sof(frame)
    if pos is None or pos + 10 > len(frame):
        return None
    rows = int.from_bytes(frame[pos + 5 : pos + 7], "big")
    cols = int.from_bytes(frame[pos + 7 : pos + 9], "big")
    return rows, cols, frame[pos + 9]


def _jpeg_sof(frame: bytes) -> int | None:
    """Offset of the first start-of-frame marker of a JPEG / JPEG-LS frame (None: none before
    the scan data, or no JPEG header in the first 256 bytes)."""
    soi = frame.find(b"\xff\xd8")
    if soi < 0 or soi > 256:
        return None
    pos, n = soi + 2, len(frame)
    while pos + 4 <= n:
        if frame[pos] != 0xFF:
            return None
        marker = frame[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if marker in _JPEG_SOF:
            return pos
        if marker in (0xDA, 0xD9):
            return None
        pos += 2 + int.from_bytes(frame[pos + 2 : pos + 4], "big")
    return None


def _jpeg_precision(frame: bytes) -> int | None:
    """Sample precision of a JPEG / JPEG-LS frame header (None for JPEG 2000 or no header)."""
    if frame.find(b"\xff\x4f\xff\x51") >= 0:
        return None
    pos = _jpeg_sof(frame)
    if pos is None or pos + 5 > len(frame):
        return None
    return int(frame[pos + 4])


def check_codestreams(ds: Any, path: str, layout: PixelLayout) -> None:
    """Compare each compressed frame's own header with Rows/Columns/SamplesPerPixel.

    Some native decoders abort the whole process (not an exception) when the DICOM header
    claims a different size than the codestream, so a lying header is refused before decoding.
    """
    syntax = transfer_syntax(ds)
    if not syntax.startswith(_JPEG_SYNTAX_PREFIX):
        return
    from pydicom.encaps import generate_frames

    try:
        frames = generate_frames(ds.PixelData, number_of_frames=layout.frames)
        for k, frame in enumerate(frames):
            dims = codestream_dims(bytes(frame[:65536]))
            if dims is None:
                continue
            rows, cols, comps = dims
            precision = _jpeg_precision(bytes(frame[:65536]))
            if precision is not None and layout.bits_stored != precision and not (
                precision > 8 and layout.bits_stored < precision
            ):
                # gdcm aborts the whole process (an uncaught C++ exception) on this mismatch
                raise HeaderMismatchError(
                    path, f"header sizes lie: BitsStored is {layout.bits_stored} but compressed frame {k + 1} "
                    f"has {precision}-bit samples"
                )
            if (rows, cols) != (layout.rows, layout.cols) and rows != 0:
                raise HeaderMismatchError(
                    path, f"header sizes lie: DICOM says {layout.rows} x {layout.cols} but compressed frame {k + 1} "
                    f"is {rows} x {cols}"
                )
            if comps != layout.samples and not (layout.photometric == "PALETTE COLOR" and comps == 1):
                raise HeaderMismatchError(
                    path, f"header sizes lie: SamplesPerPixel is {layout.samples} but compressed frame {k + 1} "
                    f"has {comps} component(s)"
                )
    except ImageReadError:
        raise
    except Exception as exc:
        raise CorruptImageError(path, f"encapsulated pixel data is malformed ({type(exc).__name__}: {exc})") from None
