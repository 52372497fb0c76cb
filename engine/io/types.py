"""Plain data types for decoded images. Patient identifiers are kept apart from display metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Modality = Literal["MG", "US", "MR", "OT"]


@dataclass(frozen=True)
class Identifiers:
    """DICOM identifiers. They are PHI: never exported unless explicitly requested."""

    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    accession: str | None = None


@dataclass
class ImageMeta:
    """Display/analysis metadata of one decoded image (no PHI).

    Attributes:
        path: Source file (first file of a series).
        modality: MG, US, MR or OT (unknown / secondary capture).
        source_format: DICOM, PNG, JPEG, TIFF, PGM, PPM, BMP.
        laterality: "L", "R" or None.
        view: "CC", "MLO", ... or None.
        photometric: Photometric interpretation of the *decoded* array's source
            (MONOCHROME1 is already inverted to MONOCHROME2 in ``pixels``; the original is kept here).
        pixel_spacing: (row, col) in mm, or None when unknown.
        windows: DICOM (center, width) pairs after the Modality LUT, first is the default.
        presentation_intent: "FOR PRESENTATION", "FOR PROCESSING" or None.
        bits_stored: Bits per sample of the source.
        slice_positions: For MR stacks, the position along the slice normal of each frame (mm).
        extra: Other non-PHI tags of interest (manufacturer, body part, series description...).
    """

    path: str
    modality: Modality = "OT"
    source_format: str = "PNG"
    laterality: str | None = None
    view: str | None = None
    photometric: str = "MONOCHROME2"
    pixel_spacing: tuple[float, float] | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    presentation_intent: str | None = None
    bits_stored: int = 8
    slice_positions: list[float] | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedImage:
    """A decoded image: ``pixels`` is (rows, cols), (frames, rows, cols) or (rows, cols, 3).

    Multi-frame colour (ultrasound cine, colour Doppler) is (frames, rows, cols, 3).
    """

    pixels: np.ndarray
    meta: ImageMeta
    ids: Identifiers = field(default_factory=Identifiers)

    @property
    def shape(self) -> tuple[int, ...]:
        """The decoded array's shape."""
        return tuple(int(s) for s in self.pixels.shape)

    @property
    def is_rgb(self) -> bool:
        """Whether the last axis holds RGB samples."""
        if self.pixels.ndim == 4:
            return bool(self.pixels.shape[-1] == 3)
        return self.pixels.ndim == 3 and self.pixels.shape[-1] == 3 and self.meta.modality != "MR"
