"""Qt-free prior-exam lookup: the same patient's earlier exam in the open study.

The lookup itself (:func:`engine.cases.model.find_prior`: same ``patient_ref``, earlier
``exam_date``) is the engine's, shared with the blinded reading session; this module pairs a
current view with the prior's same view.
"""

from __future__ import annotations

from engine.cases import Case
from engine.cases.model import find_prior

__all__ = ["find_prior", "matching_image", "view_key"]


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
