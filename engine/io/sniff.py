"""Identify an image file from its first bytes (magic numbers), not from its extension."""

from __future__ import annotations

import os
from os import PathLike

#: Bytes read to identify a file (DICOM needs 132: a 128-byte preamble then ``DICM``).
HEAD_BYTES = 512

_VR_CODES = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
}


def read_head(path: str | PathLike[str], n: int = HEAD_BYTES) -> bytes:
    """Return the first ``n`` bytes of ``path``."""
    with open(path, "rb") as fh:
        return fh.read(n)


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set written without preamble/meta (old ACR-NEMA style files).

    The first element is then a group 0x0002, 0x0008 (or 0x0000 group length) tag in
    little- or big-endian order, followed by either an explicit VR code or a 4-byte length.
    """
    if len(head) < 8:
        return False
    for order in ("little", "big"):
        group = int.from_bytes(head[0:2], order)
        elem = int.from_bytes(head[2:4], order)
        if group in (0x0000, 0x0002, 0x0008) and elem < 0x0100 and (group or elem == 0):
            if head[4:6] in _VR_CODES:
                return True
            length = int.from_bytes(head[4:8], order)
            if 0 < length < 1024:
                return True
    return False


def sniff_format(head: bytes, name: str = "") -> str | None:
    """Return the format of a file from its first bytes.

    Args:
        head: At least the first 132 bytes of the file (fewer for tiny files).
        name: The file name; only used to accept preamble-less DICOM named ``*.dcm``.

    Returns:
        "DICOM", "PNG", "JPEG", "TIFF", "PGM", "PPM", "PBM", "BMP", "GIF", "JPEG2000" or None.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if len(head) >= 3 and head[0:1] == b"P" and head[2:3] in (b" ", b"\t", b"\r", b"\n", b"#"):
        kind = head[1:2]
        if kind in (b"2", b"5"):
            return "PGM"
        if kind in (b"3", b"6"):
            return "PPM"
        if kind in (b"1", b"4"):
            return "PBM"
    if head.startswith(b"BM") and len(head) >= 26:
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    ext = os.path.splitext(name)[1].lower()
    if ext in ("", ".dcm", ".dicom", ".ima") and _looks_like_raw_dicom(head):
        return "DICOM"
    return None


def describe_unknown(head: bytes) -> str:
    """A short, safe description of unrecognised content for an error message."""
    if not head:
        return "the file is empty"
    sample = head[:256]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    if printable >= 0.95 * len(sample):
        # never quote the content: a path that leads to a secrets file must not leak it
        return "not an image: the file is text"
    return f"not a recognised image format (first bytes {sample[:8].hex(' ')})"
