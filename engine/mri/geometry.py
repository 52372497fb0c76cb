"""Patient-coordinate geometry of MR volumes: slice linking, image edge labels, plane.

DICOM patient coordinates (LPS, DICOM PS3.3 C.7.6.2.1.1): +x towards the patient's Left,
+y Posterior, +z Head. A slice's pixel (row r, column c) lies at

    ImagePositionPatient + c * PixelSpacing[1] * row_cosine + r * PixelSpacing[0] * col_cosine

where ImageOrientationPatient = (row_cosine, col_cosine): the row cosine is the direction of
increasing column index (to the right of the displayed image), the column cosine that of
increasing row index (downwards). The slice normal is row_cosine x col_cosine; a slice's
position along it is ImagePositionPatient . normal.

Linking finds, in another volume, the slice whose plane is nearest to a patient point. It works
for different slice spacing and for different orientations (e.g. an axial cursor into a
sagittal MIP), since it only uses patient coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Plane = Literal["axial", "sagittal", "coronal", "oblique"]

#: Letter for the positive direction of each LPS axis, and for the negative one.
_POS = ("L", "P", "H")
_NEG = ("R", "A", "F")


@dataclass(frozen=True)
class VolumeGeometry:
    """Geometry of one sorted slice stack.

    Attributes:
        row_cosine: Direction (LPS) of increasing column index.
        col_cosine: Direction (LPS) of increasing row index.
        positions: (n, 3) ImagePositionPatient of each slice, in stack order.
        pixel_spacing: (row spacing, column spacing) in mm (PixelSpacing order).
        rows: Rows per slice.
        cols: Columns per slice.
        slice_thickness: SliceThickness in mm, or None.
    """

    row_cosine: tuple[float, float, float]
    col_cosine: tuple[float, float, float]
    positions: tuple[tuple[float, float, float], ...]
    pixel_spacing: tuple[float, float]
    rows: int
    cols: int
    slice_thickness: float | None = None

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row_cosine x col_cosine)."""
        n = np.cross(np.asarray(self.row_cosine, float), np.asarray(self.col_cosine, float))
        return n / (np.linalg.norm(n) or 1.0)

    @property
    def offsets(self) -> np.ndarray:
        """Position of each slice along the normal (mm)."""
        offsets: np.ndarray = np.asarray(self.positions, float) @ self.normal
        return offsets

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return len(self.positions)

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between adjacent slices along the normal (mm); None for one slice."""
        off = self.offsets
        if len(off) < 2:
            return None
        return float(np.median(np.abs(np.diff(off))))

    def half_extent(self) -> float:
        """Half the slab each slice stands for: half the spacing, or half the thickness (mm)."""
        sp = self.slice_spacing
        if sp:
            return sp / 2
        return (self.slice_thickness or 1.0) / 2

    def to_patient(self, k: int, row: float, col: float) -> np.ndarray:
        """Patient (LPS, mm) coordinates of pixel (row, col) of slice ``k``."""
        p0 = np.asarray(self.positions[k], float)
        return (p0 + col * self.pixel_spacing[1] * np.asarray(self.row_cosine, float)
                + row * self.pixel_spacing[0] * np.asarray(self.col_cosine, float))

    def centre(self, k: int) -> np.ndarray:
        """Patient coordinates of the centre of slice ``k``."""
        return self.to_patient(k, (self.rows - 1) / 2, (self.cols - 1) / 2)

    def to_voxel(self, point: np.ndarray) -> tuple[int, float, float, float]:
        """The nearest slice to a patient point and the point's pixel coordinates on it.

        Returns:
            (slice index, row, col, distance of the point from that slice's plane in mm).
        """
        p = np.asarray(point, float)
        off = self.offsets
        d = p @ self.normal
        k = int(np.argmin(np.abs(off - d)))
        rel = p - np.asarray(self.positions[k], float)
        col = float(rel @ np.asarray(self.row_cosine, float)) / self.pixel_spacing[1]
        row = float(rel @ np.asarray(self.col_cosine, float)) / self.pixel_spacing[0]
        return k, row, col, float(abs(off[k] - d))


@dataclass(frozen=True)
class SliceLink:
    """Result of :func:`link_slice`.

    Attributes:
        index: Nearest slice of the target volume.
        row: Row of the linked point on that slice.
        col: Column of the linked point on that slice.
        distance_mm: Distance of the point from that slice's plane.
        inside: Whether the point lies within the target's slab (distance within half a slice
            spacing and the in-plane position within the image).
    """

    index: int
    row: float
    col: float
    distance_mm: float
    inside: bool


def link_slice(source: VolumeGeometry, k: int, target: VolumeGeometry,
               point: tuple[float, float] | None = None) -> SliceLink:
    """The slice of ``target`` showing the patient point under ``point`` on slice ``k`` of ``source``.

    Args:
        source: Geometry of the volume the reader is on.
        k: Slice of ``source``.
        target: Geometry of the volume to follow.
        point: (row, col) on the source slice; default its centre.

    Returns:
        The :class:`SliceLink`; ``inside`` is False when the target does not cover the point
        (the index is then the nearest slice, at the slab's edge).
    """
    row, col = point if point is not None else ((source.rows - 1) / 2, (source.cols - 1) / 2)
    p = source.to_patient(k, row, col)
    idx, r, c, dist = target.to_voxel(p)
    tol = target.half_extent() + 1e-3
    in_plane = -0.5 <= r <= target.rows - 0.5 and -0.5 <= c <= target.cols - 0.5
    return SliceLink(idx, r, c, dist, bool(dist <= tol and in_plane))


def plane_of(geom: VolumeGeometry, *, tolerance: float = 0.8) -> Plane:
    """Acquisition plane from the slice normal: its dominant LPS axis (z axial, x sagittal,
    y coronal); "oblique" when no component reaches ``tolerance``."""
    n = np.abs(geom.normal)
    axis = int(np.argmax(n))
    if n[axis] < tolerance:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def direction_label(v: np.ndarray | tuple[float, float, float], *, min_component: float = 0.3) -> str:
    """Letters for an LPS direction, strongest first (e.g. (1,0,0) -> "L", (0,-0.7,0.7) -> "AH")."""
    a = np.asarray(v, float)
    order = np.argsort(-np.abs(a))
    out = ""
    for i in order:
        if abs(a[i]) >= min_component:
            out += _POS[i] if a[i] > 0 else _NEG[i]
    return out or "?"


def edge_labels(geom: VolumeGeometry) -> dict[str, str]:
    """Orientation letters of the four image edges as displayed (row 0 at the top).

    For the usual axial breast MRI (row cosine +x, column cosine +y) the right edge is "L",
    the left "R", the top "A" and the bottom "P"; for a sagittal one (row cosine ±y, column
    cosine −z) the top is "H" and the bottom "F".

    Returns:
        {"left", "right", "top", "bottom"} -> letters.
    """
    r = np.asarray(geom.row_cosine, float)
    c = np.asarray(geom.col_cosine, float)
    return {"right": direction_label(r), "left": direction_label(-r),
            "bottom": direction_label(c), "top": direction_label(-c)}
