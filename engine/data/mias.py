"""mini-MIAS mammogram loader.

Source: Suckling J et al. The Mammographic Image Analysis Society digital mammogram database.
Exerpta Medica, International Congress Series 1069, pp. 375–378 (1994). Licence: research use
only, no rent/lease/sale — ``Licence.txt`` must travel with any copy (see :func:`copy_licence`).

``Info.txt`` keeps the original format, one row per abnormality:
``REFNUM BG CLASS [SEVERITY X Y RADIUS]``. Rules implemented here:

* ``NORM`` rows: an image without abnormality (no severity, no coordinates).
* The centre ``(x, y)`` has its origin at the BOTTOM-left corner: ``row = height − y``
  (``1024 − y`` for mini-MIAS), ``col = x``.
* Rows with a severity but no coordinates (e.g. ``mdb216 … *NOTE 3*``) keep the label for the
  image but give no lesion box (``centre`` is None).
* A circle (centre, radius) becomes the box ``[x−r, y−r, x+r, y+r]`` clipped to the image.
* Patients: mini-MIAS numbers the left and right breasts of one woman consecutively
  (mdb001/mdb002, …), so ``patient = (refnum + 1) // 2`` is used to group cross-validation folds.

An et al. 2019's tissue patches of these images come from the one sampler,
:func:`engine.models.an.sample_patches` (annotations as ``(col, row, radius)``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import CaseFormatError

__all__ = [
    "MIAS_CITATION",
    "MiasAbnormality",
    "MiasImage",
    "load_mias",
    "circle_box",
    "copy_licence",
    "lesion_crop",
]

MIAS_CITATION = (
    "Suckling J et al. The Mammographic Image Analysis Society digital mammogram database. "
    "Exerpta Medica, International Congress Series 1069, pp. 375-378 (1994); research use only"
)
MIAS_SIZE = 1024
_CLASSES = {"CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM"}


@dataclass(frozen=True)
class MiasAbnormality:
    """One abnormality row of ``Info.txt``.

    Attributes:
        kind: CALC, CIRC, SPIC, MISC, ARCH or ASYM.
        severity: "B" or "M".
        centre: (row, col) in image pixels (row from the TOP), or None when not given.
        radius: Radius in pixels (None when not given).
    """

    kind: str
    severity: str
    centre: tuple[float, float] | None
    radius: float | None

    @property
    def label(self) -> int:
        """1 malignant, 0 benign."""
        return int(self.severity == "M")


@dataclass(frozen=True)
class MiasImage:
    """One mini-MIAS image with its abnormalities.

    Attributes:
        refnum: e.g. "mdb023".
        path: Image file (PNG/PGM).
        background: F (fatty), G (fatty-glandular) or D (dense-glandular).
        abnormalities: Empty for NORM images.
        patient: Grouping key: left/right breasts of one woman share it.
    """

    refnum: str
    path: Path
    background: str
    abnormalities: tuple[MiasAbnormality, ...]
    patient: str

    @property
    def normal(self) -> bool:
        """True for a NORM image."""
        return not self.abnormalities

    @property
    def label(self) -> int:
        """1 when any abnormality is malignant."""
        return int(any(a.label for a in self.abnormalities))


def load_mias(root: str | Path, *, height: int = MIAS_SIZE) -> list[MiasImage]:
    """Parse ``Info.txt`` of a mini-MIAS folder.

    Args:
        root: Folder with ``Info.txt`` and ``images/`` (``<refnum>.png`` or ``.pgm``).
        height: Image height used to flip y (1024 for mini-MIAS).

    Returns:
        One :class:`MiasImage` per reference number present in ``images/`` (sorted).

    Raises:
        CaseFormatError: missing ``Info.txt`` or a malformed row (with its line number).
    """
    root = Path(root)
    info = root / "Info.txt"
    if not info.is_file():
        raise CaseFormatError(info, "no Info.txt in the mini-MIAS folder")
    rows: dict[str, tuple[str, list[MiasAbnormality]]] = {}
    for ln, line in enumerate(info.read_text(encoding="latin-1").splitlines(), start=1):
        parts = line.split()
        if not parts or not parts[0].startswith("mdb"):
            continue
        if len(parts) < 3 or parts[2] not in _CLASSES:
            raise CaseFormatError(info, f"malformed row {line!r}", row=ln)
        ref, bg, kind = parts[0], parts[1], parts[2]
        entry = rows.setdefault(ref, (bg, []))
        if kind == "NORM":
            continue
        if len(parts) < 4 or parts[3] not in ("B", "M"):
            raise CaseFormatError(info, f"abnormality without severity B/M: {line!r}", row=ln)
        centre: tuple[float, float] | None = None
        radius: float | None = None
        if len(parts) >= 7:
            try:
                x, y, r = float(parts[4]), float(parts[5]), float(parts[6])
            except ValueError:
                pass
            else:
                centre = (height - y, x)  # y is measured from the BOTTOM
                radius = r
        entry[1].append(MiasAbnormality(kind, parts[3], centre, radius))
    out = []
    for ref, (bg, abn) in sorted(rows.items()):
        path = None
        for ext in (".png", ".pgm", ".PNG", ".PGM"):
            p = root / "images" / f"{ref}{ext}"
            if p.is_file():
                path = p.resolve()
                break
        if path is None:
            continue  # rows of images not in this part of the set
        num = int(ref[3:])
        out.append(MiasImage(ref, path, bg, tuple(abn), f"patient{(num + 1) // 2:03d}"))
    return out


def circle_box(
    centre: tuple[float, float], radius: float, shape: tuple[int, int] = (MIAS_SIZE, MIAS_SIZE)
) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1), end-exclusive and clipped, around a (row, col) circle.

    Args:
        centre: (row, col) in top-origin pixels.
        radius: Radius in pixels.
        shape: (rows, cols) of the image for clipping.

    Returns:
        The box in pixels (x = column, y = row).
    """
    r, c = centre
    x0 = int(max(0, np.floor(c - radius)))
    y0 = int(max(0, np.floor(r - radius)))
    x1 = int(min(shape[1], np.ceil(c + radius) + 1))
    y1 = int(min(shape[0], np.ceil(r + radius) + 1))
    return x0, y0, x1, y1


def copy_licence(root: str | Path, dest: str | Path) -> Path:
    """Copy ``Licence.txt`` next to any copy or derivative of the data (licence term).

    Args:
        root: mini-MIAS folder.
        dest: Folder receiving the copy.

    Returns:
        Path of the copied licence.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(Path(root) / "Licence.txt", dest / "MIAS_Licence.txt"))


def lesion_crop(
    image: np.ndarray, box: tuple[int, int, int, int], *, size: int = 128, margin: float = 0.25
) -> np.ndarray:
    """Crop the region inside a reader's box (plus a margin) and resize it to ``size``².

    This is how the mammography lesion model sees a lesion at training and at inference: the
    square around the box, enlarged by ``margin`` of its side on each side (context for the
    margin), zero-padded at the image border.

    Args:
        image: 2-D image.
        box: (x0, y0, x1, y1) end-exclusive.
        size: Output side.
        margin: Fraction of the box side added on each side.

    Returns:
        ``(size, size)`` array of the image's dtype.
    """
    import cv2

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0, 8) * (1 + 2 * margin)
    half = side / 2
    a0, b0 = int(np.floor(cy - half)), int(np.floor(cx - half))
    a1, b1 = int(np.ceil(cy + half)), int(np.ceil(cx + half))
    pad = max(0, -a0, -b0, a1 - image.shape[0], b1 - image.shape[1])
    src = np.pad(image, pad, mode="constant") if pad else image
    crop = src[a0 + pad : a1 + pad, b0 + pad : b1 + pad]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
