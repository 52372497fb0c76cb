"""Lesion-centred mammography scoring: clean film, score the reader's box, calibrate, OOD.

Used for weights whose ``spec.extra["pipeline"]`` is ``"mg_lesion"`` (architecture
``mg_lesion_lite0``, :mod:`engine.models.mg_lesion`). For one mammogram and the reader's box:

1. ``spec.transforms()``: with ``preprocess.clean = "film"`` burned-in film labels, markers and
   film-edge strips are masked (:func:`engine.imaging.breast.clean_film`); the box + context
   margin is cropped, the chest wall turned left, resized;
2. the frozen Lite0 readout gives the malignancy logit margin and, from the same features, the
   OOD distance from the training crops;
3. the probability is calibrated by the Platt parameters fitted out of fold
   (``spec.extra["platt"]``); the OOD distance comes with its warning threshold
   (``spec.extra["ood_threshold"]``, a percentile of held-out dev crops' distances).

It returns the same :class:`engine.lesion_us.LesionAssessment` as the ultrasound pipeline, so the
CLI (``score``: ``ood``/``ood_flag`` columns) and the AI panel treat both alike. Without a box it
refuses (the model does not find lesions). Research decision support, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from engine.errors import BoxRequiredError
from engine.io.types import LoadedImage
from engine.lesion_us import Box, LesionAssessment
from engine.results import SaliencyMap

SaliencyFn = Callable[[Any, Box, str, Any], SaliencyMap]


def is_mg_lesion_pipeline(spec: Any) -> bool:
    """Whether weights use this pipeline (``spec.extra["pipeline"] == "mg_lesion"``)."""
    return bool(getattr(spec, "extra", {}).get("pipeline") == "mg_lesion")


class LesionMGScorer:
    """The MG lesion pipeline around a loaded ``mg_lesion_lite0`` model and its spec.

    Args:
        model: The loaded model (``score_and_ood``).
        spec: Its :class:`~engine.models.weights.WeightsSpec`.
        device: Torch device.
        saliency_fn: ``(image, box, method) -> SaliencyMap`` for overlays (the predictor's
            plain Grad-CAM / CAM path on the same prepared crop).
    """

    def __init__(self, model: Any, spec: Any, device: torch.device, saliency_fn: SaliencyFn | None = None) -> None:
        self.model = model
        self.spec = spec
        self.device = device
        self.transform = spec.transforms()
        ex = spec.extra
        platt = ex.get("platt") or [1.0, 0.0]
        self.platt = (float(platt[0]), float(platt[1]))
        self.ood_threshold = float(ex.get("ood_threshold", float("inf")))
        self.saliency_fn = saliency_fn

    @torch.no_grad()
    def assess(self, image: LoadedImage | np.ndarray, box: Box | None = None, *,
               saliency: str | None = None) -> LesionAssessment:
        """Calibrated score, raw score and OOD distance of the lesion in ``box``.

        Raises:
            BoxRequiredError: no box (this model scores a reader's box; it does not find lesions).
        """
        from engine.stats.calibration import apply_platt

        if box is None:
            raise BoxRequiredError(
                f"model {self.spec.name} scores the lesion inside a reader's box; draw a box or give "
                "x0,y0,x1,y1 (pixels) in the manifest"
            )
        p = self.transform(image, box=box, modality="MG")
        x = p.tensor if p.tensor.ndim == 4 else p.tensor[None]
        margin, ood = self.model.score_and_ood(x.to(self.device))
        z = float(margin.float().mean())
        raw = float(1.0 / (1.0 + np.exp(-z)))
        cal = float(apply_platt(np.array([z]), *self.platt, from_probability=False)[0])
        sal = None
        if saliency is not None and self.saliency_fn is not None:
            sal = self.saliency_fn(image, box, saliency, p)  # the input just scored: prepared once
        lb = tuple(int(round(v)) for v in box)
        return LesionAssessment(cal, raw, (lb[0], lb[1], lb[2], lb[3]), "reader", p.region, [],
                                float(ood.float().mean()), self.ood_threshold, sal)


__all__ = ["LesionMGScorer", "is_mg_lesion_pipeline"]
