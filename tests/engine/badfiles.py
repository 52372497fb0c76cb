"""Good and ill image inputs for engine.io tests (MONAI ``TESTS_ILL`` style).

``GOOD``: (file name, bytes builder, expected shape, expected dtype, expected pixels or None).
``ILL``:  (file name, bytes builder, expected error class, substring of the reason).

Builders take a scratch folder (some write a DICOM with our writer, then tamper with it) and
return the file's bytes; :func:`write_corpus` writes every case into a folder. Everything is
tiny and deterministic except the "bomb" headers, which *claim* huge sizes in a few bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import ImageReadError, ImageTooLargeError
from engine.io.errors import (
    CorruptImageError,
    EmptyFileError,
    HeaderMismatchError,
    InvalidDimensionsError,
    MissingPixelDataError,
    TruncatedImageError,
    UnknownFormatError,
    UnsupportedPhotometricError,
)

Builder = Callable[[Path], bytes]

_R, _C = np.mgrid[0:24, 0:32]
GREY8 = (_R * 5 + _C * 4).astype(np.uint8)  # smooth, so lossy JPEG stays close
GREY16 = (_R * 2000 + _C * 101 + 7).astype(np.uint16)  # needs all 16 bits, not a multiple of 256
RGB8 = np.stack([GREY8, 255 - GREY8, np.full_like(GREY8, 40)], axis=-1)  # channel swaps are visible


def _encode(ext: str, arr: np.ndarray, params: list[int] | None = None) -> bytes:
    a = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr
    ok, buf = cv2.imencode(ext, a, params or [])
    assert ok
    return buf.tobytes()


def _tiff(arr: np.ndarray, **kw: Any) -> bytes:
    import tifffile

    bio = io.BytesIO()
    tifffile.imwrite(bio, arr, **kw)
    return bio.getvalue()


def _pnm(magic: bytes, arr: np.ndarray, maxval: int, comment: bool = True) -> bytes:
    h, w = arr.shape[:2]
    head = magic + b"\n" + (b"# made by badfiles.py\n" if comment else b"") + f"{w} {h}\n{maxval}\n".encode()
    if magic in (b"P2", b"P3"):
        return head + b"\n".join(b" ".join(str(int(v)).encode() for v in row) for row in arr.reshape(h, -1))
    data = arr.astype(">u2").tobytes() if maxval > 255 else arr.astype(np.uint8).tobytes()
    return head + data


def _dicom(tmp: Path, arr: np.ndarray, tamper: Callable[[Any], None] | None = None, **kw: Any) -> bytes:
    import pydicom

    from engine.io.writer import write_dicom

    path = write_dicom(tmp / "x.dcm", arr, **kw)
    if tamper is not None:
        ds = pydicom.dcmread(path)
        tamper(ds)
        ds.save_as(path)
    return path.read_bytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 60000, height: int = 60000, idat: bytes | None = None) -> bytes:
    """A ~100-byte PNG whose IHDR claims ``width`` x ``height`` 8-bit grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb() -> bytes:
    """A JPEG whose SOF0 claims 60000 x 60000 (no real scan data)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60000, 60000, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def _tampered_testfile(tmp: Path, name: str, **values: Any) -> bytes:
    """A pydicom test file (shipped offline) with header values changed."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name, download=False))
    for k, v in values.items():
        setattr(ds, k, v)
    ds.save_as(tmp / "t.dcm")
    return (tmp / "t.dcm").read_bytes()


def tiff_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A ~150-byte deflate-compressed TIFF whose IFD claims ``width`` x ``height`` 8-bit grey."""
    data = zlib.compress(b"\x00" * 64)
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(data)),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    return out + struct.pack("<I", 0) + data


def _set(**values: Any) -> Callable[[Any], None]:
    def tamper(ds: Any) -> None:
        for k, v in values.items():
            setattr(ds, k, v)

    return tamper


def _del_pixels(ds: Any) -> None:
    del ds.PixelData


def _del_rows(ds: Any) -> None:
    del ds.Rows


# name, builder, expected shape, dtype, exact pixels (None: lossy)
GOOD: list[tuple[str, Builder, tuple[int, ...], str, np.ndarray | None]] = [
    ("grey8.png", lambda t: _encode(".png", GREY8), (24, 32), "uint8", GREY8),
    ("grey16.png", lambda t: _encode(".png", GREY16), (24, 32), "uint16", GREY16),
    ("rgb.png", lambda t: _encode(".png", RGB8), (24, 32, 3), "uint8", RGB8),
    ("grey.jpg", lambda t: _encode(".jpg", GREY8, [cv2.IMWRITE_JPEG_QUALITY, 95]), (24, 32), "uint8", None),
    ("rgb.jpeg", lambda t: _encode(".jpg", RGB8, [cv2.IMWRITE_JPEG_QUALITY, 95]), (24, 32, 3), "uint8", None),
    ("grey8.tif", lambda t: _tiff(GREY8), (24, 32), "uint8", GREY8),
    ("grey16.tiff", lambda t: _tiff(GREY16, compression="zlib"), (24, 32), "uint16", GREY16),
    ("rgb.tif", lambda t: _tiff(RGB8, photometric="rgb"), (24, 32, 3), "uint8", RGB8),
    ("stack.tif", lambda t: _tiff(np.stack([GREY16, GREY16 // 2, GREY16 // 3]), photometric="minisblack"), (3, 24, 32), "uint16",
     np.stack([GREY16, GREY16 // 2, GREY16 // 3])),
    ("p5_8bit.pgm", lambda t: _pnm(b"P5", GREY8, 255), (24, 32), "uint8", GREY8),
    ("p5_16bit.pgm", lambda t: _pnm(b"P5", GREY16, 65535), (24, 32), "uint16", GREY16),
    ("p2_ascii.pgm", lambda t: _pnm(b"P2", GREY8, 255), (24, 32), "uint8", GREY8),
    ("p6.ppm", lambda t: _pnm(b"P6", RGB8, 255), (24, 32, 3), "uint8", RGB8),
    ("p3_ascii.ppm", lambda t: _pnm(b"P3", RGB8, 255), (24, 32, 3), "uint8", RGB8),
    ("p6_16bit.ppm", lambda t: _pnm(b"P6", RGB8.astype(np.uint16) * 250, 65535), (24, 32, 3), "uint16",
     RGB8.astype(np.uint16) * 250),
    ("grey.bmp", lambda t: _encode(".bmp", RGB8), (24, 32, 3), "uint8", RGB8),
    ("jpeg_named.png", lambda t: _encode(".jpg", GREY8, [cv2.IMWRITE_JPEG_QUALITY, 95]), (24, 32), "uint8", None),
    ("mg.dcm", lambda t: _dicom(t, GREY16 >> 4, modality="MG", laterality="L", view="CC", bits_stored=12),
     (24, 32), "uint16", GREY16 >> 4),
    ("us_rgb.dcm", lambda t: _dicom(t, RGB8, modality="US", photometric="RGB"), (24, 32, 3), "uint8", RGB8),
    ("us_cine.dcm", lambda t: _dicom(t, np.stack([GREY8] * 4), modality="US"), (4, 24, 32), "uint8",
     np.stack([GREY8] * 4)),
    ("no_extension", lambda t: _dicom(t, GREY8, modality="OT"), (24, 32), "uint8", GREY8),
]

# name, builder, error class, reason substring
ILL: list[tuple[str, Builder, type[ImageReadError], str]] = [
    ("empty.dcm", lambda t: b"", EmptyFileError, "empty"),
    ("empty.png", lambda t: b"", EmptyFileError, "empty"),
    ("text.dcm", lambda t: b"PatientName,Age\nDoe^Jane,54\n", UnknownFormatError, "text"),
    ("random.bin", lambda t: bytes(range(7, 250)) * 3, UnknownFormatError, "not a recognised image format"),
    ("gif.gif", lambda t: b"GIF89a" + b"\x00" * 40, UnknownFormatError, "GIF"),
    ("truncated.png", lambda t: _encode(".png", GREY16)[:-40], TruncatedImageError, "truncated"),
    ("truncated_ihdr.png", lambda t: _encode(".png", GREY16)[:20], TruncatedImageError, "header"),
    ("corrupt_idat.png", lambda t: png_bomb(32, 24, idat=b"\x78\x9c" + b"\xff" * 12), CorruptImageError,
     "could not be decoded"),
    ("zero_width.png", lambda t: png_bomb(0, 24), InvalidDimensionsError, "0 columns"),
    ("bomb.png", lambda t: png_bomb(), ImageTooLargeError, "60000 x 60000"),
    ("truncated.jpg", lambda t: _encode(".jpg", RGB8)[:-60], TruncatedImageError, "truncated"),
    ("no_sof.jpg", lambda t: b"\xff\xd8\xff\xda\x00\x02\xff\xd9", CorruptImageError, "no frame header"),
    ("bomb.jpg", lambda t: jpeg_bomb(), ImageTooLargeError, "60000 x 60000"),
    ("bomb.tif", lambda t: tiff_bomb(), ImageTooLargeError, "60000 x 60000"),
    ("truncated.tif", lambda t: _tiff(GREY16)[:-300], TruncatedImageError, "past the end"),
    ("truncated.pgm", lambda t: _pnm(b"P5", GREY8, 255)[:-100], TruncatedImageError, "needs 768"),
    ("maxval0.pgm", lambda t: _pnm(b"P5", GREY8, 0), CorruptImageError, "maxval"),
    ("bomb.pgm", lambda t: b"P5\n60000 60000\n255\n" + b"\x00" * 64, ImageTooLargeError, "60000 x 60000"),
    ("truncated_ascii.pgm", lambda t: _pnm(b"P2", GREY8, 255)[:-500], TruncatedImageError, "values"),
    ("pbm.pbm", lambda t: b"P4\n8 8\n" + b"\x00" * 8, UnknownFormatError, "PBM"),
    ("truncated.dcm", lambda t: _dicom(t, GREY16, modality="MG")[:-200], TruncatedImageError, "truncated"),
    ("truncated_header.dcm", lambda t: _dicom(t, GREY16, modality="MG")[:300], TruncatedImageError, "truncated"),
    ("no_pixels.dcm", lambda t: _dicom(t, GREY8, modality="MG", tamper=_del_pixels), MissingPixelDataError,
     "no pixel data"),
    ("no_rows.dcm", lambda t: _dicom(t, GREY8, modality="MG", tamper=_del_rows), CorruptImageError, "Rows"),
    ("rows0.dcm", lambda t: _dicom(t, GREY8, modality="MG", tamper=_set(Rows=0)), InvalidDimensionsError, "0 rows"),
    ("size_lies.dcm", lambda t: _dicom(t, GREY8, modality="MG", tamper=_set(Rows=1024, Columns=1024)),
     HeaderMismatchError, "header sizes lie"),
    ("frames_lie.dcm", lambda t: _dicom(t, np.stack([GREY8] * 2), modality="US", tamper=_set(NumberOfFrames=40)),
     HeaderMismatchError, "header sizes lie"),
    ("bomb.dcm", lambda t: _dicom(t, GREY8, modality="MG", tamper=_set(Rows=60000, Columns=60000)),
     ImageTooLargeError, "60000 x 60000"),
    # Compressed data whose DICOM header lies: gdcm aborts the *process* on the JPEG-LS one,
    # so the codestream's own header must be checked before decoding.
    ("jpegls_size_lies.dcm", lambda t: _tampered_testfile(t, "MR_small_jpeg_ls_lossless.dcm", Rows=2000),
     HeaderMismatchError, "compressed frame 1 is 64 x 64"),
    ("j2k_size_lies.dcm", lambda t: _tampered_testfile(t, "MR_small_jp2klossless.dcm", Columns=10),
     HeaderMismatchError, "compressed frame 1 is 64 x 64"),
    ("jpeg_samples_lie.dcm", lambda t: _tampered_testfile(t, "SC_rgb_jpeg_gdcm.dcm", SamplesPerPixel=1,
                                                           PhotometricInterpretation="MONOCHROME2"),
     HeaderMismatchError, "3 component(s)"),
    ("unknown_photometric.dcm", lambda t: _dicom(t, GREY8, modality="OT", tamper=_set(PhotometricInterpretation="HSV")),
     UnsupportedPhotometricError, "HSV"),
    ("bad_number.dcm", lambda t: _dicom(t, np.stack([GREY8] * 2), modality="US").replace(
        b"\x28\x00\x08\x00IS\x02\x002 ", b"\x28\x00\x08\x00IS\x02\x001A"), CorruptImageError, "NumberOfFrames"),
]


def write_corpus(folder: Path, cases: list[tuple[Any, ...]]) -> dict[str, Path]:
    """Write each case's bytes to ``folder / name``; returns name -> path."""
    scratch = folder / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    out = {}
    for case in cases:
        name, builder = case[0], case[1]
        path = folder / name
        path.write_bytes(builder(scratch))
        out[name] = path
    return out
