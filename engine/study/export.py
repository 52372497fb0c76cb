"""Export a reader study: ratings, iMRMC input, AUC tables, MRMC results, ROC figures, report.

Statistics: empirical AUCs with DeLong CIs (DeLong et al. 1988), Obuchowski-Rockette MRMC
with Hillis df between arms (:mod:`engine.stats.mrmc`), standalone model vs the reader panel
per arm (1T-RRRC), paired DeLong tests model vs each reader, sensitivity/specificity at the
design's thresholds with Wilson CIs. Figures follow Habib et al.: each reader's empirical
ROC curve and the model's, AUCs in the legend.

Case ids are replaced by pseudonyms (C001, ...) and no file paths are written unless
``include_identifiers=True``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BreastReaderError
from engine.io.atomic import atomic_open, atomic_path, atomic_write_text
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.stats.binary import sens_spec_at
from engine.stats.delong import auc_ci, paired_delong_test
from engine.stats.mrmc import MrmcResult, ai_vs_readers, mrmc_analysis
from engine.stats.roc import roc_points
from engine.study.ratings import RatingsTable, write_imrmc
from engine.study.session import StudyRun
from engine.study.store import IntegrityReport

__all__ = ["ExportError", "ExportResult", "export_study", "export_study_job", "study_table"]


class ExportError(BreastReaderError):
    """The export folder could not be written (read-only, disk full), or the ratings cannot be
    analysed (too few cases of a class); names the folder and why."""


@dataclass
class ExportResult:
    """What :func:`export_study` wrote."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    complete: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    integrity: IntegrityReport | None = None


def study_table(run: StudyRun) -> tuple[RatingsTable, dict[tuple[str, str, str], Any], bool]:
    """Ratings as a (arms x readers x cases) table; NaN where a rating is missing.

    Returns:
        ``(table, extras, complete)`` with extras[(reader, arm, case)] = the stored Rating.
    """
    d = run.design
    arms = [a.arm_id for a in d.arms]
    readers = [r.reader_id for r in d.readers]
    cases = sorted(run.cases)
    truth_map = run.store.truth()
    arr = np.full((len(arms), len(readers), len(cases)), np.nan)
    ai, ri, ci = ({v: i for i, v in enumerate(x)} for x in (arms, readers, cases))
    extras: dict[tuple[str, str, str], Any] = {}
    for r in run.store.ratings():
        if r.case_id in ci:
            arr[ai[r.arm_id], ri[r.reader_id], ci[r.case_id]] = r.score
            extras[(r.reader_id, r.arm_id, r.case_id)] = r
    truth = np.array([int(truth_map[c] or 0) for c in cases], dtype=np.int64)
    return RatingsTable(arms, readers, cases, truth, arr), extras, bool(not np.isnan(arr).any())


def _pseudonyms(cases: list[str], include_identifiers: bool) -> dict[str, str]:
    if include_identifiers:
        return {c: c for c in cases}
    return {c: f"C{i + 1:03d}" for i, c in enumerate(cases)}


def export_study_job(
    definition: str | PathLike[str],
    out_dir: str | PathLike[str],
    include_identifiers: bool = False,
    cov: str = "delong",
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Open a study definition in this thread and export it (for GUI workers and scripts).

    SQLite connections belong to the thread that opened them, so the job opens its own.
    """
    from engine.study.session import open_study_run

    run = open_study_run(Path(definition))
    try:
        return export_study(run, out_dir, include_identifiers, cov, progress=progress, cancel=cancel)
    finally:
        run.close()


def export_study(
    run: StudyRun,
    out_dir: str | PathLike[str],
    include_identifiers: bool = False,
    cov: str = "delong",
    alpha: float = 0.05,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Write every export of a reader study into ``out_dir``.

    Args:
        run: The open study.
        out_dir: Output folder (created).
        include_identifiers: Keep real case ids (and write the id mapping); default pseudonyms.
        cov: MRMC covariance method ("delong" or "jackknife").
        alpha: 1 - confidence level.
        progress: Progress callback (done, total, message).
        cancel: Cancellation token, checked between steps.

    Returns:
        :class:`ExportResult` (MRMC files only when every reader rated every case in every arm).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _export_study(run, out, include_identifiers, cov, alpha, progress, cancel)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write the export ({exc.strerror or exc}); "
                          "files already there are complete, nothing was left half-written") from None
    except ValueError as exc:  # the statistics refuse the data (e.g. too few cases of one class)
        raise ExportError(f"{out}: the ratings of {run.design.name!r} cannot be analysed ({exc}); "
                          "the files already written there are complete") from None


def _export_study(
    run: StudyRun, out: Path, include_identifiers: bool, cov: str, alpha: float,
    progress: ProgressCallback | None, cancel: CancelToken | None,
) -> ExportResult:
    res = ExportResult(out)
    integrity = run.store.verify()
    res.integrity = integrity
    d = run.design
    report(progress, 0, 6, "ratings")
    table, extras, complete = study_table(run)
    if d.split_plot:  # complete when every reader rated every case of their own block in every arm
        ci = {c: k for k, c in enumerate(table.cases)}
        complete = all(not np.isnan(table.ratings[:, j, [ci[c] for c in run.cases_for(r.reader_id)]]).any()
                       for j, r in enumerate(d.readers))
    res.complete = complete
    names = _pseudonyms(table.cases, include_identifiers)

    # 1. long ratings CSV (with BI-RADS and reading time)
    p = out / "ratings.csv"
    with atomic_open(p, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reader", "treatment", "case", "truth", "rating", "birads", "reading_s"])
        for (rd, arm, cid), r in sorted(extras.items(), key=lambda kv: kv[1].rating_id):
            k = table.cases.index(cid)
            w.writerow([rd, arm, names[cid], int(table.truth[k]), _fmt(r.score), r.birads or "",
                        "" if r.reading_s is None else f"{r.reading_s:.1f}"])
    res.files["ratings_csv"] = p
    # amendments (audit trail) without identifiers
    p = out / "amendments.csv"
    rid_to = {r.rating_id: r for r in run.store.ratings()}
    with atomic_open(p, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reader", "treatment", "case", "who", "at_utc", "old", "new", "reason"])
        for a in run.store.audit():
            r = rid_to[a.rating_id]
            w.writerow([r.reader_id, r.arm_id, names.get(r.case_id, "?"), a.who,
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.at)), _fmt(a.old_score),
                        _fmt(a.new_score), a.reason])
    res.files["amendments_csv"] = p
    if include_identifiers:
        p = out / "case_ids.csv"
        with atomic_open(p, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["case", "case_id", "folder"])
            for c in table.cases:
                w.writerow([names[c], c, str(run.cases[c].folder)])
        res.files["case_ids_csv"] = p

    results: dict[str, Any] = {
        "study": d.name,
        "note": d.note,
        "design": {
            "readers": [r.reader_id for r in d.readers],
            "arms": [{"id": a.arm_id, "show_ai": a.show_ai} for a in d.arms],
            "cases": len(table.cases),
            "malignant": int(table.truth.sum()),
            "benign": int((table.truth == 0).sum()),
            "seed": d.seed,
            "washout_days": d.washout_days,
            "arm_order": d.arm_order,
            "rating_scale": [d.rating_min, d.rating_max],
            "birads": d.birads,
        },
        "complete": complete,
        "ratings_stored": int((~np.isnan(table.ratings)).sum()),
        "ratings_expected": int(table.ratings.size),
        "identifiers_included": include_identifiers,
        "integrity": {"ok": integrity.ok, "problems": integrity.problems, "ledger_head": integrity.head,
                      "ledger_entries": integrity.entries},
    }
    if not complete:
        results["message"] = "the study is incomplete: MRMC analysis needs every reader to rate every case in every arm"
        _write_json(out / "mrmc_results.json", results)
        res.files["mrmc_results_json"] = out / "mrmc_results.json"
        res.results = results
        return res

    if d.split_plot:
        return _export_split_plot(run, out, table, results, res, cov, alpha)
    anon = RatingsTable(table.treatments, table.readers, [names[c] for c in table.cases], table.truth,
                        table.ratings)
    with atomic_path(out / "ratings.imrmc") as tmp:
        write_imrmc(anon, tmp, title=d.name)
    res.files["imrmc"] = out / "ratings.imrmc"

    check(cancel)
    report(progress, 1, 6, "AUCs")
    # 2. per-reader AUCs with DeLong CIs, and the model
    ai_scores = run.ai_scores
    model = None
    if ai_scores and all(c in ai_scores for c in table.cases):
        model = np.array([ai_scores[c] for c in table.cases], dtype=float)
    rows: list[dict[str, Any]] = []
    for i, arm in enumerate(table.treatments):
        for j, rd in enumerate(table.readers):
            auc, lo, hi = auc_ci(table.truth, table.ratings[i, j], alpha)
            rows.append({"reader": rd, "treatment": arm, "auc": auc, "ci_lo": lo, "ci_hi": hi})
    if model is not None:
        auc, lo, hi = auc_ci(table.truth, model, alpha)
        rows.append({"reader": "model", "treatment": "standalone", "auc": auc, "ci_lo": lo, "ci_hi": hi})
    p = out / "reader_auc.csv"
    with atomic_open(p, newline="") as fh:
        dw = csv.DictWriter(fh, fieldnames=["reader", "treatment", "auc", "ci_lo", "ci_hi"])
        dw.writeheader()
        for r in rows:
            dw.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    res.files["reader_auc_csv"] = p
    results["reader_auc"] = rows
    results["ci_method"] = "DeLong variance, normal (Wald) interval on the AUC scale, clipped to [0, 1]"

    check(cancel)
    report(progress, 2, 6, "MRMC analysis")
    # 3. MRMC between arms
    mrmc: MrmcResult | None = None
    if len(table.readers) >= 2 and len(table.treatments) >= 2:
        mrmc = mrmc_analysis(table.truth, table.ratings, treatments=table.treatments, readers=table.readers,
                             cov=cov, design="rrrc", alpha=alpha)  # type: ignore[arg-type]
        results["mrmc"] = mrmc.to_dict()
    # paired DeLong between arms, per reader (same cases)
    if len(table.treatments) >= 2:
        per_reader: dict[str, Any] = {}
        for j, rd in enumerate(table.readers):
            comps = {}
            for ia in range(len(table.treatments)):
                for ib in range(ia + 1, len(table.treatments)):
                    diff, se, z, pval = paired_delong_test(table.truth, table.ratings[ia, j], table.ratings[ib, j])
                    comps[f"{table.treatments[ia]} - {table.treatments[ib]}"] = {
                        "diff": diff, "se": se, "z": z, "p": pval}
            per_reader[rd] = comps
        results["arms_paired_delong_per_reader"] = per_reader
    # 4. model vs readers
    if model is not None:
        results["model_auc"] = float(rows[-1]["auc"])
        vs: dict[str, Any] = {}
        for i, arm in enumerate(table.treatments):
            entry: dict[str, Any] = {}
            if len(table.readers) >= 2:
                entry["panel_1T_RRRC"] = ai_vs_readers(table.truth, table.ratings[i], model, readers=table.readers,
                                                       cov="jackknife", alpha=alpha).to_dict()
            entry["paired_delong"] = {}
            for j, rd in enumerate(table.readers):
                diff, se, z, pval = paired_delong_test(table.truth, table.ratings[i, j], model)
                entry["paired_delong"][rd] = {"reader_minus_model": diff, "se": se, "z": z, "p": pval}
            vs[arm] = entry
        results["model_vs_readers"] = vs
    # 5. sensitivity / specificity at thresholds (Wilson)
    ss_rows = []
    for i, arm in enumerate(table.treatments):
        for j, rd in enumerate(table.readers):
            for op in sens_spec_at(table.truth, table.ratings[i, j], d.thresholds, alpha):
                ss_rows.append(_op_row(rd, arm, op))
    if model is not None:
        for op in sens_spec_at(table.truth, model, [d.ai_threshold], alpha):
            ss_rows.append(_op_row("model", "standalone", op))
    _write_sens_spec(out, ss_rows, res)
    results["sens_spec"] = ss_rows
    results["sens_spec_ci"] = "Wilson score interval"
    # sensitivity / specificity at the design's first threshold as MRMC endpoints (OR, jackknife)
    if len(table.readers) >= 2 and len(table.treatments) >= 2 and d.thresholds:
        from engine.stats.binary import binary_mrmc

        sm: dict[str, Any] = {}
        for endpoint in ("sensitivity", "specificity"):
            try:
                sm[f"{endpoint} at rating >= {d.thresholds[0]:g}"] = binary_mrmc(
                    table.truth, table.ratings, d.thresholds[0], endpoint, treatments=table.treatments,
                    readers=table.readers, alpha=alpha).to_dict()
            except ValueError as exc:
                sm[f"{endpoint} at rating >= {d.thresholds[0]:g}"] = {"error": str(exc)}
        results["sens_spec_mrmc"] = sm
    # 5b. FROC: the reading session's lesion marks, matched to the truth outlines (engine.study.froc_export)
    if d.paradigm == "froc" or run.store.marks():
        from engine.study.froc_export import export_froc

        try:
            results["froc"], froc_files = export_froc(run, out, names, alpha)
            res.files.update(froc_files)
        except ValueError as exc:  # e.g. fewer than 2 normal/abnormal cases with outlines
            results["froc"] = {"error": f"no FROC analysis: {exc}"}

    _write_json(out / "mrmc_results.json", results)
    res.files["mrmc_results_json"] = out / "mrmc_results.json"
    if mrmc is not None:
        p = out / "mrmc_results.csv"
        _write_mrmc_csv(mrmc, p)
        res.files["mrmc_results_csv"] = p

    check(cancel)
    report(progress, 4, 6, "figures and report")
    # 6. figures and the one-page report
    from engine.study.report import render_report, roc_figure

    for ext in ("png", "svg", "pdf"):
        fig = roc_figure(table, model)
        with atomic_path(out / f"roc.{ext}") as tmp:
            fig.savefig(tmp, dpi=150, format=ext)
        res.files[f"roc_{ext}"] = out / f"roc.{ext}"
    with atomic_path(out / "report.pdf") as tmp:
        render_report(results, table, model, tmp)
    res.files["report_pdf"] = out / "report.pdf"
    res.results = results
    report(progress, 6, 6, "done")
    return res


def _export_split_plot(run: StudyRun, out: Path, table: RatingsTable, results: dict[str, Any], res: ExportResult,
                       cov: str, alpha: float) -> ExportResult:
    """Split-plot export: per-reader AUCs on their block, split-plot OR analysis, sensitivity/specificity.

    (No iMRMC file, ROC figure or PDF report: those assume a fully crossed study.)
    """
    from engine.stats.splitplot import split_plot_mrmc

    d = run.design
    rows: list[dict[str, Any]] = []
    ss_rows: list[dict[str, Any]] = []
    for i, arm in enumerate(table.treatments):
        for j, rd in enumerate(table.readers):
            sel = ~np.isnan(table.ratings[i, j])
            auc, lo, hi = auc_ci(table.truth[sel], table.ratings[i, j, sel], alpha)
            rows.append({"reader": rd, "treatment": arm, "auc": auc, "ci_lo": lo, "ci_hi": hi,
                         "block": d.groups()[j], "cases": int(sel.sum())})
            for op in sens_spec_at(table.truth[sel], table.ratings[i, j, sel], d.thresholds, alpha):
                ss_rows.append(_op_row(rd, arm, op))
    p = out / "reader_auc.csv"
    with atomic_open(p, newline="") as fh:
        dw = csv.DictWriter(fh, fieldnames=list(rows[0]))
        dw.writeheader()
        for r in rows:
            dw.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    res.files["reader_auc_csv"] = p
    _write_sens_spec(out, ss_rows, res)
    results["reader_auc"] = rows
    results["sens_spec"] = ss_rows
    results["design"]["design"] = "split-plot"
    results["design"]["blocks"] = {g: sum(1 for _ in run.cases_for(r.reader_id))
                                   for g, r in zip(d.groups(), d.readers, strict=True)}
    if len(table.treatments) >= 2:
        m = split_plot_mrmc(table.truth, table.ratings, d.groups(), treatments=table.treatments,
                            readers=table.readers, cov="jackknife" if cov == "jackknife" else "delong", alpha=alpha)
        results["mrmc"] = m.to_dict()
        results["mrmc_method"] = "split-plot OR analysis (Obuchowski et al. 2012; Hillis 2014; RJafroc SpC)"
        _write_mrmc_csv(m, out / "mrmc_results.csv")
        res.files["mrmc_results_csv"] = out / "mrmc_results.csv"
    results["message"] = "split-plot study: no iMRMC file, ROC figure or PDF report (they assume a crossed study)"
    _write_json(out / "mrmc_results.json", results)
    res.files["mrmc_results_json"] = out / "mrmc_results.json"
    res.results = results
    return res


def _write_sens_spec(out: Path, rows: list[dict[str, Any]], res: ExportResult) -> None:
    """``sens_spec.csv``: one row per reader x arm x threshold (see :func:`_op_row`)."""
    p = out / "sens_spec.csv"
    with atomic_open(p, newline="") as fh:
        sw = csv.DictWriter(fh, fieldnames=list(rows[0]))
        sw.writeheader()
        sw.writerows(rows)
    res.files["sens_spec_csv"] = p


def _op_row(reader: str, arm: str, op: Any) -> dict[str, Any]:
    return {
        "reader": reader, "treatment": arm, "threshold": op.threshold, "tp": op.tp, "fn": op.fn, "tn": op.tn,
        "fp": op.fp, "sensitivity": round(op.sensitivity, 4), "sens_lo": round(op.sensitivity_ci[0], 4),
        "sens_hi": round(op.sensitivity_ci[1], 4), "specificity": round(op.specificity, 4),
        "spec_lo": round(op.specificity_ci[0], 4), "spec_hi": round(op.specificity_ci[1], 4),
    }


def _write_mrmc_csv(m: MrmcResult, path: Path) -> None:
    with atomic_open(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "name", "estimate", "se", "df", "ci_lo", "ci_hi", "statistic", "p"])
        for name, t in m.treatment_results.items():
            w.writerow(["treatment", name, f"{t.auc:.6f}", f"{t.se:.6f}", f"{t.df:.4f}", f"{t.ci[0]:.6f}",
                        f"{t.ci[1]:.6f}", "", ""])
        for pw in m.pairwise:
            w.writerow(["pairwise", pw.comparison, f"{pw.estimate:.6f}", f"{pw.se:.6f}", f"{pw.df:.4f}",
                        f"{pw.ci[0]:.6f}", f"{pw.ci[1]:.6f}", f"{pw.t:.6f}", f"{pw.p:.6g}"])
        g = m.global_test
        if g:
            w.writerow(["global_F", f"df1={g['df1']:.0f}", "", "", f"{g['df2']:.4f}", "", "", f"{g['F']:.6f}",
                        f"{g['p']:.6g}"])
        for k, v in m.variance_components.items():
            w.writerow(["variance_component", k, f"{v:.8g}", "", "", "", "", "", ""])


def _write_json(path: Path, data: Any) -> None:
    def _clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): _clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [_clean(v) for v in x]
        if isinstance(x, float | np.floating):
            return float(x) if np.isfinite(x) else None
        if isinstance(x, np.integer):
            return int(x)
        return x

    atomic_write_text(path, json.dumps(_clean(data), indent=2, allow_nan=False))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def roc_points_for(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the empirical ROC curve."""
    r = roc_points(truth, scores)
    return r.fpr, r.tpr
