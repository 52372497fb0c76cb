"""Habib-style ROC figure and the one-page PDF report of a reader study (matplotlib, no GUI).

Habib et al. plot each radiologist's empirical ROC curve with the model's, AUCs in the legend;
:func:`roc_figure` draws one such panel per arm.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from engine.stats.roc import empirical_auc, roc_points
from engine.study.ratings import RatingsTable

__all__ = ["render_report", "roc_figure"]

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def _draw_panels(fig: Figure, axes: list[Any], table: RatingsTable, model: np.ndarray | None) -> None:
    for i, (ax, arm) in enumerate(zip(axes, table.treatments, strict=False)):
        for j, rd in enumerate(table.readers):
            r = roc_points(table.truth, table.ratings[i, j])
            ax.plot(r.fpr, r.tpr, "-o", ms=2.5, lw=1.3, color=_COLOURS[j % len(_COLOURS)],
                    label=f"{rd} (AUC {r.auc:.3f})")
        if model is not None:
            r = roc_points(table.truth, model)
            ax.plot(r.fpr, r.tpr, "-", lw=2.2, color="black", label=f"Model (AUC {r.auc:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("Sensitivity")
        ax.set_title(f"{arm}: mean reader AUC {table_mean_auc(table, i):.3f}", fontsize=9)
        ax.legend(loc="lower right", fontsize=7, frameon=True)
        ax.grid(alpha=0.25)


def table_mean_auc(table: RatingsTable, i: int) -> float:
    """Mean reader AUC in arm ``i``."""
    return float(np.mean([empirical_auc(table.truth, table.ratings[i, j]) for j in range(len(table.readers))]))


def roc_figure(table: RatingsTable, model: np.ndarray | None = None) -> Figure:
    """One ROC panel per arm: each reader's empirical curve, the model's, AUCs in the legend.

    Args:
        table: Complete ratings table.
        model: (c,) model scores aligned with ``table.cases`` or None.

    Returns:
        A matplotlib Figure (save with ``fig.savefig``).
    """
    n = len(table.treatments)
    fig = Figure(figsize=(4.2 * n, 4.4), layout="constrained")
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    _draw_panels(fig, axes, table, model)
    return fig


def _fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def render_report(results: dict[str, Any], table: RatingsTable, model: np.ndarray | None, path: Path) -> None:
    """Write the one-page A4 PDF report (design, readers, AUCs with CIs, tests, figure).

    Args:
        results: The dict written to ``mrmc_results.json`` by the exporter.
        table: Complete ratings table.
        model: Model scores or None.
        path: Output PDF.
    """
    fig = Figure(figsize=(8.27, 11.69))
    d = results["design"]
    y = 0.965

    def line(text: str, size: float = 8.5, weight: str = "normal", dy: float = 0.017, x: float = 0.06,
             family: str = "sans-serif", color: str = "black") -> None:
        nonlocal y
        # wrap proportional text to the page width (~0.52 em per character on average)
        width = 10_000 if family == "monospace" else int((0.92 - x) * 8.27 * 72 / (size * 0.52))
        for k, part in enumerate(textwrap.wrap(text, width) or [""]):
            fig.text(x if k == 0 else x + 0.02, y, part, fontsize=size, weight=weight, family=family,
                     color=color, va="top")
            y -= dy

    line(f"Reader study report: {results['study']}", 12.5, "bold", 0.026)
    if results.get("note"):
        line(results["note"], 8.5, "bold", 0.018, color="#b00020")
    line(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by breast-reader. Research decision "
         "support, not a diagnosis. Case ids are pseudonymised.", 7.5, dy=0.022)
    line("Design", 10, "bold", 0.019)
    arms = ", ".join(f"{a['id']} ({'AI shown' if a['show_ai'] else 'no AI'})" for a in d["arms"])
    line(f"{len(d['readers'])} readers ({', '.join(d['readers'])}) x {len(d['arms'])} arms [{arms}] x "
         f"{d['cases']} cases ({d['malignant']} malignant, {d['benign']} benign); fully crossed.")
    line(f"Case order randomised per reader and arm (seed {d['seed']}); arm order {d['arm_order']}; washout "
         f"{d['washout_days']:g} days enforced; truth, other readers' answers and (unaided) AI hidden.")
    line(f"Rating scale {d['rating_scale'][0]}-{d['rating_scale'][1]}"
         f"{' + BI-RADS' if d['birads'] else ''}; {results['ratings_stored']} ratings stored.", dy=0.024)

    line("Reader AUCs (empirical, 95% DeLong CI)", 10, "bold", 0.019)
    hdr = f"{'reader':<10}" + "".join(f"  {a}".ljust(26) for a in table.treatments)
    line(hdr, 8, family="monospace", dy=0.015)
    by = {(r["reader"], r["treatment"]): r for r in results["reader_auc"]}
    for rd in table.readers:
        cells = "".join(
            f"  {by[(rd, a)]['auc']:.3f} [{by[(rd, a)]['ci_lo']:.3f}, {by[(rd, a)]['ci_hi']:.3f}]".ljust(26)
            for a in table.treatments
        )
        line(f"{rd:<10}{cells}", 8, family="monospace", dy=0.014)
    m = results.get("mrmc")
    if m:
        cells = "".join(
            f"  {m['treatments'][a]['auc']:.3f} [{m['treatments'][a]['ci'][0]:.3f}, {m['treatments'][a]['ci'][1]:.3f}]".ljust(26)
            for a in table.treatments
        )
        line(f"{'mean (OR)':<10}{cells}", 8, "bold", family="monospace", dy=0.014)
    if results.get("model_auc") is not None:
        mr = by[("model", "standalone")]
        line(f"{'model':<10}  {mr['auc']:.3f} [{mr['ci_lo']:.3f}, {mr['ci_hi']:.3f}]  (standalone, same cases)", 8,
             family="monospace", dy=0.014)
    y -= 0.008

    line("Tests", 10, "bold", 0.019)
    if m:
        g = m["global_test"]
        line(f"MRMC (Obuchowski-Rockette, random readers and cases, {m['cov']} covariance, Hillis df): "
             f"F = {g['F']:.3f}, df = ({g['df1']:.0f}, {g['df2']:.1f}), p = {_fmt_p(g['p'])}")
        for pw in m["pairwise"]:
            line(f"    AUC difference {pw['comparison']}: {pw['estimate']:+.3f} "
                 f"[95% CI {pw['ci'][0]:+.3f}, {pw['ci'][1]:+.3f}], p = {_fmt_p(pw['p'])}")
        vc = m["variance_components"]
        line("    variance components: " + ", ".join(f"{k} {v:.2e}" for k, v in vc.items()), 7.5)
    vs = results.get("model_vs_readers")
    if vs:
        for arm, e in vs.items():
            if "panel_1T_RRRC" in e:
                t = e["panel_1T_RRRC"]
                line(f"Model vs reader panel ({arm}, 1T-RRRC, jackknife): mean reader - model = "
                     f"{t['estimate']:+.3f} [95% CI {t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}], df {t['df'] or 0:.1f}, "
                     f"p = {_fmt_p(t['p'])}")
            pd = e["paired_delong"]
            line("    paired DeLong, reader - model: " + "; ".join(
                f"{rd} {v['reader_minus_model']:+.3f} (p {_fmt_p(v['p'])})" for rd, v in pd.items()), 7.5)
    ss = [r for r in results.get("sens_spec", [])]
    if ss:
        thr = ss[0]["threshold"]
        parts = []
        for arm in table.treatments:
            rows = [r for r in ss if r["treatment"] == arm]
            se = np.mean([r["sensitivity"] for r in rows])
            sp = np.mean([r["specificity"] for r in rows])
            parts.append(f"{arm} mean sens {se:.2f} / spec {sp:.2f}")
        mod = [r for r in ss if r["reader"] == "model"]
        if mod:
            r = mod[0]
            parts.append(f"model (>= {r['threshold']:g}) sens {r['sensitivity']:.2f} [{r['sens_lo']:.2f}, "
                         f"{r['sens_hi']:.2f}] / spec {r['specificity']:.2f} [{r['spec_lo']:.2f}, {r['spec_hi']:.2f}]")
        line(f"Rating >= {thr:g} called positive (Wilson CIs in sens_spec.csv): " + "; ".join(parts), 7.5)
    for key, sm in (results.get("sens_spec_mrmc") or {}).items():
        if "pairwise" in sm and sm["pairwise"]:
            pw = sm["pairwise"][0]
            line(f"    {key} as MRMC endpoint (OR, jackknife): {pw['comparison']} {pw['estimate']:+.3f} "
                 f"[95% CI {pw['ci'][0]:+.3f}, {pw['ci'][1]:+.3f}], p = {_fmt_p(pw['p'])}", 7.5)
    fr = results.get("froc")
    if fr and "wafroc" in fr and "treatments" in fr["wafroc"]:
        w = fr["wafroc"]
        means = ", ".join(f"{a} {v['fom']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" for a, v in w["treatments"].items())
        g = w["global_test"]
        line(f"Lesion localisation (FROC, {fr['marks']} marks, {fr['lesions']} lesions, rule "
             f"{fr['acceptance_rule']['kind']}): wAFROC {means}; F = {g['F']:.3f}, df = ({g['df1']:.0f}, "
             f"{(g['df2'] or float('inf')):.1f}), p = {_fmt_p(g['p'])} (jackknife ORH; froc/ holds the files "
             "and curves)", 7.5)

    # the figure in the lower part of the page
    top = y - 0.01
    n = len(table.treatments)
    width = 0.86 / n
    axes = []
    for i in range(n):
        side = min(width - 0.06, top - 0.06)
        axes.append(fig.add_axes((0.08 + i * width, top - side - 0.02, side, side)))
    _draw_panels(fig, axes, table, model)
    fig.text(0.06, 0.025, "Files: ratings.csv, ratings.imrmc, reader_auc.csv, mrmc_results.json/.csv, sens_spec.csv, "
             "amendments.csv, roc.png/.svg/.pdf", fontsize=6.5, color="grey")
    fig.savefig(path)
