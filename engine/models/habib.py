"""Habib et al. 2020: joint neural analysis of mammography and ultrasound lesion patches.

G. Habib et al., "Automatic Breast Lesion Classification by Joint Neural Analysis of Mammography
and Ultrasound", MICCAI workshop 2020. Per-modality CNNs produce a descriptor of the lesion patch
cropped from the reader's contour/box: the basic CNN trained from scratch (Fig. 3, 512-d
descriptor before the output layer) or GoogLeNet (ImageNet, 1024-d pooled descriptor). The
7-layer fully connected network (Fig. 4) classifies the concatenated MG+US descriptors.
Training is two-step (per-modality nets first, fusion net on their frozen descriptors) or
end-to-end with the *sum of the three losses* (Fig. 6). Losses: BCE or the Large Margin Cosine
Loss (LMCL / CosFace, Wang et al. CVPR 2018). A lesion's score is the mean over its images.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.models.common import BasicCNNFeatures, BreastClassifier, adapt_first_conv, torchvision_backbone
from engine.models.registry import register_model

PAPER = "Habib et al., 2020 (joint MG+US lesion classification, GoogLeNet / basic CNN, LMCL)"


class CosFaceHead(nn.Module):
    """LMCL / CosFace head: logits ``s * cos(theta_c)`` between normalised features and weights.

    The margin ``m`` is subtracted from the target class's cosine by :func:`lmcl_loss` only during
    training, so at test time ``softmax(logits)`` is the class probability (Wang et al. 2018).
    """

    def __init__(self, in_features: int, num_classes: int = 2, s: float = 30.0, m: float = 0.35) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.s = s
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled cosine logits ``(B, num_classes)``."""
        return self.s * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def lmcl_loss(logits: torch.Tensor, target: torch.Tensor, *, s: float = 30.0, m: float = 0.35) -> torch.Tensor:
    """Large Margin Cosine Loss on ``s*cos`` logits from :class:`CosFaceHead`.

    ``L = CE(s * (cos(theta) - m * onehot(y)))`` (Wang et al. 2018, Eq. 4).
    """
    onehot = F.one_hot(target.long(), logits.shape[1]).to(logits.dtype)
    return F.cross_entropy(logits - s * m * onehot, target.long())


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on a single malignancy logit ``(B, 1)``."""
    return F.binary_cross_entropy_with_logits(logits[:, 0], target.float())


def habib_loss(logits: torch.Tensor, target: torch.Tensor, *, loss: str, s: float = 30.0, m: float = 0.35) -> torch.Tensor:
    """The loss of one Habib network: ``"bce"`` or ``"lmcl"``."""
    if loss == "bce":
        return bce_loss(logits, target)
    if loss == "lmcl":
        return lmcl_loss(logits, target, s=s, m=m)
    raise ValueError(f"loss must be 'bce' or 'lmcl', got {loss!r}")


def _make_head(dim: int, loss: str, s: float, m: float) -> nn.Module:
    if loss == "bce":
        return nn.Linear(dim, 1)
    if loss == "lmcl":
        return CosFaceHead(dim, 2, s=s, m=m)
    raise ValueError(f"loss must be 'bce' or 'lmcl', got {loss!r}")


class HabibDescriptorNet(BreastClassifier):
    """Single-modality lesion-patch network producing a descriptor and a malignancy output.

    ``arch="basic"``: Fig. 3 CNN from scratch, descriptor = the 512-d layer before the output.
    ``arch="googlenet"``: GoogLeNet (ImageNet when cached locally), descriptor = pooled 1024-d.
    """

    min_input_size = 32

    def __init__(
        self,
        *,
        arch: str = "basic",
        loss: str = "bce",
        in_chans: int = 1,
        pretrained: bool = True,
        descriptor_dim: int = 512,
        dropout: float = 0.4,
        s: float = 30.0,
        m: float = 0.35,
    ) -> None:
        self.loss_kind = loss
        if arch == "basic":
            basic = BasicCNNFeatures(in_chans)
            body: nn.Module = basic
            init = "random (from scratch)"
            cfeat = basic.out_channels
            gray = "native"
            self.pool_size = 4
            proj: nn.Module = nn.Sequential(
                nn.Flatten(), nn.Linear(int(cfeat) * 16, descriptor_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
            )
            dim = descriptor_dim
        elif arch == "googlenet":
            g, init = torchvision_backbone("googlenet", pretrained=pretrained)
            if in_chans == 1:
                adapt_first_conv(g.conv1.conv, 1)
            body = nn.Sequential(
                g.conv1, g.maxpool1, g.conv2, g.conv3, g.maxpool2, g.inception3a, g.inception3b, g.maxpool3,
                g.inception4a, g.inception4b, g.inception4c, g.inception4d, g.inception4e, g.maxpool4,
                g.inception5a, g.inception5b,
            )
            gray = "adapt" if in_chans == 1 else "native"
            self.pool_size = 1
            proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout))
            dim = 1024
        else:
            raise ValueError(f"arch must be 'basic' or 'googlenet', got {arch!r}")
        super().__init__(in_chans=in_chans, num_outputs=1 if loss == "bce" else 2, init_description=init, gray=gray)
        self.arch = arch
        self.body = body
        self.proj = proj
        self.descriptor_dim = dim
        self.head = _make_head(dim, loss, s, m)
        self.output_activation = "sigmoid" if loss == "bce" else "softmax"
        self.malignant_index = 0 if loss == "bce" else 1
        self.min_input_size = 32 if arch == "basic" else 64

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

    def descriptor_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The lesion descriptor ``(B, descriptor_dim)``."""
        out: torch.Tensor = self.proj(F.adaptive_avg_pool2d(features, self.pool_size))
        return out

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """Descriptor of an image batch (input of the fusion network)."""
        return self.descriptor_from_features(self.forward_features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Descriptor -> BCE logit or LMCL cosine logits."""
        out: torch.Tensor = self.head(self.descriptor_from_features(features))
        return out

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """This network's training loss (BCE or LMCL)."""
        s = getattr(self.head, "s", 30.0)
        m = getattr(self.head, "m", 0.35)
        return habib_loss(logits, target, loss=self.loss_kind, s=s, m=m)


class HabibFusionFC(nn.Module):
    """The 7-layer fully connected multimodal network (Fig. 4) on concatenated descriptors."""

    output_activation = "sigmoid"

    def __init__(
        self,
        *,
        in_features: int = 1024,
        widths: Sequence[int] = (1024, 512, 256, 128, 64, 32),
        loss: str = "bce",
        dropout: float = 0.3,
        s: float = 30.0,
        m: float = 0.35,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_features
        for w in widths:
            layers += [nn.Linear(c, w), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = _make_head(c, loss, s, m)  # the 7th layer
        self.loss_kind = loss
        self.in_features = in_features
        self.num_outputs = 1 if loss == "bce" else 2
        self.in_chans = 0
        self.init_description = "random (trained on per-modality descriptors)"
        self.output_activation = "sigmoid" if loss == "bce" else "softmax"
        self.malignant_index = 0 if loss == "bce" else 1

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        """Logits from ``(B, d_MG + d_US)`` concatenated descriptors."""
        out: torch.Tensor = self.head(self.body(descriptors))
        return out

    def malignancy(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability of malignancy ``(B,)``."""
        if self.loss_kind == "bce":
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, 1)[:, 1]

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE or LMCL."""
        return habib_loss(logits, target, loss=self.loss_kind, s=getattr(self.head, "s", 30.0),
                          m=getattr(self.head, "m", 0.35))

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Random descriptors."""
        return (torch.randn(batch, self.in_features),)


class HabibJointModel(nn.Module):
    """MG net + US net + fusion FC, trained end-to-end on the sum of three losses (Fig. 6)."""

    def __init__(self, mg: HabibDescriptorNet, us: HabibDescriptorNet, fusion: HabibFusionFC) -> None:
        super().__init__()
        self.mg = mg
        self.us = us
        self.fusion = fusion
        self.num_outputs = fusion.num_outputs
        self.in_chans = mg.in_chans
        self.init_description = f"MG: {mg.init_description}; US: {us.init_description}"
        self.output_activation = fusion.output_activation
        self.malignant_index = fusion.malignant_index

    def forward_all(self, mg: torch.Tensor, us: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits_MG, logits_US, logits_fused)``."""
        fm = self.mg.forward_features(mg)
        fu = self.us.forward_features(us)
        dm = self.mg.descriptor_from_features(fm)
        du = self.us.descriptor_from_features(fu)
        return self.mg.head(dm), self.us.head(du), self.fusion(torch.cat([dm, du], 1))

    def forward(self, mg: torch.Tensor, us: torch.Tensor) -> torch.Tensor:
        """Fused logits."""
        return self.forward_all(mg, us)[2]

    def malignancy(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability of malignancy of fused logits."""
        return self.fusion.malignancy(logits)

    #: Names of :meth:`part_scores`' columns (Habib 2020 Table 3 reports each modality and the fusion).
    part_names: tuple[str, ...] = ("MG", "US", "fused")

    @torch.no_grad()
    def part_scores(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(N, 3)`` malignancy probability of the MG net, the US net and the fusion, one pass."""
        lm, lu, lf = self.forward_all(x[0], x[1])
        return torch.stack([self.mg.malignancy(lm).reshape(-1), self.us.malignancy(lu).reshape(-1),
                            self.fusion.malignancy(lf).reshape(-1)], 1)

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Random MG and US patches."""
        s = max(size, self.mg.min_input_size, self.us.min_input_size)
        return torch.rand(batch, self.mg.in_chans, s, s), torch.rand(batch, self.us.in_chans, s, s)

    # -- training procedures (Habib 2020 Sec. 3.3, Fig. 6), reachable through engine.train.fit ---------
    procedure: str = "end_to_end"
    phase1_epochs: int = 1

    def configure_training(self, procedure: str = "end_to_end", phase1_epochs: int = 1) -> HabibJointModel:
        """Select the training procedure used by :meth:`training_step`.

        Args:
            procedure: ``"end_to_end"``: every step minimises the sum of the three losses (MG net,
                US net, fusion net; Fig. 6). ``"two_step"``: epochs ``< phase1_epochs`` train the
                two single-modality networks on their own losses (the fusion net is untouched);
                later epochs freeze them (no gradient, eval mode) and train the fusion net on
                their descriptors.
            phase1_epochs: Length of the first phase of ``two_step`` (>= 1).

        Returns:
            ``self``.

        Raises:
            ConfigError: unknown procedure or ``phase1_epochs < 1``.
        """
        from engine.errors import ConfigError

        if procedure not in ("end_to_end", "two_step"):
            raise ConfigError(f"model.cfg.procedure must be 'end_to_end' or 'two_step', got {procedure!r}")
        if procedure == "two_step" and phase1_epochs < 1:
            raise ConfigError(f"model.cfg.phase1_epochs must be >= 1 for two_step, got {phase1_epochs}")
        self.procedure = procedure
        self.phase1_epochs = int(phase1_epochs)
        return self

    def phase_of(self, epoch: int) -> str:
        """``"joint"`` (end-to-end), ``"modalities"`` or ``"fusion"`` (two-step) at ``epoch``."""
        if self.procedure == "end_to_end":
            return "joint"
        return "modalities" if epoch < self.phase1_epochs else "fusion"

    def training_step(self, batch: Sequence[Any]) -> torch.Tensor:
        """Loss of one paired batch ``((mg, us), target[, epoch])`` for :func:`engine.train.fit`.

        End-to-end: ``L_MG + L_US + L_fused`` (:func:`end_to_end_loss`). Two-step: the epoch
        (third element, supplied by the paired datasets of :mod:`engine.train.data`) selects the
        phase; in the fusion phase the descriptor nets run without gradient in eval mode, so
        the optimiser leaves their weights unchanged (parameters without a gradient are
        skipped by SGD/Adam/Adadelta).

        Raises:
            ConfigError: ``two_step`` with batches that carry no epoch.
        """
        (mg, us), target = batch[0], batch[1]
        if self.procedure == "end_to_end":
            return end_to_end_loss(self, mg, us, target)
        if len(batch) < 3:
            from engine.errors import ConfigError

            raise ConfigError("habib_joint procedure = 'two_step' needs a paired dataset that reports the epoch "
                              "(data.kind = synthetic_paired or paired_manifest)")
        ep = batch[2]
        epoch = int(ep.reshape(-1)[0]) if isinstance(ep, torch.Tensor) else int(ep)
        if self.phase_of(epoch) == "modalities":
            lm = self.mg.forward_head(self.mg.forward_features(mg))
            lu = self.us.forward_head(self.us.forward_features(us))
            return self.mg.loss(lm, target) + self.us.loss(lu, target)
        self.mg.eval()
        self.us.eval()
        with torch.no_grad():
            d = torch.cat([self.mg.descriptor(mg), self.us.descriptor(us)], 1)
        return self.fusion.loss(self.fusion(d), target)


def end_to_end_loss(model: HabibJointModel, mg: torch.Tensor, us: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Habib 2020 end-to-end training objective: MG loss + US loss + fused loss (Fig. 6)."""
    lm, lu, lf = model.forward_all(mg, us)
    return model.mg.loss(lm, target) + model.us.loss(lu, target) + model.fusion.loss(lf, target)


def lesion_mean_scores(scores: Sequence[float], lesion_ids: Sequence[Hashable]) -> dict[Hashable, float]:
    """Per-lesion score = mean malignancy probability over all the lesion's images (Habib 4.1).

    Args:
        scores: One probability per image.
        lesion_ids: The lesion each image belongs to (same length).

    Returns:
        ``{lesion_id: mean score}`` in first-seen order.
    """
    if len(scores) != len(lesion_ids):
        raise ValueError("scores and lesion_ids must have the same length")
    acc: dict[Hashable, list[float]] = {}
    for s, lid in zip(scores, lesion_ids):
        acc.setdefault(lid, []).append(float(s))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def lesion_patch(pixels: np.ndarray, points: Sequence[Sequence[float]], *, margin: float = 0.15,
                 size: int = 224) -> np.ndarray:
    """Crop the lesion patch from a contour or box (Habib 2020 Sec. 3.2), resized to ``size``.

    Args:
        pixels: ``(rows, cols)`` or ``(rows, cols, 3)`` image.
        points: Contour vertices ``[[x, y], ...]`` (x = column) or the two box corners.
        margin: Fraction of the lesion's extent added on each side.
        size: Output side.

    Returns:
        ``(size, size[, 3])`` float32 patch in the input's intensity units.
    """
    import cv2

    from engine.imaging.geometry import expand_box

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValueError("points must be [[x, y], ...] with at least two vertices")
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    bx0, by0, bx1, by1 = expand_box((x0, y0, x1, y1), (pixels.shape[0], pixels.shape[1]), margin)
    crop = np.ascontiguousarray(pixels[by0:by1, bx0:bx1]).astype(np.float32)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


_SAL = ("gradcam",)


@register_model("habib_basic_cnn", family="habib", paper=PAPER, modalities=("MG", "US"),
                task="lesion patch benign vs malignant + 512-d descriptor (Fig. 3, from scratch)", saliency=_SAL)
def habib_basic_cnn(*, loss: str = "bce", in_chans: int = 1, descriptor_dim: int = 512, pretrained: bool = False,
                    dropout: float = 0.4) -> HabibDescriptorNet:
    """Habib Fig. 3 basic CNN (trained from scratch; ``pretrained`` is ignored)."""
    return HabibDescriptorNet(arch="basic", loss=loss, in_chans=in_chans, descriptor_dim=descriptor_dim,
                              dropout=dropout)


@register_model("habib_googlenet", family="habib", paper=PAPER, modalities=("MG", "US"),
                task="lesion patch benign vs malignant + 1024-d GoogLeNet descriptor", saliency=_SAL)
def habib_googlenet(*, loss: str = "bce", in_chans: int = 1, pretrained: bool = True,
                    dropout: float = 0.4) -> HabibDescriptorNet:
    """Habib per-modality GoogLeNet (ImageNet init when cached locally)."""
    return HabibDescriptorNet(arch="googlenet", loss=loss, in_chans=in_chans, pretrained=pretrained, dropout=dropout)


@register_model("habib_fusion_fc", family="habib", paper=PAPER, modalities=("MG+US",),
                task="7-layer FC fusion of concatenated MG+US descriptors (two-step training)", saliency=())
def habib_fusion_fc(*, in_features: int = 1024, loss: str = "bce", dropout: float = 0.3,
                    pretrained: bool = False) -> HabibFusionFC:
    """The 7-layer multimodal FC network (input = d_MG + d_US, e.g. 512 + 512)."""
    return HabibFusionFC(in_features=in_features, loss=loss, dropout=dropout)


@register_model("habib_joint", family="habib", paper=PAPER, modalities=("MG+US",),
                task="MG net + US net + FC fusion, end-to-end sum of three losses", saliency=())
def habib_joint(*, arch: str = "basic", loss: str = "bce", in_chans: int = 1, pretrained: bool = True,
                procedure: str = "end_to_end", phase1_epochs: int = 1) -> HabibJointModel:
    """Joint model (Fig. 6): two descriptor nets and the fusion FC.

    ``procedure`` (``end_to_end`` | ``two_step``) and ``phase1_epochs`` select how
    :meth:`HabibJointModel.training_step` trains it (``[model.cfg]`` of a training config).
    """
    mg = HabibDescriptorNet(arch=arch, loss=loss, in_chans=in_chans, pretrained=pretrained)
    us = HabibDescriptorNet(arch=arch, loss=loss, in_chans=in_chans, pretrained=pretrained)
    fusion = HabibFusionFC(in_features=mg.descriptor_dim + us.descriptor_dim, loss=loss)
    return HabibJointModel(mg, us, fusion).configure_training(procedure, phase1_epochs)
