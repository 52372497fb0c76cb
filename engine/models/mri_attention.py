"""Supervised-attention ResNet-50 for breast MRI lesion characterisation (JFR 2018 challenge).

"Detection of MRI breast lesions using deep learning" (2019 seed paper): ResNet-50 without its
last two layers gives a 2048 x 8 x 11 map for a 240 x 345 slice (gray copied to 3 channels);
a 1x1 convolution + sigmoid predicts an attention map trained against the lesion bounding-box
mask down-sampled to the feature grid; features are pooled with the attention weights (Eq. 2)
``x_k = sum_ij p_ij f_kij / sum_ij p_ij``; one dense layer gives five sigmoid outputs:
malignancy, mammary gland (normal tissue), other benign lesion, IDC, other malignant lesion.
The attention map, resized to the slice, is the model's explanation (Fig. 4).

The trunk is selectable (``backbone``: ``"resnet50"`` — the paper — or the smaller
``"resnet18"`` / ``"resnet34"``, whose last stage has 512 channels instead of 2048); the
attention 1x1 convolution, Eq. 2 pooling and the five outputs are the same for every trunk.
``mri_attention_resnet18`` is registered for smaller shipped weights (the paper uses ResNet-50).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.models.common import BreastClassifier, adapt_first_conv, torchvision_backbone
from engine.models.registry import register_model

PAPER = "MRI supervised attention (ResNet-50 + 1x1-conv attention, Eq. 2), JFR 2018 challenge, 2019"
MRI_OUTPUTS = ("malignant", "mammary_gland", "other_benign", "idc", "other_malignant")
MRI_INPUT_SIZE = (240, 345)
PAPER_R18 = PAPER + "; ResNet-18 backbone variant (smaller shipped weights); the paper uses ResNet-50"

#: Supported trunks -> (torchvision constructor, weights enum, channels of the last stage).
MRI_BACKBONES: dict[str, tuple[str, str, int]] = {
    "resnet18": ("resnet18", "ResNet18_Weights", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", 2048),
}


def mri_backbone(backbone: str, *, pretrained: bool = True) -> tuple[Any, str, int]:
    """Torchvision ResNet trunk for :class:`MRIAttentionNet`; ImageNet weights only from the local cache.

    Args:
        backbone: A key of :data:`MRI_BACKBONES`.
        pretrained: Load the local torchvision ImageNet checkpoint if present (never downloaded).

    Returns:
        ``(resnet, init_description, channels of layer4)``.

    Raises:
        ValueError: Unknown backbone.
    """
    if backbone not in MRI_BACKBONES:
        raise ValueError(f"unknown MRI backbone {backbone!r}; choose one of {', '.join(sorted(MRI_BACKBONES))}")
    fn_name, enum_name, channels = MRI_BACKBONES[backbone]
    if backbone == "resnet50":
        r, init = torchvision_backbone("resnet50", pretrained=pretrained)
        return r, init, channels
    import torchvision.models as tvm

    r = getattr(tvm, fn_name)(weights=None)
    if not pretrained:
        return r, "random (from scratch)", channels
    ckdir = Path(torch.hub.get_dir()) / "checkpoints"
    for w in getattr(tvm, enum_name):
        f = ckdir / Path(w.url).name
        if f.is_file():
            r.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
            return r, f"ImageNet (torchvision {f.name}, local cache)", channels
    from engine.models.common import missing_imagenet

    raise missing_imagenet(backbone, enum_name)


class MRIAttentionNet(BreastClassifier):
    """ResNet trunk (ResNet-50 in the paper) + supervised attention + Eq. 2 pooling + 5 sigmoid outputs."""

    output_activation = "sigmoid"
    malignant_index = 0
    saliency_layer = "attention_out"
    min_input_size = 64

    def __init__(self, *, in_chans: int = 1, pretrained: bool = True, gray: str = "replicate",
                 num_outputs: int = 5, backbone: str = "resnet50") -> None:
        r, init, channels = mri_backbone(backbone, pretrained=pretrained)
        super().__init__(in_chans=in_chans, num_outputs=num_outputs, init_description=init, gray=gray)
        self.backbone = backbone
        self.num_features = channels
        if in_chans == 1 and gray == "adapt":
            adapt_first_conv(r.conv1, 1)
        self.trunk = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
        self.attention = nn.Conv2d(channels, 1, 1)
        self.attention_out = nn.Identity()  # hook point: the (B, 1, h, w) attention map
        self.fc = nn.Linear(channels, num_outputs)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.trunk(x)
        return out

    def attention_map(self, features: torch.Tensor) -> torch.Tensor:
        """Attention ``p`` in (0, 1), shape ``(B, 1, h, w)``."""
        out: torch.Tensor = self.attention_out(torch.sigmoid(self.attention(features)))
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Eq. 2 attention-weighted pooling then the 5-output dense layer."""
        out: torch.Tensor = self.fc(attention_pool(features, self.attention_map(features)))
        return out

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, 5), attention (B, 1, h, w))`` in one pass (for training)."""
        f = self.forward_features(x)
        a = self.attention_map(f)
        return self.fc(attention_pool(f, a)), a

    # -- supervised-attention training through engine.train.fit ---------------------------------
    attention_weight: float = 1.0
    attention_balance: bool = False
    attention_empty_mask: bool = False

    def training_step(self, batch: Sequence[Any]) -> torch.Tensor:
        """Loss of one batch ``(x, targets, boxes)`` for :func:`engine.train.fit`.

        Classification: mean BCE over the five sigmoid outputs (targets ``(B, 5)``; a ``(B,)``
        target trains the malignancy output only). Attention: the attention map is trained
        against each image's lesion box down-sampled to the feature grid (:func:`boxes_to_mask`),
        BCE (the paper) or, with ``attention_balance``, the class-balanced BCE
        (:func:`balanced_attention_loss`); images whose box is all ``-1`` (none) add no
        attention term, unless ``attention_empty_mask``: then a lesion-free image is
        supervised towards an all-zero (empty) mask, as the paper's lesion-free images are.
        Total = classification + ``attention_weight`` x attention.
        """
        x, targets = batch[0], batch[1]
        boxes = batch[2] if len(batch) > 2 else None
        logits, att = self.forward_with_attention(x)
        if targets.ndim == 2 and targets.shape == logits.shape:
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float())
        else:
            loss = F.binary_cross_entropy_with_logits(logits[:, self.malignant_index].float(),
                                                      targets.reshape(-1).float())
        if boxes is None:
            return loss
        has = (boxes >= 0).all(dim=1)
        if self.attention_empty_mask:
            # box_masks of an all -1 box is the empty mask (no cell covered)
            has = torch.ones_like(has)
        if not bool(has.any()):
            return loss
        masks = box_masks(boxes[has], (x.shape[-2], x.shape[-1]), (att.shape[-2], att.shape[-1])).to(att.device)
        a = att[has].float()
        term = balanced_attention_loss(a, masks) if self.attention_balance else attention_loss(a, masks)
        return loss + self.attention_weight * term


def attention_pool(features: torch.Tensor, attention: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 2: ``x_k = sum_ij p_ij f_kij / sum_ij p_ij`` -> ``(B, C)``.

    A uniform attention gives the plain spatial mean (Eq. 1).
    """
    num = (features * attention).sum(dim=(2, 3))
    return num / (attention.sum(dim=(2, 3)) + eps)


def boxes_to_mask(
    boxes: Sequence[Sequence[float]], image_shape: tuple[int, int], feature_shape: tuple[int, int]
) -> torch.Tensor:
    """Binary lesion mask of the boxes, down-sampled to the feature grid (attention target).

    Args:
        boxes: ``[(x0, y0, x1, y1), ...]`` in image pixels (x = column).
        image_shape: ``(rows, cols)`` of the image the boxes refer to.
        feature_shape: ``(h, w)`` of the attention map.

    Returns:
        ``(1, h, w)`` float mask: the fraction of each cell covered, thresholded at > 0.
    """
    rows, cols = image_shape
    m = torch.zeros(1, 1, rows, cols)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = sorted((int(round(x0)), int(round(x1))))
        r0, r1 = sorted((int(round(y0)), int(round(y1))))
        m[..., max(r0, 0):min(r1 + 1, rows), max(c0, 0):min(c1 + 1, cols)] = 1.0
    down = F.adaptive_avg_pool2d(m, feature_shape)
    return (down > 0).float()[0]


def box_masks(boxes: torch.Tensor, image_shape: tuple[int, int], feature_shape: tuple[int, int]) -> torch.Tensor:
    """:func:`boxes_to_mask` of a ``(B, 4)`` tensor of one box per image -> ``(B, 1, h, w)``."""
    rows = [boxes_to_mask([tuple(float(v) for v in b)], image_shape, feature_shape)
            for b in boxes.detach().cpu()]
    return torch.stack(rows)


def balanced_attention_loss(attention: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Class-balanced attention BCE: box cells weighted by ``#outside / #inside``.

    A lesion box covers few cells of the grid, and the plain BCE then drives the whole map to
    zero (the pooling of Eq. 2 degenerates); weighting the inside cells restores the balance.
    Normalised by ``sqrt(weight)`` to keep the scale near the plain BCE's.
    """
    a = attention.clamp(1e-6, 1 - 1e-6)
    m = masks.to(a.dtype)
    pw = ((1 - m).sum() / m.sum().clamp_min(1)).detach()
    return -(pw * m * torch.log(a) + (1 - m) * torch.log(1 - a)).mean() / pw.clamp_min(1).sqrt()


def attention_mass_in_boxes(attention: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Fraction of each attention map's mass inside its box mask -> ``(B,)``."""
    a = attention.float()
    return (a * masks.to(a.dtype)).sum(dim=(1, 2, 3)) / a.sum(dim=(1, 2, 3)).clamp_min(1e-12)


def attention_loss(attention: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE between the predicted attention ``(B, 1, h, w)`` and box masks ``(B, 1, h, w)``."""
    return F.binary_cross_entropy(attention.clamp(1e-6, 1 - 1e-6), masks.to(attention.dtype))


def mri_multitask_loss(logits: torch.Tensor, targets: torch.Tensor, attention: torch.Tensor,
                       masks: torch.Tensor | None, *, attention_weight: float = 1.0) -> torch.Tensor:
    """Sum of the five BCE classification losses and the supervised attention loss.

    Args:
        logits: ``(B, 5)``.
        targets: ``(B, 5)`` in {0, 1} (malignancy, mammary gland, other benign, IDC, other malignant).
        attention: ``(B, 1, h, w)``.
        masks: Down-sampled box masks or None for images without boxes (then no attention term).
        attention_weight: Weight of the attention term.
    """
    loss = F.binary_cross_entropy_with_logits(logits, targets.float())
    if masks is not None:
        loss = loss + attention_weight * attention_loss(attention, masks)
    return loss


def challenge_score(aucs: dict[str, float]) -> float:
    """Weighted AUC score of the JFR 2018 challenge (Eq. 3 of the seed paper).

    ``score = 0.6 * AUC(malignancy) + 0.4 * mean(AUC of the four lesion categories)``. The
    equation is garbled in our copy of the paper; this form reproduces its Table 3 exactly
    (0.6 * 0.869 + 0.4 * mean(0.728, 0.659, 0.805, 0.761) = 0.817), a count-weighted mean
    of the categories does not (0.813).

    Args:
        aucs: AUC per output name of :data:`MRI_OUTPUTS`.
    """
    missing = [k for k in MRI_OUTPUTS if k not in aucs]
    if missing:
        raise ValueError(f"missing AUCs for {', '.join(missing)}")
    cats = [float(aucs[k]) for k in MRI_OUTPUTS[1:]]
    return 0.6 * float(aucs[MRI_OUTPUTS[0]]) + 0.4 * sum(cats) / len(cats)


class BestPerTask:
    """Keep one copy of the weights per task at its best validation AUC (the paper saves three
    copies because the tasks are not learned at the same pace)."""

    def __init__(self, tasks: Sequence[str] = ("detection", "malignancy", "classification")) -> None:
        self.best: dict[str, float] = {t: float("-inf") for t in tasks}
        self.states: dict[str, dict[str, torch.Tensor]] = {}
        self.epochs: dict[str, int] = {}

    def update(self, epoch: int, scores: dict[str, float], model: nn.Module) -> list[str]:
        """Store ``model``'s weights for every task whose score improved; returns those tasks."""
        improved = [t for t, v in scores.items() if t in self.best and v > self.best[t]]
        if improved:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            for t in improved:
                self.best[t] = float(scores[t])
                self.states[t] = state
                self.epochs[t] = epoch
        return improved


@register_model("mri_attention_resnet50", family="mri_attention", paper=PAPER, modalities=("MR",),
                task="5 sigmoid outputs: malignancy, mammary gland, other benign, IDC, other malignant",
                saliency=("attention", "gradcam"))
def mri_attention_resnet50(*, in_chans: int = 1, pretrained: bool = True, gray: str = "replicate",
                           num_outputs: int = 5, attention_weight: float = 1.0,
                           attention_balance: bool = False, attention_empty_mask: bool = False) -> MRIAttentionNet:
    """Supervised-attention ResNet-50 (gray slice copied to 3 channels as in the paper).

    ``attention_weight`` / ``attention_balance`` / ``attention_empty_mask`` configure
    :meth:`MRIAttentionNet.training_step`.
    """
    return _build(in_chans=in_chans, pretrained=pretrained, gray=gray, num_outputs=num_outputs,
                  attention_weight=attention_weight, attention_balance=attention_balance, backbone="resnet50",
                  attention_empty_mask=attention_empty_mask)


@register_model("mri_attention_resnet18", family="mri_attention", paper=PAPER_R18, modalities=("MR",),
                task="5 sigmoid outputs: malignancy, mammary gland, other benign, IDC, other malignant; "
                     "ResNet-18 backbone variant (smaller shipped weights); the paper uses ResNet-50",
                saliency=("attention", "gradcam"))
def mri_attention_resnet18(*, in_chans: int = 1, pretrained: bool = True, gray: str = "replicate",
                           num_outputs: int = 5, attention_weight: float = 1.0,
                           attention_balance: bool = False, backbone: str = "resnet18",
                           attention_empty_mask: bool = False) -> MRIAttentionNet:
    """Supervised attention on a ResNet-18 trunk (512-channel features; ~11 M parameters vs ~24 M).

    Same attention, Eq. 2 pooling and five outputs as :func:`mri_attention_resnet50`; a smaller
    deviation from the paper's ResNet-50 chosen for the shipped weights' size. ``backbone`` may
    also be ``"resnet34"`` (or ``"resnet50"``).
    """
    return _build(in_chans=in_chans, pretrained=pretrained, gray=gray, num_outputs=num_outputs,
                  attention_weight=attention_weight, attention_balance=attention_balance, backbone=backbone,
                  attention_empty_mask=attention_empty_mask)


def _build(*, in_chans: int, pretrained: bool, gray: str, num_outputs: int, attention_weight: float,
           attention_balance: bool, backbone: str, attention_empty_mask: bool = False) -> MRIAttentionNet:
    """Shared body of the registered builders."""
    net = MRIAttentionNet(in_chans=in_chans, pretrained=pretrained, gray=gray, num_outputs=num_outputs,
                          backbone=backbone)
    net.attention_weight = float(attention_weight)
    net.attention_balance = bool(attention_balance)
    net.attention_empty_mask = bool(attention_empty_mask)
    return net
