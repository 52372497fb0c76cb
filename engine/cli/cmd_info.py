"""`breast-engine info PATH... [--json]`: what each image is, or why it cannot be read.

With ``--json`` one JSON object per line (the contract other tools parse)::

    {"path": ..., "modality": "MG", "shape": [4096, 3328], "laterality": "R", "view": "MLO",
     "photometric": "MONOCHROME1", "pixel_spacing": [0.07, 0.07], "window": [2047.0, 4096.0]}
    {"path": ..., "error": "<reason>"}

``shape`` is the decoded array's shape; ``window`` the default (first) (center, width) or null.
A directory of slices is one entry. Exit status 1 if any path failed, else 0. Patient
identifiers are never printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Any

from engine.errors import ImageReadError
from engine.io.reader import read_image


def describe(path: str, *, modality_hint: str | None = None) -> dict[str, Any]:
    """The info record of one path (decodes the pixels, so corrupt data is caught).

    Args:
        path: File or slice directory.
        modality_hint: Passed to :func:`engine.io.reader.read_image`.

    Returns:
        The JSON-able record (``error`` key instead of image fields when unreadable).
    """
    try:
        img = read_image(path, modality_hint=modality_hint)  # type: ignore[arg-type]
    except ImageReadError as exc:
        return {"path": path, "error": exc.reason}
    except MemoryError:
        return {"path": path, "error": "not enough memory to decode this image"}
    except Exception as exc:  # noqa: BLE001 - one file never stops the batch; say it is ours
        return {"path": path, "error": f"internal error while reading this file ({type(exc).__name__}); "
                "please report it", "error_kind": "internal"}
    m = img.meta
    rec: dict[str, Any] = {
        "path": path,
        "modality": m.modality,
        "shape": list(img.shape),
        "laterality": m.laterality,
        "view": m.view,
        "photometric": m.photometric,
        "pixel_spacing": list(m.pixel_spacing) if m.pixel_spacing else None,
        "window": list(m.windows[0]) if m.windows else None,
        "format": m.source_format,
        "dtype": str(img.pixels.dtype),
        "bits_stored": m.bits_stored,
        "presentation_intent": m.presentation_intent,
    }
    if m.slice_positions:
        rec["slice_positions"] = [round(float(v), 4) for v in m.slice_positions]
    return finite_record(rec)


def finite_record(rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` with every non-finite number replaced by None (JSON has no NaN/Infinity)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return {k: clean(v) for k, v in rec.items()}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "x".join(_fmt(x) for x in v) if all(isinstance(x, int) for x in v) else ",".join(
            f"{x:g}" if isinstance(x, float) else str(x) for x in v
        )
    return str(v)


def _table(records: list[dict[str, Any]]) -> str:
    cols = ["path", "modality", "shape", "laterality", "view", "photometric", "pixel_spacing", "window"]
    header = ["PATH", "MOD", "SHAPE", "LAT", "VIEW", "PHOTOMETRIC", "SPACING(mm)", "WINDOW(c,w)"]
    rows = []
    for r in records:
        if "error" in r:
            rows.append([r["path"], "ERROR", r["error"]])
        else:
            rows.append([_fmt(r[c]) for c in cols])
    widths = [max([len(header[i])] + [len(row[i]) for row in rows if len(row) == len(cols) or i == 0])
              for i in range(len(cols))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row in rows:
        if len(row) == 3:
            lines.append(f"{row[0].ljust(widths[0])}  ERROR  {row[2]}")
        else:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _handler(args: argparse.Namespace) -> int:
    records = []
    failed = 0
    for path in args.paths:
        with warnings.catch_warnings():
            # pydicom warns about each odd value it meets; the record (or error) says what matters.
            warnings.simplefilter("ignore", UserWarning)
            rec = describe(path, modality_hint=args.modality)
        failed += "error" in rec
        if args.json:
            print(json.dumps(rec, allow_nan=False), flush=True)
        else:
            records.append(rec)
    if not args.json:
        print(_table(records))
    if failed:
        print(f"breast-engine: {failed} of {len(args.paths)} path(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``info`` command."""
    p = sub.add_parser(
        "info",
        help="describe image files / slice folders (modality, shape, laterality, view, window)",
        description="Describe images: one line (or JSON object with --json) per path; a folder of "
        "DICOM slices is one entry. Exit 1 if any path could not be read.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of slices")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--modality", choices=["MG", "US", "MR", "OT"], default=None,
                   help="modality to assume for files that do not record one (PNG/JPEG/...)")
    p.set_defaults(func=_handler)
