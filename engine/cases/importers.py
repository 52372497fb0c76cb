"""Build studies from a manifest CSV or from a folder of DICOM files.

Both importers copy the images into the study (a study folder is self-contained and can be
moved or archived) and report every problem as a :class:`CaseFormatError` naming the file and,
for a manifest, the row — a user can act on each message.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cases.model import MODALITIES, TRUTH_LABELS, Case, CaseImage, Study, Truth, valid_case_id
from engine.cases.store import create_study, load_study, new_case_folder, save_case
from engine.errors import CaseFormatError, ImageReadError
from engine.progress import CancelToken, ProgressCallback, check, report

MANIFEST_COLUMNS = ("case_id", "path", "modality")
MANIFEST_OPTIONAL = ("view", "truth", "laterality", "subtype")


@dataclass
class ImportResult:
    """What an import produced: the study and the problems that were skipped."""

    study: Study
    problems: list[CaseFormatError] = field(default_factory=list)


def _study_date(items: list[tuple[Path, Any]]) -> str | None:
    """The exam's StudyDate as ISO ``YYYY-MM-DD`` (for priors), None when absent or malformed."""
    for _f, ds in items:
        raw = str(ds.get("StudyDate", "") or "").strip()
        if len(raw) == 8 and raw.isdigit():
            return f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    return None


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
    keep_names: bool = False,
    source_root: Path | None = None,
) -> ImportResult:
    """Create (or extend) a study from a manifest CSV; relative paths are relative to the manifest.

    Only image files (recognised by their content) inside the manifest's folder are imported;
    every other row (missing, outside the folder, a symlink out, not an image, a device or
    special file) is skipped and reported. Copies get neutral names (``mg_cc.dcm``); the
    original file name, which may carry a name or an MRN, is kept only with ``keep_names``.
    Rows of one case must agree on truth.
    """
    manifest = Path(manifest)
    source_root = (Path(source_root) if source_root is not None else manifest.parent).resolve()
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
            row_no = int(r["_row"])
            src = Path(r["path"])
            if not src.is_absolute():
                src = manifest.parent / src
            refusal = _refuse_source(src, source_root)
            if refusal:
                problems.append(CaseFormatError(manifest, f"image {r['path']!r}: {refusal}", row_no))
                continue
            modality = r["modality"]
            k = sum(1 for im in case.images if im.modality == modality) + 1
            image_id = f"{modality.lower()}_{(r.get('view') or str(k)).lower()}"
            try:
                if src.is_dir():
                    from engine.io.reader import list_series_files

                    _fmt, slice_files = list_series_files(src)
                    dest = _unique_name(folder, image_id)
                    dest.mkdir()
                    for j, sf in enumerate(slice_files, start=1):
                        if _refuse_source(Path(sf), source_root) is None:
                            shutil.copy2(sf, dest / f"slice_{j:04d}{Path(sf).suffix.lower()}")
                else:
                    dest = _unique_name(folder, image_id + src.suffix.lower())
                    shutil.copy2(src, dest)
            except (OSError, ImageReadError) as exc:
                problems.append(CaseFormatError(manifest, f"image {r['path']!r} could not be imported ({_reason(exc)})",
                                                row_no))
                continue
            case.images.append(CaseImage(
                image_id=image_id,
                path=dest, modality=modality, view=r.get("view") or None,
                laterality=(r.get("laterality") or "").upper() or None,
                source=str(r["path"]) if keep_names else f"manifest row {row_no}",
            ))
        if case.images:
            _dedupe_ids(case)
            save_case(case)
            study.cases.append(case)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    report(progress, len(by_case), len(by_case), "done")
    return ImportResult(study=study, problems=problems)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)


def _refuse_source(src: Path, root: Path) -> str | None:
    """Why ``src`` may not be imported from ``root`` (None when it may): never quotes contents."""
    import stat

    from engine.io.reader import detect_format

    try:
        resolved = src.resolve()
    except (OSError, RuntimeError):
        return "image path cannot be resolved"
    if not (resolved == root or resolved.is_relative_to(root)):
        return "image path points outside the manifest's folder (symlinks and ../ included); not imported"
    try:
        st = resolved.stat()
    except OSError:
        return "image does not exist"
    if stat.S_ISDIR(st.st_mode):
        return None  # a slice folder: its files are checked one by one
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (device, pipe or socket); not imported"
    try:
        detect_format(resolved)
    except ImageReadError as exc:
        return f"not an image file ({exc.reason}); not imported"
    return None


def _dedupe_ids(case: Case) -> None:
    seen: dict[str, int] = {}
    for im in case.images:
        if im.image_id in seen:
            seen[im.image_id] += 1
            im.image_id = f"{im.image_id}_{seen[im.image_id]}"
        else:
            seen[im.image_id] = 1


def pseudonym(*parts: str | None) -> str:
    """A stable non-identifying reference for patient/study identifiers: HMAC-SHA-256 keyed with
    the per-installation secret (:mod:`engine.cases.secret`), so enumerating MRNs does not
    reverse it."""
    from engine.cases.secret import keyed_pseudonym

    return keyed_pseudonym(*parts, length=10)


def import_dicom_folder(
    folder: Path,
    study_dir: Path,
    *,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    keep_names: bool = False,
) -> ImportResult:
    """Create a study from a folder of DICOM files, one case per exam (patient + study) holding
    both breasts (each image keeps its laterality).

    Copies get neutral names (``mg_l_cc.dcm``, ``slice_0001.dcm``); original file names are kept
    only with ``keep_names``. A file with a bad ImageLaterality is imported without laterality
    and reported; an unreadable header is reported and skipped, never aborting the import.

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
    groups: dict[tuple[str, str], list[tuple[Path, Any]]] = defaultdict(list)
    lat_of: dict[Path, str] = {}
    for i, f in enumerate(files):
        check(cancel)
        report(progress, i, len(files), f.name)
        if f.is_symlink() and not f.resolve().is_relative_to(folder.resolve()):
            problems.append(CaseFormatError(f, "symlink to a file outside the import folder; not imported"))
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, TypeError, KeyError) as exc:
            if f.name.upper() != "DICOMDIR":
                problems.append(CaseFormatError(f, f"not a readable DICOM file ({type(exc).__name__})"))
            continue
        try:
            if "SOPClassUID" in ds and str(ds.SOPClassUID) == "1.2.840.10008.1.3.10":  # Media Storage Directory
                continue
            raw_lat = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").strip().upper()
            key = (str(ds.get("PatientID", "") or ""), str(ds.get("StudyInstanceUID", "") or ""))
        except Exception as exc:  # noqa: BLE001 - one bad header never aborts the import
            problems.append(CaseFormatError(f, f"DICOM header is invalid ({type(exc).__name__}); not imported"))
            continue
        if raw_lat and raw_lat not in ("L", "R"):
            problems.append(CaseFormatError(f, "ImageLaterality is neither L nor R; imported without laterality"))
            raw_lat = ""
        lat_of[f] = raw_lat
        groups[key].append((f, ds))
    study = load_study(study_dir) if (Path(study_dir) / "study.json").exists() else create_study(
        Path(study_dir), name or Path(study_dir).name
    )
    for (pid, suid), items in groups.items():
        ref = pseudonym(pid, suid)
        case_id = f"dcm_{ref}"  # one case per exam (patient + study); each image keeps its laterality
        case_folder = new_case_folder(study, case_id)
        case_folder.mkdir(parents=True, exist_ok=True)
        case = Case(case_id=case_id, folder=case_folder, patient_ref=pseudonym(pid),
                    exam_date=_study_date(items))
        series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
        for f, ds in items:
            lat = lat_of.get(f, "")
            modality = str(getattr(ds, "Modality", "")).upper()
            if modality not in MODALITIES:
                problems.append(CaseFormatError(f, f"modality {modality or 'missing'!r} is not MG, US or MR; skipped"))
                continue
            if modality == "MR" and int(getattr(ds, "NumberOfFrames", 1) or 1) == 1:
                series[str(getattr(ds, "SeriesInstanceUID", ""))].append((f, ds))
                continue
            view = str(getattr(ds, "ViewPosition", "") or "") or None
            image_id = f"{modality.lower()}_{(lat.lower() + '_') if lat else ''}{(view or str(len(case.images) + 1)).lower()}"
            dest = _unique_name(case_folder, image_id + ".dcm")
            shutil.copy2(f, dest)
            case.images.append(CaseImage(
                image_id=image_id, path=dest, modality=modality, view=view, laterality=lat or None,
                source=f.name if keep_names else "DICOM import",
            ))
        for n, (_uid, slices) in enumerate(series.items(), start=1):
            sdir = _unique_name(case_folder, f"mr_series_{n}")
            sdir.mkdir()
            for j, (f, _ds) in enumerate(slices, start=1):
                shutil.copy2(f, sdir / f"slice_{j:04d}.dcm")
            desc = str(getattr(slices[0][1], "SeriesDescription", "") or "") or None
            lat = lat_of.get(slices[0][0], "")
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
