"""The standalone AI score of each reader-study case, from the engine's case scorer.

A reader study's ``ai_scores.csv`` (``case_id,score``) is what the aided arm shows and what
"readers vs model" compares against. Written by :func:`study_ai_scores` it is, case for case, the
score the workstation's AI panel shows for the same stored case (same images, same reader-drawn
lesion boxes, same installed models, same :class:`engine.inference.case.CaseScorer`), so a session
and the workstation never disagree about the AI (issue 17). Dataset truth boxes are never a lesion
box (:func:`engine.inference.case.case_input`): a truth box would hand the model the answer.

One number per case (:func:`case_ai_score`): the fused MG+US probability when the case's images
come from one patient, else the single modality's probability; a case that mixes modalities of
different patients, or whose only score would come from a synthetic-trained model on a real image,
gets no score (it is listed with the reason instead, never guessed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cases.model import Case, same_patient
from engine.errors import BreastReaderError
from engine.io.atomic import atomic_open

__all__ = ["StudyAIScores", "case_ai_score", "study_ai_scores", "write_ai_scores"]


@dataclass
class StudyAIScores:
    """Scores per case id, and why the other cases have none."""

    scores: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # modality -> model name used


def case_ai_score(res: Any, case: Case) -> tuple[float | None, str]:
    """The case-level AI probability of a :class:`CaseScores` and where it comes from.

    Returns:
        ``(score, source)``; ``score`` is None when the case has no single AI score (``source``
        then says why).
    """
    real_mri = not case.synthetic and not all(ci.synthetic for ci in case.images_of("MR"))
    per_mod = {m: p for m, p in res.per_modality.items()
               if not (m == "MR" and real_mri and res.models.get(m) is not None and res.models[m].synthetic)}
    if res.fused is not None and {"MG", "US"} <= set(per_mod):
        if same_patient(case):
            return float(res.fused), f"fused MG+US ({res.fused_source})"
        return None, "MG and US images come from different patients: no fused score"
    if len(per_mod) == 1:
        (m, p), = per_mod.items()
        return float(p), f"{m} model"
    if not per_mod:
        why = "; ".join(res.errors) or "no image could be scored"
        return None, why
    return None, f"several modalities ({', '.join(sorted(per_mod))}) and no fusion for them"


def study_ai_scores(cases: Iterable[Case], *, scorer: Any = None, read: Any = None) -> StudyAIScores:
    """Score every case through the engine's case scorer (the workstation's path).

    Args:
        cases: The study's cases (``engine.cases.load_study(...).cases``), boxes as stored.
        scorer: A :class:`engine.inference.case.Scorer` (default: the installed defaults).
        read: ``CaseImage -> LoadedImage`` (default: :func:`engine.io.reader.read_image`).
    """
    from engine.inference.case import CaseScorer, case_input

    if read is None:
        from engine.io.reader import read_image

        def read(ci: Any) -> Any:
            return read_image(ci.path, modality_hint=ci.modality)

    scorer = scorer or CaseScorer()
    out = StudyAIScores()
    for case in cases:
        try:
            images = {ci.image_id: read(ci) for ci in case.images}
        except (BreastReaderError, OSError, ValueError) as exc:
            out.missing[str(case.case_id)] = f"image not readable: {exc}"
            continue
        res = scorer.score_case(case_input(case, images))
        for m, info in res.models.items():
            if info.name:
                out.models[m] = info.name
        score, why = case_ai_score(res, case)
        if score is None:
            out.missing[str(case.case_id)] = why
        else:
            out.scores[str(case.case_id)] = score
    return out


def write_ai_scores(path: str | Path, result: StudyAIScores) -> Path:
    """Write ``case_id,score`` (atomically; the reader-study ``ai_scores`` format)."""
    path = Path(path)
    with atomic_open(path, "w", newline="") as fh:
        fh.write("case_id,score\n")
        for cid in sorted(result.scores):
            fh.write(f"{cid},{result.scores[cid]:.6f}\n")
    return path
