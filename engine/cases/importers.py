"""Build studies from a manifest CSV or from a folder of DICOM files.

Both importers copy the images into the study (a study folder is self-contained and can be
moved or archived) and report every problem as a :class:`CaseFormatError` naming the file and,
for a manifest, the row — a user can act on each message.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cases.model import MODALITIES, TRUTH_LABELS, Case, CaseImage, Study, Truth, valid_case_id
from engine.cases.store import create_study, load_study, new_case_folder, save_case
from engine.errors import CaseFormatError
from engine.progress import CancelToken, ProgressCallback, check, report

MANIFEST_COLUMNS = ("case_id", "path", "modality")
MANIFEST_OPTIONAL = ("view", "truth", "laterality", "subtype")


@dataclass
class ImportResult:
    """What an import produced: the study and the problems that were skipped."""

    study: Study
    problems: list[CaseFormatError] = field(default_factory=list)


def _unique_name(folder: Path, name: str) -> Path:
    dest = folder / name
    stem, suffix, n = dest.stem, dest.suffix, 1
    while dest.exists():
        dest = folder / f"{stem}_{n}{suffix}"
        n += 1
    return dest


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Read and validate a manifest CSV (``case_id, path, modality[, view, truth, laterality, subtype]``).

    Returns:
        Rows with a ``_row`` key (1-based data row number, header = row 1).

    Raises:
        CaseFormatError: for a missing column, an empty file, or an invalid value (with its row).
    """
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CaseFormatError(path, f"cannot open: {exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise CaseFormatError(
                path, f"missing column(s) {', '.join(missing)}; a manifest needs "
                f"{', '.join(MANIFEST_COLUMNS)} and may have {', '.join(MANIFEST_OPTIONAL)}"
            )
        rows: list[dict[str, str]] = []
        for i, raw in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            row["_row"] = str(i)
            if not valid_case_id(row["case_id"]):
                raise CaseFormatError(path, f"case_id {row['case_id']!r} must be letters, digits, '_', '.', '-'", i)
            row["modality"] = row["modality"].upper()
            if row["modality"] not in MODALITIES:
                raise CaseFormatError(path, f"modality {row['modality']!r} is not one of {', '.join(MODALITIES)}", i)
            truth = row.get("truth", "").lower()
            if truth and truth not in TRUTH_LABELS:
                raise CaseFormatError(path, f"truth {truth!r} must be empty, benign or malignant", i)
            row["truth"] = truth
            if not row["path"]:
                raise CaseFormatError(path, "empty path", i)
            rows.append(row)
    if not rows:
        raise CaseFormatError(path, "the manifest has no rows")
    return rows


def import_manifest(
    manifest: Path,
    study_dir: Path,
    *,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Create (or extend) a study from a manifest CSV; relative paths are relative to the manifest.

    Rows whose image is missing are skipped and reported; rows of one case must agree on truth.
    """
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    study = load_study(study_dir) if (Path(study_dir) / "study.json").exists() else create_study(
        Path(study_dir), name or Path(study_dir).name
    )
    problems: list[CaseFormatError] = []
    by_case: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_case[row["case_id"]].append(row)
    for n, (case_id, case_rows) in enumerate(by_case.items()):
        check(cancel)
        report(progress, n, len(by_case), case_id)
        truths = {r["truth"] for r in case_rows if r["truth"]}
        if len(truths) > 1:
            problems.append(CaseFormatError(manifest, f"case {case_id!r} has conflicting truth {sorted(truths)}",
                                            int(case_rows[0]["_row"])))
            continue
        folder = new_case_folder(study, case_id)
        folder.mkdir(parents=True, exist_ok=True)
        case = Case(case_id=case_id, folder=folder)
        if truths:
            case.truth = Truth(label=truths.pop(), subtype=case_rows[0].get("subtype") or None, source="manifest")
        for r in case_rows:
            src = Path(r["path"])
            if not src.is_absolute():
                src = manifest.parent / src
            if not src.exists():
                problems.append(CaseFormatError(manifest, f"image {r['path']!r} does not exist", int(r["_row"])))
                continue
            dest = _unique_name(folder, src.name)
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                shutil.copy2(src, dest)
            modality = r["modality"]
            k = sum(1 for im in case.images if im.modality == modality) + 1
            case.images.append(CaseImage(
                image_id=f"{modality.lower()}_{(r.get('view') or str(k)).lower()}",
                path=dest, modality=modality, view=r.get("view") or None,
                laterality=(r.get("laterality") or "").upper() or None, source=str(r["path"]),
            ))
        if case.images:
            _dedupe_ids(case)
            save_case(case)
            study.cases.append(case)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    report(progress, len(by_case), len(by_case), "done")
    return ImportResult(study=study, problems=problems)


def _dedupe_ids(case: Case) -> None:
    seen: dict[str, int] = {}
    for im in case.images:
        if im.image_id in seen:
            seen[im.image_id] += 1
            im.image_id = f"{im.image_id}_{seen[im.image_id]}"
        else:
            seen[im.image_id] = 1


def pseudonym(*parts: str | None) -> str:
    """A stable non-identifying reference (SHA-256 prefix) for patient/study identifiers."""
    return hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:10]


def import_dicom_folder(
    folder: Path,
    study_dir: Path,
    *,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ImportResult:
    """Create a study from a folder of DICOM files, one case per (patient, study, laterality).

    MR slices of one series are kept together as one series image. Patient identifiers never
    appear in folder names: cases are named by a pseudonym of patient/study ids.
    Non-DICOM or unreadable files are reported and skipped.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise CaseFormatError(folder, "not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    problems: list[CaseFormatError] = []
    groups: dict[tuple[str, str, str], list[tuple[Path, Any]]] = defaultdict(list)
    for i, f in enumerate(files):
        check(cancel)
        report(progress, i, len(files), f.name)
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError) as exc:
            if f.name.upper() != "DICOMDIR":
                problems.append(CaseFormatError(f, f"not a readable DICOM file ({type(exc).__name__})"))
            continue
        if "SOPClassUID" in ds and str(ds.SOPClassUID) == "1.2.840.10008.1.3.10":  # Media Storage Directory
            continue
        lat = str(getattr(ds, "ImageLaterality", "") or getattr(ds, "Laterality", "") or "").upper()
        key = (str(getattr(ds, "PatientID", "")), str(getattr(ds, "StudyInstanceUID", "")), lat)
        groups[key].append((f, ds))
    study = load_study(study_dir) if (Path(study_dir) / "study.json").exists() else create_study(
        Path(study_dir), name or Path(study_dir).name
    )
    for (pid, suid, lat), items in groups.items():
        ref = pseudonym(pid, suid)
        case_id = f"dcm_{ref}" + (f"_{lat}" if lat else "")
        case_folder = new_case_folder(study, case_id)
        case_folder.mkdir(parents=True, exist_ok=True)
        case = Case(case_id=case_id, folder=case_folder, patient_ref=pseudonym(pid))
        series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
        for f, ds in items:
            modality = str(getattr(ds, "Modality", "")).upper()
            if modality not in MODALITIES:
                problems.append(CaseFormatError(f, f"modality {modality or 'missing'!r} is not MG, US or MR; skipped"))
                continue
            if modality == "MR" and int(getattr(ds, "NumberOfFrames", 1) or 1) == 1:
                series[str(getattr(ds, "SeriesInstanceUID", ""))].append((f, ds))
                continue
            view = str(getattr(ds, "ViewPosition", "") or "") or None
            dest = _unique_name(case_folder, f.name if f.suffix else f.name + ".dcm")
            shutil.copy2(f, dest)
            case.images.append(CaseImage(
                image_id=f"{modality.lower()}_{(view or str(len(case.images) + 1)).lower()}",
                path=dest, modality=modality, view=view, laterality=lat or None, source=f.name,
            ))
        for n, (_uid, slices) in enumerate(series.items(), start=1):
            sdir = _unique_name(case_folder, f"mr_series_{n}")
            sdir.mkdir()
            for f, _ds in slices:
                shutil.copy2(f, _unique_name(sdir, f.name if f.suffix else f.name + ".dcm"))
            desc = str(getattr(slices[0][1], "SeriesDescription", "") or "") or None
            case.images.append(CaseImage(
                image_id=f"mr_{n}", path=sdir, modality="MR", view=desc, laterality=lat or None,
                source=f"{len(slices)} slices",
            ))
        if case.images:
            _dedupe_ids(case)
            save_case(case)
            study.cases.append(case)
        else:
            shutil.rmtree(case_folder, ignore_errors=True)
    report(progress, len(files), len(files), "done")
    return ImportResult(study=study, problems=problems)
