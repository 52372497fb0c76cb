"""`breast-engine bench mrmc --json`: MRMC analysis at scale, and n log n vs the pairwise form.

Times the full Obuchowski-Rockette analysis (DeLong covariance via Sun & Xu 2014 midranks)
on 3 readers x 2 arms x N cases, and the DeLong structural components by the fast midrank
algorithm side by side with the naive O(m n) pairwise kernel on smaller N. The FROC part
times the wAFROC ORH analysis with jackknife (target: 5 treatments x 4 readers x 200 cases
<= 1 s, files parsed included) and the growth of one FOM + its K jackknife values with K
(O(K log K) expected, against the O(K1 L) double sum).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.stats.delong import naive_placements, placements
from engine.stats.mrmc import mrmc_analysis
from engine.study.ratings import RatingsTable, load_ratings, write_long_csv

NAME = "mrmc"
HELP = "MRMC analysis time (3 readers x 2 arms x N cases) and midrank vs pairwise DeLong scaling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--cases", type=int, default=60000, help="cases in the large run")
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument(
        "--scaling", default="500,1000,2000,4000", help="comma-separated N for the side-by-side scaling"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--froc-scaling", default="200,800,3200,12800",
                        help="comma-separated K for the FROC FOM+jackknife growth")


def _simulate(rng: np.random.Generator, t: int, r: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    truth = (rng.random(n) < 0.4).astype(int)
    truth[:2] = [0, 1]
    latent = truth * 1.5 + rng.normal(size=n)
    ratings = latent[None, None, :] + 0.7 * rng.normal(size=(t, r, n))
    return truth, np.clip(np.round(ratings * 2 + 5), 0, 10)  # 0-10 scale: many ties


def _best_of(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and return a JSON-ready dict."""
    rng = np.random.default_rng(args.seed)
    truth, ratings = _simulate(rng, args.arms, args.readers, args.cases)
    out: dict[str, Any] = {"readers": args.readers, "arms": args.arms, "cases": args.cases}
    for cov in ("delong", "jackknife"):
        t0 = time.perf_counter()
        res = mrmc_analysis(truth, ratings, cov=cov)
        out[f"full_analysis_{cov}_s"] = round(time.perf_counter() - t0, 4)
    out["global_p"] = res.global_test["p"]
    # end to end as `breast-engine mrmc RATINGS.csv`: parse the long CSV, then analyse
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        names_t = [f"arm{i}" for i in range(args.arms)]
        names_r = [f"reader{j}" for j in range(args.readers)]
        cases = [f"case{k}" for k in range(args.cases)]
        write_long_csv(RatingsTable(names_t, names_r, cases, truth, ratings), path)
        t0 = time.perf_counter()
        table = load_ratings(path)
        mrmc_analysis(table.truth, table.ratings, cov="delong")
        out["cli_csv_end_to_end_s"] = round(time.perf_counter() - t0, 3)
        out["csv_rows"] = args.arms * args.readers * args.cases
    rows = []
    for n in [int(x) for x in str(args.scaling).split(",") if x]:
        tr, rt = _simulate(rng, args.arms, args.readers, n)
        flat = rt.reshape(-1, n)
        fast = _best_of(lambda: placements(tr, flat))
        naive = _best_of(lambda: naive_placements(tr, flat), repeat=1)
        rows.append({"cases": n, "midrank_s": round(fast, 5), "pairwise_s": round(naive, 5),
                     "speedup": round(naive / fast, 1)})
    out["scaling"] = rows
    out["froc"] = _froc(args, rng)
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        ratio_n = b["cases"] / a["cases"]
        out["growth"] = {
            "cases_ratio": ratio_n,
            "midrank_time_ratio": round(b["midrank_s"] / a["midrank_s"], 2),
            "pairwise_time_ratio": round(b["pairwise_s"] / a["pairwise_s"], 2),
            "n_log_n_ratio": round(ratio_n * np.log(b["cases"]) / np.log(a["cases"]), 2),
            "n_squared_ratio": ratio_n**2,
        }
    return out


def _froc(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    """wAFROC analysis time at the target size, end to end from the three CSVs, and FOM growth with K."""
    from engine.stats.froc import _fom_and_loo, froc_analysis, simulate_froc
    from engine.study.froc_files import load_froc, write_froc

    d = simulate_froc(rng, treatments=5, readers=4, normal=100, abnormal=100)
    out: dict[str, Any] = {"treatments": 5, "readers": 4, "cases": 200, "lesions": d.n_lesions,
                           "marks": int(d.nl_rating.size + np.isfinite(d.ll).sum())}
    out["analysis_wafroc_jackknife_s"] = round(_best_of(lambda: froc_analysis(d, "wafroc")), 4)
    with tempfile.TemporaryDirectory() as tmp:
        p = write_froc(d, tmp)
        t0 = time.perf_counter()
        e = load_froc(p["marks"], p["lesions"], p["cases"])
        froc_analysis(e, "wafroc")
        out["csv_end_to_end_s"] = round(time.perf_counter() - t0, 4)
    out["target_s"] = 1.0
    out["meets_target"] = bool(out["csv_end_to_end_s"] <= 1.0)
    rows = []
    for k in [int(x) for x in str(args.froc_scaling).split(",") if x]:
        dk = simulate_froc(rng, treatments=1, readers=1, normal=k // 2, abnormal=k // 2)
        fp = dk.max_nl()[0, 0]
        w = dk.weights / int(dk.truth.sum())
        fast = _best_of(lambda dk=dk, fp=fp, w=w: _fom_and_loo(fp, dk.ll[0, 0], w, dk.lesion_case, dk.truth,
                                                                "wafroc"))
        rows.append({"cases": k, "lesions": dk.n_lesions, "fom_and_jackknife_s": round(fast, 6)})
    out["scaling"] = rows
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        ratio = b["cases"] / a["cases"]
        out["growth"] = {"cases_ratio": ratio,
                         "time_ratio": round(b["fom_and_jackknife_s"] / a["fom_and_jackknife_s"], 2),
                         "k_log_k_ratio": round(ratio * np.log(b["cases"]) / np.log(a["cases"]), 2),
                         "k_squared_ratio": ratio**2}
    return out
