"""`breast-engine import SRC --out STUDY [--dry-run] [--modality US|MG|MR] [--json]`.

SRC is a folder of DICOM files (one case per exam, both breasts), a folder of images (one case
per file) or a manifest CSV. Prints the grouping (cases, images with modality/laterality/view)
and one line per refused file; exit 1 when any file was refused. No file names or DICOM
identifiers reach the study.
"""

from __future__ import annotations

import argparse
import json
import sys


def _handler(args: argparse.Namespace) -> int:
    from engine.cases.importing import import_source

    if not args.dry_run and not args.out:
        print("breast-engine import: give --out STUDY (or --dry-run)", file=sys.stderr)
        return 2
    pv = import_source(args.src, args.out, modality=args.modality, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(pv.to_json()))
    else:
        print(f"{pv.kind} source {pv.source}: {len(pv.cases)} case(s)" + ("" if pv.study else " (dry run)"))
        for c in pv.cases:
            imgs = ", ".join(f"{im.modality}{' ' + im.laterality if im.laterality else ''}"
                             f"{' ' + im.view if im.view else ''}" for im in c.images)
            print(f"  {c.case_id}: {imgs}" + (f" [{c.truth}]" if c.truth else ""))
    for line in pv.refused:
        print(f"breast-engine import: {line}", file=sys.stderr)
    return 1 if pv.refused else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``import``."""
    p = sub.add_parser("import", help="import a DICOM folder, image folder or manifest CSV into a study",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("src", help="DICOM folder, image folder or manifest .csv")
    p.add_argument("--out", help="study folder (created or extended)")
    p.add_argument("--dry-run", action="store_true", help="show the grouping only; write nothing")
    p.add_argument("--modality", choices=["US", "MG", "MR"], help="modality of every image in an image folder")
    p.add_argument("--json", action="store_true", help="print the preview as one JSON object")
    p.set_defaults(func=_handler)
