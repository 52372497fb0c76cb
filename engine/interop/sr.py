"""TID 1500 Measurement Report (Comprehensive SR) of a case's lesions, and reading it back.

One *Planar ROI Measurements and Qualitative Evaluations* group (TID 1410) per annotation:

* Tracking Identifier = the annotation's ``lesion_id`` (the same lesion across views and
  modalities carries the same identifier); Tracking Unique Identifier encodes the ``ann_id``.
* Image Region: a closed POLYLINE (SCOORD) in the referenced image's pixel coordinates
  (column, row; the top-left corner of the top-left pixel is 0,0, as the workstation draws).
  GraphicData is FL (32-bit float): coordinates come back rounded to 1/1000 pixel.
  A box becomes its 4 corners + the first again; polygons/freehand contours their vertices.
  An MR slice is referenced as its own SOP instance, a cine frame by ReferencedFrameNumber.
* Finding (CID 6054-style breast findings): mass, calcification, asymmetry, architectural
  distortion when the label is one of those words; any other free label is kept as a local
  code (scheme ``99BRSTRDR``) whose meaning is the label (64 characters at most).
* Measurements: Area and Long axis, in mm²/mm when the image has PixelSpacing (or, for MG,
  ImagerPixelSpacing — i.e. at the detector, not corrected for magnification), else in pixels
  (UCUM ``{pixels}``). Long axis = the longer side of a box, the largest vertex distance of a
  contour.
* The reader's BI-RADS assessment (DCM 111005 *Assessment Category*; SNOMED CT mammography
  assessment 0-5; 4A/4B/4C, which SNOMED CT does not split, as local ``99BRSTRDR`` codes).
* The AI's malignancy probability (DCM 111047 *Probability of cancer*, unit 1) with the model
  as Algorithm Identification (name, version = weights digest). Decision support, not a
  diagnosis: the SR's Completion Flag stays PARTIAL and Verification UNVERIFIED.
* How the region was drawn (box / polygon / freehand) as a local qualitative evaluation, so
  the workstation reads back exactly what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from engine.cases.model import Annotation, Case
from engine.interop.errors import InteropError
from engine.interop.sources import SourceImage, stable_uid

LOCAL_SCHEME = "99BRSTRDR"
MANUFACTURER = "breast-reader"
BIRADS = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")
_BIRADS_SCT = {
    "0": ("397138000", "Mammography assessment (Category 0) - Need additional imaging evaluation"),
    "1": ("397140005", "Mammography assessment (Category 1) - Negative"),
    "2": ("397141009", "Mammography assessment (Category 2) - Benign finding"),
    "3": ("397143007", "Mammography assessment (Category 3) - Probably benign finding"),
    "4": ("397144001", "Mammography assessment (Category 4) - Suspicious abnormality"),
    "5": ("397145000", "Mammography assessment (Category 5) - Highly suggestive of malignancy"),
}
_FINDINGS = {
    "mass": ("4147007", "SCT", "Mass"),
    "calcification": ("129769006", "SCT", "Calcification Cluster"),
    "asymmetry": ("129790003", "SCT", "Asymmetric breast tissue"),
    "architectural distortion": ("112079", "DCM", "Architectural distortion"),
}
_LESION = ("52988006", "SCT", "Lesion")
_KIND_CONCEPT = ("ROIKIND", "Region drawing method")


@dataclass
class AIScore:
    """An AI output for one image, to be reported beside the reader's findings.

    Attributes:
        image_id: The case image scored.
        probability: Malignancy probability in [0, 1] (decision support).
        model_name: The model (weights) name.
        model_version: Its version (e.g. the first 12 hex digits of the weights' sha256).
        saliency: Optional (rows, cols) map in [0, 1] on the image's pixels (for the SEG).
        frame: MR slice the score/saliency belongs to, or None.
    """

    image_id: str
    probability: float
    model_name: str
    model_version: str
    saliency: np.ndarray | None = None
    frame: int | None = None


@dataclass
class ReportContent:
    """What a Measurement Report holds, in the workstation's terms."""

    annotations: list[Annotation]
    ai: list[AIScore]
    birads: str | None


def _code(value: str, scheme: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning[:64])


def _local(value: str, meaning: str) -> Any:
    return _code(value, LOCAL_SCHEME, meaning)


def _finding_code(label: str | None) -> Any:
    if label is None:
        return _code(*_LESION)
    known = _FINDINGS.get(label.strip().lower())
    if known and label == label.strip().lower():
        return _code(*known)
    import hashlib

    return _local("L" + hashlib.sha1(label.encode()).hexdigest()[:12].upper(), label)


def _label_of(code: Any) -> str | None:
    if (code.value, code.scheme_designator) == _LESION[:2]:
        return None
    for word, (v, s, _m) in _FINDINGS.items():
        if (code.value, code.scheme_designator) == (v, s):
            return word
    return str(code.meaning)


def _birads_code(cat: str) -> Any:
    if cat in _BIRADS_SCT:
        v, m = _BIRADS_SCT[cat]
        return _code(v, "SCT", m)
    if cat in BIRADS:
        return _local(f"BIRADS-{cat}", f"BI-RADS assessment category {cat}")
    raise InteropError(f"BI-RADS {cat!r} is not one of {', '.join(BIRADS)}")


def _birads_of(code: Any) -> str | None:
    for cat, (v, _m) in _BIRADS_SCT.items():
        if code.value == v and code.scheme_designator == "SCT":
            return cat
    if code.scheme_designator == LOCAL_SCHEME and str(code.value).startswith("BIRADS-"):
        return str(code.value)[len("BIRADS-"):]
    return None


def ann_uid(ann_id: str) -> str:
    """Tracking UID of an annotation; hex ``ann_id`` values are recoverable from it."""
    if ann_id and len(ann_id) <= 24 and all(c in "0123456789abcdef" for c in ann_id):
        return f"{stable_uid('ann')[:40]}.1{int('1' + ann_id, 16)}"[:64]
    return stable_uid("ann", ann_id)


def ann_id_of(uid: str) -> str | None:
    """The ``ann_id`` encoded by :func:`ann_uid`, or None for another UID."""
    last = uid.rsplit(".", 1)[-1]
    if uid.startswith(stable_uid("ann")[:40]) and last.startswith("1") and len(last) > 1:
        h = f"{int(last[1:]):x}"
        return h[1:] if h.startswith("1") else None
    return None


def spacing_of(ds: Any) -> tuple[float, float] | None:
    """(row, column) pixel spacing in mm: PixelSpacing, else ImagerPixelSpacing, else None."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(key)
        if v is not None and len(v) == 2:
            try:
                r, c = float(v[0]), float(v[1])
            except (TypeError, ValueError):
                continue
            if r > 0 and c > 0:
                return r, c
    return None


def outline(a: Annotation) -> np.ndarray:
    """The closed outline (N, 2) of an annotation in (column, row) pixels."""
    if a.kind == "box":
        x0, y0, x1, y1 = a.bbox()
        pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    else:
        pts = [list(p) for p in a.points]
        if pts[0] == pts[-1]:
            pts = pts[:-1]
    pts.append(pts[0])
    return np.asarray(pts, dtype=np.float64)


def size_of(a: Annotation, spacing: tuple[float, float] | None) -> tuple[float, float]:
    """(area, long axis) in mm²/mm with ``spacing`` else in pixels (see module doc)."""
    sr, sc = spacing or (1.0, 1.0)
    pts = outline(a)[:-1] * np.array([sc, sr])
    xs, ys = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
    if a.kind == "box":
        long_axis = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()))
    else:
        d = pts[:, None, :] - pts[None, :, :]
        long_axis = float(np.sqrt((d**2).sum(-1)).max())
    return area, long_axis


def _units(spacing: tuple[float, float] | None) -> tuple[Any, Any]:
    if spacing:
        return _code("mm2", "UCUM", "square millimeter"), _code("mm", "UCUM", "millimeter")
    return _code("{pixels}", "UCUM", "pixels"), _code("{pixels}", "UCUM", "pixels")


def _group(
    a: Annotation, src: SourceImage, birads: str | None, ai: AIScore | None
) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    ds, frame_no = src.reference(a.frame)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=outline(a),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=ds.SOPClassUID, referenced_sop_instance_uid=ds.SOPInstanceUID,
            referenced_frame_numbers=[frame_no] if frame_no else None,
        ),
    )
    spacing = spacing_of(ds)
    area, long_axis = size_of(a, spacing)
    u_area, u_len = _units(spacing)
    measurements = [
        hd.sr.Measurement(name=codes.SCT.Area, value=round(area, 4), unit=u_area),
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=round(long_axis, 4), unit=u_len),
    ]
    if ai is not None:
        measurements.append(hd.sr.Measurement(
            name=codes.DCM.ProbabilityOfCancer, value=round(float(ai.probability), 6),
            unit=_code("1", "UCUM", "no units"),
            algorithm_id=hd.sr.AlgorithmIdentification(name=ai.model_name, version=ai.model_version or "unknown"),
        ))
    evaluations = [hd.sr.QualitativeEvaluation(_local(*_KIND_CONCEPT), _local(a.kind.upper(), a.kind))]
    if birads:
        evaluations.append(hd.sr.QualitativeEvaluation(codes.DCM.AssessmentCategory, _birads_code(birads)))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=ann_uid(a.ann_id), identifier=a.lesion_id),
        referenced_region=region,
        finding_type=_finding_code(a.label),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def build_report(
    case: Case,
    sources: dict[str, SourceImage],
    *,
    ai: list[AIScore] | None = None,
    birads: str | None = None,
    observer: str | None = None,
    series_number: int = 950,
) -> Any:
    """The Comprehensive SR (TID 1500) of ``case``'s annotations.

    Args:
        case: The case (its annotations are reported).
        sources: :func:`engine.interop.sources.case_sources` of the case.
        ai: AI scores per image (reported in each group on that image).
        birads: The reader's BI-RADS assessment of the case (from the rating), if any.
        observer: The reader's name (else the annotations' author, else "reader").
        series_number: SeriesNumber of the SR.

    Raises:
        InteropError: No annotation to report, an annotation on an image without a DICOM
            instance, or a frame outside its image.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not case.annotations:
        raise InteropError(f"case {case.case_id}: no annotations to report")
    by_image = {s.image_id: s for s in sources.values()}
    scores = {x.image_id: x for x in (ai or [])}
    groups = []
    for a in case.annotations:
        src = by_image.get(a.image_id)
        if src is None:
            raise InteropError(f"case {case.case_id}: image {a.image_id} has no DICOM instance to reference")
        groups.append(_group(a, src, birads, scores.get(a.image_id)))
    name = observer or next((a.author for a in case.annotations if a.author), None) or "reader"
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=person_name(str(name))),
        ),
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=stable_uid("device", "breast-reader"), name="breast-reader", manufacturer_name=MANUFACTURER,
            ),
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=_procedure(case),
        imaging_measurements=groups,
    )
    evidence = [ds for s in sources.values() for ds in s.datasets
                if any(a.image_id == s.image_id for a in case.annotations)]
    first = evidence[0]
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=stable_uid(case.case_id, str(first.StudyInstanceUID), "sr-series"),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=False,
        is_final=False,
        is_verified=False,
        series_description="breast-reader findings (decision support)",
    )
    _declare_local_scheme(sr)
    return sr


def person_name(name: str) -> str:
    """A DICOM PN value: a single-word name gets the trailing ``^`` that marks it as a family name."""
    name = name.replace("\\", " ").strip()[:60] or "reader"
    return name if "^" in name else name + "^"


def _procedure(case: Case) -> Any:
    mods = set(case.modalities)
    if mods == {"MG"}:
        return _code("71651007", "SCT", "Mammography")
    if mods == {"US"}:
        return _code("47079000", "SCT", "Ultrasonography of breast")
    if mods == {"MR"}:
        return _code("241615005", "SCT", "Magnetic resonance imaging of breast")
    return _code("363680008", "SCT", "Radiographic imaging procedure")


def _declare_local_scheme(ds: Any) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "breast-reader local codes"
    item.CodingSchemeResponsibleOrganization = "breast-reader project"
    seq = list(ds.get("CodingSchemeIdentificationSequence", []))
    if not any(getattr(x, "CodingSchemeDesignator", None) == LOCAL_SCHEME for x in seq):
        seq.append(item)
    ds.CodingSchemeIdentificationSequence = Sequence(seq)


def write_report(sr: Any, path: Path) -> Path:
    """Save an SR (or any highdicom object) atomically."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        sr.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_report(path: Path | Any, sources: dict[str, SourceImage]) -> ReportContent:
    """Read a Measurement Report written by :func:`build_report` back into annotations.

    Args:
        path: The SR file (or a pydicom Dataset).
        sources: The case's sources (to map referenced SOP instances back to image ids).

    Raises:
        InteropError: Not a TID 1500 report, or a region on an image the case does not have.
    """
    import highdicom as hd
    import pydicom

    where = str(path) if isinstance(path, (str, Path)) else "SR"
    try:
        ds = pydicom.dcmread(path) if isinstance(path, (str, Path)) else path
        sr = hd.sr.ComprehensiveSR.from_dataset(ds)
        report = hd.sr.MeasurementReport.from_sequence(sr.content)
        groups = report.get_planar_roi_measurement_groups()
    except InteropError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes one clear line
        raise InteropError(f"{where}: not a TID 1500 measurement report ({type(exc).__name__}: {exc})") from None
    author = _observer_name(sr)
    anns: list[Annotation] = []
    ai: dict[str, AIScore] = {}
    birads: str | None = None
    for g in groups:
        region = g.roi
        if region is None:
            continue
        ref = region.ContentSequence[0].ReferencedSOPSequence[0]
        sop = str(ref.ReferencedSOPInstanceUID)
        fn = ref.get("ReferencedFrameNumber")
        fn = int(fn[0] if isinstance(fn, (list, pydicom.multival.MultiValue)) else fn) if fn else None
        image_id, frame = None, None
        for s in sources.values():
            f = s.frame_of(sop, fn)
            if f is not None or str(sop) in s._by_uid:
                image_id, frame = s.image_id, f
                break
        if image_id is None:
            raise InteropError(f"{where}: a region refers to instance {sop}, which is not an image of this case")
        kind = "polygon"
        for ev in g.get_qualitative_evaluations():
            name, value = ev.name, cast(Any, ev.value)
            if name.scheme_designator == LOCAL_SCHEME and name.value == _KIND_CONCEPT[0]:
                kind = str(value.meaning)
            elif name.value == "111005":
                birads = _birads_of(value) or birads
        pts = np.asarray(region.value, dtype=np.float64).reshape(-1, 2)
        if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
            pts = pts[:-1]
        pts = np.round(pts, 3)  # GraphicData is FL (float32): keep 1/1000 pixel, drop float32 noise
        if kind == "box":
            points = [[float(pts[:, 0].min()), float(pts[:, 1].min())], [float(pts[:, 0].max()), float(pts[:, 1].max())]]
        else:
            points = [[float(x), float(y)] for x, y in pts]
        tid = g.tracking_identifier
        a = Annotation(image_id=image_id, kind=kind, points=points, lesion_id=str(tid or "L1"), frame=frame,
                       label=_label_of(g.finding_type) if g.finding_type is not None else None, author=author)
        uid = g.tracking_uid
        if uid and (aid := ann_id_of(str(uid))):
            a.ann_id = aid
        anns.append(a)
        for m in g.get_measurements():
            if m.name.value == "111047":
                alg = {str(it.ConceptNameCodeSequence[0].CodeValue): str(getattr(it, "TextValue", ""))
                       for it in m[0].get("ContentSequence", [])}
                ai[image_id] = AIScore(image_id, float(m.value), alg.get("111001", ""), alg.get("111003", ""),
                                       frame=frame)
    return ReportContent(annotations=anns, ai=list(ai.values()), birads=birads)


def _observer_name(sr: Any) -> str | None:
    """The person observer's name of an SR (the reader), without the PN ``^`` separators."""
    for item in sr.walk_items() if hasattr(sr, "walk_items") else _walk(sr):
        code = item.get("ConceptNameCodeSequence")
        if code and str(code[0].CodeValue) == "121008" and "PersonName" in item:
            return str(item.PersonName).strip("^").replace("^", " ") or None
    return None


def _walk(ds: Any) -> Any:
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def long_axis_mm(a: Annotation, ds: Any) -> float | None:
    """Long axis of an annotation in mm (None when the image has no pixel spacing)."""
    sp = spacing_of(ds)
    return None if sp is None else size_of(a, sp)[1]


__all__ = [
    "AIScore", "BIRADS", "LOCAL_SCHEME", "ReportContent", "ann_id_of", "ann_uid", "build_report",
    "long_axis_mm", "outline", "read_report", "size_of", "spacing_of", "write_report",
]
