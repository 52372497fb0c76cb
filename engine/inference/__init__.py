"""Inference: one predictor per weights folder, and case scoring for the CLI and the GUI.

* :mod:`engine.inference.predictor`: :class:`Predictor` (scores + saliency of images, one pass);
* :mod:`engine.inference.case`: :func:`score_case` / :class:`CaseScorer` (a case's images, boxes
  and chosen slices -> every score, the fusion, the advice and the saliency maps) and the
  :class:`Scorer` Protocol the GUI schedules.
"""

from engine.inference.predictor import (
    Box,
    ImageItem,
    ImageOutput,
    Predictor,
    Prepared,
    chest_wall_on_right,
    expand_box,
    image_plane,
    is_stack,
    load_predictor,
    pick_device,
    prepare_input,
    to_gray,
    to_unit_range,
)

__all__ = ["Box", "ImageItem", "ImageOutput", "Predictor", "Prepared", "chest_wall_on_right", "expand_box",
           "image_plane", "is_stack", "load_predictor", "pick_device", "prepare_input", "to_gray", "to_unit_range"]
