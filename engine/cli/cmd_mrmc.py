"""`breast-engine mrmc RATINGS.csv`: Obuchowski-Rockette MRMC analysis of a ratings file."""

from __future__ import annotations

import argparse
import json

from engine.errors import CaseFormatError
from engine.stats.mrmc import MrmcResult, mrmc_analysis
from engine.study.ratings import load_ratings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``mrmc`` command."""
    p = sub.add_parser(
        "mrmc",
        help="MRMC ROC analysis (Obuchowski-Rockette, Hillis df) of a ratings file",
        description="Columns reader,treatment,case,truth,rating (long CSV) or an iMRMC input file. "
        "Empirical AUC per reader and treatment; DeLong or jackknife covariance.",
    )
    p.add_argument("ratings", help="ratings CSV (long format) or iMRMC file")
    p.add_argument("--cov", choices=["delong", "jackknife"], default="delong", help="AUC covariance method")
    p.add_argument(
        "--design",
        choices=["rrrc", "frrc", "rrfc"],
        default="rrrc",
        help="random readers+cases (default), fixed readers, or fixed cases",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def format_text(res: MrmcResult) -> str:
    """Human-readable summary of an MRMC result."""
    lvl = int(round((1 - res.alpha) * 100))
    lines = [f"MRMC ({res.design.upper()}, {res.cov_method} covariance), "
             f"{len(res.readers)} readers x {len(res.treatments)} treatments"]
    for name, tr in res.treatment_results.items():
        lines.append(f"  {name}: AUC {tr.auc:.4f}  SE {tr.se:.4f}  df {tr.df:.2f}  "
                     f"{lvl}% CI [{tr.ci[0]:.4f}, {tr.ci[1]:.4f}]")
    if res.global_test:
        g = res.global_test
        lines.append(f"  global test: F {g['F']:.4f}  df ({g['df1']:.0f}, {g['df2']:.2f})  p {g['p']:.4g}")
    for p in res.pairwise:
        lines.append(f"  {p.comparison}: {p.estimate:+.4f}  SE {p.se:.4f}  "
                     f"{lvl}% CI [{p.ci[0]:.4f}, {p.ci[1]:.4f}]  p {p.p:.4g}")
    vc = ", ".join(f"{k} {v:.3g}" for k, v in res.variance_components.items())
    lines.append(f"  variance components: {vc}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    table = load_ratings(args.ratings)
    try:
        res = mrmc_analysis(
            table.truth,
            table.ratings,
            treatments=table.treatments,
            readers=table.readers,
            cov=args.cov,
            design=args.design,
            alpha=args.alpha,
        )
    except ValueError as exc:  # e.g. one reader with a random-reader design
        raise CaseFormatError(args.ratings, str(exc)) from None
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(format_text(res))
    return 0
