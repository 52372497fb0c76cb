"""`breast-engine score`: probability of malignancy for images, with the shipped default models.

Contract::

    breast-engine score [--modality US|MG|MR|auto] [--model NAME_OR_PATH]
                        (INPUT... | --manifest CSV) --out CSV

INPUTs are image files or folders (a folder is expanded to the image files in it, sorted; with
``--modality MR`` a folder is one slice stack). A manifest has ``path,modality[,x0,y0,x1,y1]``
(a box scores the region the reader drew). The output keeps the input order and columns and adds
``model,score``. Bad inputs are reported on stderr, one line each naming the file and the reason;
the rest are still scored and the exit status is then 1. Scores are research decision support,
not a diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

from engine.errors import BreastReaderError, CaseFormatError, ModelNotFoundError, display_path

IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".ppm", ".bmp", ""}
MODALITIES = ("US", "MG", "MR")


def _expand(inputs: list[str], modality: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and modality != "MR":
            files = sorted(f for f in p.iterdir()
                           if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES)
            rows.extend({"path": str(f), "modality": modality} for f in files)
        else:
            rows.append({"path": item, "modality": modality})
    return rows


def read_manifest(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """Read a scoring manifest (``path,modality[,x0,y0,x1,y1]``; other columns are kept).

    Relative paths are taken relative to the manifest's folder.

    Raises:
        CaseFormatError: missing file/columns or a malformed box (names the row).
    """
    mp = Path(path)
    try:
        text = mp.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CaseFormatError(path, f"cannot read manifest ({exc.strerror or exc})") from None
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "path" not in cols:
        raise CaseFormatError(path, "manifest needs a 'path' column (path,modality[,x0,y0,x1,y1])")
    rows: list[dict[str, str]] = []
    for i, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not row.get("path"):
            raise CaseFormatError(path, "empty path", row=i)
        box = [row.get(k, "") for k in ("x0", "y0", "x1", "y1")]
        if any(box) and not all(box):
            raise CaseFormatError(path, "a box needs all of x0,y0,x1,y1", row=i)
        if all(box):
            try:
                [float(b) for b in box]
            except ValueError:
                raise CaseFormatError(path, f"box values must be numbers, got {box}", row=i) from None
        rp = Path(row["path"])
        row["_abs"] = str(rp if rp.is_absolute() else mp.parent / rp)
        row["_row"] = str(i)
        rows.append(row)
    return cols, rows


def _modality_of(row: dict[str, str], default: str, image: Any) -> str:
    m = (row.get("modality") or default or "auto").upper()
    if m in ("", "AUTO"):
        m = str(image.meta.modality).upper()
    if m not in MODALITIES:
        raise BreastReaderError(f"cannot tell the modality (image says {m!r}); pass --modality US|MG|MR")
    return m


def score_rows(rows: list[dict[str, str]], *, modality: str, model: str | None,
               progress: Any = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Score every row; returns ``([(model, score)], [error lines])`` in row order."""
    from engine.inference import Predictor, load_predictor
    from engine.io.reader import read_image

    predictors: dict[str, Predictor] = {}
    fixed = load_predictor(modality if modality in MODALITIES else "US", model) if model else None
    results: list[tuple[str, str]] = []
    errors: list[str] = []
    for n, row in enumerate(rows):
        path = row.get("_abs", row["path"])
        try:
            mod_hint = (row.get("modality") or modality or "").upper()
            img = read_image(path, modality_hint=mod_hint if mod_hint in MODALITIES else None)  # type: ignore[arg-type]
            if fixed is not None:
                pred = fixed
            else:
                mod = _modality_of(row, modality, img)
                if mod not in predictors:
                    predictors[mod] = load_predictor(mod)
                pred = predictors[mod]
            box = None
            if all(row.get(k) for k in ("x0", "y0", "x1", "y1")):
                box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            p = _score_one(pred, img, str(row.get("modality") or "").upper() or pred.spec.modality, box)
            results.append((pred.name, f"{p:.6f}"))
        except (BreastReaderError, ValueError, OSError) as exc:
            reason = exc.reason if hasattr(exc, "reason") else str(exc)
            where = display_path(path)
            if isinstance(exc, BreastReaderError) and getattr(exc, "path", None):
                reason = str(getattr(exc, "reason", exc))
            errors.append(f"breast-engine score: {where}: {reason}")
            results.append(("", ""))
        if progress is not None:
            progress(n + 1, len(rows), Path(path).name)
    return results, errors


def _score_one(pred: Any, img: Any, modality: str, box: Any) -> float:
    """One image through the engine's case scorer (the GUI's path: same box and slice policy).

    Raises:
        BreastReaderError: the model could not score the image (e.g. a lesion model without a box).
    """
    from engine.inference.case import CaseImage, CaseInput, CaseScorer

    mod = modality if modality in MODALITIES else str(pred.spec.modality)
    res = CaseScorer(lambda _m, _n: pred).score_case(CaseInput("row", [CaseImage("image", img, mod, box)]))
    if "image" not in res.per_image:
        reason = res.errors[0].split(": ", 1)[-1] if res.errors else "not scored"
        raise BreastReaderError(reason.replace("draw one (B) to score this image",
                                               "give x0,y0,x1,y1 (pixels) in the manifest"))
    return float(res.per_image["image"])


def _handler(args: argparse.Namespace) -> int:
    from engine.progress import tqdm_progress

    modality = (args.modality or "auto").upper()
    if args.manifest and args.inputs:
        raise BreastReaderError("give INPUT files/folders or --manifest, not both")
    if args.manifest:
        cols, rows = read_manifest(args.manifest)
    elif args.inputs:
        cols, rows = ["path", "modality"], _expand(args.inputs, modality if modality != "AUTO" else "")
    else:
        raise BreastReaderError("nothing to score: give INPUT files/folders or --manifest CSV")
    if args.model is None and modality in MODALITIES:
        from engine.models.weights import default_weights

        if default_weights(modality) is None:
            raise ModelNotFoundError(
                f"no default model is installed for {modality} (resources/models/defaults.json); "
                "train one or pass --model"
            )
    with tqdm_progress("scoring", disable=not sys.stderr.isatty()) as cb:
        results, errors = score_rows(rows, modality=modality, model=args.model, progress=cb)
    for line in errors:
        print(line, file=sys.stderr)
    out_cols = [c for c in cols if c not in ("model", "score")] + ["model", "score"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=out_cols, extrasaction="ignore")
        w.writeheader()
        for row, (mname, score) in zip(rows, results):
            w.writerow({**{c: row.get(c, "") for c in cols}, "model": mname, "score": score})
    os.replace(tmp, out)
    ok = sum(1 for _, s in results if s)
    print(f"scored {ok}/{len(rows)} images -> {out}", file=sys.stderr)
    return 1 if errors else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``score``."""
    p = sub.add_parser(
        "score",
        help="probability of malignancy per image (research decision support, not a diagnosis)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders")
    p.add_argument("--manifest", metavar="CSV", help="CSV with path,modality[,x0,y0,x1,y1]")
    p.add_argument("--modality", default="auto", choices=["US", "MG", "MR", "auto", "us", "mg", "mr"],
                   help="modality of the inputs (default: from each image / manifest)")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="installed weights name or weights folder")
    p.add_argument("--out", required=True, metavar="CSV", help="output CSV (input columns + model,score)")
    p.set_defaults(func=_handler)
