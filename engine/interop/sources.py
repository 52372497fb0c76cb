"""The DICOM instances a case's annotations refer to.

An SR region or a SEG frame must reference a real SOP instance. A case image is one of:

* a DICOM file (MG, US, single- or multi-frame): referenced as is; an annotation's ``frame``
  becomes ReferencedFrameNumber ``frame + 1`` for a multi-frame object;
* a folder of single-frame DICOM slices (an MR series): slice ``frame`` of the series sorted
  exactly as :func:`engine.io.reader.read_image` sorts it (:func:`engine.io.dicom.sort_slices`);
* a raster file (PNG/JPEG/TIFF: BUSI ultrasound, for instance): it has no SOP instance, so it
  is wrapped as a **Secondary Capture** image (ConversionType WSD, the pixels unchanged) written
  next to the SR/SEG and sent with them. Its UIDs are derived deterministically from the case
  and image id, so exporting the same case twice references the same wrapper. It joins the
  patient/study of the case's DICOM images when there are any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.cases.model import Case, CaseImage
from engine.interop.errors import InteropError

#: UID root for objects written by breast-reader (pydicom's root + ".1", as engine.io.writer).
UID_PREFIX = "1.2.826.0.1.3680043.8.498."


def stable_uid(*parts: str) -> str:
    """A UID derived from ``parts`` (the same parts always give the same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=UID_PREFIX, entropy_srcs=["breast-reader", *parts]))


@dataclass
class SourceImage:
    """The DICOM instance(s) behind one case image.

    Attributes:
        image_id: The case image.
        datasets: One header per SOP instance, in frame order (MR slices) or a single one.
        paths: The files of ``datasets``.
        wrapped: True when the instance is a Secondary Capture wrapper written by us.
    """

    image_id: str
    datasets: list[Any]
    paths: list[Path]
    wrapped: bool = False
    _by_uid: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_uid = {str(ds.SOPInstanceUID): i for i, ds in enumerate(self.datasets)}

    @property
    def multiframe(self) -> bool:
        """Whether the (single) instance holds several frames."""
        return len(self.datasets) == 1 and int(getattr(self.datasets[0], "NumberOfFrames", 1) or 1) > 1

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of every frame."""
        ds = self.datasets[0]
        return int(ds.Rows), int(ds.Columns)

    @property
    def frames(self) -> int:
        """Number of frames (slices) an annotation's ``frame`` can address."""
        if self.multiframe:
            return int(self.datasets[0].NumberOfFrames)
        return len(self.datasets)

    def reference(self, frame: int | None) -> tuple[Any, int | None]:
        """(dataset, 1-based referenced frame number or None) for an annotation's ``frame``."""
        f = int(frame or 0)
        if not 0 <= f < self.frames:
            raise InteropError(f"{self.image_id}: frame {frame} is outside the image's {self.frames} frame(s)")
        if self.multiframe:
            return self.datasets[0], f + 1
        return self.datasets[f if len(self.datasets) > 1 else 0], None

    def frame_of(self, sop_uid: str, frame_number: int | None) -> int | None:
        """The annotation ``frame`` of a reference, or None when it is not this image's."""
        i = self._by_uid.get(str(sop_uid))
        if i is None:
            return None
        if self.multiframe:
            return int(frame_number or 1) - 1
        return i if len(self.datasets) > 1 else None


def _read_header(path: Path) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError) as exc:
        raise InteropError(f"{path}: not a readable DICOM file ({type(exc).__name__})") from None


def _is_dicom(path: Path) -> bool:
    from engine.io.reader import detect_format

    try:
        return detect_format(path) == "DICOM"
    except Exception:  # noqa: BLE001 - an unknown format is simply "not DICOM" here
        return False


def _series(folder: Path) -> tuple[list[Path], list[Any]]:
    from engine.io.dicom import sort_slices
    from engine.io.reader import list_series_files

    fmt, files = list_series_files(folder)
    if fmt != "DICOM":
        raise InteropError(f"{folder}: a {fmt} slice folder cannot be referenced by DICOM objects")
    headers = [_read_header(Path(f)) for f in files]
    order, _pos, _rule = sort_slices(list(zip(files, headers, strict=True)))
    return [Path(files[i]) for i in order], [headers[i] for i in order]


def _identity(case: Case, found: list[Any]) -> dict[str, Any]:
    """Patient/study of the case: from its first DICOM image, else a pseudonymous one."""
    if found:
        ds = found[0]
        return {
            "PatientID": str(ds.get("PatientID", "") or case.patient_ref or case.case_id),
            "PatientName": str(ds.get("PatientName", "") or "Anonymous^"),
            "PatientBirthDate": str(ds.get("PatientBirthDate", "") or ""),
            "PatientSex": str(ds.get("PatientSex", "") or ""),
            "StudyInstanceUID": str(ds.StudyInstanceUID),
            "StudyDate": str(ds.get("StudyDate", "") or ""),
            "StudyTime": str(ds.get("StudyTime", "") or ""),
            "StudyID": str(ds.get("StudyID", "") or ""),
            "AccessionNumber": str(ds.get("AccessionNumber", "") or ""),
            "ReferringPhysicianName": str(ds.get("ReferringPhysicianName", "") or ""),
        }
    return {
        "PatientID": case.patient_ref or case.case_id,
        "PatientName": "Anonymous^",
        "PatientBirthDate": "",
        "PatientSex": "",
        "StudyInstanceUID": stable_uid(case.case_id, "study"),
        "StudyDate": "",
        "StudyTime": "",
        "StudyID": "",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
    }


def _wrap(case: Case, im: CaseImage, ident: dict[str, Any], out_dir: Path, number: int) -> SourceImage:
    from engine.io.reader import read_image
    from engine.io.writer import write_dicom

    img = read_image(im.path, modality_hint=im.modality if im.modality in ("MG", "US", "MR") else None)  # type: ignore[arg-type]
    arr = np.asarray(img.pixels)
    if arr.ndim == 3 and arr.shape[-1] != 3:
        raise InteropError(f"{im.path}: a raster slice stack cannot be wrapped; store the series as DICOM")
    if arr.dtype not in (np.uint8, np.uint16):
        lo, hi = float(np.min(arr)), float(np.max(arr))
        arr = np.zeros(arr.shape, np.uint8) if hi <= lo else np.round((arr - lo) / (hi - lo) * 255).astype(np.uint8)
    if arr.ndim == 3 and arr.dtype != np.uint8:
        arr = (arr >> 8).astype(np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{im.image_id}_sc.dcm"
    date = ident["StudyDate"]
    write_dicom(
        path, arr, modality="OT", photometric="RGB" if arr.ndim == 3 else "MONOCHROME2",
        patient_id=ident["PatientID"], patient_name=ident["PatientName"],
        study_uid=ident["StudyInstanceUID"],
        series_uid=stable_uid(case.case_id, im.image_id, "sc-series"),
        sop_uid=stable_uid(case.case_id, im.image_id, "sc-instance"),
        accession=ident["AccessionNumber"], series_number=900 + number,
        description=f"{im.modality} {im.view or ''} (wrapped {Path(im.path).suffix.lstrip('.').upper()})".strip(),
        pixel_spacing=img.meta.pixel_spacing,
        extra_tags={
            "Modality": im.modality, "ConversionType": "WSD", "BurnedInAnnotation": "NO",
            "StudyDate": date, "StudyTime": ident["StudyTime"], "StudyID": ident["StudyID"],
            "DerivationDescription": f"Secondary Capture of {Path(im.path).name} (pixels unchanged)",
            "Laterality": im.laterality or "", "PatientOrientation": "", "BodyPartExamined": "BREAST",
        },
    )
    return SourceImage(im.image_id, [_read_header(path)], [path], wrapped=True)


def case_sources(case: Case, wrap_dir: Path | None = None) -> dict[str, SourceImage]:
    """The DICOM instance(s) of every image of ``case`` (wrapping raster images into ``wrap_dir``).

    Args:
        case: The case.
        wrap_dir: Where Secondary Capture wrappers of raster images go; None skips raster images
            (then annotations on them cannot be exported, and readers report them).

    Raises:
        InteropError: A DICOM image that cannot be read.
    """
    out: dict[str, SourceImage] = {}
    found: list[Any] = []
    pending: list[CaseImage] = []
    for im in case.images:
        p = Path(im.path)
        if p.is_dir():
            paths, headers = _series(p)
            out[im.image_id] = SourceImage(im.image_id, headers, paths)
            found.extend(headers[:1])
        elif _is_dicom(p):
            ds = _read_header(p)
            out[im.image_id] = SourceImage(im.image_id, [ds], [p])
            found.append(ds)
        else:
            pending.append(im)
    if pending and wrap_dir is not None:
        ident = _identity(case, found)
        for n, im in enumerate(pending, start=1):
            out[im.image_id] = _wrap(case, im, ident, wrap_dir, n)
    return out
