"""Qt-free jobs behind the GUI study menu: FROC analysis of a folder, study sizing from a pilot.

A *pilot* is either a ratings file (ROC: long CSV or iMRMC) or a folder holding the three FROC
files ``MARKS.csv``, ``LESIONS.csv``, ``CASES.csv`` (as ``breast-reader study export`` writes
them under ``froc/``). Both run in GUI workers (``progress``/``cancel`` keyword arguments).
"""

from __future__ import annotations

import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

from engine.errors import CaseFormatError
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.stats.mrmc import MrmcResult

__all__ = ["froc_folder_job", "load_pilot", "plan_power", "planned_design"]


def _froc_files(folder: Path) -> tuple[Path, Path, Path] | None:
    for base in (folder, folder / "froc"):
        files = (base / "MARKS.csv", base / "LESIONS.csv", base / "CASES.csv")
        if all(f.is_file() for f in files):
            return files
    return None


def load_pilot(path: str | PathLike[str], fom: str = "wafroc") -> tuple[MrmcResult, int]:
    """OR analysis (RRRC, jackknife) of a pilot and its number of cases.

    Raises:
        CaseFormatError: Not a ratings file nor a folder with the FROC files.
    """
    from engine.stats.froc import froc_analysis
    from engine.stats.mrmc import mrmc_analysis
    from engine.study.froc_files import load_froc
    from engine.study.ratings import load_ratings

    p = Path(path)
    if p.is_dir():
        files = _froc_files(p)
        if files is None:
            raise CaseFormatError(p, "no MARKS.csv, LESIONS.csv and CASES.csv here (nor in froc/)")
        data = load_froc(*files)
        try:
            return froc_analysis(data, fom, cov="jackknife"), len(data.cases)  # type: ignore[arg-type]
        except ValueError as exc:
            raise CaseFormatError(p, str(exc)) from None
    table = load_ratings(p)
    try:
        return mrmc_analysis(table.truth, table.ratings, treatments=table.treatments, readers=table.readers,
                             cov="jackknife"), len(table.cases)
    except ValueError as exc:
        raise CaseFormatError(p, str(exc)) from None


def planned_design(definition: str | PathLike[str]) -> dict[str, Any]:
    """Readers and cases planned by a study definition (for the power panel)."""
    from engine.study.design import load_design

    d = load_design(definition)
    n_cases: int | None = len(d.case_ids) or None
    if n_cases is None:
        from engine.cases import load_study

        try:
            n_cases = sum(1 for c in load_study(d.cases_study).cases if c.truth is not None) or None
        except Exception:  # noqa: BLE001 - the panel still works with the cases typed in
            n_cases = None
    return {"name": d.name, "readers": len(d.readers), "cases": n_cases, "arms": [a.arm_id for a in d.arms],
            "design": d.design, "paradigm": d.paradigm}


def plan_power(
    pilot: str | PathLike[str],
    readers: int,
    cases: int | None = None,
    target: float | None = None,
    effect: float | None = None,
    design: str = "rrrc",
    fom: str = "wafroc",
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Power of J readers x K cases, and/or the K needed for ``target`` (Hillis et al. 2011).

    Returns:
        ``{"pilot": ..., "power": PowerResult dict | None, "sample_size": PowerResult dict | None}``.
    """
    from engine.stats.power import cases_for_power, or_power, pilot_components

    report(progress, 0, 2, "pilot analysis")
    res, k_pilot = load_pilot(pilot, fom)
    check(cancel)
    if len(res.treatments) < 2:
        raise CaseFormatError(pilot, "a pilot for sizing needs at least 2 treatments (arms)")
    observed = res.pairwise[0].estimate
    pc = pilot_components(res.components, k_pilot, observed)
    d = observed if effect is None else effect
    out: dict[str, Any] = {
        "pilot": {"file": str(pilot), "fom": res.fom, "cases": k_pilot, "readers": len(res.readers),
                  "observed_effect": observed, "var_TR": pc.var_tr, "var_error": pc.var_error, "cov1": pc.cov1,
                  "cov2": pc.cov2, "cov3": pc.cov3},
        "power": None, "sample_size": None,
        "method": "Hillis, Obuchowski & Berbaum 2011 (OR); checked against RJafroc SsPowerGivenJK",
    }
    report(progress, 1, 2, "power")
    try:
        if cases:
            out["power"] = or_power(pc, readers, cases, d, design).to_dict()  # type: ignore[arg-type]
    except ValueError as exc:
        raise CaseFormatError(pilot, str(exc)) from None
    if target:
        try:
            out["sample_size"] = cases_for_power(pc, readers, d, target, design).to_dict()  # type: ignore[arg-type]
        except ValueError as exc:
            out["sample_size_error"] = str(exc)
    report(progress, 2, 2, "done")
    return out


def froc_folder_job(
    folder: str | PathLike[str],
    fom: str = "wafroc",
    design: str = "rrrc",
    figure: str | PathLike[str] | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """ORH analysis of the FROC files in ``folder`` plus the FROC/AFROC/wAFROC figure.

    Returns:
        ``{"result": MrmcResult dict, "text": summary, "figure": PNG path}``.
    """
    from engine.stats.froc import froc_analysis
    from engine.stats.mrmc import format_text
    from engine.study.froc_files import load_froc
    from engine.study.froc_report import froc_figure

    p = Path(folder)
    files = _froc_files(p)
    if files is None:
        raise CaseFormatError(p, "no MARKS.csv, LESIONS.csv and CASES.csv here (nor in froc/)")
    report(progress, 0, 3, "reading marks")
    data = load_froc(*files)
    check(cancel)
    report(progress, 1, 3, "analysis")
    try:
        res = froc_analysis(data, fom, design=design)  # type: ignore[arg-type]
    except ValueError as exc:
        raise CaseFormatError(files[0], str(exc)) from None
    check(cancel)
    report(progress, 2, 3, "figure")
    fig_path = Path(figure) if figure else Path(tempfile.mkdtemp(prefix="froc-")) / "froc.png"
    froc_figure(data).savefig(fig_path, dpi=110)
    report(progress, 3, 3, "done")
    return {"result": res.to_dict(), "text": format_text(res), "figure": str(fig_path),
            "cases": len(data.cases), "lesions": data.n_lesions}
