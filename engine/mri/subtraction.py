"""Subtraction (post − pre) and maximum intensity projection of DCE volumes.

A subtraction removes the pre-contrast signal so that only enhancement remains; the MIP of a
subtraction shows every enhancing structure of the slab at once. Siemens inline subtractions
store ``max(post − pre + 100, 0)`` (verified on every slice of mimbcd-dev p11):
:func:`subtract` with ``offset=100, clip_negative=True`` reproduces them exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from engine.errors import BreastReaderError

#: Offset Siemens adds to its inline subtractions (syngo MR "SUB" series).
SIEMENS_SUB_OFFSET = 100


class GeometryMismatchError(BreastReaderError):
    """Two volumes cannot be combined voxel by voxel (different grids)."""


def subtract(post: np.ndarray, pre: np.ndarray, *, offset: float = 0.0, clip_negative: bool = False) -> np.ndarray:
    """Voxel-wise ``post − pre + offset``.

    Args:
        post: Post-contrast volume (slices, rows, cols) or slice.
        pre: Pre-contrast volume on the same grid.
        offset: Added to the difference (100 reproduces a Siemens subtraction).
        clip_negative: Clip results below 0 to 0 (what the scanner stores).

    Returns:
        int32 for integer inputs, float32 otherwise.

    Raises:
        GeometryMismatchError: The shapes differ.
    """
    if post.shape != pre.shape:
        raise GeometryMismatchError(f"post-contrast {post.shape} and pre-contrast {pre.shape} volumes differ in shape")
    integer = np.issubdtype(post.dtype, np.integer) and np.issubdtype(pre.dtype, np.integer) and float(offset).is_integer()
    dt = np.int32 if integer else np.float32
    out: np.ndarray = post.astype(dt) - pre.astype(dt)
    if offset:
        out = out + np.asarray(offset, dt)
    if clip_negative:
        np.maximum(out, 0, out=out)
    return out


def same_grid(a_offsets: np.ndarray, b_offsets: np.ndarray, *, tol_mm: float = 0.01) -> bool:
    """Whether two stacks have their slices at the same positions along the normal."""
    return a_offsets.shape == b_offsets.shape and bool(np.all(np.abs(a_offsets - b_offsets) <= tol_mm))


def mip(volume: np.ndarray, axis: Literal["slice", "row", "col"] = "slice") -> np.ndarray:
    """Maximum intensity projection of a (slices, rows, cols) volume.

    Args:
        volume: The volume (typically a subtraction).
        axis: "slice" projects along the slice normal (an axial MIP of an axial volume), "col"
            along the rows' direction (left–right for axial: a sagittal MIP), "row" along the
            columns' direction (anterior–posterior for axial: a coronal MIP).

    Returns:
        The 2-D projection.
    """
    ax = {"slice": 0, "row": 1, "col": 2}[axis]
    return np.asarray(volume.max(axis=ax))
