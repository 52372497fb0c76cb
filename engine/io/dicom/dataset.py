"""Parsing a DICOM header: the data set, its transfer syntax, and small accessors shared by the
other :mod:`engine.io.dicom` modules (functional groups of enhanced objects, multi-valued numbers).

PixelData stays on disk (``defer_size``); a file whose last element runs past its end is refused
here, before anything else looks at it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import Any

from engine.errors import ImageReadError
from engine.io.errors import (
    CorruptImageError,
    TruncatedImageError,
    UnknownFormatError,
)


PIXEL_DATA_TAG = 0x7FE00010


NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still met in US archives)
}


DEFLATED = "1.2.840.10008.1.2.1.99"


@contextmanager
def header_errors(path: str) -> Iterator[None]:
    """Turn pydicom's value-conversion errors (bad VR values, broken sequences) into
    :class:`CorruptImageError` naming the file; our own errors pass through."""
    try:
        yield
    except ImageReadError:
        raise
    except Exception as exc:
        msg = str(exc).replace("\n", " ")[:200]
        raise CorruptImageError(path, f"DICOM header is invalid ({type(exc).__name__}: {msg})") from None



#: Optional packages pydicom imports only for its example-data downloader (HTTP, progress bars).
_DOWNLOADER_ONLY = ("requests", "tqdm")
_PYDICOM_LOCK = threading.Lock()


def load_pydicom() -> Any:
    """``import pydicom`` without its example-data downloader's optional HTTP stack.

    ``pydicom.data`` imports ``requests`` and ``tqdm`` when they are installed (0.2 s of the
    0.5 s pydicom import, on the way to the workstation's first DICOM image, issue 17); both
    are optional there (it falls back to urllib, no progress bar), and breast-reader never
    downloads pydicom's test data. They are hidden only while pydicom is first imported and
    are importable normally afterwards.
    """
    mod = sys.modules.get("pydicom")
    if mod is not None:
        return mod
    with _PYDICOM_LOCK:
        hidden = [n for n in _DOWNLOADER_ONLY if n not in sys.modules]
        for n in hidden:
            sys.modules[n] = None  # type: ignore[assignment]  # "import n" raises ImportError
        try:
            import pydicom
        finally:
            for n in hidden:
                if n in sys.modules and sys.modules[n] is None:
                    del sys.modules[n]
    return pydicom

def read_dataset(path: str | PathLike[str], *, force: bool = False) -> Any:
    """Parse a DICOM file's header, deferring large values (PixelData is not read).

    Args:
        path: The file.
        force: Read files without the 128-byte preamble and ``DICM`` prefix.

    Returns:
        A ``pydicom.Dataset`` whose PixelData stays on disk until asked for.

    Raises:
        UnknownFormatError: Not DICOM.
        TruncatedImageError: The file ends inside the header.
        CorruptImageError: The header cannot be parsed.
    """
    pydicom = load_pydicom()
    from pydicom.errors import InvalidDicomError

    p = str(path)
    try:
        ds = pydicom.dcmread(p, defer_size=4096, force=force)
    except InvalidDicomError:
        raise UnknownFormatError(p, "not a DICOM file (no 'DICM' prefix after the 128-byte preamble)") from None
    except (EOFError, OSError) as exc:
        raise TruncatedImageError(p, f"DICOM file ends inside its header ({exc})") from None
    except Exception as exc:  # pydicom raises ValueError/KeyError/struct.error on garbage
        raise CorruptImageError(p, f"DICOM header could not be parsed ({type(exc).__name__}: {exc})") from None
    if force and "Rows" not in ds and "SOPClassUID" not in ds and "Modality" not in ds:
        raise UnknownFormatError(p, "not a DICOM file (no recognisable DICOM elements)")
    _check_not_cut(ds, p)
    return ds


def _check_not_cut(ds: Any, path: str) -> None:
    """pydicom stops quietly at end of file: refuse a file whose last element runs past it."""
    if transfer_syntax(ds) == DEFLATED:
        return  # offsets refer to the inflated stream, not the file
    tags = list(ds.keys())
    if not tags:
        raise TruncatedImageError(path, "file is truncated: it ends right after its DICOM file meta header")
    last = ds.get_item(max(tags), keep_deferred=True)
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length in (None, 0xFFFFFFFF):
        return
    size = os.path.getsize(path)
    if tell + length > size:
        tag = max(tags)
        raise TruncatedImageError(
            path, f"file is truncated: element ({tag.group:04X},{tag.element:04X}) needs {length:,} bytes "
            f"from byte {tell:,} but the file has {size:,}"
        )


def transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        implicit, little = ds.original_encoding
        if implicit is None:
            return "1.2.840.10008.1.2"
        if not little:
            return "1.2.840.10008.1.2.2"
        return "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
    return str(uid)


def first(seq: Any) -> Any:
    try:
        return seq[0] if seq else None
    except (IndexError, TypeError):
        return None


def functional(ds: Any, group: str, attr: str, frame: int | None = None) -> Any:
    """Look an attribute up in Shared (or Per-Frame) Functional Groups of enhanced objects."""
    seqs = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds and frame < len(ds.PerFrameFunctionalGroupsSequence):
        seqs.append(ds.PerFrameFunctionalGroupsSequence[frame])
    shared = first(ds.get("SharedFunctionalGroupsSequence"))
    if shared is not None:
        seqs.append(shared)
    for item in seqs:
        inner = first(item.get(group))
        if inner is not None and attr in inner:
            return inner.get(attr)
    return None


def floats(value: Any) -> list[float]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float)) or not hasattr(value, "__iter__"):
        value = [value]
    out = []
    for v in value:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            continue
    return out
