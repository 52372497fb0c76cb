"""`breast-engine ai-scores STUDY --out ai_scores.csv`: the reader-study AI score of every case.

The scores come from the engine's case scorer over the installed models, with each case's stored
lesion boxes: the score the workstation's AI panel shows for the same case (fused MG+US for one
patient, else the single modality). Point a reader study's ``ai_scores`` at the file so the aided
arm and the "readers vs model" analysis use exactly that. Cases without one score are listed on
stderr with the reason. Scores are decision support, not a diagnosis.
"""

from __future__ import annotations

import argparse
import sys


def _handler(args: argparse.Namespace) -> int:
    from engine.cases import load_study
    from engine.study.ai_scores import study_ai_scores, write_ai_scores

    study = load_study(args.study)
    cases = [c for c in study.cases if not args.case or c.case_id in args.case]
    res = study_ai_scores(cases)
    path = write_ai_scores(args.out, res)
    models = ", ".join(f"{m} {n}" for m, n in sorted(res.models.items())) or "none"
    print(f"{path}: {len(res.scores)} case score(s) (models: {models})")
    for cid, why in sorted(res.missing.items()):
        print(f"breast-engine ai-scores: {cid}: no score ({why})", file=sys.stderr)
    return 0 if res.scores else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``ai-scores``."""
    p = sub.add_parser("ai-scores", help="reader-study ai_scores.csv from the workstation's case scorer",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("study", help="case study folder (with study.json)")
    p.add_argument("--out", required=True, help="CSV to write (case_id,score)")
    p.add_argument("--case", action="append", help="only this case id (repeatable)")
    p.set_defaults(func=_handler)
