"""PNG, JPEG, TIFF, PGM/PPM (and BMP) reading with header checks before decoding.

Every reader parses the header itself first (dimensions, bit depth, samples) so that
decompression bombs and impossible sizes are refused before a decoder allocates anything
(:func:`engine.io.limits.check_dimensions`), and truncation is detected from the byte
stream (missing PNG ``IEND`` / JPEG ``EOI``, short PNM/TIFF data) instead of silently
returning a half-grey image. 16-bit data stays 16-bit (mini-MIAS PGMs are 8-bit; scanned
film and DR exports are often 16-bit PNG/TIFF/PGM).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from os import PathLike

import numpy as np

from engine.errors import ImageTooLargeError
from engine.io.errors import (
    CorruptImageError,
    InvalidDimensionsError,
    TruncatedImageError,
    UnknownFormatError,
    UnsupportedImageError,
)
from engine.io.limits import MAX_DECODED_BYTES, MAX_PIXELS, MAX_RASTER_BYTES, MAX_SIDE, MAX_TIFF_PAGES, check_dimensions
from engine.io.types import ImageMeta, LoadedImage, Modality

RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "PGM", "PPM", "BMP")


@dataclass(frozen=True)
class RasterHeader:
    """What a raster header claims, parsed without decoding pixels.

    Attributes:
        format: PNG, JPEG, TIFF, PGM, PPM or BMP.
        rows: Image height.
        cols: Image width.
        samples: 1 for grey output, 3 for colour output (alpha is dropped).
        bits: Bits per sample of the decoded array (8 or 16; 32 for float TIFF).
        frames: Pages of a multi-page TIFF stack (1 otherwise).
        data_offset: Start of PNM pixel data (0 for other formats).
        maxval: PNM maximum value (0 for other formats).
    """

    format: str
    rows: int
    cols: int
    samples: int
    bits: int
    frames: int = 1
    data_offset: int = 0
    maxval: int = 0


# --------------------------------------------------------------------------- headers


def _png_header(path: str, data: bytes) -> RasterHeader:
    if len(data) < 33:
        raise TruncatedImageError(path, "PNG file ends inside its header")
    length, ctype = struct.unpack(">I4s", data[8:16])
    if ctype != b"IHDR" or length != 13:
        raise CorruptImageError(path, "PNG file does not start with an IHDR chunk")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if colour not in (0, 2, 3, 4, 6) or depth not in (1, 2, 4, 8, 16):
        raise CorruptImageError(path, f"PNG header has invalid colour type {colour} / bit depth {depth}")
    samples = 1 if colour in (0, 4) else 3
    return RasterHeader("PNG", height, width, samples, 16 if depth == 16 else 8)


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(path: str, data: bytes) -> RasterHeader:
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise CorruptImageError(path, f"JPEG marker expected at byte {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        if pos + 2 > n:
            break
        seglen = int.from_bytes(data[pos : pos + 2], "big")
        if marker in _SOF_MARKERS:
            if pos + 8 > n:
                break
            precision, height, width, comps = struct.unpack(">BHHB", data[pos + 2 : pos + 8])
            if marker in (0xC3, 0xC7, 0xCB, 0xCF):
                raise UnsupportedImageError(path, "lossless JPEG (process 14) files are not supported; convert to PNG/TIFF")
            if comps not in (1, 3, 4):
                raise UnsupportedImageError(path, f"JPEG with {comps} components is not supported")
            return RasterHeader("JPEG", height, width, 1 if comps == 1 else 3, 16 if precision > 8 else 8)
        if marker in (0xDA, 0xD9):
            raise CorruptImageError(path, "JPEG has no frame header (SOF) before its scan data")
        pos += seglen
    raise TruncatedImageError(path, "JPEG file ends before its frame header")


def _pnm_header(path: str, data: bytes, fmt: str) -> RasterHeader:
    magic = data[:2]
    # Tokens: magic, width, height, maxval, separated by whitespace, '#' comments to end of line.
    tokens: list[int] = []
    pos = 2
    n = len(data)
    while len(tokens) < 3:
        while pos < n and data[pos : pos + 1].isspace():
            pos += 1
        if pos < n and data[pos : pos + 1] == b"#":
            eol = data.find(b"\n", pos)
            pos = n if eol < 0 else eol + 1
            continue
        m = re.match(rb"\d+", data[pos : pos + 12])
        if m is None:
            if pos >= n:
                raise TruncatedImageError(path, f"{fmt} file ends inside its header")
            raise CorruptImageError(path, f"{fmt} header has a non-numeric field at byte {pos}")
        tokens.append(int(m.group()))
        pos += len(m.group())
    if pos >= n or not data[pos : pos + 1].isspace():
        raise TruncatedImageError(path, f"{fmt} file ends inside its header")
    pos += 1  # exactly one whitespace byte before binary data
    width, height, maxval = tokens
    if not 0 < maxval < 65536:
        raise CorruptImageError(path, f"{fmt} header has invalid maxval {maxval}")
    samples = 3 if magic in (b"P3", b"P6") else 1
    return RasterHeader(fmt, height, width, samples, 16 if maxval > 255 else 8, data_offset=pos, maxval=maxval)


def _bmp_header(path: str, data: bytes) -> RasterHeader:
    width, height = struct.unpack("<ii", data[18:26])
    bpp = struct.unpack("<H", data[28:30])[0] if len(data) >= 30 else 24
    return RasterHeader("BMP", abs(height), width, 1 if bpp == 8 else 3, 8)


def count_tiff_pages(path: str, limit: int = MAX_TIFF_PAGES) -> int:
    """Pages of a TIFF (walking the IFD chain, at most ``limit + 1``), before any parsing.

    Raises:
        CorruptImageError: An IFD offset points outside the file or back into the chain.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
        if len(head) < 8:
            raise TruncatedImageError(path, "TIFF file ends inside its header")
        bo = "<" if head[:2] == b"II" else ">"
        big = struct.unpack(bo + "H", head[2:4])[0] == 43
        if big:
            if len(head) < 16:
                raise TruncatedImageError(path, "BigTIFF file ends inside its header")
            offset = struct.unpack(bo + "Q", head[8:16])[0]
        else:
            offset = struct.unpack(bo + "I", head[4:8])[0]
        seen: set[int] = set()
        pages = 0
        while offset and pages <= limit:
            if offset in seen:
                raise CorruptImageError(path, f"TIFF page chain loops back to byte {offset}")
            if offset + (8 if big else 2) > size:
                raise CorruptImageError(path, f"TIFF page at byte {offset} lies beyond the end of the file ({size} bytes)")
            seen.add(offset)
            fh.seek(offset)
            n = struct.unpack(bo + ("Q" if big else "H"), fh.read(8 if big else 2))[0]
            entry, tail = (20, 8) if big else (12, 4)
            nxt_at = offset + (8 if big else 2) + n * entry
            if nxt_at + tail > size:
                raise TruncatedImageError(path, f"TIFF page at byte {offset} runs past the end of the file")
            fh.seek(nxt_at)
            offset = struct.unpack(bo + ("Q" if big else "I"), fh.read(tail))[0]
            pages += 1
    return pages


def _tiff_header(path: str) -> RasterHeader:
    import tifffile

    pages = count_tiff_pages(path)
    if pages > MAX_TIFF_PAGES:
        raise ImageTooLargeError(
            path, f"TIFF has more than {MAX_TIFF_PAGES} pages; a multi-page TIFF is read as a stack of at most "
            f"{MAX_TIFF_PAGES} pages (refused before decoding)"
        )
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape, dtype = series.axes, tuple(series.shape), np.dtype(series.dtype)
            size = os.path.getsize(path)
            for page in series.pages:
                if page is None:
                    continue
                offs = getattr(page, "dataoffsets", ()) or ()
                counts = getattr(page, "databytecounts", ()) or ()
                for off, cnt in zip(offs, counts):
                    if off + cnt > size:
                        raise TruncatedImageError(path, f"TIFF strip at byte {off} runs past the end of the file ({size} bytes)")
    except (TruncatedImageError, UnsupportedImageError):
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise CorruptImageError(path, f"TIFF header could not be parsed ({type(exc).__name__}: {exc})") from None
    dims = dict(zip(axes, shape))
    rows, cols = dims.get("Y", 0), dims.get("X", 0)
    samples = dims.get("S", 1)
    frames = int(np.prod([s for a, s in zip(axes, shape) if a not in "YXS"] or [1]))
    # Decoding keeps RGB of 3+ samples (alpha dropped) and the first sample of grey + alpha.
    return RasterHeader("TIFF", rows, cols, 3 if samples >= 3 else 1, dtype.itemsize * 8, frames=frames)


def read_header(path: str | PathLike[str], fmt: str, data: bytes | None = None) -> RasterHeader:
    """Parse a raster header without decoding pixels.

    Args:
        path: The file.
        fmt: Its sniffed format (see :func:`engine.io.sniff.sniff_format`).
        data: The file's bytes when already read (the first few KiB suffice except for JPEG).

    Returns:
        The claimed dimensions and sample layout.

    Raises:
        ImageReadError: Truncated or corrupt header, unsupported variant.
    """
    p = str(path)
    if fmt == "TIFF":
        return _tiff_header(p)
    if data is None:
        with open(p, "rb") as fh:
            data = fh.read(1 << 16) if fmt != "JPEG" else fh.read()
    if fmt == "PNG":
        return _png_header(p, data)
    if fmt == "JPEG":
        return _jpeg_header(p, data)
    if fmt in ("PGM", "PPM"):
        return _pnm_header(p, data, fmt)
    if fmt == "BMP":
        return _bmp_header(p, data)
    raise UnknownFormatError(p, f"{fmt} images are not supported (use PNG, JPEG, TIFF, PGM/PPM or DICOM)")


# --------------------------------------------------------------------------- decoding


def _check(path: str, h: RasterHeader, max_pixels: int) -> None:
    if h.rows > MAX_SIDE or h.cols > MAX_SIDE:
        raise ImageTooLargeError(
            path, f"header claims {h.rows} x {h.cols} pixels, a side above {MAX_SIDE} (refused before decoding)"
        )
    # colour decodes are converted BGR -> RGB into a second buffer: budget both
    copies = 2 if h.samples == 3 else 1
    check_dimensions(
        path, h.rows, h.cols, frames=h.frames, samples=h.samples * copies, bytes_per_sample=max(1, h.bits // 8),
        max_pixels=max_pixels, max_bytes=min(MAX_DECODED_BYTES, MAX_RASTER_BYTES),
    )


def _cv2_decode(path: str, data: bytes, h: RasterHeader) -> np.ndarray:
    import cv2

    flags = cv2.IMREAD_ANYDEPTH | (cv2.IMREAD_GRAYSCALE if h.samples == 1 else cv2.IMREAD_COLOR)
    flags |= cv2.IMREAD_IGNORE_ORIENTATION  # pixels as stored: never rotate a medical image by EXIF
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None:
        raise CorruptImageError(path, f"{h.format} data could not be decoded (corrupt or truncated stream)")
    if arr.shape[:2] != (h.rows, h.cols):
        raise CorruptImageError(path, f"decoded size {arr.shape[:2]} differs from the header's {(h.rows, h.cols)}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)  # new array, OpenCV's BGR -> RGB
    return arr


def _decode_pnm(path: str, h: RasterHeader) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    shape = (h.rows, h.cols, 3) if h.samples == 3 else (h.rows, h.cols)
    count = h.rows * h.cols * h.samples
    if magic in (b"P5", b"P6"):
        itemsize = 2 if h.maxval > 255 else 1
        need = h.data_offset + count * itemsize
        size = os.path.getsize(path)
        if size < need:
            raise TruncatedImageError(path, f"{h.format} data is {size - h.data_offset} bytes, the header needs {count * itemsize}")
        # Read straight into a writable array (no intermediate bytes object).
        arr = np.fromfile(path, dtype=">u2" if itemsize == 2 else np.uint8, count=count, offset=h.data_offset)
        if itemsize == 2:
            arr.byteswap(inplace=True)  # PNM 16-bit samples are big-endian; swap our own buffer
            arr = arr.view(np.uint16)
    else:
        with open(path, "rb") as fh:
            fh.seek(h.data_offset)
            text = fh.read()
        text = re.sub(rb"#[^\n]*", b" ", text)
        try:
            values = np.array(text.split()[: count + 1], dtype=np.int64)
        except ValueError:
            raise CorruptImageError(path, f"{h.format} plain data holds a non-numeric value") from None
        if values.size < count:
            raise TruncatedImageError(path, f"{h.format} plain data has {values.size} values, the header needs {count}")
        values = values[:count]
        if values.min() < 0 or values.max() > h.maxval:
            raise CorruptImageError(path, f"{h.format} values exceed maxval {h.maxval}")
        arr = values.astype(np.uint16 if h.maxval > 255 else np.uint8)
    return arr.reshape(shape)


def _decode_tiff(path: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
            photometric = getattr(tif.pages[0], "photometric", None)
    except Exception as exc:
        raise CorruptImageError(path, f"TIFF data could not be decoded ({type(exc).__name__}: {exc})") from None
    if "S" in axes:  # samples last, drop alpha
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
        if arr.shape[-1] >= 3:
            arr = arr[..., :3]
        else:
            arr, axes = arr[..., 0], axes[:-1]
    # Collapse all non-spatial axes (pages, Z, T, C) into one frame axis.
    lead = arr.shape[: arr.ndim - (3 if axes.endswith("S") else 2)]
    if len(lead) != 1 or lead == (1,):
        tail = arr.shape[len(lead) :]
        arr = arr.reshape((int(np.prod(lead)),) + tail) if lead else arr
        if arr.shape[0] == 1 and lead:
            arr = arr[0]
    if photometric is not None and int(photometric) == 0 and np.issubdtype(arr.dtype, np.unsignedinteger):
        arr = np.iinfo(arr.dtype).max - arr  # MINISWHITE: invert like DICOM MONOCHROME1
    return np.ascontiguousarray(arr)


def _require_end_marker(path: str, data: bytes, h: RasterHeader) -> None:
    tail = data[-4096:]
    if h.format == "PNG" and b"IEND" not in tail:
        raise TruncatedImageError(path, "PNG file ends before its IEND chunk (truncated)")
    if h.format == "JPEG" and b"\xff\xd9" not in tail:
        raise TruncatedImageError(path, "JPEG file ends before its end-of-image marker (truncated)")


def read_raster(
    path: str | PathLike[str],
    fmt: str,
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
) -> LoadedImage:
    """Decode a PNG, JPEG, TIFF, PGM/PPM or BMP file after checking its header.

    Args:
        path: The file.
        fmt: Format sniffed from the content.
        modality_hint: Modality to record (raster files carry none); "OT" if None.
        max_pixels: Refuse images whose header claims more pixels than this.

    Returns:
        Grey images as (rows, cols), colour as (rows, cols, 3) RGB, TIFF stacks as
        (frames, rows, cols[, 3]); 8- or 16-bit unsigned (float for float TIFF).

    Raises:
        ImageReadError: Truncated, corrupt, unsupported or oversized input.
    """
    p = str(path)
    data: bytes | None = None
    if fmt in ("PNG", "JPEG", "BMP"):
        with open(p, "rb") as fh:
            data = fh.read()
    h = read_header(p, fmt, data)
    _check(p, h, max_pixels)
    if fmt == "TIFF":
        arr = _decode_tiff(p)
    elif fmt in ("PGM", "PPM"):
        arr = _decode_pnm(p, h)
    else:
        assert data is not None
        _require_end_marker(p, data, h)
        arr = _cv2_decode(p, data, h)
    if arr.size == 0:
        raise InvalidDimensionsError(p, "decoded image is empty")
    meta = _meta(p, h, modality_hint)
    return LoadedImage(pixels=arr, meta=meta)


def _meta(path: str, h: RasterHeader, modality_hint: Modality | None) -> ImageMeta:
    meta = ImageMeta(
        path=path,
        modality=modality_hint or "OT",
        source_format=h.format,
        photometric="RGB" if h.samples == 3 else "MONOCHROME2",
        bits_stored=h.bits,
    )
    if h.maxval:
        meta.extra["maxval"] = str(h.maxval)
    return meta


def probe_raster(path: str | PathLike[str], fmt: str, *, modality_hint: Modality | None = None) -> tuple[ImageMeta, tuple[int, ...]]:
    """Header-only metadata and the shape :func:`read_raster` would return."""
    h = read_header(path, fmt)
    if h.rows <= 0 or h.cols <= 0:
        check_dimensions(path, h.rows, h.cols)
    shape: tuple[int, ...] = (h.rows, h.cols) + ((3,) if h.samples == 3 else ())
    if h.frames > 1:
        shape = (h.frames,) + shape
    return _meta(str(path), h, modality_hint), shape
