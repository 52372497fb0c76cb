"""Grad-CAM (Selvaraju et al., ICCV 2017) through ``pytorch-grad-cam`` (MIT), not rewritten.

The target is the malignancy output of the classifier. pytorch-grad-cam's hooks are released in a
``finally`` block (its own ``__exit__`` swallows IndexError, so it is not used as a context manager).
"""

from __future__ import annotations

import torch

from engine import _torchvision_shim
from engine.saliency.base import SaliencyMethod


class GradCAMSaliency(SaliencyMethod):
    """Grad-CAM of the malignancy output at ``model.saliency_layer``."""

    name = "gradcam"

    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """Grad-CAM at the input's resolution."""
        _torchvision_shim.ensure()
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        was_training = self.model.training
        idx = int(getattr(self.model, "malignant_index", 1))
        if getattr(self.model, "num_outputs", 2) == 1:
            idx = 0
        cam = GradCAM(model=self.model, target_layers=[self.target_module()])
        try:
            inp = x.detach().clone().requires_grad_(True)  # frozen backbones still give gradients
            with torch.enable_grad():
                out = cam(input_tensor=inp, targets=[ClassifierOutputTarget(idx)])
            outputs = getattr(cam, "outputs", None)
            self.last_logits = outputs.detach() if isinstance(outputs, torch.Tensor) else None
        finally:
            cam.activations_and_grads.release()
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)
        return torch.from_numpy(out[0])
