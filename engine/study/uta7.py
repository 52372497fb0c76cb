"""The UTA7 clinicians' BI-RADS reads (MIMBCD-UI dataset-uta7-rates, CC BY-SA 4.0): what can be said.

Calisto, Santiago, Nunes & Nascimento (2021), "Introduction of human-centric AI assistant to
aid radiologists for multimodal breast image classification", Int J Hum-Comput Stud
150:102607. 45 clinicians each gave a BI-RADS category for three cases (one low-, one
medium-, one high-severity), without ("Current") and with the AI assistant; the reference
BI-RADS and the assistant's proposal are given per cell. The folder layout is described in
``reader-study-uta7/README.md`` of the shared data (the column meanings are partly inferred).

What this supports: *descriptive* agreement with the reference and with the assistant, and
the change between the two conditions, with intervals that respect the clustering of the
three reads within a clinician (clinician-level bootstrap; Wilson intervals on the 135 cells
are shown too, but they treat cells as independent). What it does not support: any ROC/MRMC
accuracy claim - three cases per clinician, different patients for different clinicians
(not identified), no case-level truth beyond a reference category - so no AUC, no OR analysis.
BI-RADS 0 may be "incomplete" or a missing answer (undocumented); results are given with the
zeros counted as answers and, as a sensitivity analysis, with cells containing a 0 left out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import CaseFormatError
from engine.stats.binary import wilson_ci

__all__ = ["Uta7Reads", "describe_uta7", "load_uta7", "uta7_figure"]

FILES = {"real": "birads_real.csv", "assistant": "birads_assistant.csv", "current": "birads_current.csv",
         "assisted": "birads_physician.csv"}
SEVERITY = ("low", "medium", "high")


@dataclass(frozen=True)
class Uta7Reads:
    """BI-RADS per clinician (rows) and severity class (columns low, medium, high).

    Attributes:
        clinicians: "Clinician N" pseudonyms.
        groups: Experience group of each clinician (intern, junior, middle, senior).
        real, assistant, current, assisted: (45, 3) integer BI-RADS.
    """

    clinicians: list[str]
    groups: list[str]
    real: NDArray[np.int64]
    assistant: NDArray[np.int64]
    current: NDArray[np.int64]
    assisted: NDArray[np.int64]


def load_uta7(folder: str | PathLike[str]) -> Uta7Reads:
    """Read the four BI-RADS files of the UTA7 folder (rows joined by ``physician_number``)."""
    root = Path(folder)
    tables: dict[str, dict[str, tuple[str, str, list[int]]]] = {}
    for key, name in FILES.items():
        path = root / name
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise CaseFormatError(path, f"cannot read ({exc.strerror}); is this the reader-study-uta7 folder?") from None
        out: dict[str, tuple[str, str, list[int]]] = {}
        for n, row in enumerate(rows, start=2):
            try:
                vals = [int(row[s]) for s in SEVERITY]
                out[row["physician_number"].strip()] = (row["name"].strip(), row["group"].strip(), vals)
            except (KeyError, ValueError, AttributeError):
                raise CaseFormatError(path, "need columns name,group,physician_number,low,medium,high with integer "
                                      "BI-RADS", row=n) from None
        tables[key] = out
    ids = sorted(tables["real"], key=int)
    for key, tab in tables.items():
        if sorted(tab, key=int) != ids:
            raise CaseFormatError(root / FILES[key], "clinicians differ from birads_real.csv")
    arr = {k: np.array([tables[k][i][2] for i in ids], dtype=np.int64) for k in FILES}
    return Uta7Reads([tables["real"][i][0] for i in ids], [tables["real"][i][1] for i in ids], arr["real"],
                     arr["assistant"], arr["current"], arr["assisted"])


def _boot_ci(per_clin: NDArray[np.float64], rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    """Percentile CI of the mean over clinicians, resampling clinicians (Efron & Tibshirani 1993)."""
    idx = rng.integers(0, per_clin.shape[0], size=(n_boot, per_clin.shape[0]))
    means = np.nanmean(per_clin[idx], axis=1)
    lo, hi = np.nanpercentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _prop(hit: NDArray[np.bool_], keep: NDArray[np.bool_], rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    k, n = int((hit & keep).sum()), int(keep.sum())
    per = np.where(keep.sum(1) > 0, (hit & keep).sum(1) / np.maximum(keep.sum(1), 1), np.nan)
    return {"k": k, "n": n, "proportion": k / n if n else float("nan"), "wilson_ci_cells": list(wilson_ci(k, n)),
            "clinician_bootstrap_ci": list(_boot_ci(per, rng, n_boot))}


def describe_uta7(reads: Uta7Reads, n_boot: int = 4000, seed: int = 7) -> dict[str, Any]:
    """Descriptive agreement and change with the assistant (see the module docstring).

    Returns:
        JSON-ready dict: per condition agreement with the reference (exact, within one
        category, recall decision BI-RADS >= 4), agreement with the assistant, the change
        assisted - current with a clinician-bootstrap CI, cells moved towards/away from the
        reference, results per experience group, and the same without cells containing 0.
    """
    rng = np.random.default_rng(seed)
    r, a, cur, ast = reads.real, reads.assistant, reads.current, reads.assisted
    allc = np.ones_like(r, dtype=bool)
    nonzero = (cur > 0) & (ast > 0)

    def block(keep: NDArray[np.bool_]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, x in (("current", cur), ("assisted", ast)):
            out[name] = {
                "exact_agreement_with_reference": _prop(x == r, keep, rng, n_boot),
                "within_one_category": _prop(np.abs(x - r) <= 1, keep, rng, n_boot),
                "recall_decision_agreement (BI-RADS>=4)": _prop((x >= 4) == (r >= 4), keep, rng, n_boot),
                "agreement_with_assistant": _prop(x == a, keep, rng, n_boot),
                "mean_abs_difference": float(np.abs(x - r)[keep].mean()),
            }
        per = np.full(r.shape[0], np.nan)
        cnt = keep.sum(1)
        diff = ((ast == r) & keep).sum(1) - ((cur == r) & keep).sum(1)
        per[cnt > 0] = diff[cnt > 0] / cnt[cnt > 0]
        d_all = out["assisted"]["exact_agreement_with_reference"]["proportion"] - \
            out["current"]["exact_agreement_with_reference"]["proportion"]
        toward = (np.abs(ast - r) < np.abs(cur - r)) & keep
        away = (np.abs(ast - r) > np.abs(cur - r)) & keep
        b01 = int(((cur != r) & (ast == r) & keep).sum())
        b10 = int(((cur == r) & (ast != r) & keep).sum())
        out["change"] = {
            "exact_agreement_difference": d_all,
            "clinician_bootstrap_ci": list(_boot_ci(per, rng, n_boot)),
            "cells_changed": int(((ast != cur) & keep).sum()),
            "moved_towards_reference": int(toward.sum()),
            "moved_away_from_reference": int(away.sum()),
            "wrong_to_right": b01,
            "right_to_wrong": b10,
        }
        return out

    groups: dict[str, Any] = {}
    for g in dict.fromkeys(reads.groups):
        sel = np.array([x == g for x in reads.groups])
        keep = np.zeros_like(allc)
        keep[sel] = True
        groups[g] = {
            "clinicians": int(sel.sum()),
            "current": _prop(cur == r, keep, rng, n_boot),
            "assisted": _prop(ast == r, keep, rng, n_boot),
        }
    return {
        "source": "MIMBCD-UI dataset-uta7-rates (CC BY-SA 4.0); Calisto et al. 2021, IJHCS 150:102607",
        "clinicians": len(reads.clinicians),
        "cases_per_clinician": 3,
        "cells": int(r.size),
        "assistant_agreement_with_reference": _prop(a == r, allc, rng, n_boot),
        "zeros": {"current": int((cur == 0).sum()), "assisted": int((ast == 0).sum())},
        "all_cells": block(allc),
        "without_zero_cells": block(nonzero),
        "by_group": groups,
        "claims": "Descriptive only: 3 cases per clinician, unidentified and different patients, reference "
                  "BI-RADS as truth; no ROC/AUC or MRMC inference is possible from these data. Clinician-level "
                  "bootstrap CIs account for the 3 reads per clinician; Wilson CIs on cells do not. The assistant's "
                  "proposal equals the reference in most cells, so agreement 'with AI' largely measures adoption of "
                  "the proposal; which file holds which condition is inferred from the file names (see the data "
                  "README), and a 0 may be a missing answer.",
    }


def uta7_figure(desc: dict[str, Any]) -> Any:
    """Bar chart: exact agreement with the reference, current vs assisted, overall and per group (95 % CIs)."""
    from matplotlib.figure import Figure

    labels = ["all"] + list(desc["by_group"])
    cur = [desc["all_cells"]["current"]["exact_agreement_with_reference"]] + \
        [desc["by_group"][g]["current"] for g in labels[1:]]
    ast = [desc["all_cells"]["assisted"]["exact_agreement_with_reference"]] + \
        [desc["by_group"][g]["assisted"] for g in labels[1:]]
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    for off, vals, name, col in ((-0.2, cur, "without AI (Current)", "#999999"), (0.2, ast, "with AI assistant",
                                                                                    "#1f77b4")):
        p = np.array([v["proportion"] for v in vals])
        ci = np.array([v["clinician_bootstrap_ci"] for v in vals])
        ax.bar(x + off, p, 0.38, color=col, label=name,
               yerr=np.vstack([p - ci[:, 0], ci[:, 1] - p]), capsize=3)
    ax.set_xticks(x, [f"{lab}\n(n={desc['clinicians'] if lab == 'all' else desc['by_group'][lab]['clinicians']})"
                      for lab in labels])
    ax.set_ylim(0, 1)
    ax.set_ylabel("exact BI-RADS agreement with reference")
    ax.set_title("UTA7: 45 clinicians x 3 cases (descriptive; clinician-bootstrap 95% CI)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.25)
    return fig
