"""`breast-engine uta7 FOLDER`: descriptive agreement of the UTA7 clinicians' BI-RADS reads, with and without AI."""

from __future__ import annotations

import argparse
import json

from engine.study.uta7 import describe_uta7, load_uta7, uta7_figure


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``uta7`` command."""
    p = sub.add_parser(
        "uta7",
        help="UTA7 reader study (45 clinicians x 3 cases, BI-RADS without/with AI): descriptive agreement only",
        description="Reads shared/data/mimbcd-dev/reader-study-uta7. Agreement with the reference BI-RADS and with "
        "the assistant, change with AI, by experience group; clinician-bootstrap CIs. No MRMC claim: 3 cases each.",
    )
    p.add_argument("folder", help="the reader-study-uta7 folder")
    p.add_argument("--figure", metavar="PNG", help="write the agreement bar chart (png/svg/pdf)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _pct(d: dict) -> str:  # type: ignore[type-arg]
    lo, hi = d["clinician_bootstrap_ci"]
    return f"{d['k']}/{d['n']} = {100 * d['proportion']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f})"


def format_text(desc: dict) -> str:  # type: ignore[type-arg]
    """Human-readable summary."""
    a = desc["all_cells"]
    ch = a["change"]
    lo, hi = ch["clinician_bootstrap_ci"]
    lines = [
        f"UTA7: {desc['clinicians']} clinicians x {desc['cases_per_clinician']} cases ({desc['cells']} reads per "
        "condition). DESCRIPTIVE ONLY - no ROC/MRMC claim.",
        f"  AI assistant = reference: {_pct(desc['assistant_agreement_with_reference'])}",
        f"  exact agreement with reference, without AI: {_pct(a['current']['exact_agreement_with_reference'])}",
        f"  exact agreement with reference, with AI:    {_pct(a['assisted']['exact_agreement_with_reference'])}",
        f"  change: {100 * ch['exact_agreement_difference']:+.1f} points (95% CI {100 * lo:+.1f} to {100 * hi:+.1f}); "
        f"{ch['cells_changed']} reads changed, {ch['moved_towards_reference']} towards the reference, "
        f"{ch['moved_away_from_reference']} away; wrong->right {ch['wrong_to_right']}, right->wrong "
        f"{ch['right_to_wrong']}",
        f"  recall decision (BI-RADS>=4) agreement: without AI "
        f"{_pct(a['current']['recall_decision_agreement (BI-RADS>=4)'])}, with AI "
        f"{_pct(a['assisted']['recall_decision_agreement (BI-RADS>=4)'])}",
        f"  agreement with the assistant: without AI {_pct(a['current']['agreement_with_assistant'])}, with AI "
        f"{_pct(a['assisted']['agreement_with_assistant'])}",
    ]
    for g, v in desc["by_group"].items():
        lines.append(f"  {g} (n={v['clinicians']}): without AI {_pct(v['current'])}; with AI {_pct(v['assisted'])}")
    nz = desc["without_zero_cells"]
    lines.append(f"  without cells holding a 0 (BI-RADS 0 or missing; {desc['zeros']['current']} / "
                 f"{desc['zeros']['assisted']} zeros): without AI {_pct(nz['current']['exact_agreement_with_reference'])},"
                 f" with AI {_pct(nz['assisted']['exact_agreement_with_reference'])}")
    lines.append("  " + desc["claims"])
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    desc = describe_uta7(load_uta7(args.folder))
    if args.figure:
        uta7_figure(desc).savefig(args.figure, dpi=150)
        desc["figure"] = args.figure
    print(json.dumps(desc) if args.json else format_text(desc))
    return 0
