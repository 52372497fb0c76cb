"""DICOM Segmentations of a case image: a BINARY SEG of the reader's lesions and a FRACTIONAL
SEG of the AI saliency.

One SEG instance per case image (the SOP instance(s) it was drawn on), one segment per
``lesion_id`` — the union of that lesion's annotations on the image — so each lesion is its own
binary segment, carrying the lesion id as Tracking ID. The saliency is one FRACTIONAL
(PROBABILITY, 8-bit) segment whose Segment Algorithm Identification names the model and version.

**Mammograms and ultrasound have no frame of reference.** The Digital Mammography and US IODs
do not require a Frame of Reference nor Plane Position/Orientation (Patient); projection images
have no patient-space pixel geometry. We do not invent one: for such sources highdicom writes
the SEG without the Frame of Reference module and without Plane Position/Orientation
functional groups; every SEG frame is tied to its source pixels through the *Derivation Image*
functional group (Source Image Sequence: SOP instance + frame number) and the SEG pixel matrix
is the source's, pixel for pixel (same Rows/Columns; PixelSpacing copied when the source has
it). Dimension indices are then the referenced segment number and the source instance/frame.
An MR slice series, which does have a frame of reference and plane positions, gets the
standard patient-space SEG (same FrameOfReferenceUID, one plane position per slice).
If a projection image carries a FrameOfReferenceUID but no ImagePositionPatient (some DX/MG
devices do), the SEG still goes by the derivation references (highdicom detects the missing
plane geometry); we never copy a position that the source lacks.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.cases.model import Annotation, Case
from engine.interop.errors import InteropError
from engine.interop.sources import SourceImage, stable_uid
from engine.interop.sr import MANUFACTURER, AIScore, outline

#: multi-frame SOP class -> its single-frame sibling (for the header-only view in _build_frame)
_SINGLE_FRAME = {
    "1.2.840.10008.5.1.4.1.1.3.1": "1.2.840.10008.5.1.4.1.1.6.1",  # US Multi-frame -> US Image
}
_ABNORMAL = ("49755003", "SCT", "Morphologically abnormal structure")
_LESION = ("52988006", "SCT", "Lesion")
_SALIENCY = ("SALIENCY", "99BRSTRDR", "AI saliency (decision support)")


def rasterise(a: Annotation, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside an annotation's outline.

    Pixel (row r, column c) has its centre at (c + 0.5, r + 0.5) in the workstation's
    coordinates (top-left corner of the image = 0, 0); even-odd rule for contours.
    """
    rows, cols = shape
    pts = outline(a)
    mask = np.zeros(shape, dtype=bool)
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, cols), min(y1, rows)
    if x1 <= x0 or y1 <= y0:
        return mask
    if a.kind == "box":
        bx0, by0, bx1, by1 = a.bbox()
        cs = np.arange(x0, x1) + 0.5
        rs = np.arange(y0, y1) + 0.5
        mask[y0:y1, x0:x1] = ((rs >= by0) & (rs <= by1))[:, None] & ((cs >= bx0) & (cs <= bx1))[None, :]
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    inside = np.zeros(yy.shape, dtype=bool)
    px, py = pts[:-1, 0], pts[:-1, 1]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    for ax, ay, bx, by in zip(px, py, qx, qy, strict=True):
        if ay == by:
            continue
        crosses = (ay > yy) != (by > yy)
        xint = ax + (yy - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xx < xint)
    mask[y0:y1, x0:x1] = inside
    return mask


def lesion_masks(case: Case, src: SourceImage) -> dict[str, np.ndarray]:
    """{lesion_id: (frames, rows, cols) bool} of the case's annotations on ``src``'s image."""
    out: dict[str, np.ndarray] = {}
    for a in case.annotations_for(src.image_id):
        m = out.setdefault(a.lesion_id, np.zeros((src.frames, *src.shape), dtype=bool))
        f = int(a.frame or 0)
        if not 0 <= f < src.frames:
            raise InteropError(f"case {case.case_id}: annotation {a.ann_id} is on frame {a.frame}, "
                               f"image {src.image_id} has {src.frames}")
        m[f] |= rasterise(a, src.shape)
    return out


def _code(value: str, scheme: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _common(src: SourceImage, case: Case, what: str, series_number: int) -> dict[str, Any]:
    import highdicom as hd

    first = src.datasets[0]
    return {
        "series_instance_uid": stable_uid(case.case_id, str(first.StudyInstanceUID), what, src.image_id),
        "series_number": series_number,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": "breast-reader workstation",
        "software_versions": _version(),
        "device_serial_number": "0",
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("breast-reader")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "dev"


def _build(src: SourceImage, pixel_array: np.ndarray, **kw: Any) -> Any:
    import highdicom as hd

    frames_of_ref = {str(ds.get("FrameOfReferenceUID", "")) for ds in src.datasets}
    if len(frames_of_ref) > 1:
        raise InteropError(
            f"{src.image_id}: its {len(src.datasets)} slices carry {len(frames_of_ref)} different "
            "FrameOfReferenceUIDs, so no Segmentation can place them in one patient space "
            "(fix the series: one FrameOfReferenceUID per series)"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PN-form notes about the source's names
        try:
            seg = hd.seg.Segmentation(source_images=list(src.datasets), pixel_array=pixel_array, **kw)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InteropError(f"{src.image_id}: cannot build a Segmentation ({exc})") from None
    if "FrameOfReferenceUID" not in seg:
        # General Image: PatientOrientation is Type 2C when there is no frame of reference;
        # the SEG's pixels are the source's, so its row/column directions are too.
        seg.PatientOrientation = src.datasets[0].get("PatientOrientation", "")
    return seg


def build_lesion_seg(case: Case, src: SourceImage, *, series_number: int = 951) -> Any:
    """BINARY SEG of the lesions drawn on ``src``'s image (None when nothing is drawn there).

    For a multi-frame source without a coordinate system (US cine) this is a list of
    ``(frame, SEG)``, one SEG per annotated frame (see :func:`_build_frame`).
    """
    import highdicom as hd

    masks = lesion_masks(case, src)
    if not masks:
        return None
    lesions = sorted(masks)
    labels = {a.lesion_id: a.label for a in case.annotations_for(src.image_id)}
    descs = []
    for n, lid in enumerate(lesions, start=1):
        from engine.interop.sr import _finding_code

        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=lid[:64],
            segmented_property_category=_code(*_ABNORMAL),
            segmented_property_type=_finding_code(labels.get(lid)),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_id=lid[:64], tracking_uid=stable_uid(case.case_id, "lesion", lid),
        ))
    stack = np.stack([masks[lid] for lid in lesions], axis=-1).astype(np.uint8)
    kw: dict[str, Any] = {
        "segmentation_type": hd.seg.SegmentationTypeValues.BINARY, "segment_descriptions": descs,
        "content_label": "LESIONS", "content_description": "Reader lesions",
    }
    if src.multiframe and not _has_geometry(src.datasets[0]):
        return [(f, _build_frame(src, stack[f:f + 1], f, **kw, **_common(src, case, f"seg-lesions-{f}",
                                                                         series_number)))
                for f in range(src.frames) if stack[f].any()]
    return _build(src, stack, **kw, **_common(src, case, "seg-lesions", series_number))


def _has_geometry(ds: Any) -> bool:
    """Whether a source has a patient/slide coordinate system highdicom can use."""
    from highdicom.spatial import get_image_coordinate_system

    return get_image_coordinate_system(ds) is not None


def _build_frame(src: SourceImage, pixel_array: np.ndarray, frame: int, **kw: Any) -> Any:
    """A SEG of ONE frame of a multi-frame source without a coordinate system (US cine).

    highdicom places such frames only for single-frame sources, so the SEG is built against a
    header-only single-frame view of the source and its derivation references then get the
    real ReferencedFrameNumber (``frame + 1``): the standard way a SEG frame names its source
    frame when there is no frame of reference.
    """
    import copy

    view = copy.deepcopy(src.datasets[0])
    for k in ("NumberOfFrames", "PixelData", "FrameIncrementPointer", "FrameTime"):
        if k in view:
            del view[k]
    real_class = str(view.SOPClassUID)
    view.SOPClassUID = _SINGLE_FRAME.get(real_class, "1.2.840.10008.5.1.4.1.1.7")
    one = SourceImage(src.image_id, [view], src.paths)
    seg = _build(one, pixel_array, **kw)
    for fg in list(seg.get("PerFrameFunctionalGroupsSequence", [])) + list(seg.get("SharedFunctionalGroupsSequence", [])):
        for der in fg.get("DerivationImageSequence", []):
            for ref in der.SourceImageSequence:
                ref.ReferencedFrameNumber = frame + 1
    for ref in seg.get("SourceImageSequence", []):
        ref.ReferencedFrameNumber = frame + 1

    def restore(ds: Any) -> None:
        for elem in ds:
            if elem.keyword == "ReferencedSOPClassUID" and str(elem.value) == str(view.SOPClassUID):
                elem.value = real_class
            elif elem.VR == "SQ":
                for item in elem.value:
                    restore(item)

    restore(seg)
    return seg


def build_saliency_seg(case: Case, src: SourceImage, ai: AIScore, *, series_number: int = 952) -> Any:
    """FRACTIONAL (probability) SEG of an AI saliency map on ``src``'s image.

    Raises:
        InteropError: No map, or a map whose shape is not the image's.
    """
    import highdicom as hd

    if ai.saliency is None:
        raise InteropError(f"{src.image_id}: the AI result has no saliency map")
    sal = np.asarray(ai.saliency, dtype=np.float64)
    if sal.shape != src.shape:
        raise InteropError(f"{src.image_id}: saliency map {sal.shape} is not the image's {src.shape}")
    if not np.all(np.isfinite(sal)):
        raise InteropError(f"{src.image_id}: saliency map has NaN or infinite values")
    stack = np.zeros((src.frames, *src.shape, 1), dtype=np.float32)
    stack[int(ai.frame or 0), :, :, 0] = np.clip(sal, 0.0, 1.0)
    desc = hd.seg.SegmentDescription(
        segment_number=1, segment_label="AI saliency",
        segmented_property_category=_code(*_ABNORMAL),
        segmented_property_type=_code(*_SALIENCY),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=ai.model_name, version=ai.model_version or "unknown",
            family=_family(),
        ),
    )
    return _build(
        src, stack, segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY, max_fractional_value=255,
        segment_descriptions=[desc], content_label="AI_SALIENCY",
        content_description="AI saliency: decision support, not a diagnosis",
        omit_empty_frames=False, **_common(src, case, "seg-saliency", series_number),
    )


def _family() -> Any:
    from pydicom.sr.codedict import codes

    return codes.cid7162.ArtificialIntelligence


def read_seg(path: Path | Any, sources: dict[str, SourceImage]) -> dict[str, Any]:
    """Read a SEG written here back: per segment label, {(image_id, frame): mask}.

    BINARY segments come back as bool masks, FRACTIONAL ones as float32 in [0, 1]. Frames of
    the source that the SEG omits (empty) are absent from the dict.

    Returns:
        {"type": "BINARY"|"FRACTIONAL", "segments": {label: {(image_id, frame): array}},
         "algorithms": {label: (name, version)}}

    Raises:
        InteropError: Not a segmentation, or frames referring to instances the case lacks.
    """
    import pydicom

    where = str(path) if isinstance(path, (str, Path)) else "SEG"
    try:
        ds = pydicom.dcmread(path) if isinstance(path, (str, Path)) else path
        if str(ds.SOPClassUID) != "1.2.840.10008.5.1.4.1.1.66.4":
            raise InteropError(f"{where}: not a Segmentation (SOP class {ds.SOPClassUID})")
        pixels = ds.pixel_array
    except InteropError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decode failure becomes one clear line
        raise InteropError(f"{where}: unreadable Segmentation ({type(exc).__name__})") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    kind = str(ds.SegmentationType)
    scale = float(getattr(ds, "MaximumFractionalValue", 1) or 1) if kind == "FRACTIONAL" else 1.0
    seg_labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    algorithms: dict[str, tuple[str, str]] = {}
    for s in ds.SegmentSequence:
        alg = s.get("SegmentationAlgorithmIdentificationSequence")
        if alg:
            algorithms[str(s.SegmentLabel)] = (str(alg[0].AlgorithmName), str(alg[0].AlgorithmVersion))
    segments: dict[str, dict[tuple[str, int | None], np.ndarray]] = defaultdict(dict)
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]

    def group(i: int, name: str) -> Any:
        for fg in (per_frame[i] if i < len(per_frame) else None, shared):
            if fg is not None and name in fg:
                return getattr(fg, name)[0]
        raise InteropError(f"{where}: frame {i + 1} has no {name}")

    for i in range(pixels.shape[0]):
        seg_no = int(group(i, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        ref = group(i, "DerivationImageSequence").SourceImageSequence[0]
        sop = str(ref.ReferencedSOPInstanceUID)
        fn = ref.get("ReferencedFrameNumber")
        fn = int(fn[0] if isinstance(fn, pydicom.multival.MultiValue) else fn) if fn else None
        hit = None
        for s in sources.values():
            if sop in s._by_uid:
                hit = (s.image_id, s.frame_of(sop, fn))
                break
        if hit is None:
            raise InteropError(f"{where}: frame {i + 1} refers to instance {sop}, not an image of this case")
        frame = pixels[i]
        arr = frame.astype(bool) if kind == "BINARY" else (frame.astype(np.float32) / scale)
        segments[seg_labels[seg_no]][hit] = arr
    return {"type": kind, "segments": dict(segments), "algorithms": algorithms}


__all__ = ["build_lesion_seg", "build_saliency_seg", "lesion_masks", "rasterise", "read_seg"]
