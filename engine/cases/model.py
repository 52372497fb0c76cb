"""The study/case data model: plain dataclasses, stored as readable JSON next to the images.

A *study* folder holds cases; a *case* is one lesion of one patient with its images by modality
(MG CC/MLO, several US views, MRI slices), optional truth, and annotations (boxes, polygons,
freehand contours) whose ``lesion_id`` links the same lesion across views and modalities.

Layout on disk::

    STUDY/study.json                    {"format": "breast-reader-study", "version": 1, ...}
    STUDY/cases/<case_id>/case.json     case metadata, images (paths relative to the case folder), truth
    STUDY/cases/<case_id>/annotations.json   written by the reader; kept apart so saving an
                                            annotation never rewrites the case definition
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from engine.errors import CaseFormatError

STUDY_FORMAT = "breast-reader-study"
STUDY_VERSION = 1
MODALITIES = ("MG", "US", "MR")
MG_VIEWS = ("CC", "MLO", "ML", "LM", "XCCL", "SPOT")
TRUTH_LABELS = ("benign", "malignant")
ANNOTATION_KINDS = ("box", "polygon", "freehand")
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

AnnotationKind = Literal["box", "polygon", "freehand"]

#: Authors that dataset importers and the demo builder write for truth regions (not a reader's).
DATASET_AUTHORS = frozenset({"busi", "mini-mias", "synthetic", "cbis-ddsm", "dataset", "truth", "generator",
                             "mimbcd-dev"})


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string (seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def valid_case_id(case_id: str) -> bool:
    """Whether ``case_id`` is usable as a folder name and a CSV key."""
    return bool(_CASE_ID.match(case_id))


@dataclass
class Truth:
    """Reference standard of a case (hidden from readers in blinded studies).

    Attributes:
        label: "benign" or "malignant".
        subtype: Optional pathology subtype (e.g. "IDC", "fibroadenoma").
        source: How truth was established (biopsy, follow-up, dataset label...).
    """

    label: str
    subtype: str | None = None
    source: str | None = None

    @property
    def malignant(self) -> bool:
        """Whether the label is malignant."""
        return self.label == "malignant"

    def to_json(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return {"label": self.label, "subtype": self.subtype, "source": self.source}


@dataclass
class CaseImage:
    """One image (or one MR series) of a case.

    Attributes:
        image_id: Unique within the case (e.g. "mg_cc", "us_1", "mr_t1c").
        path: Absolute path of the file, or of the folder holding an MR slice series.
        modality: "MG", "US" or "MR".
        view: MG view (CC/MLO...), a free US view label, or an MR sequence name.
        laterality: "L", "R" or None.
        synthetic: True when the image is generated (never a clinical image).
        source: Provenance (dataset and original file name).
    """

    image_id: str
    path: Path
    modality: str
    view: str | None = None
    laterality: str | None = None
    synthetic: bool = False
    source: str | None = None

    def to_json(self, case_folder: Path) -> dict[str, Any]:
        """Serialise, storing ``path`` relative to the case folder when inside it."""
        try:
            rel = self.path.resolve().relative_to(case_folder.resolve()).as_posix()
        except ValueError:
            rel = str(self.path)
        return {
            "image_id": self.image_id,
            "path": rel,
            "modality": self.modality,
            "view": self.view,
            "laterality": self.laterality,
            "synthetic": self.synthetic,
            "source": self.source,
        }


@dataclass
class Annotation:
    """A reader's region on one image.

    Attributes:
        ann_id: Unique id.
        image_id: The :class:`CaseImage` it is drawn on.
        lesion_id: Links the same lesion across views/modalities ("L1").
        kind: "box" (points = two corners), "polygon" or "freehand" (points = vertices).
        points: [[x, y], ...] in image pixels, x = column, y = row.
        frame: MR slice index, or None for 2-D images.
        label: Optional free label (e.g. "mass", "calcification").
        author: Who drew it.
        created: ISO time.
    """

    image_id: str
    kind: str
    points: list[list[float]]
    lesion_id: str = "L1"
    frame: int | None = None
    label: str | None = None
    author: str | None = None
    created: str = field(default_factory=now_iso)
    ann_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def bbox(self) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) of the points."""
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def is_truth(self) -> bool:
        """Whether this is dataset/generator truth rather than a reader's own region.

        Dataset importers and the demo builder write the source as the author ("BUSI",
        "mini-MIAS", "synthetic") and say so in the label ("dataset mask", "generator truth").
        Truth is drawn apart, hidden in reading mode and never given to the AI as a lesion box.
        """
        author = (self.author or "").strip().lower()
        label = (self.label or "").lower()
        return author in DATASET_AUTHORS or "dataset" in label or "truth" in label

    def to_json(self) -> dict[str, Any]:
        """Serialise to a JSON-compatible dict."""
        return {
            "ann_id": self.ann_id,
            "image_id": self.image_id,
            "lesion_id": self.lesion_id,
            "kind": self.kind,
            "points": [[float(x), float(y)] for x, y in self.points],
            "frame": self.frame,
            "label": self.label,
            "author": self.author,
            "created": self.created,
        }


@dataclass
class Case:
    """One lesion of one patient with its images, truth and annotations."""

    case_id: str
    folder: Path
    images: list[CaseImage] = field(default_factory=list)
    truth: Truth | None = None
    annotations: list[Annotation] = field(default_factory=list)
    description: str = ""
    patient_ref: str | None = None
    synthetic: bool = False
    paired_note: str | None = None
    exam_date: str | None = None  # ISO date of the exam (priors: same patient_ref, earlier date)

    @property
    def modalities(self) -> list[str]:
        """Modalities present, in MG, US, MR order."""
        present = {im.modality for im in self.images}
        return [m for m in MODALITIES if m in present]

    def images_of(self, modality: str) -> list[CaseImage]:
        """Images of one modality, in stored order."""
        return [im for im in self.images if im.modality == modality]

    def image(self, image_id: str) -> CaseImage:
        """The image with this id (KeyError if absent)."""
        for im in self.images:
            if im.image_id == image_id:
                return im
        raise KeyError(image_id)

    def annotations_for(self, image_id: str) -> list[Annotation]:
        """Annotations drawn on one image."""
        return [a for a in self.annotations if a.image_id == image_id]

    def reader_annotations_for(self, image_id: str) -> list[Annotation]:
        """The reader's own annotations on one image (dataset truth left out)."""
        return [a for a in self.annotations if a.image_id == image_id and not a.is_truth]

    def reader_box(self, image_id: str) -> tuple[float, float, float, float] | None:
        """Bounding box of the reader's first own annotation on ``image_id`` (never dataset
        truth): the lesion box the AI scores (None: the model's finder proposes one)."""
        own = self.reader_annotations_for(image_id)
        return own[0].bbox() if own else None

    def lesion_box(self, image_id: str, lesion_id: str | None = None) -> tuple[float, ...] | None:
        """Bounding box of the first annotation on ``image_id`` (optionally of one lesion)."""
        for a in self.annotations_for(image_id):
            if lesion_id is None or a.lesion_id == lesion_id:
                return a.bbox()
        return None

    def to_json(self) -> dict[str, Any]:
        """The case definition (annotations are stored separately)."""
        return {
            "case_id": self.case_id,
            "description": self.description,
            "patient_ref": self.patient_ref,
            "synthetic": self.synthetic,
            "paired_note": self.paired_note,
            **({"exam_date": self.exam_date} if self.exam_date else {}),
            "truth": self.truth.to_json() if self.truth else None,
            "images": [im.to_json(self.folder) for im in self.images],
        }


@dataclass
class Study:
    """A folder of cases. ``problems`` lists cases that could not be loaded (the rest still load)."""

    folder: Path
    name: str
    cases: list[Case] = field(default_factory=list)
    description: str = ""
    synthetic_note: str | None = None
    citations: list[str] = field(default_factory=list)
    problems: list[CaseFormatError] = field(default_factory=list)

    def case(self, case_id: str) -> Case:
        """The case with this id (KeyError if absent)."""
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise KeyError(case_id)

    def to_json(self) -> dict[str, Any]:
        """The study header written to study.json."""
        return {
            "format": STUDY_FORMAT,
            "version": STUDY_VERSION,
            "name": self.name,
            "description": self.description,
            "synthetic_note": self.synthetic_note,
            "citations": self.citations,
        }


def same_patient(case: Case) -> bool:
    """Whether the case's images come from one patient (fusion is meaningful only then).

    A case is one patient unless it says otherwise: the demo's MG+US pairings carry a
    ``paired_note`` saying their images come from different patients.
    """
    note = (case.paired_note or "").lower()
    return not ("different patient" in note or "not the same patient" in note)


def find_prior(cases: Iterable[Case], case: Case) -> Case | None:
    """The latest exam of the same patient before ``case`` (None when there is none).

    A prior is another case with the same ``patient_ref`` and an earlier ``exam_date`` (the
    DICOM importer fills both from PatientID and StudyDate). Nothing is guessed: a case without
    a patient reference or a date has no prior.
    """
    if not case.patient_ref or not case.exam_date:
        return None
    earlier = [c for c in cases if c.case_id != case.case_id and c.patient_ref == case.patient_ref
               and c.exam_date and c.exam_date < case.exam_date]
    return max(earlier, key=lambda c: c.exam_date or "") if earlier else None


def months_between(earlier: str, later: str) -> int | None:
    """Whole months from one ISO date to a later one (None when either is not a date)."""
    try:
        a, b = datetime.fromisoformat(earlier[:10]), datetime.fromisoformat(later[:10])
    except ValueError:
        return None
    return (b.year - a.year) * 12 + (b.month - a.month) - (1 if b.day < a.day else 0)
