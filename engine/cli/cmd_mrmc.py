"""`breast-engine mrmc RATINGS.csv`: Obuchowski-Rockette MRMC analysis of a ratings file."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.errors import CaseFormatError
from engine.stats.mrmc import MrmcResult, ai_vs_readers, mrmc_analysis
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
    p.add_argument(
        "--model",
        metavar="READER",
        help="treat this 'reader' as the standalone model: it is left out of the MRMC analysis and "
        "compared with the reader panel in each treatment (1T-RRRC, jackknife; RJafroc CAD-vs-radiologists)",
    )
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
    ratings, readers = table.ratings, table.readers
    model_vs: dict[str, dict[str, Any]] = {}
    if args.model:
        if args.model not in readers:
            raise CaseFormatError(args.ratings, f"--model {args.model!r} is not a reader in the file "
                                  f"(readers: {', '.join(readers)})")
        k = readers.index(args.model)
        keep = [j for j in range(len(readers)) if j != k]
        try:
            for i, tr in enumerate(table.treatments):
                model_vs[tr] = ai_vs_readers(
                    table.truth, ratings[i, keep], ratings[i, k], readers=[readers[j] for j in keep],
                    cov="jackknife", alpha=args.alpha,
                ).to_dict()
        except ValueError as exc:
            raise CaseFormatError(args.ratings, str(exc)) from None
        ratings, readers = ratings[:, keep], [readers[j] for j in keep]
    try:
        res = mrmc_analysis(
            table.truth,
            ratings,
            treatments=table.treatments,
            readers=readers,
            cov=args.cov,
            design=args.design,
            alpha=args.alpha,
        )
    except ValueError as exc:  # e.g. one reader with a random-reader design
        raise CaseFormatError(args.ratings, str(exc)) from None
    if args.json:
        out = res.to_dict()
        if model_vs:
            out["model_vs_readers"] = model_vs
        print(json.dumps(out))
    else:
        print(format_text(res))
        lvl = int(round((1 - args.alpha) * 100))
        for tr, r in model_vs.items():
            d = r
            print(f"  model {args.model} vs readers in {tr}: model AUC {d['model_auc']:.4f}, mean reader AUC "
                  f"{d['mean_reader_auc']:.4f}, difference {d['estimate']:+.4f} {lvl}% CI "
                  f"[{d['ci'][0]:.4f}, {d['ci'][1]:.4f}] p {d['p']:.4g}")
    return 0
