"""Display metadata and identifiers of a DICOM data set.

Laterality (ImageLaterality, Laterality, FrameLaterality), view (ViewPosition, else the
ViewCodeSequence code from CID 4014), pixel spacing (PixelSpacing, ImagerPixelSpacing,
functional groups, ultrasound regions), VOI windows (mirrored for MONOCHROME1), presentation
intent. Identifiers (patient, study/series/SOP UIDs, accession) go to :class:`Identifiers`, never
into :class:`ImageMeta`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.io.dicom.dataset import first, floats, functional, transfer_syntax
from engine.io.dicom.layout import MAX_RESCALED, PixelLayout, output_range, rescale
from engine.io.types import Identifiers, ImageMeta, Modality


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


def _laterality(ds: Any) -> tuple[str | None, str | None]:
    raw = ds.get("ImageLaterality") or ds.get("Laterality") or functional(ds, "FrameAnatomySequence", "FrameLaterality", frame=0)
    value = str(raw).strip().upper() if raw else None
    return (value if value in ("L", "R") else None), value


def _view(ds: Any) -> str | None:
    vp = str(ds.get("ViewPosition") or "").strip().upper()
    if vp:
        return vp
    code = first(ds.get("ViewCodeSequence"))
    if code is not None:
        value = str(code.get("CodeValue") or "").strip()
        if value in VIEW_CODES:
            return VIEW_CODES[value]
        meaning = str(code.get("CodeMeaning") or "").strip().lower()
        if meaning in _VIEW_MEANINGS:
            return _VIEW_MEANINGS[meaning]
    return None


def _pixel_spacing(ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        vals = floats(ds.get(key))
        if len(vals) == 2 and 0 < vals[0] < 1e6 and 0 < vals[1] < 1e6:
            return (vals[0], vals[1]), key
    vals = floats(functional(ds, "PixelMeasuresSequence", "PixelSpacing", frame=0))
    if len(vals) == 2 and 0 < vals[0] < 1e6 and 0 < vals[1] < 1e6:
        return (vals[0], vals[1]), "PixelMeasuresSequence"
    region = first(ds.get("SequenceOfUltrasoundRegions"))
    if region is not None and region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
        dx, dy = floats(region.get("PhysicalDeltaX")), floats(region.get("PhysicalDeltaY"))
        if dx and dy and 0 < abs(dx[0]) < 1e5 and 0 < abs(dy[0]) < 1e5:
            return (abs(dy[0]) * 10.0, abs(dx[0]) * 10.0), "SequenceOfUltrasoundRegions"  # cm -> mm
    return None, None


def _windows(ds: Any) -> tuple[list[tuple[float, float]], str | None]:
    centers = floats(ds.get("WindowCenter"))
    widths = floats(ds.get("WindowWidth"))
    if not centers:
        centers = floats(functional(ds, "FrameVOILUTSequence", "WindowCenter", frame=0))
        widths = floats(functional(ds, "FrameVOILUTSequence", "WindowWidth", frame=0))
    pairs = [(c, w) for c, w in zip(centers, widths)
             if np.isfinite(c) and np.isfinite(w) and 0 < w <= 2 * MAX_RESCALED and abs(c) <= MAX_RESCALED]
    if pairs:
        return pairs, "WindowCenter/Width"
    voi = first(ds.get("VOILUTSequence"))
    if voi is not None and "LUTDescriptor" in voi:
        desc = floats(voi.LUTDescriptor)
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
        lo, hi = output_range(ds, layout)
        windows = [(lo + hi - c, w) for c, w in windows]
    intent = str(ds.get("PresentationIntentType") or "").strip().upper() or None
    if intent is None:
        sop = str(ds.get("SOPClassUID") or "")
        intent = {"1.2.840.10008.5.1.4.1.1.1.2": "FOR PRESENTATION", "1.2.840.10008.5.1.4.1.1.1.2.1": "FOR PROCESSING"}.get(sop)
    extra: dict[str, str] = {"transfer_syntax": transfer_syntax(ds)}
    if raw_modality:
        extra["dicom_modality"] = raw_modality
    for key in ("SOPClassUID", "Manufacturer", "ManufacturerModelName", "BodyPartExamined", "SeriesDescription",
                "SeriesNumber", "InstanceNumber", "VOILUTFunction", "ImageType", "PatientOrientation"):
        val = ds.get(key)
        if val not in (None, ""):
            extra[key] = "\\".join(str(v) for v in val) if hasattr(val, "__iter__") and not isinstance(val, str) else str(val)
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "SliceThickness"):
        vals = floats(ds.get(key))
        if vals:
            extra[key] = "\\".join(f"{v:g}" for v in vals)
    if raw_lat and laterality is None:
        extra["laterality_raw"] = raw_lat
    if spacing_src:
        extra["pixel_spacing_source"] = spacing_src
    if win_src:
        extra["window_source"] = win_src
    mod = first(ds.get("ViewModifierCodeSequence"))
    if mod is not None and mod.get("CodeMeaning"):
        extra["view_modifier"] = str(mod.CodeMeaning)
    if layout is not None:
        slope, intercept = rescale(ds)
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
