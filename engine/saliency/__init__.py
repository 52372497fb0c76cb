"""Saliency maps for the viewer: Grad-CAM, CAM, MRI attention and An's entropy gradient.

``get_saliency(method)(model)(x, out_shape)`` returns a :class:`SaliencyMap` (float map in [0, 1],
method and layer named). Hooks live in :mod:`engine.saliency.hooks` and are always removed.
"""

from __future__ import annotations

from engine.results import SaliencyMap
from engine.saliency.attention import AttentionSaliency
from engine.saliency.base import SaliencyMethod, normalise
from engine.saliency.cam import CAMSaliency
from engine.saliency.entropy import EntropySaliency
from engine.saliency.gradcam import GradCAMSaliency

METHODS: dict[str, type[SaliencyMethod]] = {
    "gradcam": GradCAMSaliency,
    "cam": CAMSaliency,
    "attention": AttentionSaliency,
    "entropy": EntropySaliency,
}


def get_saliency(method: str) -> type[SaliencyMethod]:
    """The saliency class for ``method`` (``gradcam``, ``cam``, ``attention``, ``entropy``)."""
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown saliency method {method!r}; choose from {', '.join(METHODS)}") from None


__all__ = ["METHODS", "SaliencyMap", "SaliencyMethod", "get_saliency", "normalise", "AttentionSaliency",
           "CAMSaliency", "EntropySaliency", "GradCAMSaliency"]
