"""Reading and writing studies and cases as plain JSON files (atomic writes, validated reads)."""

from __future__ import annotations

import json
import re
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from engine.cases.model import (
    ANNOTATION_KINDS,
    MODALITIES,
    STUDY_FORMAT,
    STUDY_VERSION,
    TRUTH_LABELS,
    Annotation,
    Case,
    CaseImage,
    Study,
    Truth,
    valid_case_id,
)
from engine.errors import CaseFormatError
from engine.progress import ProgressCallback, check, report

CASE_FILE = "case.json"
ANNOTATION_FILE = "annotations.json"
STUDY_FILE = "study.json"
MAX_JSON_BYTES = 32 * 1024 * 1024  # a case/annotation file larger than this is not ours


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file + fsync + rename, so a crash never leaves half a file.

    Args:
        path: Destination.
        data: JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CaseFormatError(path, "file not found") from None
    if size > MAX_JSON_BYTES:
        raise CaseFormatError(path, f"file is {size} bytes; not a breast-reader JSON file")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except UnicodeDecodeError:
        raise CaseFormatError(path, "not a text file (expected UTF-8 JSON)") from None
    except json.JSONDecodeError as exc:
        raise CaseFormatError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _parse_truth(path: Path, raw: Any) -> Truth | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"label": raw}
    if not isinstance(raw, dict) or "label" not in raw:
        raise CaseFormatError(path, "'truth' must be null or an object with a 'label'")
    label = str(raw["label"]).strip().lower()
    if label not in TRUTH_LABELS:
        raise CaseFormatError(path, f"truth label {raw['label']!r} is not one of {', '.join(TRUTH_LABELS)}")
    return Truth(label=label, subtype=raw.get("subtype"), source=raw.get("source"))


#: Extra folders a case may point into (``os.pathsep``-separated), for studies whose images
#: stay on an archive share; nothing outside the study is followed unless listed here.
IMAGE_ROOTS_ENV = "BREAST_READER_IMAGE_ROOTS"


def study_root(case_folder: Path) -> Path:
    """The study folder of a case folder (``<study>/cases/<id>``), else the case folder itself."""
    folder = Path(case_folder).resolve()
    return folder.parent.parent if folder.parent.name == "cases" else folder


def allowed_roots(case_folder: Path) -> list[Path]:
    """Folders a case's image paths may resolve into: its study, plus :data:`IMAGE_ROOTS_ENV`."""
    roots = [study_root(case_folder)]
    for extra in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep):
        if extra.strip():
            roots.append(Path(extra).expanduser().resolve())
    return roots


def contained_path(json_path: Path, folder: Path, raw: str, what: str) -> Path:
    """Resolve an image path of ``case.json`` and refuse one that escapes the study.

    ``../``, absolute paths and symlinks are resolved first, so none of them can reach a file
    outside the study folder (or an explicitly allowed image root, :data:`IMAGE_ROOTS_ENV`).

    Raises:
        CaseFormatError: The path leaves the study (names the case file and the entry only).
    """
    p = Path(raw)
    full = p if p.is_absolute() else Path(folder) / p
    resolved = full.resolve()
    if not any(resolved == r or resolved.is_relative_to(r) for r in allowed_roots(folder)):
        raise CaseFormatError(
            json_path, f"{what} path points outside the study folder; images must be inside the study "
            f"(or in a folder listed in {IMAGE_ROOTS_ENV})"
        )
    return full


def _parse_image(path: Path, folder: Path, raw: Any, index: int) -> CaseImage:
    if not isinstance(raw, dict):
        raise CaseFormatError(path, f"images[{index}] must be an object")
    for key in ("image_id", "path", "modality"):
        if not raw.get(key):
            raise CaseFormatError(path, f"images[{index}] has no '{key}'")
    modality = str(raw["modality"]).upper()
    if modality not in MODALITIES:
        raise CaseFormatError(
            path, f"images[{index}] modality {raw['modality']!r} is not one of {', '.join(MODALITIES)}"
        )
    img_path = contained_path(path, folder, str(raw["path"]), f"images[{index}]")
    lat = raw.get("laterality")
    if lat is not None and str(lat).upper() not in ("L", "R"):
        raise CaseFormatError(path, f"images[{index}] laterality {lat!r} must be L, R or null")
    return CaseImage(
        image_id=str(raw["image_id"]),
        path=img_path,
        modality=modality,
        view=raw.get("view"),
        laterality=str(lat).upper() if lat else None,
        synthetic=bool(raw.get("synthetic", False)),
        source=raw.get("source"),
    )


def parse_annotation(path: Path, raw: Any, index: int, image_ids: set[str]) -> Annotation:
    """Validate one annotation record.

    Raises:
        CaseFormatError: naming the file, the record and what is wrong.
    """
    where = f"annotations[{index}]"
    if not isinstance(raw, dict):
        raise CaseFormatError(path, f"{where} must be an object")
    kind = raw.get("kind")
    if kind not in ANNOTATION_KINDS:
        raise CaseFormatError(path, f"{where} kind {kind!r} is not one of {', '.join(ANNOTATION_KINDS)}")
    if raw.get("image_id") not in image_ids:
        raise CaseFormatError(path, f"{where} refers to unknown image {raw.get('image_id')!r}")
    pts = raw.get("points")
    if not isinstance(pts, list):
        raise CaseFormatError(path, f"{where} points must be a list of [x, y] numbers")
    try:
        points = [[float(p[0]), float(p[1])] for p in pts]
    except (TypeError, ValueError, IndexError):
        raise CaseFormatError(path, f"{where} points must be a list of [x, y] numbers") from None
    need = 2 if kind == "box" else 3
    if len(points) < need:
        raise CaseFormatError(path, f"{where} a {kind} needs at least {need} points, has {len(points)}")
    ann = Annotation(
        image_id=str(raw["image_id"]),
        kind=str(kind),
        points=points,
        lesion_id=str(raw.get("lesion_id") or "L1"),
        frame=int(raw["frame"]) if raw.get("frame") is not None else None,
        label=raw.get("label"),
        author=raw.get("author"),
    )
    if raw.get("created"):
        ann.created = str(raw["created"])
    if raw.get("ann_id"):
        ann.ann_id = str(raw["ann_id"])
    return ann


def _parse_exam_date(path: Path, raw: Any) -> str | None:
    """ISO ``YYYY-MM-DD`` (or DICOM ``YYYYMMDD``) exam date, or None."""
    if raw in (None, ""):
        return None
    txt = str(raw).strip()
    if re.fullmatch(r"\d{8}", txt):
        txt = f"{txt[:4]}-{txt[4:6]}-{txt[6:]}"
    try:
        return date.fromisoformat(txt).isoformat()
    except ValueError:
        raise CaseFormatError(path, f"exam_date {raw!r} is not a date (YYYY-MM-DD)") from None


def load_case(folder: Path) -> Case:
    """Load ``folder/case.json`` and its ``annotations.json``.

    Raises:
        CaseFormatError: with the file and the reason, when the case cannot be used.
    """
    folder = Path(folder)
    path = folder / CASE_FILE
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise CaseFormatError(path, "expected a JSON object")
    case_id = str(raw.get("case_id") or folder.name)
    if not valid_case_id(case_id):
        raise CaseFormatError(path, f"case_id {case_id!r} must be letters, digits, '_', '.', '-' (max 64)")
    images_raw = raw.get("images")
    if not isinstance(images_raw, list) or not images_raw:
        raise CaseFormatError(path, "a case needs a non-empty 'images' list")
    images = [_parse_image(path, folder, im, i) for i, im in enumerate(images_raw)]
    ids = [im.image_id for im in images]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CaseFormatError(path, f"duplicate image_id {', '.join(dupes)}")
    case = Case(
        case_id=case_id,
        folder=folder,
        images=images,
        truth=_parse_truth(path, raw.get("truth")),
        description=str(raw.get("description") or ""),
        patient_ref=raw.get("patient_ref"),
        synthetic=bool(raw.get("synthetic", False)) or any(im.synthetic for im in images),
        paired_note=raw.get("paired_note"),
        exam_date=_parse_exam_date(path, raw.get("exam_date")),
    )
    ann_path = folder / ANNOTATION_FILE
    if ann_path.exists():
        ann_raw = _read_json(ann_path)
        items = ann_raw.get("annotations") if isinstance(ann_raw, dict) else ann_raw
        if not isinstance(items, list):
            raise CaseFormatError(ann_path, "expected {'annotations': [...]}")
        case.annotations = [parse_annotation(ann_path, a, i, set(ids)) for i, a in enumerate(items)]
    return case


def save_case(case: Case) -> None:
    """Write the case definition (``case.json``) and its annotations atomically."""
    write_json_atomic(case.folder / CASE_FILE, case.to_json())
    save_annotations(case)


def save_annotations(case: Case) -> None:
    """Write ``annotations.json`` atomically (the reader's work survives a crash mid-write)."""
    write_json_atomic(
        case.folder / ANNOTATION_FILE,
        {"case_id": case.case_id, "annotations": [a.to_json() for a in case.annotations]},
    )


def load_study(folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None,
               cancel: Any = None) -> Study:
    """Load a study folder. Bad cases are collected in ``Study.problems``; the rest load.

    Args:
        folder: The study folder.
        progress: ``(done, total, message)`` per case read (a 5 000-case study takes about a
            second: the workstation reads it in a worker with a progress bar).
        cancel: A :class:`~engine.progress.CancelToken`, checked between cases.

    Raises:
        Cancelled: ``cancel`` was set.
        CaseFormatError: when the folder itself is not a study (missing/invalid study.json).
    """
    root = Path(folder)
    if not root.is_dir():
        raise CaseFormatError(root, "not a folder")
    header_path = root / STUDY_FILE
    if not header_path.exists():
        raise CaseFormatError(root, f"not a breast-reader study (no {STUDY_FILE})")
    header = _read_json(header_path)
    if not isinstance(header, dict) or header.get("format") != STUDY_FORMAT:
        raise CaseFormatError(header_path, f"'format' must be {STUDY_FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or version > STUDY_VERSION:
        raise CaseFormatError(
            header_path, f"study format version {version!r} is newer than this program ({STUDY_VERSION})"
        )
    study = Study(
        folder=root,
        name=str(header.get("name") or root.name),
        description=str(header.get("description") or ""),
        synthetic_note=header.get("synthetic_note"),
        citations=list(header.get("citations") or []),
    )
    cases_dir = root / "cases"
    seen: set[str] = set()
    subs = sorted(p for p in cases_dir.iterdir() if p.is_dir()) if cases_dir.is_dir() else []
    for i, sub in enumerate(subs):
        if i % 100 == 0:
            check(cancel)
            report(progress, i, len(subs), "reading cases")
        try:
            case = load_case(sub)
            if case.case_id in seen:
                raise CaseFormatError(sub / CASE_FILE, f"case_id {case.case_id!r} is used twice")
            seen.add(case.case_id)
            study.cases.append(case)
        except CaseFormatError as exc:
            study.problems.append(exc)
    report(progress, len(subs), len(subs), "study read")
    return study


def create_study(folder: Path, name: str, **header: Any) -> Study:
    """Create an empty study folder with its study.json."""
    folder = Path(folder)
    (folder / "cases").mkdir(parents=True, exist_ok=True)
    study = Study(folder=folder, name=name, **header)
    write_json_atomic(folder / STUDY_FILE, study.to_json())
    return study


def new_case_folder(study: Study, case_id: str) -> Path:
    """Folder for a new case in ``study`` (validates the id)."""
    if not valid_case_id(case_id):
        raise CaseFormatError(study.folder, f"case id {case_id!r} must be letters, digits, '_', '.', '-'")
    return study.folder / "cases" / case_id
