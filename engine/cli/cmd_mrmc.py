"""`breast-engine mrmc RATINGS.csv`: Obuchowski-Rockette MRMC analysis of a ratings file.

Paradigms: ROC ratings (AUC, or sensitivity/specificity at a threshold), FROC marks
(``--paradigm froc --lesions LESIONS.csv --cases CASES.csv --fom wafroc|afroc|roc``),
clustered units (``--clusters``: patient as the case unit) and split-plot designs
(``--groups``); ``--power-*`` adds Hillis-Obuchowski study sizing from the file as a pilot.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Literal

from engine.errors import CaseFormatError
from engine.stats.mrmc import MrmcResult, ai_vs_readers, format_text, mrmc_analysis
from engine.study.ratings import RatingsTable, load_ratings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``mrmc`` command."""
    p = sub.add_parser(
        "mrmc",
        help="MRMC ROC analysis (Obuchowski-Rockette, Hillis df) of a ratings file",
        description="Columns reader,treatment,case,truth,rating (long CSV) or an iMRMC input file. "
        "Empirical AUC per reader and treatment; DeLong or jackknife covariance.",
    )
    p.add_argument("ratings", help="ratings CSV (long format), iMRMC file, or MARKS.csv with --paradigm froc")
    p.add_argument("--cov", choices=["delong", "jackknife"], default=None,
                   help="covariance method (default: delong for ROC AUCs, jackknife otherwise)")
    p.add_argument("--paradigm", choices=["roc", "froc"], default="roc",
                   help="roc: one rating per case; froc: marks file with --lesions and --cases")
    p.add_argument("--lesions", metavar="LESIONS.csv", help="FROC: case,lesion_id,weight")
    p.add_argument("--cases", metavar="CASES.csv", help="FROC: case,truth for every case")
    p.add_argument("--fom", choices=["wafroc", "afroc", "roc"], default="wafroc",
                   help="FROC figure of merit: wAFROC (default), AFROC, or the inferred-ROC AUC")
    p.add_argument("--endpoint", choices=["auc", "sensitivity", "specificity"], default="auc",
                   help="ROC: analyse the AUC (default) or sensitivity/specificity at --threshold")
    p.add_argument("--threshold", type=float, help="rating >= threshold is a positive call (e.g. 4 for BI-RADS >= 4)")
    p.add_argument("--clusters", metavar="CLUSTERS.csv",
                   help="case,patient: the cases are units (lesions, breasts) within patients; the patient "
                   "becomes the case unit (Obuchowski 1997)")
    p.add_argument("--cluster-cov", choices=["obuchowski", "jackknife"], default="obuchowski",
                   help="patient-level covariance with --clusters")
    p.add_argument("--groups", metavar="GROUPS.csv",
                   help="reader,group: split-plot design, each group read its own block of cases")
    p.add_argument("--power-readers", type=int, metavar="J", help="planned number of readers (study sizing)")
    p.add_argument("--power-cases", type=int, metavar="K", help="planned number of cases")
    p.add_argument("--effect-size", type=float, metavar="D",
                   help="planned difference of mean FOMs (default: the observed first pairwise difference)")
    p.add_argument("--power-target", type=float, metavar="P", help="find the cases needed for this power")
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
    p.add_argument("--plot", metavar="FIGURE", help="FROC: write FROC/AFROC/wAFROC curves (png/svg/pdf)")
    p.set_defaults(func=_run)


def _power(args: argparse.Namespace, res: MrmcResult, n_cases: int, src: str) -> dict[str, Any] | None:
    """The ``"power"`` JSON object of the ``--power-*`` options (None when not asked)."""
    from engine.stats.power import cases_for_power, or_power, pilot_components

    if args.power_readers is None and args.power_cases is None and args.power_target is None:
        return None
    if args.power_readers is None or (args.power_cases is None and args.power_target is None):
        raise CaseFormatError(src, "study sizing needs --power-readers J and --power-cases K (or --power-target P)")
    if len(res.treatments) < 2:
        raise CaseFormatError(src, "study sizing needs a pilot with at least 2 treatments")
    effect = args.effect_size if args.effect_size is not None else res.pairwise[0].estimate
    pilot = pilot_components(res.components, n_cases, res.pairwise[0].estimate)
    try:
        if args.power_cases is not None:
            out = or_power(pilot, args.power_readers, args.power_cases, effect, res.design,  # type: ignore[arg-type]
                           args.alpha).to_dict()
        else:
            out = cases_for_power(pilot, args.power_readers, effect, args.power_target, res.design,  # type: ignore[arg-type]
                                  args.alpha).to_dict()
            out["target"] = args.power_target
            out["cases_needed"] = out["cases"]
    except ValueError as exc:
        raise CaseFormatError(src, str(exc)) from None
    out["pilot"] = {"cases": n_cases, "readers": len(res.readers), "observed_effect": pilot.effect,
                    "var_TR": pilot.var_tr, "var_error": pilot.var_error, "cov1": pilot.cov1, "cov2": pilot.cov2,
                    "cov3": pilot.cov3, "cov": res.cov_method, "fom": res.fom}
    out["method"] = "Hillis, Obuchowski & Berbaum 2011 (OR); RJafroc SsPowerGivenJK"
    return out


def _emit(args: argparse.Namespace, res: MrmcResult, extra: dict[str, Any]) -> None:
    if args.json:
        out = res.to_dict()
        out.update(extra)
        print(json.dumps(out))
        return
    print(format_text(res))
    pw = extra.get("power")
    if pw:
        df2 = "inf" if pw["df2"] is None else f"{pw['df2']:.2f}"
        print(f"  power ({pw['design'].upper()}): {pw['power']:.3f} with {pw['readers']} readers x {pw['cases']} "
              f"cases, effect {pw['effect_size']:+.4f} (ncp {pw['ncp']:.3f}, df2 {df2})")


def _read_pairs(path: str, cols: tuple[str, str]) -> dict[str, str]:
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rd = csv.DictReader(fh)
            if not rd.fieldnames or any(c not in rd.fieldnames for c in cols):
                raise CaseFormatError(path, f"the header must contain {','.join(cols)}", row=1)
            out: dict[str, str] = {}
            for n, row in enumerate(rd, start=2):
                k, v = (row[cols[0]] or "").strip(), (row[cols[1]] or "").strip()
                if not k or not v:
                    raise CaseFormatError(path, f"empty {cols[0]} or {cols[1]}", row=n)
                if k in out and out[k] != v:
                    raise CaseFormatError(path, f"{cols[0]} {k!r} is given two values", row=n)
                out[k] = v
            return out
    except OSError as exc:
        raise CaseFormatError(path, f"cannot read ({exc.strerror})") from None


def _run_froc(args: argparse.Namespace) -> int:
    from engine.stats.froc import froc_analysis
    from engine.study.froc_files import load_froc

    if args.model or args.groups or args.clusters or args.endpoint != "auc":
        raise CaseFormatError(args.ratings, "--model, --groups, --clusters and --endpoint apply to ROC ratings, "
                              "not to --paradigm froc")
    if not args.lesions or not args.cases:
        raise CaseFormatError(args.ratings, "--paradigm froc needs --lesions LESIONS.csv and --cases CASES.csv")
    data = load_froc(args.ratings, args.lesions, args.cases)
    cov: Literal["delong", "jackknife"] = args.cov or "jackknife"
    try:
        res = froc_analysis(data, args.fom, cov=cov, design=args.design, alpha=args.alpha)
    except ValueError as exc:
        raise CaseFormatError(args.ratings, str(exc)) from None
    extra: dict[str, Any] = {"paradigm": "froc", "cases": len(data.cases), "lesions": data.n_lesions,
                             "normal_cases": int((~data.truth).sum()), "abnormal_cases": int(data.truth.sum())}
    pw = _power(args, res, len(data.cases), args.ratings)
    if pw:
        extra["power"] = pw
    if args.plot:
        from engine.study.froc_report import froc_figure

        fig = froc_figure(data)
        fig.savefig(args.plot, dpi=150)
        extra["plot"] = args.plot
    _emit(args, res, extra)
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.paradigm == "froc":
        return _run_froc(args)
    table = load_ratings(args.ratings, allow_missing=bool(args.groups))
    ratings, readers = table.ratings, table.readers
    if args.groups and args.model:
        raise CaseFormatError(args.ratings, "--model and --groups cannot be combined")
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
        res = _analyse(args, table, ratings, readers)
    except ValueError as exc:  # e.g. one reader with a random-reader design
        raise CaseFormatError(args.ratings, str(exc)) from None
    extra: dict[str, Any] = {}
    if model_vs:
        extra["model_vs_readers"] = model_vs
    pw = _power(args, res, len(table.cases), args.ratings)
    if pw:
        extra["power"] = pw
    _emit(args, res, extra)
    if not args.json:
        lvl = int(round((1 - args.alpha) * 100))
        for tr, r in model_vs.items():  # noqa: B007
            d = r
            print(f"  model {args.model} vs readers in {tr}: model AUC {d['model_auc']:.4f}, mean reader AUC "
                  f"{d['mean_reader_auc']:.4f}, difference {d['estimate']:+.4f} {lvl}% CI "
                  f"[{d['ci'][0]:.4f}, {d['ci'][1]:.4f}] p {d['p']:.4g}")
    return 0


def _analyse(args: argparse.Namespace, table: RatingsTable, ratings: Any, readers: list[str]) -> MrmcResult:
    """The ROC-paradigm analysis the options ask for."""
    if args.endpoint != "auc":
        from engine.stats.binary import binary_mrmc

        if args.threshold is None:
            raise ValueError(f"--endpoint {args.endpoint} needs --threshold (rating >= threshold is positive)")
        if args.cov == "delong":
            raise ValueError("sensitivity/specificity use the jackknife covariance; drop --cov delong")
        return binary_mrmc(table.truth, ratings, args.threshold, args.endpoint, treatments=table.treatments,
                           readers=readers, design=args.design, alpha=args.alpha)
    if args.clusters:
        from engine.stats.clustered import clustered_mrmc

        patient = _read_pairs(args.clusters, ("case", "patient"))
        missing = [c for c in table.cases if c not in patient]
        if missing:
            raise CaseFormatError(args.clusters, f"case(s) {missing[:5]} of {args.ratings} have no patient")
        return clustered_mrmc([patient[c] for c in table.cases], table.truth, ratings, treatments=table.treatments,
                              readers=readers, method=args.cluster_cov, design=args.design, alpha=args.alpha)
    if args.groups:
        from engine.stats.splitplot import split_plot_mrmc

        group = _read_pairs(args.groups, ("reader", "group"))
        missing = [r for r in readers if r not in group]
        if missing:
            raise CaseFormatError(args.groups, f"reader(s) {missing[:5]} of {args.ratings} have no group")
        return split_plot_mrmc(table.truth, ratings, [group[r] for r in readers], treatments=table.treatments,
                               readers=readers, cov=args.cov or "jackknife", design=args.design, alpha=args.alpha)
    return mrmc_analysis(table.truth, ratings, treatments=table.treatments, readers=readers,
                         cov=args.cov or "delong", design=args.design, alpha=args.alpha)
