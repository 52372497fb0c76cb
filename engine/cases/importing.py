"""One entry point for importing a source into a study, with a grouping preview for the GUI.

``import_source(src, out)`` takes a folder of DICOM files (one case per exam: patient +
study, both breasts, each image keeping its laterality), a folder of raster images (one case
per image file, modality from the content rule of :mod:`engine.io.modality`, or the given
``modality``) or a manifest CSV (``case_id,path,modality[,...]``), and returns an
:class:`ImportPreview`: the cases with their images (modality, laterality, view) and one line
per refused file. ``dry_run=True`` imports into a temporary folder and deletes it, so a GUI can
show the grouping before anything is written. Case ids, folder and file names never carry the
source's file names or DICOM identifiers.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.cases.importers import ImportResult, import_dicom_folder, import_manifest, pseudonym
from engine.errors import CaseFormatError, ImageReadError
from engine.progress import CancelToken, ProgressCallback

__all__ = ["ImportPreview", "PreviewCase", "PreviewImage", "detect_source_kind", "import_source"]


@dataclass
class PreviewImage:
    """One image of a previewed case."""

    image_id: str
    modality: str
    laterality: str | None
    view: str | None


@dataclass
class PreviewCase:
    """One case as the import groups it."""

    case_id: str
    images: list[PreviewImage] = field(default_factory=list)
    truth: str | None = None


@dataclass
class ImportPreview:
    """What an import did (or, with ``dry_run``, would do)."""

    kind: str
    source: str
    study: str | None
    cases: list[PreviewCase] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (for ``breast-engine import --json`` and the GUI)."""
        return asdict(self)


def detect_source_kind(src: Path) -> str:
    """``"manifest"`` (a .csv file), ``"dicom"`` (a folder holding DICOM) or ``"images"``.

    Raises:
        CaseFormatError: Not a CSV file or a folder.
    """
    from engine.io.reader import detect_format

    if src.is_file():
        if src.suffix.lower() == ".csv":
            return "manifest"
        raise CaseFormatError(src, "give a folder (DICOM or images) or a manifest .csv")
    if not src.is_dir():
        raise CaseFormatError(src, "does not exist")
    for f in sorted(src.rglob("*"))[:2000]:
        if f.is_file():
            try:
                if detect_format(f) == "DICOM":
                    return "dicom"
            except ImageReadError:
                continue
    return "images"


def _images_manifest(src: Path, tmp: Path, modality: str | None) -> tuple[Path, list[str]]:
    """A manifest for a folder of raster images: one case per file (pseudonymous id)."""
    from engine.io.modality import guess_raster_modality
    from engine.io.reader import detect_format, read_image

    rows, refused = [], []
    for f in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            detect_format(f)
            mod = modality
            if mod is None:
                mod, why = guess_raster_modality(read_image(f))
                if mod is None:
                    refused.append(f"{f}: cannot tell the modality from the content ({why}); give --modality")
                    continue
        except ImageReadError as exc:
            refused.append(f"{f}: {exc.reason}; not imported")
            continue
        rows.append((f"img_{pseudonym(str(f.relative_to(src)))}", str(f.resolve()), mod))
    man = tmp / "manifest.csv"
    with open(man, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "path", "modality"])
        w.writerows(rows)
    return man, refused


def _preview(kind: str, src: Path, res: ImportResult, refused: list[str], study: Path | None) -> ImportPreview:
    pv = ImportPreview(kind=kind, source=str(src), study=None if study is None else str(study), refused=refused)
    pv.refused += [str(p) for p in res.problems]
    for c in res.study.cases:
        pv.cases.append(PreviewCase(
            case_id=c.case_id, truth=c.truth.label if c.truth else None,
            images=[PreviewImage(im.image_id, im.modality, im.laterality, im.view) for im in c.images],
        ))
    return pv


def import_source(
    src: str | Path,
    out: str | Path | None = None,
    *,
    modality: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ImportPreview:
    """Import ``src`` into the study folder ``out`` (see module docstring).

    Args:
        src: DICOM folder, image folder or manifest CSV.
        out: Study folder (created or extended); ignored with ``dry_run``.
        modality: For image folders: the modality of every image (default: from the content).
        dry_run: Only report the grouping (imports into a temporary folder, then deletes it).
        progress: Progress callback.
        cancel: Cancellation token.

    Raises:
        CaseFormatError: The source cannot be used at all (each bad file is a ``refused`` line).
    """
    src = Path(src)
    kind = detect_source_kind(src)
    with tempfile.TemporaryDirectory(prefix="breast-import-") as tmpd:
        tmp = Path(tmpd)
        target = tmp / "study" if dry_run or out is None else Path(out)
        refused: list[str] = []
        if kind == "dicom":
            res = import_dicom_folder(src, target, progress=progress, cancel=cancel)
        elif kind == "manifest":
            res = import_manifest(src, target, progress=progress, cancel=cancel)
        else:
            man, refused = _images_manifest(src, tmp, modality.upper() if modality else None)
            if man.read_text().count("\n") <= 1:
                shutil.rmtree(tmp / "study", ignore_errors=True)
                from engine.cases.store import create_study

                res = ImportResult(study=create_study(target, target.name))
            else:
                res = import_manifest(man, target, source_root=src, progress=progress, cancel=cancel)
        return _preview(kind, src, res, refused, None if dry_run or out is None else target)
