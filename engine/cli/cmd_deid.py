"""`breast-engine deid STUDY --out DIR`: a de-identified copy of a case study for sharing.

DICOM files are rewritten with the DICOM PS3.15 Basic Application Level Confidentiality Profile
(see :mod:`engine.cases.deid`); files with burned-in annotation are refused, ultrasound files are
listed for a visual check. Exit 1 when anything was refused.
"""

from __future__ import annotations

import argparse
import sys


def _handler(args: argparse.Namespace) -> int:
    from engine.cases.deid import export_deidentified

    rep = export_deidentified(args.study, args.out)
    print(f"{rep.out_dir}: {rep.dicom_files} DICOM file(s) de-identified, {rep.raster_files} raster file(s) copied")
    for line in rep.review:
        print(f"review: {line}")
    for line in rep.refused:
        print(f"breast-engine deid: {line}", file=sys.stderr)
    return 1 if rep.refused else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``deid``."""
    p = sub.add_parser("deid", help="de-identified copy of a case study (DICOM PS3.15 basic profile)",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("study", help="case study folder (with study.json)")
    p.add_argument("--out", required=True, help="output folder for the shareable copy")
    p.set_defaults(func=_handler)
