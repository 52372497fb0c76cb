"""Qt-free import of a reader's own exams: a folder of DICOM, a folder of images, a manifest CSV.

:func:`preview` shows how the files will be grouped into cases *before* anything is copied,
with one actionable line per problem; :func:`run_import` builds the study with the engine's
importers (``engine.cases.importers``). A DICOM exam (patient + study) is one case holding
both breasts, so the bilateral hanging is reached.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BreastReaderError
from engine.progress import CancelToken, ProgressCallback, check, report

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm")
KINDS = ("dicom", "images", "manifest")


class ImportSourceError(BreastReaderError):
    """The import source cannot be used (names the path and what to do)."""


@dataclass
class PreviewImage:
    name: str
    modality: str
    view: str | None = None
    laterality: str | None = None
    laterality_from: str = ""  # "DICOM", "file name", "manifest" or "" (unknown)


@dataclass
class PreviewCase:
    label: str
    images: list[PreviewImage] = field(default_factory=list)

    @property
    def breasts(self) -> str:
        lats = sorted({i.laterality for i in self.images if i.laterality})
        return "+".join(lats) if lats else "?"


@dataclass
class ImportPreview:
    """How ``source`` will be imported: kind, cases and their images, problems."""

    source: Path
    kind: str
    cases: list[PreviewCase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        n_img = sum(len(c.images) for c in self.cases)
        return (f"{self.source}: {self.kind} - {len(self.cases)} case(s), {n_img} image(s)"
                + (f", {len(self.problems)} problem(s)" if self.problems else ""))


def _is_dicom(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def detect_kind(source: Path) -> str:
    """'manifest' (a CSV file), 'dicom' (a folder holding DICOM files) or 'images'."""
    source = Path(source)
    if not source.exists():
        raise ImportSourceError(f"{source}: not found; choose a folder of exams or a manifest CSV")
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "manifest"
        raise ImportSourceError(f"{source}: a single file cannot be imported; choose its folder or a manifest CSV")
    if (source / "study.json").exists():
        raise ImportSourceError(f"{source}: already a breast-reader study; open it with File > Open study")
    n = 0
    for p in sorted(source.rglob("*")):
        if p.is_file():
            n += 1
            if _is_dicom(p):
                return "dicom"
            if n > 200:
                break
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in source.rglob("*") if p.is_file()):
        return "images"
    raise ImportSourceError(f"{source}: holds no DICOM or image files (PNG, JPEG, TIFF); nothing to import")


_LAT = re.compile(r"(?:^|[^a-z])(l|r|left|right)(?=cc|mlo|[^a-z]|$)", re.IGNORECASE)
_VIEW = re.compile(r"(cc|mlo|ml|lm|xccl)(?:[^a-z]|$)", re.IGNORECASE)


def guess_from_name(name: str) -> tuple[str | None, str | None]:
    """(laterality, view) from a file name such as ``RCC.png``, ``left_mlo.dcm``, ``P1_L_CC``."""
    stem = Path(name).stem
    m = re.search(r"(?:^|[^a-z])([lr])(cc|mlo)(?:[^a-z]|$)", stem, re.IGNORECASE)
    if m:
        return m.group(1).upper(), m.group(2).upper()
    lat = _LAT.search(stem)
    view = _VIEW.search(stem)
    lv = lat.group(1).upper()[0] if lat else None
    return lv, (view.group(1).upper() if view else None)


def _modality_guess(path: Path, default: str) -> str:
    low = "/".join(path.parts[-3:]).lower()
    for token, mod in (("mammo", "MG"), ("mg", "MG"), ("us", "US"), ("ultra", "US"), ("mr", "MR")):
        if re.search(rf"(?:^|[^a-z]){token}", low):
            return mod
    return default


def _image_cases(source: Path, default_modality: str) -> tuple[list[tuple[str, Path, str, str | None, str | None]], list[str]]:
    """(case_id, path, modality, view, laterality) rows of an image folder: one case per
    sub-folder, one per loose file; problems for files that are not images."""
    rows = []
    problems = []
    for p in sorted(source.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{p.relative_to(source)}: not an image file (PNG, JPEG, TIFF); skipped - "
                            "remove it or convert it")
            continue
        rel = p.relative_to(source)
        case_id = rel.parts[0] if len(rel.parts) > 1 else p.stem
        case_id = re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)[:60] or "case"
        lat, view = guess_from_name(p.name)
        rows.append((case_id, p, _modality_guess(p, default_modality), view, lat))
    return rows, problems


def _dicom_groups(source: Path, progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None) -> tuple[dict[tuple[str, str], list[tuple[Path, Any]]], list[str]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = sorted(p for p in source.rglob("*") if p.is_file())
    groups: dict[tuple[str, str], list[tuple[Path, Any]]] = defaultdict(list)
    problems = []
    for i, f in enumerate(files):
        check(cancel)
        report(progress, i, len(files), f.name)
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError):
            if f.name.upper() != "DICOMDIR":
                problems.append(f"{f.relative_to(source)}: not a readable DICOM file; skipped - remove it, "
                                "or import images with a manifest CSV")
            continue
        if str(getattr(ds, "SOPClassUID", "")) == "1.2.840.10008.1.3.10":
            continue
        groups[(str(getattr(ds, "PatientID", "")), str(getattr(ds, "StudyInstanceUID", "")))].append((f, ds))
    return groups, problems


def preview(source: str | Path, default_modality: str = "US", progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None) -> ImportPreview:
    """How ``source`` would be imported (reads headers only; copies nothing).

    Raises:
        ImportSourceError: the source is missing, a study already, or holds nothing importable.
    """
    source = Path(source)
    kind = detect_kind(source)
    pv = ImportPreview(source, kind)
    if kind == "dicom":
        groups, pv.problems = _dicom_groups(source, progress, cancel)
        for n, ((_pid, _suid), items) in enumerate(sorted(groups.items()), start=1):
            pc = PreviewCase(f"exam {n}")
            for f, ds in items:
                mod = str(getattr(ds, "Modality", "")).upper()
                if mod not in ("MG", "US", "MR"):
                    pv.problems.append(f"{f.relative_to(source)}: modality {mod or 'missing'} is not MG, US or MR; "
                                       "skipped")
                    continue
                lat = str(getattr(ds, "ImageLaterality", "") or getattr(ds, "Laterality", "") or "").upper() or None
                pc.images.append(PreviewImage(f.name, mod, str(getattr(ds, "ViewPosition", "") or "") or None, lat,
                                              "DICOM" if lat else ""))
            if pc.images:
                pv.cases.append(pc)
    elif kind == "images":
        rows, pv.problems = _image_cases(source, default_modality)
        by_case: dict[str, PreviewCase] = {}
        for cid, p, mod, view, lat in rows:
            pc = by_case.setdefault(cid, PreviewCase(cid))
            pc.images.append(PreviewImage(p.name, mod, view, lat, "file name" if lat else ""))
        pv.cases = list(by_case.values())
        unknown = sum(1 for c in pv.cases for i in c.images if i.modality == "MG" and not i.laterality)
        if unknown:
            pv.problems.append(f"{unknown} mammogram(s) have no laterality in their file name: name them like "
                               "RCC.png / L_MLO.png, or use a manifest CSV with a laterality column")
    else:
        from engine.cases.importers import read_manifest

        try:
            rows_m = read_manifest(source)
        except BreastReaderError as exc:
            raise ImportSourceError(str(exc)) from None
        by_case = {}
        for k, r in enumerate(rows_m, start=2):
            p = Path(r["path"])
            p = p if p.is_absolute() else source.parent / p
            if not p.exists():
                pv.problems.append(f"{source.name} row {k}: {r['path']} not found - fix the path (relative paths "
                                   "are relative to the manifest)")
                continue
            pc = by_case.setdefault(r["case_id"], PreviewCase(r["case_id"]))
            lat = (r.get("laterality") or "").upper() or None
            pc.images.append(PreviewImage(p.name, r["modality"].upper(), r.get("view") or None, lat,
                                          "manifest" if lat else ""))
        pv.cases = list(by_case.values())
    if not pv.cases:
        pv.problems.append("no importable images found")
    return pv


def _merge_exams(study: Any) -> None:
    """One case per DICOM exam: join per-breast cases of the same patient and study.

    (The engine importer made one case per breast; when it groups by exam this is a no-op.)
    """
    import shutil

    from engine.cases import save_case

    by_exam: dict[str, list[Any]] = defaultdict(list)
    for c in study.cases:
        m = re.match(r"^(dcm_[0-9a-f]+)(?:_[LR])?$", c.case_id)
        if m:
            by_exam[m.group(1)].append(c)
    for exam, cases in by_exam.items():
        if len(cases) < 2:
            continue
        keep = cases[0]
        for other in cases[1:]:
            for ci in other.images:
                dest = keep.folder / ci.path.name
                k = 1
                while dest.exists():
                    dest = keep.folder / f"{ci.path.stem}_{k}{ci.path.suffix}"
                    k += 1
                shutil.move(str(ci.path), dest)
                ci.path = dest
                if any(x.image_id == ci.image_id for x in keep.images):
                    ci.image_id = f"{ci.image_id}_{(ci.laterality or 'x').lower()}"
                keep.images.append(ci)
            study.cases.remove(other)
            shutil.rmtree(other.folder, ignore_errors=True)
        for ci in keep.images:  # ids that say the breast: mg_cc_r, mg_mlo_l
            if ci.modality == "MG" and ci.laterality and not ci.image_id.endswith(f"_{ci.laterality.lower()}"):
                ci.image_id = f"{ci.image_id}_{ci.laterality.lower()}"
        old = keep.folder
        keep.case_id = exam
        new = old.parent / exam
        if not new.exists():
            old.rename(new)
            for ci in keep.images:
                ci.path = new / ci.path.relative_to(old)
            keep.folder = new
        save_case(keep)


def run_import(source: str | Path, out: str | Path, *, default_modality: str = "US", name: str | None = None,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Any:
    """Import ``source`` into the study folder ``out`` (created); returns the engine ImportResult.

    Raises:
        ImportSourceError: for an unusable source or an output folder that is not empty.
    """
    from engine.cases.importers import import_dicom_folder, import_manifest

    source, out = Path(source), Path(out)
    kind = detect_kind(source)
    if out.exists() and any(out.iterdir()) and not (out / "study.json").exists():
        raise ImportSourceError(f"{out}: exists and is not empty; choose a new folder for the study")
    if kind == "dicom":
        res = import_dicom_folder(source, out, name=name, progress=progress, cancel=cancel)
        _merge_exams(res.study)
        return res
    if kind == "manifest":
        return import_manifest(source, out, name=name, progress=progress, cancel=cancel)
    rows, _problems = _image_cases(source, default_modality)
    if not rows:
        raise ImportSourceError(f"{source}: no image files to import")
    with tempfile.TemporaryDirectory(prefix="breast-reader-import-") as tmp:
        man = Path(tmp) / "manifest.csv"
        with man.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["case_id", "path", "modality", "view", "laterality"])
            for cid, p, mod, view, lat in rows:
                w.writerow([cid, str(p.resolve()), mod, view or "", lat or ""])
        return import_manifest(man, out, name=name or source.name, progress=progress, cancel=cancel)
