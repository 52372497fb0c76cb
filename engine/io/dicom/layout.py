"""Validation and limits: the Image Pixel module (PS3.3 C.7.6.3) as a :class:`PixelLayout`, and the
checks that refuse bad input *before* the pixel buffer is allocated.

Rows/columns/frames/samples are checked against :mod:`engine.io.limits` and, for uncompressed
data, against the real length of PixelData and of the file (headers that lie), each with a
specific error naming the file. The Modality LUT's output range (RescaleSlope/Intercept) is
checked and computed here too: MONOCHROME1 inversion and VOI windows depend on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import UnsupportedImageError
from engine.io.dicom.dataset import NATIVE_SYNTAXES, PIXEL_DATA_TAG, first, floats, functional, transfer_syntax
from engine.io.errors import (
    CorruptImageError,
    HeaderMismatchError,
    MissingPixelDataError,
    TruncatedImageError,
    UnsupportedPhotometricError,
)
from engine.io.limits import MAX_DECODED_BYTES, check_dimensions


#: Photometric interpretations breast-reader decodes (others raise UnsupportedPhotometricError).
SUPPORTED_PHOTOMETRIC = (
    "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR",
    "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
)


@dataclass(frozen=True)
class PixelLayout:
    """The Image Pixel module attributes that decide how many bytes the pixels take."""

    rows: int
    cols: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int

    @property
    def expected_bytes(self) -> int:
        """Bytes of uncompressed PixelData implied by the header (PS3.5 8.1.1)."""
        per_frame_samples = self.rows * self.cols * self.samples
        if self.photometric == "YBR_FULL_422":
            per_frame_samples = self.rows * self.cols * 2  # Cb/Cr horizontally subsampled
        bits = per_frame_samples * self.frames * self.bits_allocated
        return (bits + 7) // 8

    @property
    def shape(self) -> tuple[int, ...]:
        """The decoded array's shape."""
        shape: tuple[int, ...] = (self.rows, self.cols)
        if self.samples == 3 or self.photometric == "PALETTE COLOR":
            shape += (3,)
        if self.frames > 1:
            shape = (self.frames,) + shape
        return shape


def pixel_layout(ds: Any, path: str) -> PixelLayout:
    """Validate and return the Image Pixel module of ``ds``.

    Raises:
        MissingPixelDataError: No PixelData (SR, RT plan, waveform, presentation state...).
        CorruptImageError: Required pixel attributes missing or inconsistent.
        InvalidDimensionsError: Zero rows/columns/frames.
        UnsupportedPhotometricError: Unknown photometric interpretation.
    """
    if PIXEL_DATA_TAG not in ds:
        what = ds.get("Modality") or "object"
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedImageError(path, "floating-point pixel data (parametric map) is not supported")
        raise MissingPixelDataError(path, f"DICOM {what} has no pixel data (not an image)")
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if ds.get(k) is None]
    if missing:
        raise CorruptImageError(path, f"DICOM image is missing required element(s) {', '.join(missing)}")
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        raise CorruptImageError(path, f"NumberOfFrames {ds.get('NumberOfFrames')!r} is not a number") from None
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
    if photometric not in SUPPORTED_PHOTOMETRIC:
        raise UnsupportedPhotometricError(path, f"unknown photometric interpretation {photometric!r}")
    expected_samples = 1 if photometric.startswith("MONO") or photometric == "PALETTE COLOR" else 3
    if samples != expected_samples:
        raise CorruptImageError(path, f"{photometric} needs SamplesPerPixel={expected_samples}, header says {samples}")
    bits_allocated = int(ds.BitsAllocated)
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise CorruptImageError(path, f"BitsAllocated {bits_allocated} is not valid")
    bits_stored = int(ds.get("BitsStored") or bits_allocated)
    if not 0 < bits_stored <= bits_allocated:
        raise CorruptImageError(path, f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    layout = PixelLayout(
        rows=int(ds.Rows), cols=int(ds.Columns), frames=frames, samples=samples,
        bits_allocated=bits_allocated, bits_stored=bits_stored,
        signed=int(ds.get("PixelRepresentation") or 0) == 1, photometric=photometric,
        planar=int(ds.get("PlanarConfiguration") or 0),
    )
    if photometric.startswith("MONO") and "ModalityLUTSequence" not in ds:
        lo, hi = stored_range(layout)
        check_rescale(path, *rescale(ds), lo, hi)
    return layout


def check_size(ds: Any, path: str, layout: PixelLayout, max_pixels: int) -> None:
    """Refuse oversized headers and uncompressed PixelData shorter than the header implies."""
    out_samples = 3 if layout.shape[-1] == 3 and (layout.samples == 3 or layout.photometric == "PALETTE COLOR") else 1
    # Peak of the decode, not just its result: the decoder's native buffer plus the Modality-LUT
    # output (float32/int32 when > 8 bits), or the native buffer plus a colour-converted copy.
    native = max(1, layout.bits_allocated // 8)
    out_bytes = native + 4 if layout.bits_allocated > 8 else (2 * native if out_samples == 3 else native)
    check_dimensions(
        path, layout.rows, layout.cols, frames=layout.frames, samples=out_samples,
        bytes_per_sample=out_bytes, max_pixels=max_pixels, max_bytes=MAX_DECODED_BYTES,
    )
    syntax = transfer_syntax(ds)
    if syntax not in NATIVE_SYNTAXES:
        return
    raw = ds.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    value = getattr(raw, "value", None)
    # The bytes actually read win over the element's declared length (a cut file keeps the
    # declared length but holds fewer bytes).
    length = len(value) if value is not None else getattr(raw, "length", 0)
    expected = layout.expected_bytes
    dims = f"{layout.rows} x {layout.cols}" + (f" x {layout.frames} frames" if layout.frames > 1 else "")
    declared = getattr(raw, "length", None)
    if value is not None and declared not in (None, 0xFFFFFFFF) and len(value) < declared:
        raise TruncatedImageError(
            path, f"file is truncated: PixelData declares {declared:,} bytes but the file ends after {len(value):,}"
        )
    if length == 0xFFFFFFFF:
        raise CorruptImageError(path, "uncompressed transfer syntax but PixelData is encapsulated")
    if length < expected:
        raise HeaderMismatchError(
            path, f"header sizes lie: {dims} x {layout.samples} sample(s) x {layout.bits_allocated} bits "
            f"needs {expected:,} bytes but PixelData holds {length:,}"
        )
    if length > expected + (expected & 1) + 1 and not (length == 2 * expected and layout.bits_allocated == 1):
        # one column fewer than the data would decode sheared: Rows/Columns/frames disagree
        raise HeaderMismatchError(
            path, f"header sizes lie: {dims} x {layout.samples} sample(s) x {layout.bits_allocated} bits "
            f"needs {expected:,} bytes but PixelData holds {length:,} (Rows/Columns/NumberOfFrames disagree "
            "with the data; decoding it would shear the image)"
        )
    tell = getattr(raw, "value_tell", None)
    if tell is not None and getattr(raw, "value", None) is None:
        size = os.path.getsize(path)
        if tell + expected > size:
            raise TruncatedImageError(
                path, f"file is truncated: PixelData needs {expected:,} bytes from byte {tell:,} but the file has {size:,}"
            )


#: Largest magnitude a Modality-LUT output may reach: 32-bit stored values (RT dose) reach
#: 4.3e9, Hounsfield units / MR / MG values are far below; a slope of 1e38 overflows float32
#: arithmetic downstream and scores NaN.
MAX_RESCALED = 1e15


def rescale(ds: Any) -> tuple[float, float]:
    slope, intercept = floats(ds.get("RescaleSlope")), floats(ds.get("RescaleIntercept"))
    if not slope and not intercept:
        slope = floats(functional(ds, "PixelValueTransformationSequence", "RescaleSlope", frame=0))
        intercept = floats(functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame=0))
    return (slope[0] if slope and slope[0] != 0 else 1.0), (intercept[0] if intercept else 0.0)


def check_rescale(path: str, slope: float, intercept: float, lo: float, hi: float) -> None:
    """Refuse a Modality LUT that is not finite or maps stored values beyond :data:`MAX_RESCALED`.

    Raises:
        CorruptImageError: RescaleSlope/Intercept non-finite or absurd.
    """
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise CorruptImageError(path, f"RescaleSlope/Intercept {slope:g}/{intercept:g} are not finite numbers")
    a, b = lo * slope + intercept, hi * slope + intercept
    if not (np.isfinite(a) and np.isfinite(b)) or max(abs(a), abs(b)) > MAX_RESCALED:
        raise CorruptImageError(
            path, f"RescaleSlope {slope:g} / RescaleIntercept {intercept:g} map the stored values beyond "
            f"+-{MAX_RESCALED:g}; the header is corrupt"
        )


def stored_range(layout: PixelLayout) -> tuple[int, int]:
    if layout.signed:
        return -(1 << (layout.bits_stored - 1)), (1 << (layout.bits_stored - 1)) - 1
    return 0, (1 << layout.bits_stored) - 1


def output_range(ds: Any, layout: PixelLayout) -> tuple[float, float]:
    """Range of values after the Modality LUT (for MONOCHROME1 inversion and windows)."""
    lut = first(ds.get("ModalityLUTSequence"))
    if lut is not None and "LUTData" in lut:
        data = np.asarray(lut.LUTData if not isinstance(lut.LUTData, (int, float)) else [lut.LUTData])
        return float(data.min()), float(data.max())
    lo, hi = stored_range(layout)
    slope, intercept = rescale(ds)
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))
