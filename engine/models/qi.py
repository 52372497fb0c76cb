"""Qi et al. 2019: Mt-Net and Sn-Net with class activation maps and the region enhance mechanism.

X. Qi et al., "Automated diagnosis of breast ultrasonography images using deep neural networks",
Medical Image Analysis 52 (2019). Two networks in cascade:

* **Mt-Net** (malignant vs not): Inception-ResNet-v2 (Table 1), 1536 x 8 x 8 final maps, 8x8
  average pool, dropout 0.2, linear 2.
* **Sn-Net** (solid nodule vs not): Inception-v3 (Table 2) whose classifier is a 1x1 convolution
  to 2 maps, then global average pooling.
* **CAM** (Eq. 3, Zhou et al. 2016) of the more probable class, normalised and resized to the
  input, is the visualisation of each net.
* **Region enhance** (Eq. 4): the other net's CAM goes through its own convolution pathway
  ``F_cam`` and is added at mid network, ``a = F_img(x_img) + lambda * F_cam(x_cam)``: after the
  30 residual blocks (1088 x 17 x 17) in the Mt-Net, after block (3d) = Mixed_6a (768 x 17 x 17)
  in the Sn-Net. A zero / absent CAM leaves the basic network unchanged.
* **Algorithm 1** cross training: :func:`cross_training_step`.
* **Multi-input prediction** (Sec. 3.3): shorter side to 299 keeping the aspect ratio, one random
  299 crop in training (:func:`random_crop`), five uniformly spaced crops averaged at test
  (:func:`five_crops`, :func:`multi_input_predict`).
* Cascade advice: malignant or solid nodule -> "further examination advised", else
  "periodic follow-up" (:func:`cascade_advice`).
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.imaging import geometry
from engine.models.common import BreastClassifier, adapt_first_conv, torchvision_backbone
from engine.models.inception_resnet_v2 import ConvBN, InceptionResNetV2Trunk
from engine.models.registry import register_model

PAPER = "Qi et al., Medical Image Analysis 2019 (Mt-Net / Sn-Net, CAM region enhance, multi-input)"
QI_INPUT = 299
ADVICE_FURTHER = "further examination advised"
ADVICE_FOLLOW_UP = "periodic follow-up"


class CamPathway(nn.Module):
    """``F_cam`` of Eq. 4: strided convolutions taking a 1-channel CAM to the mid-network size."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBN(1, 32, 3, stride=2, padding=1),
            ConvBN(32, 64, 3, stride=2, padding=1),
            ConvBN(64, 128, 3, stride=2, padding=1),
            ConvBN(128, out_channels, 3, stride=2, padding=1),
        )

    def forward(self, cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Features of the CAM resized to ``size`` (the image pathway's mid-network grid)."""
        y: torch.Tensor = self.body(cam)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


class _QiNet(BreastClassifier):
    """Shared part: CAM, region enhance, ``forward(x, cam=None)``."""

    min_input_size = 75

    def __init__(self, *, in_chans: int, num_classes: int, init: str, gray: str, lam: float, mid: int) -> None:
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray=gray)
        self.lam = lam
        self.cam_path = CamPathway(mid)

    def _lower(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _upper(self, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_weights(self) -> torch.Tensor:
        """``W^{L-1}`` of Eq. 3, shape ``(num_classes, C)``."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        """Final maps; ``cam`` ``(B, 1, H, W)`` (the other net's CAM) enhances mid-network (Eq. 4)."""
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels, got {x.shape[1]}")
        if self.in_chans == 1 and self.gray == "replicate":
            x = x.expand(-1, 3, -1, -1)
        a = self._lower(x)
        if cam is not None:
            a = a + self.lam * self.cam_path(cam.to(a.dtype), tuple(a.shape[-2:]))
        out: torch.Tensor = self.features_out(self._upper(a))
        return out

    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, 2)``; ``cam`` optional (zeros/absent = basic network)."""
        return self.forward_head(self.forward_features(x, cam))

    def cam_from_features(self, features: torch.Tensor, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Eq. 3 CAM of the arg-max class, min-max normalised per image, resized to ``size``.

        Returns:
            ``(B, 1, H, W)`` in [0, 1].
        """
        c = logits.argmax(dim=1)
        w = self.class_weights()[c]  # (B, C)
        cam = torch.einsum("bc,bchw->bhw", w, features)[:, None]
        lo = cam.amin(dim=(2, 3), keepdim=True)
        hi = cam.amax(dim=(2, 3), keepdim=True)
        cam = (cam - lo) / (hi - lo).clamp_min(1e-8)
        return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)

    def forward_with_cam(
        self, x: torch.Tensor, cam: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, CAM of the predicted class at the input size)``."""
        f = self.forward_features(x, cam)
        logits = self.forward_head(f)
        return logits, self.cam_from_features(f, logits, (x.shape[-2], x.shape[-1]))

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Image batch (the CAM input is optional)."""
        s = max(size, self.min_input_size)
        return (torch.rand(batch, self.in_chans, s, s),)


class QiMtNet(_QiNet):
    """Mt-Net: Inception-ResNet-v2 (Table 1) + region enhance after the 30 residual blocks."""

    def __init__(self, *, in_chans: int = 3, num_classes: int = 2, lam: float = 1.0,
                 repeats: tuple[int, int, int] = (10, 20, 9), dropout: float = 0.2) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes, gray="native", lam=lam, mid=1088,
                         init="random (no Inception-ResNet-v2 ImageNet weights are available offline)")
        self.trunk = InceptionResNetV2Trunk(in_chans, tuple(repeats))  # type: ignore[arg-type]
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(1536, num_classes)

    def _lower(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk.lower(x)

    def _upper(self, a: torch.Tensor) -> torch.Tensor:
        return self.trunk.upper(a)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """8x8 average pool, dropout 0.2, linear 2."""
        out: torch.Tensor = self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1)))
        return out

    def class_weights(self) -> torch.Tensor:
        """Linear layer weights."""
        return self.fc.weight


class QiSnNet(_QiNet):
    """Sn-Net: Inception-v3 (Table 2) with a 1x1-conv classifier + region enhance after Mixed_6a."""

    def __init__(self, *, in_chans: int = 3, num_classes: int = 2, lam: float = 1.0, pretrained: bool = True,
                 dropout: float = 0.2) -> None:
        net_, init = torchvision_backbone("inception_v3", pretrained=pretrained)
        net: Any = net_
        gray = "adapt" if in_chans == 1 else "native"
        super().__init__(in_chans=in_chans, num_classes=num_classes, init=init, gray=gray, lam=lam, mid=768)
        if in_chans == 1:
            adapt_first_conv(net.Conv2d_1a_3x3.conv, 1)
        self.lower_net = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
        )
        self.upper_net = nn.Sequential(
            net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
        )
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(2048, num_classes, 1)

    def _lower(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lower_net(x)
        return out

    def _upper(self, a: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.upper_net(a)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Dropout, 1x1 conv to 2 maps, global average pool."""
        out: torch.Tensor = self.classifier(self.drop(features)).mean(dim=(2, 3))
        return out

    def class_weights(self) -> torch.Tensor:
        """1x1 conv kernels as a ``(num_classes, 2048)`` matrix."""
        return self.classifier.weight[:, :, 0, 0]


# -- multi-input prediction (Sec. 3.3) ------------------------------------------------------------
def resize_shorter_side(img: torch.Tensor, size: int = QI_INPUT) -> torch.Tensor:
    """Scale ``(C, H, W)`` so that its shorter side is ``size`` (:mod:`engine.imaging.geometry`)."""
    return geometry.resize_shorter_side(img, size)


def five_crop_layout(shape: tuple[int, int], size: int = QI_INPUT) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Where :func:`five_crops` takes its crops (:func:`engine.imaging.geometry.five_crop_layout`)."""
    return geometry.five_crop_layout(shape, size)


def five_crops(img: torch.Tensor, size: int = QI_INPUT) -> torch.Tensor:
    """Qi's five crops (:func:`engine.imaging.geometry.five_crops`, the one implementation)."""
    return geometry.five_crops(img, size)


def random_crop(img: torch.Tensor, size: int = QI_INPUT, rng: random.Random | None = None) -> torch.Tensor:
    """Training input: shorter side to ``size``, one random ``size x size`` crop
    (:func:`engine.imaging.geometry.random_crop`, the one crop code)."""
    r = rng or random
    return geometry.random_crop(resize_shorter_side(img, size), (size, size), lambda n: r.randint(0, n))


@torch.no_grad()
def multi_input_predict(model: _QiNet, img: torch.Tensor, size: int = QI_INPUT,
                        cam: torch.Tensor | None = None) -> float:
    """Probability of the positive class averaged over the five crops of ``img`` ``(C, H, W)``."""
    crops = five_crops(img, size)
    cam_crops = five_crops(cam, size) if cam is not None else None
    p = model.malignancy(model(crops, cam_crops))
    return float(p.mean())


def cascade_advice(p_malignant: float, p_solid: float, *, t_malignant: float = 0.5, t_solid: float = 0.5) -> str:
    """Qi 2019 cascade: Mt-Net first, then Sn-Net; either positive -> further examination."""
    if p_malignant >= t_malignant or p_solid >= t_solid:
        return ADVICE_FURTHER
    return ADVICE_FOLLOW_UP


# -- Algorithm 1 ----------------------------------------------------------------------------------
def cross_training_step(
    mt: QiMtNet,
    sn: QiSnNet,
    opt_mt: torch.optim.Optimizer,
    opt_sn: torch.optim.Optimizer,
    images: torch.Tensor,
    y_mt: torch.Tensor,
    y_sn: torch.Tensor,
    *,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """One mini-batch of Qi 2019 Algorithm 1 (cross training of Mt-Net and Sn-Net).

    Lines 4-16: with p < 0.5 the Mt-Net is updated without CAM input; otherwise Mt-Net (no CAM)
    -> CAM^Mt -> Sn-Net -> CAM^Sn -> Mt-Net updated with CAM^Sn. Lines 17-20: Mt-Net (no CAM) ->
    CAM^Mt -> Sn-Net updated with CAM^Mt. CAMs are inputs, not differentiated through.

    Returns:
        ``{"loss_mt", "loss_sn", "with_cam"}``.
    """
    r = rng or random
    size = (images.shape[-2], images.shape[-1])
    p = r.random()
    mt.train()
    sn.train()
    with_cam = p >= 0.5
    cam_mt_in: torch.Tensor | None = None
    if with_cam:
        with torch.no_grad():
            f = mt.forward_features(images)
            cam_mt = mt.cam_from_features(f, mt.forward_head(f), size)
            _, cam_sn = sn.forward_with_cam(images, cam_mt)
        cam_mt_in = cam_sn
    opt_mt.zero_grad(set_to_none=True)
    loss_mt = F.cross_entropy(mt(images, cam_mt_in), y_mt.long())
    loss_mt.backward()
    opt_mt.step()
    with torch.no_grad():
        f = mt.forward_features(images)
        cam_mt = mt.cam_from_features(f, mt.forward_head(f), size)
    opt_sn.zero_grad(set_to_none=True)
    loss_sn = F.cross_entropy(sn(images, cam_mt), y_sn.long())
    loss_sn.backward()
    opt_sn.step()
    return {"loss_mt": float(loss_mt), "loss_sn": float(loss_sn), "with_cam": with_cam}


class QiCrossTrained(nn.Module):
    """Mt-Net + Sn-Net with the region enhance mechanism, trained by Algorithm 1 through ``fit``.

    A trainable unit for :func:`engine.train.fit` / ``breast-engine train``: its
    :meth:`training_step` runs Algorithm 1 on one mini-batch ``(x, y_malignant, y_solid)``
    and :meth:`forward` is the REM inference chain (Mt-Net without CAM -> CAM^Mt -> Sn-Net ->
    CAM^Sn -> Mt-Net with CAM^Sn), whose malignancy logits are evaluated by ``fit``.

    Sn-Net target: Qi et al. label every image solid-nodule or not (their Sn-Set); BUSI has no
    such label, and none is invented here. The batch's third element must carry it: a labels
    column (``data.aux_label = "<column>"``) or, explicitly, the *lesion-present* proxy
    ``data.aux_label = "mask_nonempty"`` (non-empty BUSI mask = a mass; normal images = 0),
    which is not Qi's solid-nodule definition (cysts count as lesions there). Without it
    :meth:`training_step` stops with a :class:`~engine.errors.ConfigError`.
    """

    output_activation = "softmax"
    malignant_index = 1

    def __init__(self, mt: QiMtNet, sn: QiSnNet) -> None:
        super().__init__()
        self.mt = mt
        self.sn = sn
        self.num_outputs = mt.num_outputs
        self.in_chans = mt.in_chans
        self.min_input_size = max(mt.min_input_size, sn.min_input_size)
        self.init_description = f"Mt-Net: {mt.init_description}; Sn-Net: {sn.init_description}"
        self.last_losses: dict[str, float] = {}

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """REM inference: ``(Mt-Net logits with CAM^Sn, Sn-Net logits with CAM^Mt)``."""
        size = (x.shape[-2], x.shape[-1])
        f = self.mt.forward_features(x)
        cam_mt = self.mt.cam_from_features(f, self.mt.forward_head(f), size).detach()
        sn_logits, cam_sn = self.sn.forward_with_cam(x, cam_mt)
        return self.mt(x, cam_sn.detach()), sn_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Malignancy logits ``(B, 2)`` of the Mt-Net(REM)."""
        return self.forward_both(x)[0]

    def malignancy(self, logits: torch.Tensor) -> torch.Tensor:
        """P(malignant) ``(B,)``."""
        return torch.softmax(logits.float(), dim=1)[:, 1]

    @torch.no_grad()
    def advice(self, x: torch.Tensor, *, t_malignant: float = 0.5, t_solid: float = 0.5) -> list[str]:
        """Cascade advice per image (:func:`cascade_advice`)."""
        lm, ls = self.forward_both(x)
        pm, ps = self.malignancy(lm), torch.softmax(ls.float(), 1)[:, 1]
        return [cascade_advice(float(a), float(b), t_malignant=t_malignant, t_solid=t_solid)
                for a, b in zip(pm, ps)]

    def training_step(self, batch: Any) -> torch.Tensor:
        """Algorithm 1 (Qi et al. 2019) on one mini-batch, as one loss for ``fit``'s optimiser.

        Lines 4-16: ``p ~ U(0, 1)`` (torch RNG: seeded and resumable); ``p < 0.5`` -> the Mt-Net
        loss without CAM input, else Mt-Net (no CAM) -> CAM^Mt -> Sn-Net -> CAM^Sn -> Mt-Net loss
        with CAM^Sn. Lines 17-20: Sn-Net loss with CAM^Mt. CAMs are inputs (no gradient), so
        the two losses touch disjoint parameters and one step of a per-parameter optimiser
        (Adadelta, as in Qi) on their sum performs both updates. The one difference from the
        strictly sequential algorithm: CAM^Mt for the Sn-Net comes from the Mt-Net *before*
        this step's update (a one-step lag); :func:`cross_training_step` is the exact
        two-optimiser form for hand-written loops.

        Raises:
            ConfigError: the batch has no Sn-Net target (see the class docstring).
        """
        if len(batch) < 3:
            from engine.errors import ConfigError

            raise ConfigError(
                "Qi cross training needs a solid-nodule (Sn-Net) label per image and the data has none: "
                "set data.aux_label to a 0/1 column of the labels CSV, or to \"mask_nonempty\" to use "
                "'lesion outlined in the mask' as an explicit proxy (BUSI has no solid-nodule labels)")
        x, y_mt, y_sn = batch[0], batch[1], batch[2]
        size = (x.shape[-2], x.shape[-1])
        with_cam = float(torch.rand(())) >= 0.5
        with torch.no_grad():
            f = self.mt.forward_features(x)
            cam_mt = self.mt.cam_from_features(f, self.mt.forward_head(f), size)
            cam_sn = self.sn.forward_with_cam(x, cam_mt)[1] if with_cam else None
        loss_mt = F.cross_entropy(self.mt(x, cam_sn).float(), y_mt.long())
        loss_sn = F.cross_entropy(self.sn(x, cam_mt).float(), y_sn.long())
        self.last_losses = {"loss_mt": float(loss_mt.detach()), "loss_sn": float(loss_sn.detach()),
                            "with_cam": float(with_cam)}
        return loss_mt + loss_sn

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Image batch."""
        s = max(size, self.min_input_size)
        return (torch.rand(batch, self.in_chans, s, s),)


def qi_optimizer(model: nn.Module) -> torch.optim.Adadelta:
    """ADADELTA with L2 regularisation 1e-4 (Qi 2019 Sec. 3.4)."""
    return torch.optim.Adadelta(model.parameters(), weight_decay=1e-4)


_SAL = ("cam", "gradcam")


@register_model("qi_mtnet", family="qi", paper=PAPER, modalities=("US",),
                task="malignant vs non-malignant (Inception-ResNet-v2, CAM, region enhance)", saliency=_SAL)
def qi_mtnet(*, in_chans: int = 3, num_classes: int = 2, lam: float = 1.0,
             repeats: tuple[int, int, int] = (10, 20, 9), dropout: float = 0.2, pretrained: bool = False) -> QiMtNet:
    """Mt-Net (no offline ImageNet weights for Inception-ResNet-v2: random init, said so)."""
    return QiMtNet(in_chans=in_chans, num_classes=num_classes, lam=lam, repeats=tuple(repeats), dropout=dropout)  # type: ignore[arg-type]


@register_model("qi_snnet", family="qi", paper=PAPER, modalities=("US",),
                task="solid nodule vs none (Inception-v3, 1x1-conv classifier, CAM, region enhance)", saliency=_SAL)
def qi_snnet(*, in_chans: int = 3, num_classes: int = 2, lam: float = 1.0, pretrained: bool = True,
             dropout: float = 0.2) -> QiSnNet:
    """Sn-Net (ImageNet Inception-v3 when cached locally)."""
    return QiSnNet(in_chans=in_chans, num_classes=num_classes, lam=lam, pretrained=pretrained, dropout=dropout)


@register_model("qi_mtnet_snnet_rem", family="qi", paper=PAPER, modalities=("US",),
                task="Mt-Net(REM) + Sn-Net(REM) cross-trained by Algorithm 1 (malignancy output; cascade advice)",
                saliency=())
def qi_mtnet_snnet_rem(*, in_chans: int = 3, lam: float = 1.0, repeats: tuple[int, int, int] = (10, 20, 9),
                       dropout: float = 0.2, pretrained: bool = True) -> QiCrossTrained:
    """Both nets with region enhance, trained together by Algorithm 1 (``pretrained``: the Sn-Net's
    Inception-v3 ImageNet weights when cached locally; the Mt-Net has none offline)."""
    mt = QiMtNet(in_chans=in_chans, lam=lam, repeats=tuple(repeats), dropout=dropout)  # type: ignore[arg-type]
    sn = QiSnNet(in_chans=in_chans, lam=lam, pretrained=pretrained, dropout=dropout)
    return QiCrossTrained(mt, sn)
