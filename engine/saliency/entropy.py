"""An et al. 2019 pixel-wise saliency: ``|dH/dx|`` of the prediction entropy.

On one patch it is the plain entropy gradient; on a larger image the patch classifier is
applied at stride 64 and only positive patches inside the predicted heatmap contribute
(:func:`engine.models.an.pixel_saliency`). Without a heatmap model the aggregated local map
plays that role.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.saliency.base import SaliencyMethod


def _window_centres_in_breast(img: np.ndarray, patch: int, grid: tuple[int, ...]) -> np.ndarray:
    """``grid``-shaped 0/1 array: whether each stride-64 window's centre lies inside the breast."""
    from engine.imaging.breast import breast_mask
    from engine.models.an import MAP_STRIDE

    mask = breast_mask(img)
    rows = np.minimum(np.arange(grid[0]) * MAP_STRIDE + patch // 2, img.shape[0] - 1)
    cols = np.minimum(np.arange(grid[1]) * MAP_STRIDE + patch // 2, img.shape[1] - 1)
    return mask[np.ix_(rows, cols)].astype(np.float32)


class EntropySaliency(SaliencyMethod):
    """Entropy-gradient saliency, optionally masked by a heatmap ``(h, w)``."""

    name = "entropy"

    def __init__(self, model: torch.nn.Module, layer: str | None = None, heatmap: np.ndarray | None = None) -> None:
        super().__init__(model, layer or "input")
        self.heatmap = heatmap

    def target_module(self) -> torch.nn.Module:
        """No hook: the gradient is taken with respect to the input pixels."""
        return self.model

    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Saliency at the input resolution."""
        from engine.models.an import AnPatchClassifier, entropy_gradient, local_map_dense, pixel_saliency

        m = self.model
        patch = getattr(m, "patch", None)
        was = m.training
        m.eval()
        try:
            if isinstance(m, AnPatchClassifier) and patch is not None and max(x.shape[-2:]) > patch:
                img = x[0, 0].detach().cpu().numpy()
                if self.heatmap is not None:
                    heat = self.heatmap
                else:
                    heat = local_map_dense(m, img)
                    # The classifier never saw film background in training and can fire there;
                    # An et al. only read the breast, so windows centred outside it do not count.
                    heat = heat * _window_centres_in_breast(img, patch, heat.shape)
                return torch.from_numpy(pixel_saliency(m, img, heat))
            with torch.enable_grad():
                sal, _ = entropy_gradient(m, x)  # type: ignore[arg-type]
            return sal[0]
        finally:
            m.train(was)
            m.zero_grad(set_to_none=True)
