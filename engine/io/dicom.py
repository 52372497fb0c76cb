"""DICOM reading (pydicom 3): mammography, ultrasound and MR as a reading workstation needs them.

What is handled, following DICOM PS3.3 (C.7.6.3 Image Pixel, C.11 LUTs) and the Digital
Mammography (C.8.11.7), Ultrasound (C.8.5.6) and MR (C.8.3.1) image modules:

* Modality LUT (RescaleSlope/Intercept or ModalityLUTSequence) applied to grey images;
  VOI windows (multi-valued WindowCenter/Width, else a window spanning a VOI LUT) kept in
  ``meta.windows`` in post-Modality-LUT units.
* MONOCHROME1 inverted to MONOCHROME2 (``lo + hi - x`` over the Modality-LUT output range,
  windows mirrored the same way) so every consumer sees "high = bright".
* Colour: RGB, PALETTE COLOR (expanded through its LUT), YBR_FULL / YBR_FULL_422 / YBR_ICT /
  YBR_RCT converted to RGB; multi-frame and big-endian data.
* Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) through
  pydicom's decoder plugins (python-gdcm, Pillow, pydicom's own RLE; no GPL decoders).
* Laterality (ImageLaterality, Laterality, FrameLaterality), view (ViewPosition, else the
  ViewCodeSequence code from CID 4014), pixel spacing (PixelSpacing, ImagerPixelSpacing,
  functional groups, ultrasound regions), presentation intent.
* Identifiers (patient, study/series/SOP UIDs, accession) go to :class:`Identifiers`, never
  into :class:`ImageMeta`.

Bad input is refused *before* the pixel buffer is allocated: rows/columns/frames/samples are
checked against :mod:`engine.io.limits` and, for uncompressed data, against the real length
of PixelData and of the file (headers that lie), each with a specific error naming the file.

Uncompressed grey and RGB data (the 4096 x 3328 16-bit mammogram case) is read with one
``np.fromfile`` at the PixelData offset found while parsing the header, and MONOCHROME1 is
inverted in place: no intermediate ``bytes`` copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from engine.errors import ImageReadError, UnsupportedImageError
from engine.io.errors import (
    CorruptImageError,
    HeaderMismatchError,
    MissingPixelDataError,
    TruncatedImageError,
    UnknownFormatError,
    UnsupportedPhotometricError,
    UnsupportedTransferSyntaxError,
)
from engine.io.limits import MAX_DECODED_BYTES, MAX_PIXELS, check_dimensions
from engine.io.types import Identifiers, ImageMeta, LoadedImage, Modality
from engine.progress import CancelToken, ProgressCallback, check, report

PIXEL_DATA_TAG = 0x7FE00010

#: Photometric interpretations breast-reader decodes (others raise UnsupportedPhotometricError).
SUPPORTED_PHOTOMETRIC = (
    "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR",
    "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420",
)

_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still met in US archives)
}
_DEFLATED = "1.2.840.10008.1.2.1.99"

_SOP_MODALITY = {
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",  # Digital Mammography X-Ray - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",  # - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.3": "MG",  # Breast Tomosynthesis
    "1.2.840.10008.5.1.4.1.1.6.1": "US",  # US Image
    "1.2.840.10008.5.1.4.1.1.3.1": "US",  # US Multi-frame
    "1.2.840.10008.5.1.4.1.1.4": "MR",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",  # Enhanced MR
}

#: Mammography views from DICOM CID 4014 (SNOMED CT and legacy SNOMED-RT code values).
VIEW_CODES: dict[str, str] = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399192008": "XCCL", "R-1024A": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM",
    "399196006": "FB", "R-10244": "FB",
    "399188001": "SIO", "R-102C2": "SIO",
    "399161006": "CV", "R-102D0": "CV",
    "399011000": "AT",
}
_VIEW_MEANINGS = {
    "cranio-caudal": "CC", "medio-lateral oblique": "MLO", "medio-lateral": "ML",
    "latero-medial": "LM", "latero-medial oblique": "LMO", "caudo-cranial": "FB",
    "cranio-caudal exaggerated laterally": "XCCL", "cranio-caudal exaggerated medially": "XCCM",
}


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


# --------------------------------------------------------------------------- header


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
    import pydicom
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
    if _transfer_syntax(ds) == _DEFLATED:
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


def _transfer_syntax(ds: Any) -> str:
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
        lo, hi = _stored_range(layout)
        check_rescale(path, *_rescale(ds), lo, hi)
    return layout


def _check_size(ds: Any, path: str, layout: PixelLayout, max_pixels: int) -> None:
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
    syntax = _transfer_syntax(ds)
    if syntax not in _NATIVE_SYNTAXES:
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


# --------------------------------------------------------------------------- metadata


def _first(seq: Any) -> Any:
    try:
        return seq[0] if seq else None
    except (IndexError, TypeError):
        return None


def _functional(ds: Any, group: str, attr: str, frame: int | None = None) -> Any:
    """Look an attribute up in Shared (or Per-Frame) Functional Groups of enhanced objects."""
    seqs = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds and frame < len(ds.PerFrameFunctionalGroupsSequence):
        seqs.append(ds.PerFrameFunctionalGroupsSequence[frame])
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    if shared is not None:
        seqs.append(shared)
    for item in seqs:
        inner = _first(item.get(group))
        if inner is not None and attr in inner:
            return inner.get(attr)
    return None


def _laterality(ds: Any) -> tuple[str | None, str | None]:
    raw = ds.get("ImageLaterality") or ds.get("Laterality") or _functional(ds, "FrameAnatomySequence", "FrameLaterality", frame=0)
    value = str(raw).strip().upper() if raw else None
    return (value if value in ("L", "R") else None), value


def _view(ds: Any) -> str | None:
    vp = str(ds.get("ViewPosition") or "").strip().upper()
    if vp:
        return vp
    code = _first(ds.get("ViewCodeSequence"))
    if code is not None:
        value = str(code.get("CodeValue") or "").strip()
        if value in VIEW_CODES:
            return VIEW_CODES[value]
        meaning = str(code.get("CodeMeaning") or "").strip().lower()
        if meaning in _VIEW_MEANINGS:
            return _VIEW_MEANINGS[meaning]
    return None


def _floats(value: Any) -> list[float]:
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


def _pixel_spacing(ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        vals = _floats(ds.get(key))
        if len(vals) == 2 and 0 < vals[0] < 1e6 and 0 < vals[1] < 1e6:
            return (vals[0], vals[1]), key
    vals = _floats(_functional(ds, "PixelMeasuresSequence", "PixelSpacing", frame=0))
    if len(vals) == 2 and 0 < vals[0] < 1e6 and 0 < vals[1] < 1e6:
        return (vals[0], vals[1]), "PixelMeasuresSequence"
    region = _first(ds.get("SequenceOfUltrasoundRegions"))
    if region is not None and region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
        dx, dy = _floats(region.get("PhysicalDeltaX")), _floats(region.get("PhysicalDeltaY"))
        if dx and dy and 0 < abs(dx[0]) < 1e5 and 0 < abs(dy[0]) < 1e5:
            return (abs(dy[0]) * 10.0, abs(dx[0]) * 10.0), "SequenceOfUltrasoundRegions"  # cm -> mm
    return None, None


#: Largest magnitude a Modality-LUT output may reach: 32-bit stored values (RT dose) reach
#: 4.3e9, Hounsfield units / MR / MG values are far below; a slope of 1e38 overflows float32
#: arithmetic downstream and scores NaN.
MAX_RESCALED = 1e15


def _rescale(ds: Any) -> tuple[float, float]:
    slope, intercept = _floats(ds.get("RescaleSlope")), _floats(ds.get("RescaleIntercept"))
    if not slope and not intercept:
        slope = _floats(_functional(ds, "PixelValueTransformationSequence", "RescaleSlope", frame=0))
        intercept = _floats(_functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame=0))
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


def _stored_range(layout: PixelLayout) -> tuple[int, int]:
    if layout.signed:
        return -(1 << (layout.bits_stored - 1)), (1 << (layout.bits_stored - 1)) - 1
    return 0, (1 << layout.bits_stored) - 1


def _output_range(ds: Any, layout: PixelLayout) -> tuple[float, float]:
    """Range of values after the Modality LUT (for MONOCHROME1 inversion and windows)."""
    lut = _first(ds.get("ModalityLUTSequence"))
    if lut is not None and "LUTData" in lut:
        data = np.asarray(lut.LUTData if not isinstance(lut.LUTData, (int, float)) else [lut.LUTData])
        return float(data.min()), float(data.max())
    lo, hi = _stored_range(layout)
    slope, intercept = _rescale(ds)
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))


def _windows(ds: Any) -> tuple[list[tuple[float, float]], str | None]:
    centers = _floats(ds.get("WindowCenter"))
    widths = _floats(ds.get("WindowWidth"))
    if not centers:
        centers = _floats(_functional(ds, "FrameVOILUTSequence", "WindowCenter", frame=0))
        widths = _floats(_functional(ds, "FrameVOILUTSequence", "WindowWidth", frame=0))
    pairs = [(c, w) for c, w in zip(centers, widths)
             if np.isfinite(c) and np.isfinite(w) and 0 < w <= 2 * MAX_RESCALED and abs(c) <= MAX_RESCALED]
    if pairs:
        return pairs, "WindowCenter/Width"
    voi = _first(ds.get("VOILUTSequence"))
    if voi is not None and "LUTDescriptor" in voi:
        desc = _floats(voi.LUTDescriptor)
        if len(desc) >= 2 and all(np.isfinite(desc[:2])):
            n = desc[0] or 65536.0
            return [(desc[1] + n / 2.0, n)], "VOILUTSequence (window spanning its input range)"
    return [], None


def build_meta(ds: Any, path: str, layout: PixelLayout | None, modality_hint: Modality | None) -> ImageMeta:
    """The non-PHI display metadata of a DICOM data set (see module docstring)."""
    raw_modality = str(ds.get("Modality") or "").strip().upper()
    modality: str = raw_modality if raw_modality in ("MG", "US", "MR") else _SOP_MODALITY.get(str(ds.get("SOPClassUID") or ""), "")
    if not modality:
        modality = modality_hint or "OT"
    laterality, raw_lat = _laterality(ds)
    spacing, spacing_src = _pixel_spacing(ds)
    windows, win_src = _windows(ds)
    photometric = layout.photometric if layout else str(ds.get("PhotometricInterpretation") or "MONOCHROME2")
    if layout is not None and photometric == "MONOCHROME1":
        lo, hi = _output_range(ds, layout)
        windows = [(lo + hi - c, w) for c, w in windows]
    intent = str(ds.get("PresentationIntentType") or "").strip().upper() or None
    if intent is None:
        sop = str(ds.get("SOPClassUID") or "")
        intent = {"1.2.840.10008.5.1.4.1.1.1.2": "FOR PRESENTATION", "1.2.840.10008.5.1.4.1.1.1.2.1": "FOR PROCESSING"}.get(sop)
    extra: dict[str, str] = {"transfer_syntax": _transfer_syntax(ds)}
    if raw_modality:
        extra["dicom_modality"] = raw_modality
    for key in ("SOPClassUID", "Manufacturer", "ManufacturerModelName", "BodyPartExamined", "SeriesDescription",
                "SeriesNumber", "InstanceNumber", "VOILUTFunction", "ImageType", "PatientOrientation"):
        val = ds.get(key)
        if val not in (None, ""):
            extra[key] = "\\".join(str(v) for v in val) if hasattr(val, "__iter__") and not isinstance(val, str) else str(val)
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "SliceThickness"):
        vals = _floats(ds.get(key))
        if vals:
            extra[key] = "\\".join(f"{v:g}" for v in vals)
    if raw_lat and laterality is None:
        extra["laterality_raw"] = raw_lat
    if spacing_src:
        extra["pixel_spacing_source"] = spacing_src
    if win_src:
        extra["window_source"] = win_src
    mod = _first(ds.get("ViewModifierCodeSequence"))
    if mod is not None and mod.get("CodeMeaning"):
        extra["view_modifier"] = str(mod.CodeMeaning)
    if layout is not None:
        slope, intercept = _rescale(ds)
        if (slope, intercept) != (1.0, 0.0):
            extra["rescale"] = f"{slope:g}*x{intercept:+g}"
        if layout.frames > 1:
            extra["frames"] = str(layout.frames)
    return ImageMeta(
        path=path,
        modality=modality,  # type: ignore[arg-type]
        source_format="DICOM",
        laterality=laterality,
        view=_view(ds),
        photometric=photometric,
        pixel_spacing=spacing,
        windows=windows,
        presentation_intent=intent,
        bits_stored=layout.bits_stored if layout else int(ds.get("BitsStored") or 8),
        slice_positions=None,
        extra=extra,
    )


def build_ids(ds: Any) -> Identifiers:
    """The identifiers of ``ds`` (PHI, kept apart from :class:`ImageMeta`)."""

    def s(key: str) -> str | None:
        val = ds.get(key)
        return str(val) if val not in (None, "") else None

    return Identifiers(
        patient_id=s("PatientID"),
        patient_name=s("PatientName"),
        study_uid=s("StudyInstanceUID"),
        series_uid=s("SeriesInstanceUID"),
        sop_uid=s("SOPInstanceUID"),
        accession=s("AccessionNumber"),
    )


# --------------------------------------------------------------------------- pixels


def _fast_native(ds: Any, path: str, layout: PixelLayout) -> np.ndarray | None:
    """Uncompressed grey/RGB data read straight from the file into a writable array."""
    syntax = _transfer_syntax(ds)
    if syntax not in _NATIVE_SYNTAXES or layout.bits_allocated not in (8, 16, 32):
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


def _check_codestreams(ds: Any, path: str, layout: PixelLayout) -> None:
    """Compare each compressed frame's own header with Rows/Columns/SamplesPerPixel.

    Some native decoders abort the whole process (not an exception) when the DICOM header
    claims a different size than the codestream, so a lying header is refused before decoding.
    """
    syntax = _transfer_syntax(ds)
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


def _decode_with_pydicom(ds: Any, path: str, layout: PixelLayout) -> np.ndarray:
    from pydicom.pixels import pixel_array

    syntax = _transfer_syntax(ds)
    _check_codestreams(ds, path, layout)
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
    slope, intercept = _rescale(ds)
    if slope == 1.0 and intercept == 0.0:
        return arr
    lo, hi = _output_range(ds, layout)
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
    lo, hi = _output_range(ds, layout)
    total = lo + hi
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if float(total).is_integer() and info.min <= total <= info.max:
            np.subtract(arr.dtype.type(int(total)), arr, out=arr)  # in place: no second buffer
            return arr
        return (np.int64(int(total)) - arr.astype(np.int64)).astype(np.int32)
    np.subtract(arr.dtype.type(total), arr, out=arr)
    return arr


def _frame_positions(ds: Any, frames: int) -> list[float] | None:
    """Positions of enhanced multi-frame slices along their normal (PS3.3 C.7.6.16)."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return None
    orient = _floats(_functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"))
    if len(orient) != 6:
        return None
    normal = np.cross(orient[:3], orient[3:])
    out = []
    for i in range(frames):
        pos = _floats(_functional(ds, "PlanePositionSequence", "ImagePositionPatient", frame=i))
        if len(pos) != 3:
            return None
        out.append(float(np.dot(normal, pos)))
    return out


def _per_frame_rescale(ds: Any, frames: int) -> list[tuple[float, float]] | None:
    """Per-frame RescaleSlope/Intercept of enhanced objects when they differ between frames
    (enhanced MR from some vendors scales every frame differently; PS3.3 C.7.6.16.2.9)."""
    if frames < 2 or "PerFrameFunctionalGroupsSequence" not in ds or "RescaleSlope" in ds:
        return None
    out = []
    for i in range(frames):
        slope = _floats(_functional(ds, "PixelValueTransformationSequence", "RescaleSlope", frame=i))
        intercept = _floats(_functional(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame=i))
        out.append((slope[0] if slope and slope[0] != 0 else 1.0, intercept[0] if intercept else 0.0))
    return out if len(set(out)) > 1 else None


def _check_per_frame(path: str, per_frame: list[tuple[float, float]], layout: PixelLayout) -> None:
    lo, hi = _stored_range(layout)
    for slope, intercept in per_frame:
        check_rescale(path, slope, intercept, lo, hi)


def decode_pixels(ds: Any, path: str, layout: PixelLayout) -> np.ndarray:
    """Decode, apply the Modality LUT and invert MONOCHROME1 (sizes already checked)."""
    arr = _fast_native(ds, path, layout)
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
    if layout.photometric.startswith("MONO"):
        arr = _apply_modality_lut(ds, arr, layout)
        if layout.photometric == "MONOCHROME1":
            arr = _invert_monochrome1(ds, arr, layout)
    return arr


def read_dicom(
    path: str | PathLike[str],
    *,
    modality_hint: Modality | None = None,
    max_pixels: int = MAX_PIXELS,
    force: bool = False,
) -> LoadedImage:
    """Read one DICOM file into a :class:`LoadedImage`.

    Args:
        path: The file.
        modality_hint: Modality to use when the file says none / OT.
        max_pixels: Refuse headers claiming more rows x cols x frames than this.
        force: Accept files without preamble / ``DICM`` prefix.

    Returns:
        Grey (rows, cols) / (frames, rows, cols) after the Modality LUT with MONOCHROME1
        inverted; colour (rows, cols, 3) / (frames, rows, cols, 3) RGB.

    Raises:
        ImageReadError: A specific subclass naming the file and the reason.
    """
    p = str(path)
    ds = read_dataset(p, force=force)
    with header_errors(p):
        layout = pixel_layout(ds, p)
        _check_size(ds, p, layout, max_pixels)
        meta = build_meta(ds, p, layout, modality_hint)
        ids = build_ids(ds)
    arr = decode_pixels(ds, p, layout)
    if layout.frames > 1 and arr.ndim == 3 and not (layout.samples == 3 or layout.photometric == "PALETTE COLOR"):
        positions = _frame_positions(ds, layout.frames)
        if positions is not None:
            order = np.argsort(positions, kind="stable")
            if np.any(order != np.arange(len(order))):
                arr = arr[order]
            meta.slice_positions = [positions[i] for i in order]
            repeats = len(positions) - len({round(p, 4) for p in positions})
            if repeats:
                meta.extra["repeated_positions"] = str(repeats)
    return LoadedImage(pixels=arr, meta=meta, ids=ids)


def probe_dicom(
    path: str | PathLike[str], *, modality_hint: Modality | None = None, force: bool = False
) -> tuple[ImageMeta, Identifiers, tuple[int, ...]]:
    """Header-only: metadata, identifiers and the shape :func:`read_dicom` would return."""
    p = str(path)
    ds = read_dataset(p, force=force)
    with header_errors(p):
        layout = pixel_layout(ds, p)
        return build_meta(ds, p, layout, modality_hint), build_ids(ds), layout.shape


# --------------------------------------------------------------------------- series


@dataclass
class _Slice:
    path: str
    ds: Any
    layout: PixelLayout
    position: float | None
    instance: int | None


def _slice_position(ds: Any) -> tuple[float | None, tuple[float, ...] | None]:
    pos = _floats(ds.get("ImagePositionPatient"))
    orient = _floats(ds.get("ImageOrientationPatient"))
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
        _check_size(ds, f, lay, max_pixels)
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
