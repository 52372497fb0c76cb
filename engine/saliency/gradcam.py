"""Grad-CAM (Selvaraju et al., ICCV 2017) through ``pytorch-grad-cam`` (MIT), not rewritten.

The target is the malignancy output of the classifier. When the target layer is the model's
``features_out`` (the default), the trunk runs once without autograd and pytorch-grad-cam is
applied to the head alone with the feature maps as its input: the gradients of the score with
respect to those maps, hence the map, are identical, at the cost of one forward pass.
pytorch-grad-cam's hooks are released in a ``finally`` block (its own ``__exit__`` swallows
IndexError, so it is not used as a context manager).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from engine import _torchvision_shim
from engine.saliency.base import SaliencyMethod


class _HeadOnly(nn.Module):
    """``forward_head`` behind an identity ``tap`` that pytorch-grad-cam hooks."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.tap = nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from feature maps."""
        out: torch.Tensor = self.model.forward_head(self.tap(features))
        return out


class GradCAMSaliency(SaliencyMethod):
    """Grad-CAM of the malignancy output at ``model.saliency_layer``."""

    name = "gradcam"

    def __init__(self, model: nn.Module, layer: str | None = None, head_only: bool = True) -> None:
        super().__init__(model, layer)
        self.head_only = head_only

    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Grad-CAM (at the feature resolution on the fast path, else at the input's)."""
        _torchvision_shim.ensure()
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        model: Any = self.model
        was_training = model.training
        idx = int(getattr(model, "malignant_index", 1))
        if getattr(model, "num_outputs", 2) == 1:
            idx = 0
        fast = self.head_only and self.layer == "features_out" and hasattr(model, "forward_head") and hasattr(model, "forward_features")
        if fast:
            model.eval()
            with torch.no_grad():
                inp = model.forward_features(x).detach()
            net: nn.Module = _HeadOnly(model)
            target = net.get_submodule("tap")
        else:
            inp = x.detach().clone()
            net, target = model, self.target_module()
        inp.requires_grad_(True)  # frozen backbones / the head-only path still give gradients
        cam = GradCAM(model=net, target_layers=[target])
        try:
            with torch.enable_grad():
                out = cam(input_tensor=inp, targets=[ClassifierOutputTarget(idx)])
            outputs = getattr(cam, "outputs", None)
            self.last_logits = outputs.detach() if isinstance(outputs, torch.Tensor) else None
        finally:
            cam.activations_and_grads.release()
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return torch.from_numpy(out[0])
