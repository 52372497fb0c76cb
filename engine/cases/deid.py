"""De-identified copy of a study for sharing: DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile (the subset of Table E.1-1 a breast-imaging study meets), plus the
*Retain Device Identity* behaviour for Manufacturer/model (needed to judge site effects).

Per attribute (action codes of Table E.1-1):

* **X (remove)**: patient and other-person names/IDs beyond the pseudonym, birth time, address,
  telephone, ethnic group, occupation, military rank, medical record locator, insurance plan,
  other patient IDs/names, patient comments, institution address, physicians (referring,
  performing, reading, attending, requesting), operators, station name, device serial number,
  request/procedure descriptions that are free text, protocol name, image/study comments,
  admission, visit and scheduled-procedure identifiers, every private tag (odd
  groups), curves/overlays (groups 50xx/60xx data), and any sequence named in the list.
* **Z (zero-length)**: PatientName and PatientID are replaced by the case pseudonym;
  PatientBirthDate, AccessionNumber, StudyID, ReferringPhysicianName and the dates
  (Study/Series/Acquisition/Content date and time) become empty (type 2: present, no value).
* **U (replace UID)**: Study/Series/SOP Instance, Frame of Reference, Referenced SOP Instance
  UIDs become ``2.25.<HMAC>`` UIDs under the per-installation key, consistently within the
  export (so series and references still line up) and irreversibly without the key.
* Added: PatientIdentityRemoved = YES, DeidentificationMethod, and
  DeidentificationMethodCodeSequence = (113100, DCM, "Basic Application Confidentiality Profile").

Burned-in text is not detected: files whose BurnedInAnnotation is YES are refused (reported),
ultrasound files are flagged for visual review, as PS3.15 E.3.1 asks. Raster images are copied
unchanged (they carry no header identifiers); ``case.json`` is rewritten with the pseudonymous
ids only (no ``source``, no ``patient_ref``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DeidReport", "deidentify_dataset", "export_deidentified"]

_REMOVE = [
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientBirthTime",
    "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName", "EthnicGroup", "Occupation",
    "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "PatientInsurancePlanCodeSequence",
    "PatientComments", "AdditionalPatientHistory", "PatientReligiousPreference", "InstitutionAddress",
    "InstitutionName", "InstitutionalDepartmentName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord", "RequestingPhysician", "OperatorsName", "StationName", "DeviceSerialNumber",
    "ProtocolName", "ImageComments", "StudyComments", "AdmissionID", "IssuerOfPatientID",
    "ScheduledProcedureStepID", "RequestedProcedureID", "PerformedProcedureStepID",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedStudySequence", "PatientAge",
    "PatientSize", "PatientWeight", "CountryOfResidence", "RegionOfResidence", "ResponsiblePerson",
    "PersonName", "InstanceCreatorUID", "StorageMediaFileSetUID", "PerformedProcedureStepDescription",
    "RequestedProcedureDescription", "DerivationDescription", "TextComments", "AcquisitionComments",
]
# action Z (zero length) in PS3.15 Table E.1-1: type 2 attributes stay, empty (highdicom's SR/SEG
# builders read AccessionNumber from the source images, so removing it broke the SR export)
_EMPTY = [
    "AccessionNumber", "StudyID", "ReferringPhysicianName", "PatientBirthDate", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime",
    "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
]
_UIDS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
         "ReferencedSOPInstanceUID", "MediaStorageSOPInstanceUID", "IrradiationEventUID"]


def _uid(value: str, key: bytes) -> str:
    return "2.25." + str(int(hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:30], 16))


def deidentify_dataset(ds: Any, pseudonym: str, key: bytes) -> Any:
    """Apply the profile (module docstring) to a pydicom Dataset in place; returns it."""
    from pydicom.dataset import Dataset

    ds.remove_private_tags()

    def walk(d: Any) -> None:
        for kw in _REMOVE:
            if kw in d:
                delattr(d, kw)
        for kw in _EMPTY:
            if kw in d:
                setattr(d, kw, "")
        for kw in _UIDS:
            if kw in d and d.get(kw):
                setattr(d, kw, _uid(str(d.get(kw)), key))
        for tag in [t for t in d.keys() if 0x5000 <= t.group <= 0x60FF and t.group % 2 == 0]:
            del d[tag]  # curves and overlays may hold burned-in text
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
    walk(ds)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "breast-reader: DICOM PS3.15 Basic Profile"  # LO: 64 characters at most
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@dataclass
class DeidReport:
    """What :func:`export_deidentified` wrote and what needs a person's look."""

    out_dir: Path
    dicom_files: int = 0
    raster_files: int = 0
    refused: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)


def export_deidentified(study_dir: str | Path, out_dir: str | Path) -> DeidReport:
    """Write a de-identified copy of a case study into ``out_dir`` (see module docstring)."""
    import pydicom

    from engine.cases import load_study
    from engine.cases.secret import installation_key
    from engine.cases.store import write_json_atomic
    from engine.io.reader import detect_format
    from engine.errors import ImageReadError

    study = load_study(study_dir)
    out = Path(out_dir)
    key = installation_key()
    rep = DeidReport(out)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    raw_study = json.loads((Path(study_dir) / "study.json").read_text(encoding="utf-8"))
    write_json_atomic(out / "study.json", {k: v for k, v in raw_study.items() if k in ("name", "format", "version")}
                      | {"deidentified": "DICOM PS3.15 Basic Application Level Confidentiality Profile"})
    for case in study.cases:
        cdir = out / "cases" / case.case_id
        cdir.mkdir(parents=True, exist_ok=True)
        for f in sorted(p for p in case.folder.rglob("*") if p.is_file()):
            rel = f.relative_to(case.folder)
            dest = cdir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.name in ("case.json", "annotations.json"):
                continue
            try:
                fmt = detect_format(f)
            except ImageReadError:
                rep.refused.append(f"{case.case_id}/{rel}: not an image; not exported")
                continue
            if fmt != "DICOM":
                shutil.copy2(f, dest)
                rep.raster_files += 1
                continue
            ds = pydicom.dcmread(f, force=True)
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                rep.refused.append(f"{case.case_id}/{rel}: BurnedInAnnotation YES; pixels would carry text")
                continue
            if str(ds.get("Modality", "")).upper() == "US":
                rep.review.append(f"{case.case_id}/{rel}: ultrasound; check the pixels for burned-in text")
            deidentify_dataset(ds, case.case_id, key).save_as(dest, enforce_file_format=False)
            rep.dicom_files += 1
        data = case.to_json()
        data.pop("patient_ref", None)
        data.pop("exam_date", None)  # a date is an identifier too (DICOM StudyDate is removed likewise)
        for im in data.get("images", []):
            im.pop("source", None)
        write_json_atomic(cdir / "case.json", data)
        if (case.folder / "annotations.json").is_file():
            shutil.copy2(case.folder / "annotations.json", cdir / "annotations.json")
    return rep
