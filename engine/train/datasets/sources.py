"""Where labelled images come from (image folder + labels CSV, manifest, study folder), decoding, auxiliary labels."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from engine.errors import CaseFormatError, ConfigError, ImageReadError
from engine.io.types import LoadedImage
from engine.train.config import TrainConfig


_RASTER = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff"}
_MAX_LISTED = 5


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        path: Absolute image path.
        label: Class name as written in the source.
        group: Lesion/patient id; images sharing a group never straddle train and test.
        box: Optional (x0, y0, x1, y1) crop in pixels.
        modality: MG/US/MR/OT or "".
        mask: Optional lesion mask image (BUSI layout); with ``data.crop_to_box`` the image
            is cropped to the mask's bounding box.
    """

    path: str
    label: str
    group: str
    box: tuple[float, float, float, float] | None = None
    modality: str = ""
    mask: str | None = None


# ----------------------------------------------------------------------------- decoding
def _to_uint8(a: NDArray[Any]) -> NDArray[np.uint8]:
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def decode_image(path: str, channels: int) -> NDArray[np.uint8]:
    """Decode one image to uint8 (rows, cols) for 1 channel or (rows, cols, 3) RGB.

    Common raster formats are read with OpenCV; DICOM and anything else go through
    :func:`engine.io.reader.read_image` (MR stacks: the middle slice). Intensities follow the
    app's input preparation (:func:`engine.imaging.intensity.to_unit_range`: 8-bit as is, else
    the first DICOM window, else the 0.5-99.5 percentiles), so a model trained here sees 16-bit
    and windowed images as it will at inference, not min-max stretched.

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(path, "file does not exist")
    arr: NDArray[Any] | None = None
    windows = None
    if p.suffix.lower() in _RASTER:
        buf = np.fromfile(str(p), dtype=np.uint8)
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if arr is None:
        try:
            from engine.io.reader import read_image
        except ImportError:  # pragma: no cover - the reader is part of the package
            raise ImageReadError(path, "cannot decode (no reader for this format)") from None
        img = read_image(str(p))
        arr = np.asarray(img.pixels)
        windows = img.meta.windows
        if arr.ndim == 3 and arr.shape[-1] != 3:  # (frames, rows, cols)
            arr = arr[arr.shape[0] // 2]
    if arr.dtype != np.uint8:
        from engine.imaging.intensity import to_unit_range

        arr = np.round(to_unit_range(arr, windows) * 255.0).astype(np.uint8)
    if channels == 1 and arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def read_model_image(path: str) -> LoadedImage:
    """The image as the app reads it (:func:`engine.io.reader.read_image`), for ``spec.transforms()``.

    Raises:
        ImageReadError: the file is missing or cannot be decoded.
    """
    if not Path(path).is_file():
        raise ImageReadError(path, "file does not exist")
    from engine.io.reader import read_image

    return read_image(path)


def _mask_box(path: str, shape: tuple[int, ...]) -> tuple[float, float, float, float] | None:
    """Bounding box (x0, y0, x1, y1) of a mask's non-zero pixels, in image coordinates."""
    from engine.imaging.geometry import mask_box

    m = decode_image(path, 1)
    box = mask_box(m)
    if box is None:
        return None  # empty mask (e.g. a normal image): keep the whole image
    sy, sx = shape[0] / m.shape[0], shape[1] / m.shape[1]
    x0, y0, x1, y1 = box
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


# ------------------------------------------------------------------------------ loaders
def _infer_classes(labels: Sequence[str], configured: Sequence[str], source: str) -> list[str]:
    present = sorted(set(labels))
    if configured:
        classes = list(configured)
        unknown = [lab for lab in present if lab not in classes]
        if unknown:
            raise ConfigError(
                f"{source}: label(s) {', '.join(map(repr, unknown))} are not in data.classes "
                f"({', '.join(classes)}); fix the labels, data.classes or data.ignore_labels"
            )
    elif set(present) <= {"benign", "malignant"}:
        classes = ["benign", "malignant"]
    elif set(present) <= {"0", "1"}:
        classes = ["0", "1"]
    else:
        classes = present
    if len(present) < 2:
        raise ConfigError(
            f"{source}: only one class ({present[0] if present else 'none'!r}) in the labels; "
            "training and AUC need at least two classes (e.g. benign and malignant)"
        )
    return classes


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"labels file {path} does not exist; set data.path / data.labels")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            missing = [c for c in required if c not in fields]
            if missing:
                raise CaseFormatError(
                    path, f"missing column(s) {', '.join(missing)}; found: {', '.join(fields) or 'none'}; "
                    f"the header must include {', '.join(required)}"
                )
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except UnicodeDecodeError:
        raise CaseFormatError(path, "not a UTF-8 text CSV") from None
    if not rows:
        raise CaseFormatError(path, "no rows after the header")
    return rows


def _missing_files(samples: Sequence[Sample], rows: Sequence[int], source: Path) -> None:
    missing = [(r, s.path) for r, s in zip(rows, samples) if not Path(s.path).is_file()]
    if missing:
        shown = "; ".join(f"row {r}: {p}" for r, p in missing[:_MAX_LISTED])
        more = f" (and {len(missing) - _MAX_LISTED} more)" if len(missing) > _MAX_LISTED else ""
        raise CaseFormatError(
            source, f"{len(missing)} of {len(samples)} listed images do not exist: {shown}{more}; "
            "the image column must hold paths relative to the labels file's folder"
        )


def _from_image_folder(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    root = Path(cfg.data.path)
    if not root.is_dir():
        raise ConfigError(f"data.path {root} is not a folder (data.kind = image_folder_csv)")
    csv_path = root / cfg.data.labels
    rows = _read_csv(csv_path, ("image", "label"))
    samples: list[Sample] = []
    line_nos: list[int] = []
    for n, r in enumerate(rows, start=2):
        if not r.get("image") or not r.get("label"):
            raise CaseFormatError(csv_path, "empty image or label", row=n)
        img = (root / r["image"]).resolve()
        mask = str((root / r["mask"]).resolve()) if r.get("mask") else None
        samples.append(Sample(str(img), r["label"], r.get("group") or r["image"], mask=mask))
        line_nos.append(n)
    _missing_files(samples, line_nos, csv_path)
    if cfg.data.crop_to_box:
        masks = [Sample(m.mask, m.label, m.group) for m in samples if m.mask]
        _missing_files(masks, [n for n, m in zip(line_nos, samples) if m.mask], csv_path)
    return samples, csv_path


def _float(v: str, path: Path, row: int, col: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise CaseFormatError(path, f"column {col} must be a number, got {v!r}", row=row) from None


def _from_manifest(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    path = Path(cfg.data.path)
    rows = _read_csv(path, ("path", "modality", "label"))
    samples: list[Sample] = []
    line_nos: list[int] = []
    for n, r in enumerate(rows, start=2):
        if cfg.data.modality and r["modality"].upper() != cfg.data.modality.upper():
            continue
        box = None
        if all(r.get(k) for k in ("x0", "y0", "x1", "y1")):
            x0, y0, x1, y1 = (_float(r[k], path, n, k) for k in ("x0", "y0", "x1", "y1"))
            b = (x0, y0, x1, y1)
            if b[2] <= b[0] or b[3] <= b[1]:
                raise CaseFormatError(path, f"box {b} needs x1 > x0 and y1 > y0", row=n)
            box = b if cfg.data.crop_to_box else None
        p = Path(r["path"]).expanduser()
        p = p if p.is_absolute() else (path.parent / p)
        samples.append(Sample(str(p.resolve()), r["label"], r.get("group") or r["path"], box,
                              r["modality"].upper()))
        line_nos.append(n)
    if not samples:
        raise ConfigError(f"{path}: no rows with modality {cfg.data.modality!r}")
    _missing_files(samples, line_nos, path)
    return samples, path


def _from_study(cfg: TrainConfig) -> tuple[list[Sample], Path]:
    from engine.cases import load_study

    root = Path(cfg.data.path)
    if not root.is_dir():
        raise ConfigError(f"data.path {root} is not a study folder (data.kind = study)")
    study = load_study(root)
    samples: list[Sample] = []
    for case in study.cases:
        if case.truth is None or not case.truth.label:
            continue  # unlabelled cases cannot be trained on
        for im in case.images:
            if cfg.data.modality and (im.modality or "").upper() != cfg.data.modality.upper():
                continue
            samples.append(Sample(str(im.path), case.truth.label, case.case_id, None, im.modality or ""))
    if not samples:
        raise ConfigError(f"{root}: no case with a truth label (and modality {cfg.data.modality or 'any'})")
    _missing_files(samples, list(range(1, len(samples) + 1)), root / "study.json")
    return samples, root


def read_aux_labels(cfg: TrainConfig, samples: Sequence[Sample], source: Path) -> list[int]:
    """The ``data.aux_label`` target of every sample (never invented: a missing value is an error).

    ``"mask_nonempty"``: 1 when the sample's mask image has a non-zero pixel (a lesion is
    outlined), 0 for an empty mask (BUSI ``normal``). This is a *lesion-present* proxy, not a
    solid-nodule label. Any other value names a CSV column (labels CSV or manifest) of 0/1.

    Raises:
        ConfigError: no mask column, unknown column, a value that is not 0/1.
    """
    name = cfg.data.aux_label
    if name == "mask_nonempty":
        out: list[int] = []
        for s in samples:
            if not s.mask:
                raise ConfigError(
                    f"{source}: data.aux_label = 'mask_nonempty' needs a mask column (image_folder_csv); "
                    f"{s.path} has none")
            out.append(int(np.count_nonzero(decode_image(s.mask, 1)) > 0))
        return out
    csv_path = source if source.suffix.lower() == ".csv" else Path(cfg.data.path) / cfg.data.labels
    key = "path" if cfg.data.kind == "manifest" else "image"
    rows = _read_csv(csv_path, (key,))
    if name not in rows[0]:
        raise ConfigError(f"{csv_path}: data.aux_label column {name!r} not found; columns: {', '.join(rows[0])}")
    values: dict[str, str] = {}
    for r in rows:
        p = Path(r[key]).expanduser()
        p = p if p.is_absolute() else csv_path.parent / p
        values[str(p.resolve())] = r[name]
    out = []
    for s in samples:
        v = values.get(s.path, "")
        if v not in ("0", "1"):
            raise ConfigError(f"{csv_path}: column {name!r} must be 0 or 1 for every used row; "
                              f"got {v!r} for {s.path}")
        out.append(int(v))
    return out
