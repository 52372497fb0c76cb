"""Saliency API for the viewer: one base class, one small result type.

Each method overrides :meth:`SaliencyMethod.compute_map` (a raw map at any resolution for one
network input); :meth:`SaliencyMethod.__call__` upsamples it to the requested pixel grid and
normalises it to [0, 1] (MONAI ``CAMBase`` style). The :class:`engine.inference.Predictor` then
places it in the input image's pixel coordinates (inside the reader's box when one was given).
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.results import SaliencyMap


def normalise(m: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (all-constant maps become zeros)."""
    m = np.nan_to_num(np.asarray(m, np.float32))
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 1e-12:
        return np.zeros_like(m, np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


class SaliencyMethod:
    """Base class: ``compute_map`` (override) + ``__call__`` (upsample, normalise).

    Args:
        model: The classifier (a :class:`engine.models.common.BreastClassifier`).
        layer: Module name to attach to; default ``model.saliency_layer``.
    """

    name = "base"

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        self.model = model
        self.layer: str = layer or str(getattr(model, "saliency_layer", "features_out"))
        # Logits of the pass that produced the last map (lets a caller get the score for free).
        self.last_logits: torch.Tensor | None = None
        # The last map before normalisation, at the output size: lets a caller combine maps of
        # several crops on one scale (five-crop models) instead of stretching each to [0, 1].
        self.last_raw: np.ndarray | None = None

    def target_module(self) -> nn.Module:
        """The hooked module."""
        return self.model.get_submodule(self.layer)

    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Raw map ``(h, w)`` for one input ``(1, C, H, W)`` (any resolution, any range)."""
        raise NotImplementedError

    def compute_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw maps ``(B, h, w)`` and the logits ``(B, K)`` of the same pass, for a batch.

        The default loops :meth:`compute_map` over the batch; methods that can share one pass
        over the whole batch (Grad-CAM, CAM) override it.
        """
        maps, logits = [], []
        for i in range(x.shape[0]):
            maps.append(self.compute_map(x[i:i + 1]).detach().float())
            if self.last_logits is not None:
                logits.append(self.last_logits.float())
        lg = torch.cat(logits) if len(logits) == x.shape[0] else None
        return torch.stack(maps), lg

    def __call__(self, x: torch.Tensor, out_shape: tuple[int, int] | None = None) -> SaliencyMap:
        """Map for ``x`` resized to ``out_shape`` (default: the input's size), in [0, 1]."""
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError("saliency expects one input of shape (1, C, H, W)")
        raw = self.compute_map(x).detach().float()
        size = out_shape or (int(x.shape[-2]), int(x.shape[-1]))
        up = F.interpolate(raw[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        self.last_raw = up.cpu().numpy()
        return SaliencyMap(normalise(self.last_raw), self.name, self.layer)
