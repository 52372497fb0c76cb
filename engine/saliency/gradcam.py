"""Grad-CAM (Selvaraju et al., ICCV 2017) of the malignancy output, batched.

pytorch-grad-cam (MIT) computed one crop at a time at batch 1, with weight gradients and a
backward pass down to the input: about 3x the work needed. Here one forward pass serves the
whole batch (all five crops of a Qi multi-input model, or several images) and gives the score
too; ``torch.autograd.grad`` takes only the gradient at the target layer (parameters detached,
the graph starts at the target layer). The map equals pytorch-grad-cam's
(``tests/engine/test_saliency.py`` checks it against the library). The forward hook is removed
in a ``finally`` block.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from engine.saliency.base import SaliencyMethod


class GradCAMSaliency(SaliencyMethod):
    """Grad-CAM of the malignancy output at ``model.saliency_layer``."""

    name = "gradcam"

    def __init__(self, model: nn.Module, layer: str | None = None, head_only: bool = True) -> None:
        super().__init__(model, layer)
        self.head_only = head_only  # kept for callers; the batched path never backprops below the layer

    def compute_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Grad-CAM of a whole batch in one forward and one partial backward pass.

        Only the gradient of the malignancy logits with respect to the target layer's output is
        computed (``torch.autograd.grad``): parameters are detached for the pass (no weight
        gradients) and nothing before the target layer enters the graph (the backward stops
        there). Per-image maps are ``ReLU(sum_k mean(dy/dA_k) A_k)``, min-max scaled as
        pytorch-grad-cam scales them (Selvaraju et al. 2017, Eq. 1-2).

        Returns:
            ``(maps (B, h, w) at the target layer's resolution, logits (B, K))``.
        """
        model: Any = self.model
        was_training = model.training
        idx = int(getattr(model, "malignant_index", 1))
        if getattr(model, "num_outputs", 2) == 1:
            idx = 0
        target = self.target_module()
        params = [p for p in model.parameters() if p.requires_grad]
        held: dict[str, torch.Tensor] = {}

        def _fwd(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
            a = out.detach().requires_grad_(True)
            held["a"] = a
            return a

        model.eval()
        handle = target.register_forward_hook(_fwd)
        try:
            for p in params:
                p.requires_grad_(False)
            with torch.enable_grad():
                logits = model(x.detach())
                a = held.get("a")
                if a is None:
                    raise ValueError(f"Grad-CAM layer {self.layer!r} was not reached by the forward pass")
                (grads,) = torch.autograd.grad(logits[:, idx].float().sum(), a)
            weights = grads.float().mean(dim=(2, 3), keepdim=True)
            cam = torch.relu((weights * a.detach().float()).sum(dim=1))
            lo = cam.flatten(1).min(dim=1).values.view(-1, 1, 1)
            cam = cam - lo
            cam = cam / (cam.flatten(1).max(dim=1).values.view(-1, 1, 1) + 1e-7)
        finally:
            handle.remove()
            for p in params:
                p.requires_grad_(True)
            model.train(was_training)
        self.last_logits = logits.detach()
        return cam.detach(), logits.detach()

    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Grad-CAM of one input ``(1, C, H, W)`` at the target layer's resolution."""
        return self.compute_maps(x)[0][0]
