"""Compressed grey frames decoded without holding the GIL, and JPEG 2000 first views.

pydicom's plugins (python-gdcm, Pillow) hold the GIL for the whole decode: a 4560 x 2864
16-bit JPEG 2000 mammogram decoded in a worker thread froze the GUI for about 2 s. imagecodecs
(BSD; OpenJPEG, CharLS, libjpeg-turbo, ljpeg92) releases it inside every decoder, so the GUI
thread keeps running while a pool thread decodes (``benchmarks/results/decode-stall.json``).

JPEG 2000 stores its wavelet levels coarse-to-fine: decoding only the lowest ``r`` levels gives
the image at 1/2^r of its size for a small fraction of the work (ISO 15444-1 Annex B, "reduce").
:func:`reduced_j2k` calls OpenJPEG for that through ctypes (:mod:`engine.io.dicom.openjpeg`, the
GIL released; Pillow's ``Image.reduce``, which holds it, only when no libopenjp2 is found): a few
tens of ms for a mammogram at 1/8, so a first view is on screen long before the full decode ends.

Only the cases this module is sure of take the fast path (unsigned MONOCHROME1/2 data, one
component, known syntaxes); everything else, and every frame these decoders refuse, goes to
pydicom, whose error messages :mod:`engine.io.dicom.pixels` turns into one clear line.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from engine.io.dicom import openjpeg
from engine.io.dicom.dataset import transfer_syntax
from engine.io.dicom.layout import PixelLayout

#: Transfer syntax -> imagecodecs decoder family (PS3.5 A.4).
SYNTAX_CODECS: dict[str, str] = {
    "1.2.840.10008.1.2.4.90": "jpeg2k",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "jpeg2k",  # JPEG 2000
    "1.2.840.10008.1.2.4.80": "jpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "jpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.57": "ljpeg",  # JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.70": "ljpeg",  # JPEG Lossless, SV1
    "1.2.840.10008.1.2.4.50": "jpeg8",  # JPEG Baseline (8-bit)
}

J2K_SYNTAXES = frozenset(k for k, v in SYNTAX_CODECS.items() if v == "jpeg2k")


def _codecs() -> Any | None:
    try:
        import imagecodecs
    except ImportError:  # an install without it decodes through pydicom, holding the GIL
        return None
    return imagecodecs


def gil_free_available() -> bool:
    """Whether the GIL-releasing decoders are installed."""
    return _codecs() is not None


def fast_path_applies(ds: Any, layout: PixelLayout) -> bool:
    """The data set is grey, unsigned, one sample, in a syntax :data:`SYNTAX_CODECS` covers."""
    return (
        transfer_syntax(ds) in SYNTAX_CODECS
        and layout.photometric in ("MONOCHROME1", "MONOCHROME2")
        and layout.samples == 1
        and not layout.signed
        and layout.bits_allocated in (8, 16)
        and gil_free_available()
    )


def compressed_frames(ds: Any, layout: PixelLayout) -> list[bytes]:
    """The codestream of each frame of encapsulated PixelData (PS3.5 A.4)."""
    from pydicom.encaps import generate_frames

    return [bytes(f) for f in generate_frames(ds.PixelData, number_of_frames=layout.frames)]


def _decode_one(ic: Any, codec: str, frame: bytes) -> np.ndarray:
    if codec == "jpeg2k":
        return np.asarray(ic.jpeg2k_decode(frame, numthreads=1))
    if codec == "jpegls":
        return np.asarray(ic.jpegls_decode(frame))
    if codec == "ljpeg":
        return np.asarray(ic.ljpeg_decode(frame))
    return np.asarray(ic.jpeg8_decode(frame))


def decode_gil_free(ds: Any, layout: PixelLayout) -> np.ndarray | None:
    """Decode every frame with imagecodecs (the GIL is released inside each decoder).

    Returns:
        ``(rows, cols)`` or ``(frames, rows, cols)`` in the stored unsigned dtype with bits
        above BitsStored cleared, or None when the fast path does not apply or a decoder
        refused a frame (the caller then decodes with pydicom, which explains failures).
    """
    ic = _codecs()
    if ic is None or not fast_path_applies(ds, layout):
        return None
    codec = SYNTAX_CODECS[transfer_syntax(ds)]
    dtype = np.dtype(f"<u{layout.bits_allocated // 8}")
    out = np.empty((layout.frames, layout.rows, layout.cols), dtype)
    try:
        frames = compressed_frames(ds, layout)
        if len(frames) != layout.frames:
            return None
        for k, frame in enumerate(frames):
            arr = _decode_one(ic, codec, frame)
            if arr.shape != (layout.rows, layout.cols) or arr.dtype.kind not in "ui" or arr.dtype.itemsize > dtype.itemsize:
                return None
            out[k] = arr
    except Exception:  # noqa: BLE001 - any refusal falls back to pydicom, which names the problem
        return None
    if layout.bits_stored < layout.bits_allocated:
        np.bitwise_and(out, (1 << layout.bits_stored) - 1, out=out)
    return out[0] if layout.frames == 1 else out


def j2k_levels(frame: bytes) -> int | None:
    """Number of wavelet decomposition levels in a JPEG 2000 codestream's COD marker (A.6.1)."""
    cod = frame.find(b"\xff\x52", 0, 4096)
    if cod < 0 or cod + 10 > len(frame):
        return None
    return int(frame[cod + 9])  # Lcod(2) Scod(1) SGcod(4) then SPcod: decomposition levels


def reduced_j2k(frame: bytes, rows: int, cols: int, max_side: int) -> tuple[np.ndarray, int] | None:
    """Decode only the coarse wavelet levels of a JPEG 2000 codestream.

    Args:
        frame: One JPEG 2000 codestream.
        rows: Full-resolution rows.
        cols: Full-resolution columns.
        max_side: Largest side wanted for the first view.

    Returns:
        ``(pixels at ceil(rows / 2^r) x ceil(cols / 2^r), r)``, or None when the image is
        already small, has no levels to skip, or the decoder refuses it.
    """
    levels = j2k_levels(frame)
    need = max(0, math.ceil(math.log2(max(rows, cols) / max(1, max_side)))) if max(rows, cols) > max_side else 0
    r = min(need, levels or 0)
    if r < 1:
        return None
    arr = openjpeg.decode_reduced(frame, r)  # GIL released
    if arr is None:
        arr = _pillow_reduced(frame, r)  # holds the GIL: only without libopenjp2
    if arr is None or arr.ndim != 2 or arr.shape != (math.ceil(rows / 2**r), math.ceil(cols / 2**r)):
        return None
    return arr, r


def _pillow_reduced(frame: bytes, r: int) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(frame)) as im:
            setattr(im, "reduce", r)  # Jpeg2KImageFile.reduce: decode resolution level r only
            im.load()
            arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - no preview is not an error: the full decode follows
        return None
    return arr
