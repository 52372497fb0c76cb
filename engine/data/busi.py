"""BUSI breast-ultrasound data set loader.

Source: Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images.
Data in Brief 28:104863 (2020), doi:10.1016/j.dib.2019.104863 — licence CC BY 4.0 (cite it
wherever the images or a model trained on them appear).

Layout expected (as in ``shared/data/busi-dev``): ``labels.csv`` with columns
``image, mask, label, original_width, original_height``; ``label`` is ``benign``,
``malignant`` or ``normal``; masks are binary PNGs (several masks of one image already merged).

Decisions documented here (and in the model cards):

* ``normal`` images are EXCLUDED from the malignancy task by default
  (``include_normal=False``): the task is "benign vs malignant of a lesion the reader has
  found"; a normal image has no lesion, so labelling it "benign" would teach the model to
  call *lesion absent* benign and inflate the AUC with easy negatives.
  ``include_normal=True`` keeps them with label 0 for users who want a "suspicious vs not" task.
* Grouping: BUSI publishes no patient identifiers (several images come from one patient). The
  image is therefore used as the lesion unit and each image is its own group; cross-validated
  figures can be optimistic when two images of the same lesion fall in different folds. This is
  a known limitation of every BUSI benchmark, stated in the results and cards.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import CaseFormatError, ImageReadError
from engine.imaging.geometry import mask_box  # the one mask box (re-exported: BUSI masks)

__all__ = ["BusiRecord", "load_busi", "read_gray", "mask_box", "load_busi_arrays", "BUSI_CITATION"]

BUSI_CITATION = (
    "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
    "Data in Brief 28:104863 (2020), doi:10.1016/j.dib.2019.104863 (CC BY 4.0)"
)

_LABELS = {"benign": 0, "malignant": 1, "normal": 0}


@dataclass(frozen=True)
class BusiRecord:
    """One BUSI image.

    Attributes:
        image_id: File stem, e.g. ``"benign_12"``.
        image: Absolute path of the image PNG.
        mask: Absolute path of the mask PNG (None when absent).
        label_name: ``"benign"``, ``"malignant"`` or ``"normal"``.
        label: 1 malignant, 0 otherwise.
        group: Grouping key for cross-validation (the image itself: no patient ids in BUSI).
        original_size: (width, height) before the data set's resize.
    """

    image_id: str
    image: Path
    mask: Path | None
    label_name: str
    label: int
    group: str
    original_size: tuple[int, int]


def load_busi(root: str | Path, *, include_normal: bool = False) -> list[BusiRecord]:
    """Read ``labels.csv`` of a BUSI folder.

    Args:
        root: Folder holding ``labels.csv``, ``images/`` and ``masks/``.
        include_normal: Keep ``normal`` images as negatives (default: excluded, see module doc).

    Returns:
        Records sorted by ``image_id``.

    Raises:
        CaseFormatError: missing ``labels.csv``, unknown label, missing image (with the row).
    """
    root = Path(root)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise CaseFormatError(csv_path, "no labels.csv in the BUSI folder")
    out: list[BusiRecord] = []
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"image", "mask", "label"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise CaseFormatError(csv_path, f"labels.csv needs columns {sorted(need)}")
        for i, row in enumerate(reader, start=2):
            name = row["label"].strip().lower()
            if name not in _LABELS:
                raise CaseFormatError(csv_path, f"unknown label {row['label']!r}", row=i)
            if name == "normal" and not include_normal:
                continue
            img = (root / row["image"]).resolve()
            if not img.is_file():
                raise CaseFormatError(csv_path, f"image {row['image']!r} not found", row=i)
            mask = (root / row["mask"]).resolve() if row.get("mask") else None
            if mask is not None and not mask.is_file():
                mask = None
            try:
                size = (int(row.get("original_width") or 0), int(row.get("original_height") or 0))
            except ValueError:
                size = (0, 0)
            stem = img.stem
            out.append(BusiRecord(stem, img, mask, name, _LABELS[name], stem, size))
    out.sort(key=lambda r: r.image_id)
    return out


def read_gray(path: str | Path) -> np.ndarray:
    """Read an 8-bit image as a 2-D uint8 array (colour converted to luminance).

    Raises:
        ImageReadError: unreadable file.
    """
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise ImageReadError(str(path), "OpenCV could not decode the file")
    return arr


def load_busi_arrays(
    records: list[BusiRecord], *, size: int = 256, cache: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode and resize every image to ``size``×``size`` (whole image, aspect not kept).

    The whole B-mode image is used, as in Hijab et al. 2019 and Qi et al. 2019 (no lesion crop:
    the model must work on what the reader sees). Results are cached in an ``.npz`` when
    ``cache`` is given (decoding PNGs dominates an epoch on a small CPU otherwise).

    Args:
        records: From :func:`load_busi`.
        size: Output side.
        cache: Optional ``.npz`` path (reused when its ids and size match).

    Returns:
        ``(images uint8 (n, size, size), masks uint8 (n, size, size), labels int64 (n,))``.
    """
    import cv2

    ids = np.array([r.image_id for r in records])
    if cache is not None and Path(cache).is_file():
        data = np.load(cache)
        if data["images"].shape[1:] == (size, size) and np.array_equal(data["ids"], ids):
            return data["images"], data["masks"], data["labels"]
    imgs = np.zeros((len(records), size, size), np.uint8)
    masks = np.zeros((len(records), size, size), np.uint8)
    for i, r in enumerate(records):
        im = read_gray(r.image)
        imgs[i] = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        if r.mask is not None:
            m = read_gray(r.mask)
            masks[i] = (cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST) > 127).astype(np.uint8)
    labels = np.array([r.label for r in records], np.int64)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, images=imgs, masks=masks, labels=labels, ids=ids)
    return imgs, masks, labels
