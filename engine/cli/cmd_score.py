"""`breast-engine score`: probability of malignancy for images, with the shipped default models.

Contract::

    breast-engine score [--modality US|MG|MR|auto] [--model NAME_OR_PATH]
                        (INPUT... | --manifest CSV) --out CSV [--saliency DIR]

INPUTs are image files or folders (a folder is expanded to the image files in it, sorted; with
``--modality MR`` a folder is one slice stack). A manifest has ``path,modality[,x0,y0,x1,y1]``
(a box scores the region the reader drew). The output keeps the input order and columns and adds
``model,score,box_x0,box_y0,box_x1,box_y1,ood,ood_flag`` (and ``saliency_x,saliency_y`` with
``--saliency``):

* ``score`` is the model's probability of malignancy (calibrated out of fold for models that carry
  a calibration, e.g. the lesion-centred US model);
* ``box_*`` is the lesion box the score is about: the manifest's box on an ultrasound row, else the
  lesion finder's box (lesion-centred US models), else the manifest box or empty;
* ``ood`` is the model's distance of the input from its training images and ``ood_flag`` 1 when it
  is above the model's threshold (empty for models without an OOD measure) — the score is still
  given;
* ``--saliency DIR`` writes one float32 ``<input stem>.npy`` per input in the decoded image's pixel
  grid (rows × cols; for an MR stack, of the slice that was read) and ``saliency_x,saliency_y`` is
  the map's peak (column, row) in pixels. A stem seen twice gets ``_2``, ``_3``... (told on stderr).

Bad inputs are reported on stderr, one line each naming the file and the reason;
the rest are still scored and the exit status is then 1. Scores are research decision support,
not a diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import math
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
        if m not in MODALITIES and image.meta.source_format != "DICOM":
            from engine.io.modality import guess_raster_modality

            guess, why = guess_raster_modality(image)
            if guess is None:
                raise BreastReaderError(
                    f"cannot tell the modality of this {image.meta.source_format} file from its content ({why}); "
                    "pass --modality US|MG|MR or a manifest 'modality' column"
                )
            m = guess
    if m not in MODALITIES:
        raise BreastReaderError(f"cannot tell the modality (image says {m!r}); pass --modality US|MG|MR")
    return m


ADDED = ("model", "score", "box_x0", "box_y0", "box_x1", "box_y1", "ood", "ood_flag")
SALIENCY_COLS = ("saliency_x", "saliency_y")


def _unique_stem(stem: str, used: dict[str, int]) -> str:
    n = used.get(stem, 0) + 1
    used[stem] = n
    return stem if n == 1 else f"{stem}_{n}"


#: Most slices of an MR stack scored; a longer stack is sampled evenly (always keeping the middle).
MAX_SCORED_SLICES = 64
#: Smallest side and largest aspect ratio of a plane that is scored (a 17 001 x 1 strip is no
#: image, and resampling it cost 3.5 GB).
MIN_SCORED_SIDE = 16
MAX_SCORED_ASPECT = 20
#: Largest plane handed to a model; a larger one is first resampled (area averaging) to this size.
MAX_SCORED_PIXELS = 25_000_000


def _plane_shape(image: Any) -> tuple[int, int]:
    """``(rows, cols)`` of an image's plane (the last two axes of grey data, before colour)."""
    px = image.pixels
    return (int(px.shape[-3]), int(px.shape[-2])) if getattr(image, "is_rgb", False) else (int(px.shape[-2]), int(px.shape[-1]))


def scoring_view(image: Any, modality: str) -> tuple[Any, str]:
    """The image a model scores, by a stated, bounded rule (returns it and a note, "" if unchanged).

    * Multi-frame colour (ultrasound cine, ``(frames, rows, cols, 3)``) and multi-frame grey
      files that are not MR (multi-page TIFF, multi-frame US/MG): the middle frame.
    * An MR stack: every slice (the score is the maximum over slices), but at most
      :data:`MAX_SCORED_SLICES`, evenly spaced, when the stack is longer.
    * A plane with a side under :data:`MIN_SCORED_SIDE` or an aspect ratio over
      :data:`MAX_SCORED_ASPECT` is refused.
    * A plane above :data:`MAX_SCORED_PIXELS`: area-resampled to that size first (the models
      read 224-512 px inputs; this only bounds memory).
    """
    import numpy as np

    from engine.io.types import LoadedImage

    px = image.pixels
    note = ""
    stack_grey = px.ndim == 3 and not image.is_rgb
    if px.ndim == 4 or (stack_grey and modality != "MR"):
        mid = px.shape[0] // 2
        px, note = px[mid], f"frame {mid + 1} of {px.shape[0]} (middle frame)"
    elif stack_grey and px.shape[0] > MAX_SCORED_SLICES:
        idx = np.unique(np.linspace(0, px.shape[0] - 1, MAX_SCORED_SLICES).round().astype(int))
        mid = px.shape[0] // 2
        if mid not in idx:
            idx[np.argmin(np.abs(idx - mid))] = mid
        px, note = px[idx], f"{len(idx)} of {image.pixels.shape[0]} slices, evenly spaced"
    still_stack = stack_grey and modality == "MR"
    rows, cols = (px.shape[1], px.shape[2]) if still_stack else px.shape[:2]
    if min(rows, cols) < MIN_SCORED_SIDE or max(rows, cols) > MAX_SCORED_ASPECT * min(rows, cols):
        from engine.errors import UnsupportedImageError

        raise UnsupportedImageError(
            image.meta.path, f"a {cols} x {rows} image is too small or too thin to score (needs both sides >= "
            f"{MIN_SCORED_SIDE} px and an aspect ratio <= {MAX_SCORED_ASPECT})"
        )
    if rows * cols > MAX_SCORED_PIXELS:
        import cv2

        f = (MAX_SCORED_PIXELS / (rows * cols)) ** 0.5
        size = (max(1, int(cols * f)), max(1, int(rows * f)))
        if still_stack:
            px = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in px])
        else:
            px = cv2.resize(px, size, interpolation=cv2.INTER_AREA)
        note = (note + "; " if note else "") + f"resampled from {cols}x{rows} to {size[0]}x{size[1]}"
    if px is image.pixels:
        return image, ""
    return LoadedImage(pixels=np.ascontiguousarray(px), meta=image.meta, ids=image.ids), note


def score_rows(rows: list[dict[str, str]], *, modality: str, model: str | None,
               progress: Any = None, saliency_dir: Path | None = None) -> tuple[list[dict[str, str]], list[str]]:
    """Score every row; returns ``([added column values], [error lines])`` in row order."""
    import numpy as np

    from engine.inference import Predictor, load_predictor
    from engine.io.reader import read_image

    predictors: dict[str, Predictor] = {}
    fixed = load_predictor(modality if modality in MODALITIES else "US", model) if model else None
    results: list[dict[str, str]] = []
    errors: list[str] = []
    stems: dict[str, int] = {}
    warnings: list[str] = []
    warned: set[str] = set()
    for n, row in enumerate(rows):
        path = row.get("_abs", row["path"])
        res: dict[str, str] = {}
        try:
            mod_hint = (row.get("modality") or modality or "").upper()
            img = read_image(path, modality_hint=mod_hint if mod_hint in MODALITIES else None)  # type: ignore[arg-type]
            mod = mod_hint if mod_hint in MODALITIES else str(img.meta.modality).upper()
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
            view, _note = scoring_view(img, mod)
            # the decoded plane's grid (rows x cols): boxes and maps are reported in it (issue 12 item 7)
            grid = _plane_shape(img)
            sx = sy = 1.0
            if _note.find("resampled") >= 0 and _plane_shape(view) != grid:
                sy, sx = _plane_shape(view)[0] / grid[0], _plane_shape(view)[1] / grid[1]
                if box is not None:
                    box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
            img = view
            smap = None
            if pred.lesion is not None:
                a = pred.assess(img, box, saliency="attention" if saliency_dir is not None else None)  # type: ignore[arg-type]
                p, used_box, smap = a.score, a.box, a.saliency
                res.update(ood=f"{a.ood:.4f}", ood_flag="1" if a.ood_flag else "0")
            else:
                if saliency_dir is not None:
                    p, smap = pred.analyse(img, box=box)  # type: ignore[arg-type]
                else:
                    p = _score_one(pred, img, str(row.get("modality") or "").upper() or pred.spec.modality, box)
                used_box = box
            if not (math.isfinite(float(p)) and 0.0 <= float(p) <= 1.0):
                raise BreastReaderError(f"the model returned {p!r}, not a probability; the image was not scored")
            res.update(model=pred.name, score=f"{p:.6f}")
            if used_box is not None:
                if (sx, sy) != (1.0, 1.0):  # back to the decoded image's pixels
                    used_box = (used_box[0] / sx, used_box[1] / sy, used_box[2] / sx, used_box[3] / sy)
                res.update({k: f"{float(v):g}" for k, v in zip(("box_x0", "box_y0", "box_x1", "box_y1"), used_box)})
            if saliency_dir is not None and smap is not None:
                sal = np.ascontiguousarray(smap.map, dtype=np.float32)
                if sal.shape[-2:] != grid:  # scored on a resampled view: the map goes back to the decoded grid
                    import cv2

                    sal = np.ascontiguousarray(cv2.resize(sal, (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR),
                                               dtype=np.float32)
                stem = _unique_stem(Path(path).stem if Path(path).suffix else Path(path).name, stems)
                if stem != (Path(path).stem if Path(path).suffix else Path(path).name):
                    print(f"breast-engine score: note: {display_path(path)}: saliency written as {stem}.npy "
                          "(another input has the same stem)", file=sys.stderr)
                np.save(saliency_dir / f"{stem}.npy", sal)
                py, px = np.unravel_index(int(np.argmax(sal)), sal.shape)
                res.update(saliency_x=str(int(px)), saliency_y=str(int(py)))
            spec = getattr(pred, "spec", None)
            if getattr(spec, "synthetic", False) and pred.name not in warned:
                # issue 13: a synthetic-trained model's score on a real image is not validated.
                warned.add(pred.name)
                warnings.append(f"breast-engine score: warning: {pred.name} was trained on SYNTHETIC images only; "
                                "its scores on real scans are not validated (on real DCE-MRI it ranked every "
                                "benign lesion above every malignant one): do not use them as malignancy scores")
        except (BreastReaderError, ValueError, OSError, MemoryError) as exc:
            reason = exc.reason if hasattr(exc, "reason") else str(exc)
            if isinstance(exc, MemoryError):
                reason = "not enough memory to score this image"
            where = display_path(path)
            if isinstance(exc, BreastReaderError) and getattr(exc, "path", None):
                reason = str(getattr(exc, "reason", exc))
            errors.append(f"breast-engine score: {where}: {reason}")
            res = {}
        except Exception as exc:  # noqa: BLE001 - one file never costs the others their scores
            errors.append(f"breast-engine score: {display_path(path)}: internal error while scoring this file "
                          f"({type(exc).__name__}); the other files are scored; please report it")
            res = {}
        results.append(res)
        if progress is not None:
            progress(n + 1, len(rows), Path(path).name)
    for line in warnings:
        print(line, file=sys.stderr)
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
    sal_dir = Path(args.saliency) if args.saliency else None
    if sal_dir is not None:
        try:
            sal_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BreastReaderError(f"{args.saliency}: cannot create the saliency folder ({exc.strerror or exc})") from None
    with tqdm_progress("scoring", disable=not sys.stderr.isatty()) as cb:
        results, errors = score_rows(rows, modality=modality, model=args.model, progress=cb, saliency_dir=sal_dir)
    for line in errors:
        print(line, file=sys.stderr)
    added = list(ADDED) + (list(SALIENCY_COLS) if sal_dir is not None else [])
    out_cols = [c for c in cols if c not in added] + added
    out = Path(args.out)
    from engine.io.atomic import atomic_open

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(out, newline="") as fh:  # temp + fsync + rename: never a 0-byte or half CSV
            w = csv.DictWriter(fh, fieldnames=out_cols, extrasaction="ignore")
            w.writeheader()
            for row, res in zip(rows, results):
                w.writerow({**{c: row.get(c, "") for c in cols}, **{c: res.get(c, "") for c in added}})
    except OSError as exc:
        raise BreastReaderError(f"{out}: cannot write the scores ({exc.strerror or exc})") from None
    ok = sum(1 for r in results if r.get("score"))
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
    p.add_argument("--out", required=True, metavar="CSV", help="output CSV (input columns + model,score,box,ood)")
    p.add_argument("--saliency", metavar="DIR",
                   help="write one float32 <stem>.npy saliency map per input (image pixel grid) and saliency_x,y")
    p.set_defaults(func=_handler)
