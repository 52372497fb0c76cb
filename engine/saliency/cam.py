"""Class Activation Mapping (Zhou et al., CVPR 2016), as used by Qi et al. 2019 (Eq. 3).

``CAM_c = sum_n W_cn a_n`` over the last feature maps ``a`` and the classifier weights ``W`` of
class ``c`` (Qi: the more probable class; here by default the malignancy class so the viewer
always shows evidence for malignancy). Needs a model whose head is global pooling followed by a
linear map: ``class_weights()`` (Qi nets) or ``head.fc`` (pooled linear heads). A model whose
linear head reads several layers provides ``forward_with_evidence(x)``: its logits and the same
decomposition summed over its layers and scales, in one pass, used instead.
"""

from __future__ import annotations

import torch

from engine.saliency.base import SaliencyMethod
from engine.saliency.hooks import record


class CAMSaliency(SaliencyMethod):
    """CAM of the malignancy class (``target="predicted"`` for Qi's arg-max class)."""

    name = "cam"

    def __init__(self, model: torch.nn.Module, layer: str | None = None, target: str = "malignant") -> None:
        super().__init__(model, layer)
        self.target = target

    def _weights(self) -> torch.Tensor:
        m = self.model
        fn = getattr(m, "class_weights", None)
        if callable(fn):
            w: torch.Tensor = fn()
            return w
        head = getattr(m, "head", None)
        fc = getattr(head, "fc", None)
        if isinstance(fc, torch.nn.Linear):
            return fc.weight
        raise ValueError(f"CAM needs a pooled linear head; {type(m).__name__} has none (use gradcam)")

    @torch.no_grad()
    def compute_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CAM of a whole batch from one forward pass (maps, logits)."""
        evidence = getattr(self.model, "forward_with_evidence", None)
        if callable(evidence) and self.target == "malignant":
            logits, ev = evidence(x)
            self.last_logits = logits.detach()
            self.layer = "all read layers and scales (exact decomposition of the logit margin)"
            return ev.float(), logits.detach()
        with record(self.target_module()) as rec:
            logits = self.model(x)
        feats = rec.activation
        self.last_logits = logits.detach()
        assert feats is not None
        w = self._weights()
        if self.target == "predicted":
            cls = logits.argmax(1)
        else:
            cls = torch.full((x.shape[0],), int(getattr(self.model, "malignant_index", 1)), dtype=torch.long)
        cls = cls.clamp(max=w.shape[0] - 1).to(w.device)
        return torch.einsum("bc,bchw->bhw", w[cls].float(), feats.float()), logits.detach()

    @torch.no_grad()
    def compute_map(self, x: torch.Tensor) -> torch.Tensor:
        """CAM at the feature resolution (or the model's own exact decomposition, at the input's)."""
        evidence = getattr(self.model, "forward_with_evidence", None)
        if callable(evidence) and self.target == "malignant":
            logits, ev = evidence(x)
            self.last_logits = logits.detach()
            self.layer = "all read layers and scales (exact decomposition of the logit margin)"
            out: torch.Tensor = ev[0]
            return out
        with record(self.target_module()) as rec:
            logits = self.model(x)
        feats = rec.activation
        self.last_logits = logits.detach()
        assert feats is not None
        w = self._weights()
        c = int(logits.argmax(1)[0]) if self.target == "predicted" else int(getattr(self.model, "malignant_index", 1))
        c = min(c, w.shape[0] - 1)
        return torch.einsum("c,chw->hw", w[c].float(), feats[0].float())
