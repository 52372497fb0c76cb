"""What an image view needs to show an image, prepared off the GUI thread (Qt-free).

Opening a case used to do all of it on the GUI thread while the views were built: window
presets (percentiles over the image), the breast box that crop-to-breast fitting uses, the
area-averaged pyramid levels a zoomed-out view shows, and the hanging protocol's chest-wall
tests. The case-load worker calls :func:`prepare_case` (hanging + :func:`prepare_display` of
every image) instead; the view
takes the result as it is, and a view given none (reading session, prior comparison) computes
the same values itself with the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from engine.cases import Case
from engine.imaging.breast import breast_view_box
from engine.io.types import LoadedImage
from reader_app.imaging import Slot, hanging_protocol, window_presets

#: Pyramid levels stop where the reduced plane's shorter side would drop under this (the view's own rule).
MIN_LEVEL_SIDE = 64


@dataclass
class DisplayPrep:
    """Display-ready values of one image (see :func:`prepare_display`).

    Attributes:
        presets: the named windows of :func:`reader_app.imaging.window_presets`.
        breast_box: (x0, y0, x1, y1) of the breast for crop-to-breast fitting (2-D mammograms), else None.
        levels: the displayed plane reduced by factor 2, 4, 8, ... (block means, within one
            grey level of :func:`area_level`; 2-D images only, a stack's slices are reduced when shown).
    """

    presets: list[tuple[str, tuple[float, float]]]
    breast_box: tuple[int, int, int, int] | None = None
    levels: dict[int, np.ndarray] = field(default_factory=dict)


def is_stack(img: LoadedImage) -> bool:
    """A stack of slices (MR series or multi-frame), not an RGB picture."""
    p = img.pixels
    return p.ndim == 3 and (img.meta.modality == "MR" or p.shape[-1] != 3)


def display_plane(img: LoadedImage, frame: int = 0) -> np.ndarray:
    """The 2-D (or RGB) array a view shows: slice ``frame`` of a stack; one channel of grey stored as RGB."""
    p = img.pixels
    if is_stack(img):
        return p[frame, ...]  # (the ellipsis types the slice as an array)
    if p.ndim == 3 and p.shape[-1] == 3:
        s = p[:: max(1, p.shape[0] // 64), :: max(1, p.shape[1] // 64)]
        if np.array_equal(s[..., 0], s[..., 1]) and np.array_equal(s[..., 0], s[..., 2]):
            return p[..., 0]  # grey stored as RGB: show one channel so invert/LUT work
    return p


def _level_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a level is kept in: the plane's own, float32 where OpenCV cannot resize it."""
    return np.dtype(np.float32) if dtype in (np.uint32, np.int64) else dtype


def area_level(p: np.ndarray, f: int) -> np.ndarray:
    """``p`` reduced by ``f``: the mean of each f x f block (``cv2.INTER_AREA`` at an integer
    scale; the last rows/columns that do not fill a block are left out)."""
    import cv2

    h, w = p.shape[:2]
    hh, ww = max(1, h // f), max(1, w // f)
    src = p[: hh * f, : ww * f] if h >= f and w >= f else p
    src = src.astype(_level_dtype(src.dtype), copy=False)
    out: np.ndarray = cv2.resize(np.ascontiguousarray(src), (ww, hh), interpolation=cv2.INTER_AREA)
    return out


def level_factors(width: int, height: int) -> list[int]:
    """Every reduction factor a view may ask for: 2, 4, ... while the shorter side stays >= MIN_LEVEL_SIDE."""
    out: list[int] = []
    f = 2
    while min(width, height) // f >= MIN_LEVEL_SIDE:
        out.append(f)
        f *= 2
    return out


def prepare_display(img: LoadedImage, modality: str | None = None, *, levels: bool = True) -> DisplayPrep:
    """Presets, breast box and pyramid levels of ``img``, as the view would compute them.

    Args:
        img: the decoded image.
        modality: the slot's modality (the breast box is for "MG"); the image's own when None.
        levels: also build the pyramid levels (2-D images only).

    Returns:
        The :class:`DisplayPrep`; the view uses its values instead of computing them.
    """
    prep = DisplayPrep(presets=window_presets(img))
    plane = display_plane(img)
    if (modality or img.meta.modality) == "MG" and plane.ndim == 2 and not is_stack(img):
        prep.breast_box = breast_view_box(plane)
    if levels and not is_stack(img):
        h, w = plane.shape[:2]
        # each level's block means from the one above, in float (one reduction's work in all,
        # not one per level), then rounded to the plane's dtype: within one grey level of area_level
        dtype = _level_dtype(plane.dtype)
        acc = plane.astype(np.float32)
        for f in level_factors(w, h):
            acc = area_level(acc, 2)
            prep.levels[f] = (np.rint(acc) if dtype.kind in "iu" else acc).astype(dtype)
    return prep


class LoadedCase(NamedTuple):
    """A case load's result, everything the GUI thread needs made in the worker."""

    case_id: str
    images: dict[str, LoadedImage]
    errors: dict[str, str]
    slots: list[Slot]  # the hanging (its chest-wall tests run on the pixels)
    displays: dict[str, DisplayPrep]  # per image: presets, breast box, pyramid levels


def prepare_case(case: Case, images: dict[str, LoadedImage], errors: dict[str, str], cancel: Any = None) -> LoadedCase:
    """A case load's hanging and each image's display values, for a load worker to call.

    Images that failed still get a slot (the view shows the reason).
    """
    from engine.progress import check

    slots = hanging_protocol(case, images)
    for ci in case.images:  # images that failed still get a slot with the reason
        if ci.image_id in errors and all(s.image_id != ci.image_id for s in slots):
            slots.append(Slot(ci.image_id, f"{ci.modality} {ci.view or ''}", ci.modality))
    displays: dict[str, DisplayPrep] = {}
    for s in slots:
        check(cancel)
        if s.image_id in images:
            displays[s.image_id] = prepare_display(images[s.image_id], s.modality)
    return LoadedCase(case.case_id, images, errors, slots, displays)


__all__ = ["DisplayPrep", "LoadedCase", "area_level", "display_plane", "is_stack", "level_factors", "prepare_case",
           "prepare_display"]
