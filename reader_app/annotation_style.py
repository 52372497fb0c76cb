"""How reader regions, dataset truth and AI suggestions look, and freehand thinning (Qt-free).

Shared by the image view's items (``reader_app.qt_view_items``) and the BI-RADS report form.
"""

from __future__ import annotations

import numpy as np

from engine.cases import Annotation

LESION_COLOURS = ["#ffd400", "#00e5ff", "#ff4fd8", "#7CFC00", "#ff8c00", "#b388ff"]
FREEHAND_MAX_POINTS = 96


TRUTH_COLOUR = "#9aa0a6"


SUGGESTION_COLOUR = "#00e5ff"
SUGGESTION_LABEL = "AI suggestion"


def is_truth(a: Annotation) -> bool:
    """Whether an annotation is dataset/generator truth (:attr:`Annotation.is_truth`: one rule
    for the views, the report and the AI's lesion boxes)."""
    return a.is_truth


def lesion_colour(lesion_id: str) -> str:
    """A stable colour per lesion id (same lesion, same colour in every view)."""
    digits = "".join(c for c in lesion_id if c.isdigit())
    idx = (int(digits) - 1) if digits else sum(map(ord, lesion_id))
    return LESION_COLOURS[idx % len(LESION_COLOURS)]


def simplify(points: list[list[float]], max_points: int = FREEHAND_MAX_POINTS) -> list[list[float]]:
    """Thin a freehand trace to at most ``max_points`` vertices (Douglas-Peucker, then stride)."""
    import cv2

    if len(points) <= 3:
        return points
    arr = np.asarray(points, np.float32).reshape(-1, 1, 2)
    eps = 0.5
    out: np.ndarray = arr
    while True:
        out = cv2.approxPolyDP(arr, eps, True)
        if len(out) <= max_points:
            break
        eps *= 1.6
    res = out.reshape(-1, 2).tolist()
    return res if len(res) >= 3 else points[:: max(1, len(points) // 3)][:3]
