"""From a reading session's marks to the FROC files and analysis (``breast-reader study export``).

Truth lesions are the truth annotations of the *malignant* cases (``Case.annotations``,
grouped by ``lesion_id``; a lesion drawn on several views or slices is one lesion). Benign
and normal cases are FROC-normal: a mark there is a non-lesion localisation. Acceptance rule
(:class:`engine.stats.froc.AcceptanceRule`, default "outline"): a mark is on a lesion when its
centre lies inside that lesion's outline (polygon/freehand vertices, or the box) on the same
image (and slice, for stacks); each lesion counts once with its highest-rated mark, lower-rated
duplicates are dropped; every other mark is an NL. A mark without its own confidence takes
the case rating. Malignant cases without any lesion annotation cannot be FROC-abnormal and
are left out (listed in the result).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engine.cases import Case
from engine.io.atomic import atomic_path, atomic_write_text
from engine.stats.froc import AcceptanceRule, FrocData, Lesion, Mark, match_marks

__all__ = ["FrocBuild", "MarkLike", "froc_from_marks", "froc_results", "truth_lesions"]


class MarkLike(Protocol):
    """What the export needs of a stored mark (engine.study.store.StoredMark)."""

    reader_id: str
    arm_id: str
    case_id: str
    image_id: str
    kind: str
    points: list[list[float]]
    frame: int | None
    rating: float | None


@dataclass
class FrocBuild:
    """Result of :func:`froc_from_marks`.

    Attributes:
        data: The matched FROC data.
        excluded_cases: Malignant cases without lesion annotations (left out).
        dropped_duplicates: Marks dropped as lower-rated duplicates on a localised lesion.
        n_marks: Marks used.
        rule: The acceptance rule applied.
    """

    data: FrocData
    excluded_cases: list[str] = field(default_factory=list)
    dropped_duplicates: int = 0
    n_marks: int = 0
    rule: AcceptanceRule = field(default_factory=AcceptanceRule)


def _outline(kind: str, pts: list[list[float]]) -> tuple[tuple[float, float], ...]:
    if kind == "box" and len(pts) >= 2:
        (x0, y0), (x1, y1) = pts[0][:2], pts[1][:2]
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    return tuple((float(p[0]), float(p[1])) for p in pts)


def _box(pts: list[list[float]]) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for p in pts]
    ys = [float(p[1]) for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def truth_lesions(case: Case) -> dict[tuple[str, int | None], list[Lesion]]:
    """Lesion outlines per (image_id, frame) of a malignant case (empty for benign/normal)."""
    out: dict[tuple[str, int | None], list[Lesion]] = {}
    if not (case.truth and case.truth.malignant):
        return out
    for a in case.annotations:
        if len(a.points) < 1:
            continue
        xs = [p[0] for p in a.points]
        ys = [p[1] for p in a.points]
        outline = _outline(a.kind, a.points) if len(a.points) >= 2 else None
        out.setdefault((a.image_id, a.frame), []).append(
            Lesion(a.lesion_id, float(np.mean(xs)), float(np.mean(ys)), outline=outline, box=_box(a.points)))
    return out


def froc_from_marks(
    marks: Iterable[MarkLike],
    cases: dict[str, Case],
    readers: list[str],
    arms: list[str],
    case_ratings: dict[tuple[str, str, str], float] | None = None,
    rule: AcceptanceRule | None = None,
) -> FrocBuild:
    """Match every reader's marks to the truth lesions and build :class:`FrocData`.

    Args:
        marks: Stored marks.
        cases: case_id -> Case (with truth and truth annotations).
        readers: Reader ids (order kept).
        arms: Arm (treatment) ids.
        case_ratings: (reader, arm, case) -> case rating, for marks without a confidence.
        rule: Acceptance rule.

    Returns:
        :class:`FrocBuild`.
    """
    rule = rule or AcceptanceRule()
    lesions = {cid: truth_lesions(c) for cid, c in cases.items()}
    excluded = [cid for cid, c in cases.items() if c.truth and c.truth.malignant and not lesions[cid]]
    ids = [cid for cid in sorted(cases) if cid not in excluded]
    kidx = {c: k for k, c in enumerate(ids)}
    truth = np.array([bool(lesions[c]) for c in ids])
    les_keys: list[tuple[str, str]] = []
    for c in ids:
        names = sorted({les.lesion_id for lst in lesions[c].values() for les in lst})
        les_keys += [(c, n) for n in names]
    lidx = {key: q for q, key in enumerate(les_keys)}
    lesion_case = np.array([kidx[c] for c, _ in les_keys], dtype=np.int64)
    counts = np.bincount(lesion_case, minlength=len(ids))
    weights = 1.0 / counts[lesion_case] if lesion_case.size else np.zeros(0)
    ti = {a: i for i, a in enumerate(arms)}
    ri = {r: j for j, r in enumerate(readers)}
    grouped: dict[tuple[str, str, str], dict[tuple[str, int | None], list[Mark]]] = {}
    n_marks = 0
    for m in marks:
        if m.case_id not in kidx or m.arm_id not in ti or m.reader_id not in ri or not m.points:
            continue
        rating = m.rating
        if rating is None:
            rating = (case_ratings or {}).get((m.reader_id, m.arm_id, m.case_id))
            if rating is None:
                continue
        xs = [float(p[0]) for p in m.points]
        ys = [float(p[1]) for p in m.points]
        box = _box(m.points) if m.kind == "box" and len(m.points) >= 2 else None
        grouped.setdefault((m.reader_id, m.arm_id, m.case_id), {}).setdefault((m.image_id, m.frame), []).append(
            Mark(float(np.mean(xs)), float(np.mean(ys)), float(rating), box))
        n_marks += 1
    ll = np.full((len(arms), len(readers), len(les_keys)), -np.inf)
    nl: list[tuple[int, int, int, float]] = []
    dropped = 0
    for (rd, arm, cid), per_image in grouped.items():
        i, j, k = ti[arm], ri[rd], kidx[cid]
        for key, mk in per_image.items():
            cand = lesions[cid].get(key, []) or (lesions[cid].get((key[0], None), []) if key[1] is not None else [])
            res = match_marks(mk, cand, rule)
            dropped += res.dropped
            nl += [(i, j, k, v) for v in res.nl]
            for lid, v in res.ll.items():
                q = lidx[(cid, lid)]
                if np.isfinite(ll[i, j, q]):
                    dropped += 1  # the same lesion on another view: it counts once
                ll[i, j, q] = max(ll[i, j, q], v)
    nl_arr = np.asarray(nl, dtype=float).reshape(-1, 4)
    data = FrocData(
        treatments=list(arms), readers=list(readers), cases=ids, truth=truth, lesion_case=lesion_case,
        lesion_ids=[n for _, n in les_keys], weights=np.asarray(weights, dtype=float), ll=ll,
        nl_treatment=nl_arr[:, 0].astype(np.int64), nl_reader=nl_arr[:, 1].astype(np.int64),
        nl_case=nl_arr[:, 2].astype(np.int64), nl_rating=nl_arr[:, 3].copy(),
    )
    return FrocBuild(data, excluded, dropped, n_marks, rule)


def froc_results(build: FrocBuild, alpha: float = 0.05) -> dict[str, Any]:
    """wAFROC (primary), AFROC and inferred-ROC ORH analyses (RRRC, jackknife) of an exported study."""
    from engine.stats.froc import froc_analysis

    d = build.data
    out: dict[str, Any] = {
        "paradigm": "froc",
        "acceptance_rule": {"kind": build.rule.kind, "radius_px": build.rule.radius, "iou_min": build.rule.iou_min,
                            "duplicates": build.rule.duplicates},
        "cases": len(d.cases), "normal_cases": int((~d.truth).sum()), "abnormal_cases": int(d.truth.sum()),
        "lesions": d.n_lesions, "marks": build.n_marks, "dropped_duplicates": build.dropped_duplicates,
        "excluded_malignant_cases_without_outline": len(build.excluded_cases),
    }
    for fom in ("wafroc", "afroc", "roc"):
        try:
            if len(d.readers) >= 2:
                out[fom] = froc_analysis(d, fom, alpha=alpha).to_dict()
            else:
                out[fom] = froc_analysis(d, fom, design="frrc", alpha=alpha).to_dict()
        except ValueError as exc:
            out[fom] = {"error": str(exc)}
    return out


def export_froc(run: Any, out_dir: Any, names: dict[str, str], alpha: float = 0.05) -> tuple[dict[str, Any],
                                                                                              dict[str, Any]]:
    """Write ``froc/MARKS.csv, LESIONS.csv, CASES.csv``, ``froc/froc_results.json`` and ``froc/froc.png``.

    Args:
        run: The open :class:`engine.study.session.StudyRun`.
        out_dir: Export folder (``froc/`` is created in it).
        names: case_id -> pseudonym used in the files.
        alpha: 1 - confidence level.

    Returns:
        ``(summary, files)``: the JSON-ready results (or the reason there are none) and the paths written.
    """
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from engine.study.froc_files import write_froc
    from engine.study.froc_report import froc_figure

    d = run.design
    marks = run.store.marks()
    ratings = {(r.reader_id, r.arm_id, r.case_id): r.score for r in run.store.ratings()}
    build = froc_from_marks(marks, run.cases, [r.reader_id for r in d.readers], [a.arm_id for a in d.arms],
                            ratings, d.acceptance_rule())
    folder = Path(out_dir) / "froc"
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix=".froc.", dir=folder))
    try:
        for key, p in write_froc(build.data, tmp, names).items():
            os.replace(p, folder / p.name)
            files[f"froc_{key}_csv"] = folder / p.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = froc_results(build, alpha)
    summary["excluded_cases"] = [names.get(c, c) for c in build.excluded_cases]
    summary["files"] = "froc/MARKS.csv, froc/LESIONS.csv, froc/CASES.csv (already matched; analyse with "\
        "breast-engine mrmc froc/MARKS.csv --paradigm froc --lesions froc/LESIONS.csv --cases froc/CASES.csv)"
    atomic_write_text(folder / "froc_results.json", json.dumps(summary, indent=2, default=_json_default))
    files["froc_results_json"] = folder / "froc_results.json"
    fig = froc_figure(build.data, title=f"{d.name}: {build.n_marks} marks, {build.data.n_lesions} lesions")
    with atomic_path(folder / "froc.png") as tmp_png:
        fig.savefig(tmp_png, dpi=130, format="png")
    files["froc_png"] = folder / "froc.png"
    return summary, files


def _json_default(x: Any) -> Any:
    if isinstance(x, np.floating | np.integer):
        return x.item()
    return str(x)
