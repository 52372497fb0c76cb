"""Inference: one predictor per weights folder, and case scoring for the CLI and the GUI.

* :mod:`engine.inference.predictor`: :class:`Predictor` (scores + saliency of images, one pass);
* :mod:`engine.inference.case`: :func:`score_case` / :class:`CaseScorer` (a case's images, boxes
  and chosen slices -> every score, the fusion, the advice and the saliency maps) and the
  :class:`Scorer` Protocol the GUI schedules.

Importing this package (or :mod:`engine.inference.case`) does not import torch: the predictor
names below load :mod:`engine.inference.predictor` (and torch) on first use (PEP 562), so the
workstation paints its first image before the model stack is imported (issue 17).
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.inference.predictor import (
        Box,
        ImageItem,
        ImageOutput,
        Predictor,
        Prepared,
        expand_box,
        image_plane,
        is_stack,
        load_predictor,
        pick_device,
        prepare_input,
        to_gray,
        to_unit_range,
    )

_PREDICTOR_NAMES = frozenset({
    "Box", "ImageItem", "ImageOutput", "Predictor", "Prepared", "expand_box",
    "image_plane", "is_stack", "load_predictor", "pick_device", "prepare_input", "to_gray",
    "to_unit_range",
})


_STACK_LOCK = threading.Lock()


def load_stack() -> ModuleType:
    """Import :mod:`engine.inference.predictor` (torch, the models, the saliency) once.

    Thread-safe: two threads importing torch at the same time can see a half-initialised
    module; the workstation imports it in a worker while the window is already up.
    """
    with _STACK_LOCK:
        return importlib.import_module("engine.inference.predictor")


def __getattr__(name: str) -> Any:
    if name in _PREDICTOR_NAMES:
        return getattr(load_stack(), name)
    raise AttributeError(f"module 'engine.inference' has no attribute {name!r}")


__all__ = [
    "load_stack",
    "Box", "ImageItem", "ImageOutput", "Predictor", "Prepared", "expand_box",
    "image_plane", "is_stack", "load_predictor", "pick_device", "prepare_input", "to_gray",
    "to_unit_range",
]
