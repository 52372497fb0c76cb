"""The supervised attention map of the MRI model (2019 seed paper, Fig. 4).

The 8 x 11 sigmoid attention ``p_ij`` used for the pooling of Eq. 2 is itself the explanation:
it is resized to the slice (240 x 345) and overlaid.
"""

from __future__ import annotations

import torch

from engine.saliency.base import SaliencyMethod


class AttentionSaliency(SaliencyMethod):
    """Attention map of :class:`engine.models.mri_attention.MRIAttentionNet`."""

    name = "attention"

    def __init__(self, model: torch.nn.Module, layer: str | None = None) -> None:
        super().__init__(model, layer or "attention_out")

    @torch.no_grad()
    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Attention in (0, 1) at the feature resolution."""
        fwd = getattr(self.model, "forward_with_attention", None)
        if not callable(fwd):
            raise ValueError(f"{type(self.model).__name__} has no attention map (use gradcam)")
        logits, att = fwd(x)
        self.last_logits = logits.detach()
        cam: torch.Tensor = att[0, 0]
        return cam
