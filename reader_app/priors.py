"""Qt-free prior-exam lookup: the same patient's earlier exam in the open study.

A prior is another case with the same ``patient_ref`` and an earlier ``exam_date`` (the DICOM
importer fills both from PatientID and StudyDate). Nothing is guessed: a case without a
patient reference or a date has no prior.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.cases import Case


def find_prior(cases: Iterable[Case], case: Case) -> Case | None:
    """The latest exam of the same patient before ``case`` (None when there is none)."""
    if not case.patient_ref or not case.exam_date:
        return None
    earlier = [c for c in cases if c.case_id != case.case_id and c.patient_ref == case.patient_ref
               and c.exam_date and c.exam_date < case.exam_date]
    return max(earlier, key=lambda c: c.exam_date or "") if earlier else None


def view_key(case: Case, image_id: str, laterality: str | None) -> tuple[str, str, str]:
    """(modality, laterality, view) used to pair a current image with the prior's same view."""
    ci = case.image(image_id)
    return (ci.modality, (laterality or ci.laterality or "").upper(), (ci.view or "").upper())


def matching_image(prior: Case, key: tuple[str, str, str], lateralities: dict[str, str | None]) -> str | None:
    """The prior's image id with the same modality, laterality and view as ``key`` (or None).

    ``lateralities`` maps the prior's image ids to the laterality its hanging resolved
    (DICOM first); images without one match on the case file's laterality.
    """
    for ci in prior.images:
        if view_key(prior, ci.image_id, lateralities.get(ci.image_id)) == key:
            return ci.image_id
    return None
