"""What a model says about an image, as plain data: numpy and dataclasses, no torch.

The workstation receives these from the model process (:mod:`engine.inference.process`) and
shows them without importing torch; the engine's saliency methods and lesion pipelines make
them (:mod:`engine.saliency`, :mod:`engine.lesion_us`, :mod:`engine.lesion_mg`). One definition
serves both sides of the pipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SaliencyMap:
    """A float map in image pixel coordinates.

    Attributes:
        map: ``(rows, cols)`` float32 in [0, 1].
        method: ``"gradcam"``, ``"cam"``, ``"attention"`` or ``"entropy"``.
        layer: The module (or quantity) the map was taken from.
        model: Registry / weights name of the model.
        box: ``(x0, y0, x1, y1)`` the map was computed in, or None for the whole image.
        extra: Method-specific details (target class, ...).
    """

    map: np.ndarray
    method: str
    layer: str
    model: str = ""
    box: tuple[int, int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return int(self.map.shape[0]), int(self.map.shape[1])


@dataclass
class LesionAssessment:
    """Everything the lesion pipeline says about one image (input-image pixel coordinates).

    Attributes:
        score: Calibrated probability of malignancy (Platt, fitted out of fold).
        raw_score: The probability before calibration (lesion crop, averaged in logit space with
            the whole-image context model when the spec names one).
        box: The lesion box used ``(x0, y0, x1, y1)``.
        box_source: ``"reader"`` or ``"finder"``.
        region: The crop scored (box + context margin).
        contour: The finder's outline ``[[x, y], ...]`` (empty when the reader's box was used).
        ood: Mahalanobis distance from the training images.
        ood_threshold: Distances above it are flagged as unlike the training images.
        saliency: The map (when asked for), in the image's pixel grid.
    """

    score: float
    raw_score: float
    box: tuple[int, int, int, int]
    box_source: str
    region: tuple[int, int, int, int]
    contour: list[list[int]] = field(default_factory=list)
    ood: float = float("nan")
    ood_threshold: float = float("inf")
    saliency: SaliencyMap | None = None

    @property
    def ood_flag(self) -> bool:
        """Whether the input looks unlike the training images (never hides the score)."""
        return bool(self.ood > self.ood_threshold)


__all__ = ["LesionAssessment", "SaliencyMap"]
