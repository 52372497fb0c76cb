"""Hijab et al. 2019: VGG16 for breast-ultrasound lesion classification, three ways.

A. Hijab, M. A. Rushdi, M. M. Gomaa, A. Eldeib, "Breast Cancer Classification in Ultrasound
Images using Transfer Learning", ICABME 2019. Three variants of VGG16 (Simonyan & Zisserman 2014):

* ``hijab_vgg16_scratch``: every layer trained from random initialisation (their baseline);
* ``hijab_vgg16_frozen``: ImageNet convolutional features frozen, only the classifier trained
  (the "bottleneck features" transfer model);
* ``hijab_vgg16_finetune``: all convolutional layers frozen except the last block, then
  fine-tuned with SGD (their best model, accuracy 0.97, AUC 0.98 on their data).

The paper's augmentations (rotations by 90/180/270 degrees, width/height shifts, rescaling,
shear, zoom, horizontal flips, nearest fill) are the trainer's one augmentation pipeline,
``[augment] preset = "hijab"`` (:mod:`engine.train.augment`); the optimiser of the fine-tuned
variant is :func:`hijab_sgd`. The classifier head is the Keras transfer-learning top
(flatten -> dense 256 ReLU -> dropout 0.5 -> output) on a 7x7 adaptive pool so any input size works.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from engine.models.common import BreastClassifier, adapt_first_conv, vgg16_features, vgg_init
from engine.models.registry import register_model

PAPER = "Hijab et al., ICABME 2019 (VGG16 transfer learning, breast ultrasound)"
# Index in torchvision's vgg16.features where the last conv block (conv5_1..conv5_3) starts.
_LAST_BLOCK_START = 24


class HijabVGG16(BreastClassifier):
    """VGG16 features (to the last max-pool, 512 maps) + Keras-style dense head."""

    min_input_size = 32

    def __init__(
        self,
        *,
        mode: str,
        num_classes: int = 2,
        in_chans: int = 3,
        pretrained: bool = True,
        gray: str = "adapt",
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        if mode not in ("scratch", "frozen", "finetune"):
            raise ValueError(f"mode must be scratch, frozen or finetune, got {mode!r}")
        feats, init = vgg16_features(pretrained=pretrained and mode != "scratch")
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray=gray)
        self.mode = mode
        if in_chans == 1 and gray == "adapt":
            adapt_first_conv(feats[0], 1)
        self.features = feats
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(512 * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        vgg_init(self.classifier)
        self.output_activation = "sigmoid" if num_classes == 1 else "softmax"
        self.malignant_index = 0 if num_classes == 1 else 1
        if mode == "frozen":
            for p in self.features.parameters():
                p.requires_grad_(False)
        elif mode == "finetune":
            for i, layer in enumerate(self.features):
                for p in layer.parameters():
                    p.requires_grad_(i >= _LAST_BLOCK_START)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.features(x)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """7x7 pool -> flatten -> dense 256 -> dropout -> logits."""
        out: torch.Tensor = self.classifier(self.pool(features))
        return out


def hijab_sgd(model: nn.Module, *, lr: float = 1e-4, momentum: float = 0.9) -> torch.optim.SGD:
    """SGD over the trainable parameters only (Hijab 2019 fine-tunes with SGD)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum)


def _reg(name: str, mode: str, doc: str) -> None:
    def builder(
        *, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, gray: str = "adapt", dropout: float = 0.5
    ) -> HijabVGG16:
        return HijabVGG16(
            mode=mode, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, gray=gray, dropout=dropout
        )

    builder.__doc__ = doc
    builder.__name__ = name
    register_model(name, family="hijab", paper=PAPER, modalities=("US",), task="benign vs malignant (softmax)",
                   saliency=("gradcam",))(builder)


_reg("hijab_vgg16_scratch", "scratch", "VGG16 trained from scratch (Hijab 2019 baseline).")
_reg("hijab_vgg16_frozen", "frozen", "VGG16 ImageNet features frozen, classifier trained (Hijab 2019 transfer).")
_reg("hijab_vgg16_finetune", "finetune", "VGG16 with the last conv block fine-tuned by SGD (Hijab 2019 best).")
