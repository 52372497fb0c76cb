"""``breast-reader study ...``: reader-study commands.

    breast-reader study export STUDY --out DIR [--include-identifiers] [--cov delong|jackknife]
    breast-reader study status STUDY
    breast-reader study run STUDY [--reader R1]        open the reading-session window
    breast-reader study demo --out DIR [--cases CASES_STUDY]
                                                       three scripted readers x two arms, exported

STUDY is a reader-study definition (``reader_study.toml``) or the folder holding it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.errors import BreastReaderError


def _definition(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "reader_study.toml"
    if not p.exists():
        raise BreastReaderError(f"{path}: no reader-study definition (expected a .toml or a folder with reader_study.toml)")
    return p


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the study subcommands."""
    p = sub.add_parser("export", help="export ratings, iMRMC input, AUCs, MRMC results, ROC figures, PDF report")
    p.add_argument("study", help="reader_study.toml or its folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--include-identifiers", action="store_true", help="keep real case ids (default: pseudonyms)")
    p.add_argument("--cov", choices=["delong", "jackknife"], default="delong")
    _db_arg(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("status", help="progress of every reader")
    p.add_argument("study")
    p.add_argument("--json", action="store_true")
    _db_arg(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("run", help="open the blinded reading-session window")
    p.add_argument("study")
    p.add_argument("--reader", help="sign this reader in directly")
    p.add_argument("--no-saliency", action="store_true", help="do not compute saliency overlays in aided arms")
    _db_arg(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", help="scripted 3-reader x 2-arm study on the demo cases, exported")
    p.add_argument("--out", required=True, help="folder for the definition, ratings and exports")
    p.add_argument("--cases", help="case study folder (default: the bundled demo, else a tiny synthetic one)")
    p.add_argument("--max-cases", type=int, default=40, help="cases to read (balanced benign/malignant)")
    p.add_argument("--ai", choices=["simulated", "model"], default="simulated",
                   help="AI scores of the aided arm: SIMULATED from the truth (default, fast), or the installed "
                        "models' scores through the workstation's case scorer")
    p.add_argument("--froc", action="store_true",
                   help="FROC paradigm: the scripted readers also mark lesions; the export adds the wAFROC analysis")
    p.set_defaults(func=_demo)


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", help="ratings database: postgresql://user@host:port/db for a multi-site "
                   "study (default: $BREAST_READER_DB, else <definition>.ratings.sqlite)")


def _export(args: argparse.Namespace) -> int:
    from engine.study.export import export_study
    from engine.study.session import open_study_run

    run = open_study_run(_definition(args.study), db=args.db)
    try:
        res = export_study(run, args.out, include_identifiers=args.include_identifiers, cov=args.cov)
    finally:
        run.close()
    for k, v in res.files.items():
        print(f"{k}: {v}")
    if not res.complete:
        print("study incomplete: MRMC analysis, figures and report need every rating")
    if res.integrity is not None:
        print(res.integrity.summary())
        if not res.integrity.ok:
            return 3
    return 0


def _status(args: argparse.Namespace) -> int:
    from engine.study.session import open_study_run

    run = open_study_run(_definition(args.study), db=args.db)
    try:
        st = run.status()
        integrity = run.store.verify()
    finally:
        run.close()
    if args.json:
        print(json.dumps({"readers": [s.__dict__ for s in st], "read_only": run.store.read_only,
                          "integrity": {"ok": integrity.ok, "problems": integrity.problems,
                                        "ledger_head": integrity.head, "ledger_entries": integrity.entries}}))
    else:
        for s in st:
            state = "finished" if s.finished else f"reading {s.current_arm}"
            if s.washout_until:
                state = "in washout"
            done = ", ".join(f"{a} {n}/{s.total}" for a, n in s.done.items())
            print(f"{s.reader_id}: {done} - {state}")
        if run.store.read_only:
            print(f"{run.store.path}: opened read-only (the study folder cannot be written)")
        print(integrity.summary())
    return 0 if integrity.ok else 3


def _run(args: argparse.Namespace) -> int:
    from reader_app.qt_app import ensure_app
    from reader_app.study.qt_session import open_reading_session

    from reader_app.study.qt_session import ai_service_overlay_provider

    if args.db:  # the session window opens its run through open_study_run, which reads this
        os.environ["BREAST_READER_DB"] = args.db
    app = ensure_app()
    provider = None if args.no_saliency else ai_service_overlay_provider()
    win = open_reading_session(_definition(args.study), reader=args.reader, overlay_provider=provider)
    app.exec()
    del win
    return 0


def demo_cases(folder: Path | None, out: Path, max_cases: int) -> tuple[Path, list[str], dict[str, int]]:
    """Pick a balanced set of cases with truth from ``folder`` (default: the bundled demo)."""
    from engine.cases import load_study
    from engine.study.demo import make_tiny_case_study

    if folder is None:
        from reader_app.paths import demo_study_dir

        bundled = demo_study_dir()
        folder = bundled if (bundled / "study.json").exists() else None
    if folder is None:
        folder = make_tiny_case_study(out / "synthetic_cases", 10, 10)
    study = load_study(folder)
    ben = [c.case_id for c in study.cases if c.truth and not c.truth.malignant]
    mal = [c.case_id for c in study.cases if c.truth and c.truth.malignant]
    if not ben or not mal:
        raise BreastReaderError(f"{folder}: needs both benign and malignant cases with truth")
    # every case with truth, up to max_cases, keeping both classes
    k_ben = min(len(ben), max(1, max_cases - min(len(mal), max_cases // 2)))
    chosen = sorted(ben[:k_ben] + mal[: max_cases - k_ben])
    truth = {c: int(c in mal) for c in chosen}
    return folder, chosen, truth


def _demo(args: argparse.Namespace) -> int:
    from engine.study.demo import FakeClock, run_scripted_readers, write_demo_definition
    from engine.study.export import export_study

    out = Path(args.out)
    folder, chosen, truth = demo_cases(Path(args.cases) if args.cases else None, out, args.max_cases)
    model_scores = None
    if getattr(args, "ai", "simulated") == "model":  # the workstation's own scores (engine case scorer)
        from engine.cases import load_study
        from engine.study.ai_scores import study_ai_scores

        got = study_ai_scores([c for c in load_study(folder).cases if c.case_id in chosen])
        for cid, why in sorted(got.missing.items()):
            print(f"breast-reader study demo: {cid}: no AI score ({why})", file=sys.stderr)
        model_scores = got.scores
    toml = write_demo_definition(out, folder, case_ids=chosen, ai_truth=truth, ai_scores=model_scores,
                                 paradigm="froc" if getattr(args, "froc", False) else "roc")
    run = run_scripted_readers(toml, FakeClock())
    res = export_study(run, out / "export")
    print(f"definition: {toml}\nratings: {run.store.path}\ncases: {len(chosen)} from {folder}")
    for k, v in res.files.items():
        print(f"{k}: {v}")
    return 0
