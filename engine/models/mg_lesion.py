"""Mammography lesion classifier with an out-of-distribution measure, on a frozen EfficientNet-Lite0.

The classifier is :class:`~engine.models.efficientnet_lite.MultiScaleLiteClassifier` (frozen
ImageNet trunk read at MBConv blocks ``taps`` + the head conv, at ``scales`` of the crop, one
linear head per scale fitted by the ``linear_probe`` recipe). Added here: the **OOD distance** of
the lesion crop from the training crops -- Mahalanobis distance in the top PCA subspace of the
full-scale pooled features plus the scaled PCA residual
(:func:`engine.stats.ood.subspace_distance`; Lee et al. NeurIPS 2018; Hoffmann 2007), stored as
buffers so the weights file carries it. The features are the ones the score is computed from,
so the distance costs nothing extra. Used by :mod:`engine.lesion_mg`.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.models.efficientnet_lite import LITE0_BLOCK_CHANNELS, MultiScaleLiteClassifier
from engine.models.registry import register_model


class LesionMGLite(MultiScaleLiteClassifier):
    """Multi-layer / multi-scale Lite0 readout + OOD buffers (see module docstring)."""

    def __init__(self, *, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, gray: str = "adapt",
                 scales: tuple[float, ...] = (1.0,), taps: tuple[int, ...] = (), cam_block: int = 16,
                 ood_dims: int = 16) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, gray=gray,
                         scales=scales, taps=taps, cam_block=cam_block)
        d = sum(LITE0_BLOCK_CHANNELS[t] for t in self.taps) + 1280
        self.register_buffer("ood_mean", torch.zeros(d))
        self.register_buffer("ood_proj", torch.zeros(ood_dims, d))
        self.register_buffer("ood_basis", torch.zeros(ood_dims, d))
        self.register_buffer("ood_resid_scale", torch.ones(()))

    def set_ood(self, features: np.ndarray) -> None:
        """Fit the OOD measure on training features ``(n, d)`` (full-scale pooled features)."""
        from engine.stats.ood import fit_subspace_distance

        proj: torch.Tensor = self.ood_proj  # type: ignore[assignment]
        basis: torch.Tensor = self.ood_basis  # type: ignore[assignment]
        mean_b: torch.Tensor = self.ood_mean  # type: ignore[assignment]
        scale_b: torch.Tensor = self.ood_resid_scale  # type: ignore[assignment]
        mean, W, P, scale = fit_subspace_distance(np.asarray(features, np.float64), int(proj.shape[0]))
        kk = W.shape[0]
        with torch.no_grad():
            mean_b.copy_(torch.as_tensor(mean))
            proj.zero_()
            basis.zero_()
            proj[:kk] = torch.as_tensor(W)
            basis[:kk] = torch.as_tensor(P)
            scale_b.fill_(float(scale))

    def ood_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """OOD distance ``(B,)`` of full-scale pooled features ``(B, d)``."""
        mean: torch.Tensor = self.ood_mean  # type: ignore[assignment]
        proj: torch.Tensor = self.ood_proj  # type: ignore[assignment]
        basis: torch.Tensor = self.ood_basis  # type: ignore[assignment]
        scale: torch.Tensor = self.ood_resid_scale  # type: ignore[assignment]
        k = int((basis.abs().sum(dim=1) > 0).sum())
        xc = feats.float() - mean
        z2 = (xc @ proj.T).pow(2).sum(dim=1)
        r2 = (xc - (xc @ basis.T) @ basis).pow(2).sum(dim=1)
        return (z2 + max(k, 1) * r2 / scale).sqrt()

    @torch.no_grad()
    def score_and_ood(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Malignancy logit margin ``(B,)`` (mean over scales) and OOD distance ``(B,)`` in one pass."""
        feats = self.scale_features(x)
        logits = torch.stack([head(f) for head, f in zip(self.heads, feats)]).mean(dim=0).float()
        margin = logits[:, self.malignant_index] - (logits[:, 0] if logits.shape[1] > 1 else 0.0)
        return margin, self.ood_from_features(feats[0])


@register_model(
    "mg_lesion_lite0",
    family="mg_lesion",
    paper="Tan & Le, ICML 2019 (EfficientNet-Lite0, packaged ImageNet weights), frozen; multi-layer / multi-scale "
          "linear readout; Mahalanobis OOD distance (Lee et al. 2018)",
    modalities=("MG",),
    task="benign vs malignant of the lesion in a reader's box (softmax, 2 classes) + OOD distance",
    saliency=("gradcam", "cam"),
)
def mg_lesion_lite0(*, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, gray: str = "adapt",
                    scales: tuple[float, ...] = (1.0,), taps: tuple[int, ...] = (), cam_block: int = 16,
                    ood_dims: int = 16) -> LesionMGLite:
    """Frozen Lite0 lesion readout (heads fitted by the linear probe) with an OOD distance."""
    return LesionMGLite(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, gray=gray,
                        scales=tuple(scales), taps=tuple(taps), cam_block=cam_block, ood_dims=ood_dims)
