"""Write valid DICOM files (Part 10) for mammography, ultrasound, MR and secondary capture.

Used to turn demo/test images into the DICOM a PACS would send: correct SOP classes (DICOM
PS3.4 B.5), File Meta Information, UIDs, the Image Pixel module, the Digital Mammography
module's ImageLaterality / ViewPosition / ViewCodeSequence (CID 4014), colour ultrasound as RGB,
multi-frame ultrasound / secondary capture, and one-file-per-slice MR series with geometry
(ImagePositionPatient / ImageOrientationPatient) so :func:`engine.io.reader.read_image` sorts
them back. Files are written atomically (temporary file then rename).
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

#: SOP Class UIDs (PS3.4 Table B.5-1).
SOP_CLASSES: dict[str, str] = {
    "MG_PRESENTATION": "1.2.840.10008.5.1.4.1.1.1.2",
    "MG_PROCESSING": "1.2.840.10008.5.1.4.1.1.1.2.1",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "US_MULTIFRAME": "1.2.840.10008.5.1.4.1.1.3.1",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "SC": "1.2.840.10008.5.1.4.1.1.7",
    "SC_MULTIFRAME_BYTE": "1.2.840.10008.5.1.4.1.1.7.2",
    "SC_MULTIFRAME_WORD": "1.2.840.10008.5.1.4.1.1.7.3",
    "SC_MULTIFRAME_RGB": "1.2.840.10008.5.1.4.1.1.7.4",
}

#: Mammography view -> (SNOMED CT code, meaning) from CID 4014.
MG_VIEW_CODES: dict[str, tuple[str, str]] = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
    "ML": ("399260004", "medio-lateral"),
    "LM": ("399352003", "latero-medial"),
    "LMO": ("399099002", "latero-medial oblique"),
    "XCCL": ("399192008", "cranio-caudal exaggerated laterally"),
    "XCCM": ("399101009", "cranio-caudal exaggerated medially"),
    "FB": ("399196006", "caudo-cranial"),
    "SIO": ("399188001", "superolateral to inferomedial oblique"),
    "CV": ("399161006", "cleavage"),
}

_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"  # pydicom's root + ".1": breast-reader writer
_IMPLEMENTATION_VERSION = "BREASTREADER01"


#: Lossless compressed syntaxes written through imagecodecs (grey images only).
_ENCAPSULATED = {
    "JPEG2000Lossless": "1.2.840.10008.1.2.4.90",
    "JPEGLSLossless": "1.2.840.10008.1.2.4.80",
    "JPEGLosslessSV1": "1.2.840.10008.1.2.4.70",
}


def _encode_frames(arr: np.ndarray, syntax: str, bits_stored: int) -> list[bytes]:
    """One lossless codestream per frame (a JPEG 2000 image keeps 6 resolution levels, so a
    viewer can show a reduced first view)."""
    import imagecodecs

    frames = arr if arr.ndim == 3 else arr[None]
    out = []
    for f in frames:
        f = np.ascontiguousarray(f)
        if syntax == _ENCAPSULATED["JPEG2000Lossless"]:
            levels = max(1, min(6, int(np.log2(max(2, min(f.shape)))) - 2))
            out.append(bytes(imagecodecs.jpeg2k_encode(f, level=0, codecformat="j2k", reversible=True,
                                                       resolutions=levels, bitspersample=bits_stored, numthreads=1)))
        elif syntax == _ENCAPSULATED["JPEGLSLossless"]:
            out.append(bytes(imagecodecs.jpegls_encode(f, level=0)))
        else:
            out.append(bytes(imagecodecs.ljpeg_encode(f, bitspersample=bits_stored)))
    return out


def _syntax(name: Any) -> Any:
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

    named = {
        "ExplicitVRLittleEndian": ExplicitVRLittleEndian,
        "ImplicitVRLittleEndian": ImplicitVRLittleEndian,
        "ExplicitVRBigEndian": ExplicitVRBigEndian,
        "RLELossless": RLELossless,
        **{k: UID(v) for k, v in _ENCAPSULATED.items()},
    }
    uid = named.get(str(name))
    if uid is None and str(name) in {str(v) for v in named.values()}:
        uid = UID(str(name))
    if uid is None:
        raise ValueError(f"transfer syntax {name} is not supported for writing (use one of {sorted(named)})")
    return uid


def _windows_value(window: tuple[float, float] | Sequence[tuple[float, float]] | None) -> list[tuple[float, float]]:
    if window is None:
        return []
    if len(window) == 2 and all(isinstance(v, (int, float, np.number)) for v in window):
        return [(float(window[0]), float(window[1]))]  # type: ignore[arg-type]
    return [(float(c), float(w)) for c, w in window]  # type: ignore[misc]


def _ds_number(v: float) -> str:
    s = f"{v:.6g}"
    return s if len(s) <= 16 else f"{v:.8e}"[:16]


def write_dicom(
    path: str | PathLike[str],
    pixels: np.ndarray,
    *,
    modality: str,
    laterality: str | None = None,
    view: str | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    window: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
    photometric: str = "MONOCHROME2",
    presentation_intent: str = "FOR PRESENTATION",
    patient_id: str = "ANONYMOUS",
    patient_name: str = "Anonymous",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    accession: str = "",
    instance_number: int = 1,
    series_number: int = 1,
    image_position: Sequence[float] | None = None,
    image_orientation: Sequence[float] | None = None,
    slice_thickness: float | None = None,
    description: str | None = None,
    study_description: str | None = None,
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    frame_time_ms: float | None = None,
    patient_orientation: tuple[str, str] | None = None,
    transfer_syntax: str = "ExplicitVRLittleEndian",
    extra_tags: dict[str, Any] | None = None,
) -> Path:
    """Write ``pixels`` as a DICOM Part 10 file with the SOP class that fits ``modality``.

    SOP class choice: MG -> Digital Mammography X-Ray Image (For Presentation / For Processing
    from ``presentation_intent``); US -> Ultrasound Image, or Ultrasound Multi-frame Image for
    (frames, rows, cols[, 3]); MR -> MR Image (one slice per file: see :func:`write_dicom_series`);
    anything else -> Secondary Capture (multi-frame variants for stacks).

    Args:
        path: Output file (parent folders are created).
        pixels: uint8/uint16/int16 (rows, cols) grey, (rows, cols, 3) uint8 RGB (US/OT), or a
            multi-frame (frames, rows, cols[, 3]) stack (US/OT).
        modality: "MG", "US", "MR" or "OT".
        laterality: "L" or "R" (ImageLaterality; required by the MG IOD, optional otherwise).
        view: Mammography view ("CC", "MLO", ...) -> ViewPosition + ViewCodeSequence.
        pixel_spacing: (row, col) mm -> PixelSpacing (and ImagerPixelSpacing for MG).
        window: One (center, width) or a list of them (multi-valued WindowCenter/Width).
        photometric: "MONOCHROME2", "MONOCHROME1" (pixels are stored as given) or "RGB".
        presentation_intent: "FOR PRESENTATION" or "FOR PROCESSING" (MG).
        patient_id: PatientID (synthetic/anonymous by default).
        patient_name: PatientName.
        study_uid: StudyInstanceUID (new if None).
        series_uid: SeriesInstanceUID (new if None).
        sop_uid: SOPInstanceUID (new if None).
        frame_of_reference_uid: FrameOfReferenceUID for MR (new if None).
        accession: AccessionNumber.
        instance_number: InstanceNumber.
        series_number: SeriesNumber.
        image_position: ImagePositionPatient (x, y, z) mm (MR).
        image_orientation: ImageOrientationPatient (6 direction cosines) (MR).
        slice_thickness: SliceThickness mm (MR).
        description: SeriesDescription.
        study_description: StudyDescription.
        bits_stored: BitsStored (default: 8 for uint8, 16 for 16-bit, or 12/14 if given).
        rescale: (slope, intercept) -> RescaleSlope/RescaleIntercept (+ RescaleType for MR/OT).
        frame_time_ms: FrameTime for multi-frame ultrasound (default 33.3 ms).
        patient_orientation: PatientOrientation row/column directions, e.g. ("A", "R").
        transfer_syntax: "ExplicitVRLittleEndian" (default), "ImplicitVRLittleEndian",
            "ExplicitVRBigEndian", "RLELossless", or for unsigned grey images "JPEG2000Lossless",
            "JPEGLSLossless" or "JPEGLosslessSV1" (encoded with imagecodecs).
        extra_tags: More elements by keyword (e.g. {"BurnedInAnnotation": "NO"}).

    Returns:
        The written path.

    Raises:
        ValueError: Unsupported dtype/shape/modality combination.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    modality = modality.upper()
    if modality not in ("MG", "US", "MR", "OT"):
        raise ValueError(f"modality must be MG, US, MR or OT, not {modality!r}")
    arr = np.asarray(pixels)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8, uint16 or int16 (got {arr.dtype}); rescale first")
    photometric = photometric.upper()
    rgb = photometric == "RGB"
    if rgb and (arr.ndim not in (3, 4) or arr.shape[-1] != 3 or arr.dtype != np.uint8):
        raise ValueError("RGB pixels must be uint8 (rows, cols, 3) or (frames, rows, cols, 3)")
    if not rgb and arr.ndim == 3 and arr.shape[-1] == 3 and modality in ("US", "OT"):
        raise ValueError("(rows, cols, 3) pixels need photometric='RGB' (or pass a grey 2-D array)")
    spatial = arr.ndim - (1 if rgb else 0)
    if spatial not in (2, 3):
        raise ValueError(f"pixels of shape {arr.shape} are neither 2-D nor a stack of frames")
    frames = arr.shape[0] if spatial == 3 else 1
    multiframe = spatial == 3
    if modality in ("MG", "MR") and (rgb or multiframe):
        raise ValueError(
            f"{modality} images are single-frame grey here (one file per slice: write_dicom_series)"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB"):
        raise ValueError(f"photometric {photometric!r} is not supported for writing")

    intent = presentation_intent.upper()
    if modality == "MG":
        sop_class = SOP_CLASSES["MG_PROCESSING" if intent == "FOR PROCESSING" else "MG_PRESENTATION"]
    elif modality == "US":
        sop_class = SOP_CLASSES["US_MULTIFRAME" if multiframe else "US"]
    elif modality == "MR":
        sop_class = SOP_CLASSES["MR"]
    elif multiframe:
        sop_class = SOP_CLASSES[
            "SC_MULTIFRAME_RGB" if rgb else ("SC_MULTIFRAME_BYTE" if arr.dtype == np.uint8 else "SC_MULTIFRAME_WORD")
        ]
    else:
        sop_class = SOP_CLASSES["SC"]

    syntax = _syntax(transfer_syntax)
    sop_uid = sop_uid or generate_uid()
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    meta: Any = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"] if modality != "OT" else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.Manufacturer = "breast-reader"
    ds.ReferringPhysicianName = ""
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F" if modality == "MG" else ""
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    if description:
        ds.SeriesDescription = description
    if study_description:
        ds.StudyDescription = study_description
    if modality == "OT":
        ds.ConversionType = "WSD"
    if patient_orientation is not None:
        ds.PatientOrientation = list(patient_orientation)
    elif modality == "MG":
        ds.PatientOrientation = ""

    # Image Pixel module.
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(arr.shape[-3 if rgb else -2]), int(arr.shape[-2 if rgb else -1])
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = int(bits_stored or ds.BitsAllocated)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype == np.int16 else 0
    if rgb:
        ds.PlanarConfiguration = 0
    if multiframe:
        ds.NumberOfFrames = frames
        if modality in ("US", "OT"):
            ds.FrameTime = _ds_number(frame_time_ms if frame_time_ms is not None else 33.3)
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")

    if laterality is not None:
        lat = laterality.upper()[:1]
        if lat not in ("L", "R"):
            raise ValueError(f"laterality must be 'L' or 'R', not {laterality!r}")
        ds.ImageLaterality = lat
        if modality != "MG":
            ds.Laterality = lat
    if modality == "MG":
        ds.PresentationIntentType = "FOR PROCESSING" if intent == "FOR PROCESSING" else "FOR PRESENTATION"
        ds.BodyPartExamined = "BREAST"
        ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
        ds.BurnedInAnnotation = "NO"
        if "ImageLaterality" not in ds:
            ds.ImageLaterality = ""  # type 1 in the IOD; unknown here
        if view:
            v = view.upper()
            ds.ViewPosition = v
            if v in MG_VIEW_CODES:
                code = Dataset()
                code.CodeValue, code.CodeMeaning = MG_VIEW_CODES[v]
                code.CodingSchemeDesignator = "SCT"
                code.ViewModifierCodeSequence = []
                ds.ViewCodeSequence = [code]
    elif view:
        ds.ViewPosition = view.upper()
    if modality == "US":
        ds.BodyPartExamined = "BREAST"
    if pixel_spacing is not None:
        sp = [_ds_number(float(pixel_spacing[0])), _ds_number(float(pixel_spacing[1]))]
        ds.PixelSpacing = sp
        if modality == "MG":
            ds.ImagerPixelSpacing = sp
    windows = _windows_value(window)
    if windows:
        ds.WindowCenter = [_ds_number(c) for c, _ in windows] if len(windows) > 1 else _ds_number(windows[0][0])
        ds.WindowWidth = [_ds_number(w) for _, w in windows] if len(windows) > 1 else _ds_number(windows[0][1])
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds_number(rescale[0]), _ds_number(rescale[1])
        if modality in ("MR", "OT"):
            ds.RescaleType = "US"  # unspecified units
    elif modality == "MG":
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "0", "US"
    if modality == "MR":
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "2D"
        ds.EchoTrainLength = 1
        ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
        ds.PositionReferenceIndicator = ""
    if image_position is not None:
        ds.ImagePositionPatient = [_ds_number(float(v)) for v in image_position]
    if image_orientation is not None:
        ds.ImageOrientationPatient = [_ds_number(float(v)) for v in image_orientation]
    if slice_thickness is not None:
        ds.SliceThickness = _ds_number(float(slice_thickness))
    if image_position is not None and image_orientation is not None:
        normal = np.cross(np.asarray(image_orientation[:3], float), np.asarray(image_orientation[3:], float))
        ds.SliceLocation = _ds_number(float(np.dot(normal, np.asarray(image_position, float))))
    for key, value in (extra_tags or {}).items():
        setattr(ds, key, value)

    # Pixel Data: always little-endian contiguous bytes, swapped for big-endian files.
    data = np.ascontiguousarray(arr)
    big = str(syntax) == "1.2.840.10008.1.2.2"
    if big and data.dtype.itemsize > 1:
        data = data.astype(data.dtype.newbyteorder(">"))
    ds.PixelData = data.tobytes()
    # OB for 8-bit, OW for 16-bit: what Explicit VR writers put (PS3.5 8.2).
    ds["PixelData"].VR = "OW" if arr.dtype.itemsize > 1 else "OB"
    if str(syntax) in _ENCAPSULATED.values():
        if rgb or photometric not in ("MONOCHROME1", "MONOCHROME2") or arr.dtype.kind != "u":
            raise ValueError(f"{transfer_syntax} is written for unsigned grey images only")
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate(_encode_frames(arr, str(syntax), int(ds.BitsStored)))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    if str(syntax) == "1.2.840.10008.1.2.5":  # RLE Lossless with pydicom's own encoder
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.compress(pydicom.uid.RLELossless, encoding_plugin="pydicom")

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=out.parent)
    os.close(fd)
    try:
        ds.save_as(tmp, enforce_file_format=True, implicit_vr=str(syntax) == "1.2.840.10008.1.2",
                   little_endian=not big)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def write_dicom_series(
    folder: str | PathLike[str],
    volume: np.ndarray,
    *,
    modality: str = "MR",
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    slice_thickness: float = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    image_orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    prefix: str = "slice",
    **kwargs: Any,
) -> list[Path]:
    """Write a (slices, rows, cols) volume as one DICOM file per slice of one series.

    Slice ``k`` gets ImagePositionPatient ``origin + k * slice_thickness * normal`` (normal =
    row x column cosines) and InstanceNumber ``k + 1``; all share study, series and frame of
    reference UIDs, so :func:`engine.io.reader.read_image` on the folder rebuilds the volume.

    Args:
        folder: Output directory (created).
        volume: uint8/uint16/int16 array (slices, rows, cols).
        modality: "MR" (default) or another grey modality.
        pixel_spacing: (row, col) mm.
        slice_thickness: Spacing between slices (mm).
        origin: Position of the first slice's first pixel (mm).
        image_orientation: Row and column direction cosines.
        prefix: File name prefix (files are ``{prefix}_{k:04d}.dcm``).
        **kwargs: Passed to :func:`write_dicom` (window, description, patient_id...).

    Returns:
        The written paths, slice order.
    """
    from pydicom.uid import generate_uid

    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be (slices, rows, cols), got {vol.shape}")
    study = kwargs.pop("study_uid", None) or generate_uid()
    series = kwargs.pop("series_uid", None) or generate_uid()
    frame_ref = kwargs.pop("frame_of_reference_uid", None) or generate_uid()
    normal = np.cross(np.asarray(image_orientation[:3], float), np.asarray(image_orientation[3:], float))
    out = []
    for k in range(vol.shape[0]):
        pos = np.asarray(origin, float) + k * slice_thickness * normal
        out.append(
            write_dicom(
                Path(folder) / f"{prefix}_{k:04d}.dcm", vol[k], modality=modality, pixel_spacing=pixel_spacing,
                study_uid=study, series_uid=series, frame_of_reference_uid=frame_ref, instance_number=k + 1,
                image_position=pos.tolist(), image_orientation=list(image_orientation),
                slice_thickness=slice_thickness, **kwargs,
            )
        )
    return out
