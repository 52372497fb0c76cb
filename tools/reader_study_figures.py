"""Regenerate the figures and numbers of docs/reader-studies.md (FROC, power, clustered, split-plot, binary, UTA7).

Deterministic (fixed seeds). Every study in the FROC/simulation figures is SYNTHETIC.

    .venv/bin/python tools/reader_study_figures.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))

from mrmc_sim import clustered_units, roe_metz  # noqa: E402

from engine.stats.binary import binary_mrmc  # noqa: E402
from engine.stats.clustered import clustered_auc_covariance  # noqa: E402
from engine.stats.delong import delong_covariance  # noqa: E402
from engine.stats.froc import froc_analysis, simulate_froc  # noqa: E402
from engine.stats.mrmc import mrmc_analysis  # noqa: E402
from engine.stats.power import or_power, pilot_components  # noqa: E402
from engine.stats.splitplot import split_plot_mrmc  # noqa: E402
from engine.study.froc_report import froc_figure  # noqa: E402
from engine.study.ratings import load_ratings  # noqa: E402


def _split(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    truth, full = roe_metz(rng, treatments=2, readers=6, pos=60, neg=60)
    ratings = np.full_like(full, np.nan)
    order = rng.permutation(truth.size)
    groups = []
    for g in range(3):
        cases = order[g * 40:(g + 1) * 40]
        members = [2 * g, 2 * g + 1]
        ratings[np.ix_([0, 1], members, cases)] = full[np.ix_([0, 1], members, cases)]
        groups += [f"G{g}", f"G{g}"]
    return truth, ratings, groups


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--n", type=int, default=1000, help="simulated null studies per method")
    args = ap.parse_args()
    out = Path(args.out)
    numbers: dict[str, object] = {}

    # 1. FROC worked example
    d = simulate_froc(np.random.default_rng(3), treatments=2, readers=4, normal=40, abnormal=40, effect=0.5)
    froc_figure(d, "SYNTHETIC FROC study: 2 treatments x 4 readers x 80 cases").savefig(out / "reader-study-froc.png",
                                                                                     dpi=110)
    numbers["froc_example"] = froc_analysis(d, "wafroc").to_dict()

    # 2. power curves on the VanDyke pilot
    vd = load_ratings(ROOT / "tests" / "data" / "mrmc" / "vandyke.csv")
    res = mrmc_analysis(vd.truth, vd.ratings, cov="jackknife")
    pilot = pilot_components(res.components, 114, res.pairwise[0].estimate)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ks = np.arange(20, 401, 5)
    for j, col in ((4, "#9467bd"), (6, "#1f77b4"), (10, "#2ca02c")):
        for design, ls in (("rrrc", "-"), ("frrc", "--")):
            ax.plot(ks, [or_power(pilot, j, int(k), pilot.effect, design).power for k in ks], ls, color=col,
                    label=f"J = {j}, {design.upper()}")
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("cases K")
    ax.set_ylabel("power (alpha 0.05)")
    ax.set_title("Power from the Van Dyke pilot (jackknife OR components), effect -0.0438", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.25)
    fig.savefig(out / "reader-study-power.png", dpi=110)

    # 3. validation simulations
    rng = np.random.default_rng(20261201)
    p_froc, p_split, p_sens = [], [], []
    for _ in range(args.n):
        p_froc.append(froc_analysis(simulate_froc(rng, treatments=2, readers=4, normal=40, abnormal=40),
                                    "wafroc").pairwise[0].p)
        t, r, g = _split(rng)
        p_split.append(split_plot_mrmc(t, r, g).pairwise[0].p)
        t2, r2 = roe_metz(rng, pos=50, neg=50)
        p_sens.append(binary_mrmc(t2, r2, 0.75, "sensitivity").pairwise[0].p)
    est, se_c, se_u = [], [], []
    for _ in range(args.n):
        cl, t, s = clustered_units(rng, patients=80, sd_patient=1.2)
        a, c = clustered_auc_covariance(cl, t, s)
        est.append(a[0])
        se_c.append(np.sqrt(c[0, 0]))
        se_u.append(np.sqrt(delong_covariance(t, s)[1][0, 0]))
    est_a, se_ca, se_ua = np.array(est), np.array(se_c), np.array(se_u)
    target = est_a.mean()
    cov_cl = float(np.mean(np.abs(est_a - target) <= 1.96 * se_ca))
    cov_un = float(np.mean(np.abs(est_a - target) <= 1.96 * se_ua))
    numbers["simulation"] = {
        "n": args.n,
        "froc_wafroc_type1": float(np.mean(np.array(p_froc) < 0.05)),
        "split_plot_type1": float(np.mean(np.array(p_split) < 0.05)),
        "sensitivity_type1": float(np.mean(np.array(p_sens) < 0.05)),
        "clustered_coverage_obuchowski": cov_cl,
        "clustered_coverage_unit_delong": cov_un,
        "clustered_empirical_sd": float(est_a.std()),
        "clustered_mean_se_obuchowski": float(se_ca.mean()),
        "clustered_mean_se_unit_delong": float(se_ua.mean()),
    }
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    for q, (name, p) in enumerate((("FROC wAFROC (RRRC, jackknife)", p_froc), ("split-plot OR (3 groups x 2 readers)",
                                                                            p_split),
                                   ("sensitivity at a threshold (OR, jackknife)", p_sens))):
        ax = fig.add_subplot(1, 4, q + 1)
        ax.hist(p, bins=20, range=(0, 1), color="#1f77b4", alpha=0.8)
        ax.axhline(args.n / 20, color="k", lw=0.8, ls=":")
        ax.set_title(f"{name}\nnull p-values, type I {100 * np.mean(np.array(p) < 0.05):.1f}%", fontsize=8)
        ax.set_xlabel("p")
    ax = fig.add_subplot(1, 4, 4)
    ax.bar(["Obuchowski\n(patient)", "DeLong\n(units iid)"], [cov_cl, cov_un], color=["#2ca02c", "#999999"])
    ax.axhline(0.95, color="k", lw=0.8, ls=":")
    ax.set_ylim(0.8, 1.0)
    ax.set_title("clustered AUC: 95% CI coverage", fontsize=8)
    fig.suptitle(f"{args.n} SYNTHETIC null studies per method", fontsize=9)
    fig.savefig(out / "reader-study-validation.png", dpi=110)

    # 4. UTA7 (shared data; skipped when absent)
    uta7 = ROOT.parent / "shared" / "data" / "mimbcd-dev" / "reader-study-uta7"
    if uta7.is_dir():
        from engine.study.uta7 import describe_uta7, load_uta7, uta7_figure

        desc = describe_uta7(load_uta7(uta7))
        uta7_figure(desc).savefig(out / "reader-study-uta7.png", dpi=110)
        numbers["uta7_change"] = desc["all_cells"]["change"]
    print(json.dumps(numbers["simulation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
