"""Pixel decoding: uncompressed data straight from the file, compressed data through a decoder that
releases the GIL (:mod:`engine.io.dicom.codecs`) or pydicom's plugins, then the Modality LUT
(PS3.3 C.11.1) and MONOCHROME1 -> MONOCHROME2.

Uncompressed grey and RGB data (the 4096 x 3328 16-bit mammogram case) is read with one
``np.fromfile`` at the PixelData offset found while parsing the header, and MONOCHROME1 is
inverted in place: no intermediate ``bytes`` copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.io.dicom.codecs import decode_gil_free, fast_path_applies
from engine.io.dicom.codestream import check_codestreams
from engine.io.dicom.dataset import NATIVE_SYNTAXES, PIXEL_DATA_TAG, floats, functional, transfer_syntax
from engine.io.dicom.layout import PixelLayout, check_rescale, output_range, rescale, stored_range
from engine.io.errors import (
    CorruptImageError,
    HeaderMismatchError,
    TruncatedImageError,
    UnsupportedTransferSyntaxError,
)


def _fast_native(ds: Any, path: str, layout: PixelLayout) -> np.ndarray | None:
    """Uncompressed grey/RGB data read straight from the file into a writable array."""
    syntax = transfer_syntax(ds)
    if syntax not in NATIVE_SYNTAXES or layout.bits_allocated not in (8, 16, 32):
        return None
    if not (layout.photometric in ("MONOCHROME1", "MONOCHROME2") or (layout.photometric == "RGB" and layout.planar == 0)):
        return None
    big = syntax == "1.2.840.10008.1.2.2"
    if big and layout.bits_allocated == 8:
        return None  # 8-bit samples in big-endian OW are word-swapped; pydicom undoes that
    kind = "i" if layout.signed else "u"
    dtype = np.dtype(f"{'>' if big else '<'}{kind}{layout.bits_allocated // 8}")
    count = layout.rows * layout.cols * layout.frames * layout.samples
    raw = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    if getattr(raw, "value", None) is None and getattr(raw, "value_tell", None) is not None:
        arr = np.fromfile(path, dtype=dtype, count=count, offset=raw.value_tell)
    else:
        arr = np.frombuffer(ds.PixelData, dtype=dtype, count=count).copy()
    if arr.size != count:
        raise TruncatedImageError(path, f"PixelData ends after {arr.size:,} of {count:,} samples")
    if big and layout.bits_allocated > 8:
        arr.byteswap(inplace=True)  # our own fresh buffer: swap in place, no second copy
        arr = arr.view(dtype.newbyteorder("="))
    shift = layout.bits_allocated - layout.bits_stored
    if shift:
        if layout.signed:  # sign-extend BitsStored into the container
            np.left_shift(arr, shift, out=arr)
            np.right_shift(arr, shift, out=arr)
        else:  # unused high bits may hold overlays in old files
            np.bitwise_and(arr, (1 << layout.bits_stored) - 1, out=arr)
    shape = layout.shape
    return arr.reshape(shape)


def _decode_with_pydicom(ds: Any, path: str, layout: PixelLayout) -> np.ndarray:
    from pydicom.pixels import pixel_array

    syntax = transfer_syntax(ds)
    check_codestreams(ds, path, layout)
    try:
        arr = pixel_array(ds, as_rgb=True)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(path, f"no installed decoder for transfer syntax {syntax} ({exc})") from None
    except Exception as exc:
        msg = str(exc).replace("\n", " ")
        low = msg.lower()
        if "no pixel data decoders" in low or "missing dependencies" in low or "does not support" in low:
            from pydicom.uid import UID

            raise UnsupportedTransferSyntaxError(
                path, f"no installed decoder handles {UID(syntax).name} with {layout.bits_stored}-bit samples "
                "(convert the file, e.g. to uncompressed or JPEG-LS)"
            ) from None
        if "less than expected" in msg or "truncat" in msg.lower():
            raise TruncatedImageError(path, f"pixel data is truncated ({msg[:160]})") from None
        raise CorruptImageError(path, f"pixel data could not be decoded ({type(exc).__name__}: {msg[:200]})") from None
    if layout.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as exc:
            raise CorruptImageError(path, f"palette colour lookup table is invalid ({exc})") from None
        if rgb.dtype.itemsize > 1:  # 16-bit palette entries -> 8-bit RGB for display
            rgb = (rgb >> 8).astype(np.uint8)
        arr = rgb
    if not arr.dtype.isnative:
        arr = arr.byteswap().view(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr


def _apply_modality_lut(ds: Any, arr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Modality LUT (PS3.3 C.11.1): ModalityLUTSequence or RescaleSlope/Intercept."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(arr, ds))
    slope, intercept = rescale(ds)
    if slope == 1.0 and intercept == 0.0:
        return arr
    lo, hi = output_range(ds, layout)
    if float(slope).is_integer() and float(intercept).is_integer():
        for dt in (np.int16, np.int32):
            info = np.iinfo(dt)
            if info.min <= lo and hi <= info.max:
                out: np.ndarray = arr.astype(dt)
                if slope != 1:
                    np.multiply(out, dt(slope), out=out)
                np.add(out, dt(intercept), out=out)
                return out
    fout: np.ndarray = arr.astype(np.float32)
    np.multiply(fout, np.float32(slope), out=fout)
    np.add(fout, np.float32(intercept), out=fout)
    return fout


def _invert_monochrome1(ds: Any, arr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """MONOCHROME1 -> MONOCHROME2: ``lo + hi - x`` over the Modality-LUT output range."""
    lo, hi = output_range(ds, layout)
    total = lo + hi
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if float(total).is_integer() and info.min <= total <= info.max:
            np.subtract(arr.dtype.type(int(total)), arr, out=arr)  # in place: no second buffer
            return arr
        return (np.int64(int(total)) - arr.astype(np.int64)).astype(np.int32)
    np.subtract(arr.dtype.type(total), arr, out=arr)
    return arr


def _per_frame_rescale(ds: Any, frames: int) -> list[tuple[float, float]] | None:
    """Per-frame RescaleSlope/Intercept of enhanced objects when they differ between frames
    (enhanced MR from some vendors scales every frame differently; PS3.3 C.7.6.16.2.9)."""
    if frames < 2 or "PerFrameFunctionalGroupsSequence" not in ds or "RescaleSlope" in ds:
        return None
    out = []
    for i in range(frames):
        slope = floats(functional(ds, "PixelValueTransformationSequence", "RescaleSlope", frame=i))
        intercept = floats(functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame=i))
        out.append((slope[0] if slope and slope[0] != 0 else 1.0, intercept[0] if intercept else 0.0))
    return out if len(set(out)) > 1 else None


def _check_per_frame(path: str, per_frame: list[tuple[float, float]], layout: PixelLayout) -> None:
    lo, hi = stored_range(layout)
    for slope, intercept in per_frame:
        check_rescale(path, slope, intercept, lo, hi)


def decode_pixels(ds: Any, path: str, layout: PixelLayout) -> np.ndarray:
    """Decode, apply the Modality LUT and invert MONOCHROME1 (sizes already checked)."""
    arr = _fast_native(ds, path, layout)
    if arr is None and fast_path_applies(ds, layout):
        check_codestreams(ds, path, layout)  # a lying header is refused before any decoder runs
        arr = decode_gil_free(ds, layout)  # None: refused, pydicom decodes and explains
    if arr is None:
        arr = _decode_with_pydicom(ds, path, layout)
    expected = layout.shape
    if arr.shape != expected:
        raise HeaderMismatchError(path, f"decoded pixels have shape {arr.shape}, the header says {expected}")
    per_frame = _per_frame_rescale(ds, layout.frames) if layout.photometric == "MONOCHROME2" else None
    if per_frame is not None and arr.ndim == 3:
        _check_per_frame(path, per_frame, layout)
        out = arr.astype(np.float32)
        for i, (slope, intercept) in enumerate(per_frame):
            out[i] *= np.float32(slope)
            out[i] += np.float32(intercept)
        return out
    return grey_values(ds, arr, layout)


def grey_values(ds: Any, arr: np.ndarray, layout: PixelLayout) -> np.ndarray:
    """Stored grey values -> Modality-LUT output, MONOCHROME1 inverted (colour passes through)."""
    if layout.photometric.startswith("MONO"):
        arr = _apply_modality_lut(ds, arr, layout)
        if layout.photometric == "MONOCHROME1":
            arr = _invert_monochrome1(ds, arr, layout)
    return arr


def frame_positions(ds: Any, frames: int) -> list[float] | None:
    """Positions of enhanced multi-frame slices along their normal (PS3.3 C.7.6.16)."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return None
    orient = floats(functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"))
    if len(orient) != 6:
        return None
    normal = np.cross(orient[:3], orient[3:])
    out = []
    for i in range(frames):
        pos = floats(functional(ds, "PlanePositionSequence", "ImagePositionPatient", frame=i))
        if len(pos) != 3:
            return None
        out.append(float(np.dot(normal, pos)))
    return out
