"""A compact Inception-ResNet-v2 (Szegedy et al., AAAI 2017), the backbone of Qi 2019's Mt-Net.

Layer for layer as in Qi et al. 2019, Table 1: stem (conv 3x3/2, 3x3, 3x3, pool, 1x1, 3x3,
pool) to 35x35x192; Inception-A (mixed 5b, 320); ``block (35)`` x10 with residuals scaled by
0.17; reduction (mixed 6a, 1088); ``block (17)`` x20 scaled by 0.10; reduction (mixed 7a, 2080);
``block (8)`` x9 scaled by 0.20 plus one without the final ReLU; conv 1x1 to 1536. The head
(8x8 average pool, dropout 0.2, linear 2) lives in :mod:`engine.models.qi`.

The repeat counts are configurable (``repeats=(10, 20, 9)`` is the paper's) so tests can build a
shallow copy quickly. Written here (not copied) following the published architecture.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU, the unit of every Inception branch."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv -> bn -> relu."""
        out: torch.Tensor = self.relu(self.bn(self.conv(x)))
        return out


class Stem(nn.Module):
    """299x299x3 -> 35x35x192 (Table 1, first seven rows)."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.conv1a = ConvBN(in_chans, 32, 3, stride=2)
        self.conv2a = ConvBN(32, 32, 3)
        self.conv2b = ConvBN(32, 64, 3, padding=1)
        self.pool3a = nn.MaxPool2d(3, stride=2)
        self.conv3b = ConvBN(64, 80, 1)
        self.conv4a = ConvBN(80, 192, 3)
        self.pool5a = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stem."""
        x = self.pool3a(self.conv2b(self.conv2a(self.conv1a(x))))
        out: torch.Tensor = self.pool5a(self.conv4a(self.conv3b(x)))
        return out


class Mixed5b(nn.Module):
    """Inception-A to 35x35x320 (1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1)."""

    def __init__(self) -> None:
        super().__init__()
        self.b0 = ConvBN(192, 96, 1)
        self.b1 = nn.Sequential(ConvBN(192, 48, 1), ConvBN(48, 64, 5, padding=2))
        self.b2 = nn.Sequential(ConvBN(192, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1))
        self.b3 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), ConvBN(192, 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the four branches."""
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class Block35(nn.Module):
    """``block (35)``: residual Inception block, residual scaled by 0.17 then ReLU."""

    def __init__(self, scale: float = 0.17) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = ConvBN(320, 32, 1)
        self.b1 = nn.Sequential(ConvBN(320, 32, 1), ConvBN(32, 32, 3, padding=1))
        self.b2 = nn.Sequential(ConvBN(320, 32, 1), ConvBN(32, 48, 3, padding=1), ConvBN(48, 64, 3, padding=1))
        self.proj = nn.Conv2d(128, 320, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + scale * proj(branches), ReLU."""
        r = self.proj(torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1))
        out: torch.Tensor = self.relu(x + self.scale * r)
        return out


class Mixed6a(nn.Module):
    """Reduction-A to 17x17x1088."""

    def __init__(self) -> None:
        super().__init__()
        self.b0 = ConvBN(320, 384, 3, stride=2)
        self.b1 = nn.Sequential(ConvBN(320, 256, 1), ConvBN(256, 256, 3, padding=1), ConvBN(256, 384, 3, stride=2))
        self.b2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the three branches."""
        return torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1)


class Block17(nn.Module):
    """``block (17)``: 1x1 | 1x1-1x7-7x1, residual scaled by 0.10 then ReLU."""

    def __init__(self, scale: float = 0.10) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = ConvBN(1088, 192, 1)
        self.b1 = nn.Sequential(
            ConvBN(1088, 128, 1), ConvBN(128, 160, (1, 7), padding=(0, 3)), ConvBN(160, 192, (7, 1), padding=(3, 0))
        )
        self.proj = nn.Conv2d(384, 1088, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + scale * proj(branches), ReLU."""
        out: torch.Tensor = self.relu(x + self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))
        return out


class Mixed7a(nn.Module):
    """Reduction-B to 8x8x2080."""

    def __init__(self) -> None:
        super().__init__()
        self.b0 = nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 384, 3, stride=2))
        self.b1 = nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 288, 3, stride=2))
        self.b2 = nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 288, 3, padding=1), ConvBN(288, 320, 3, stride=2))
        self.b3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the four branches."""
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class Block8(nn.Module):
    """``block (8)``: 1x1 | 1x1-1x3-3x1, residual scaled by 0.20, ReLU unless ``no_relu``."""

    def __init__(self, scale: float = 0.20, no_relu: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = ConvBN(2080, 192, 1)
        self.b1 = nn.Sequential(
            ConvBN(2080, 192, 1), ConvBN(192, 224, (1, 3), padding=(0, 1)), ConvBN(224, 256, (3, 1), padding=(1, 0))
        )
        self.proj = nn.Conv2d(448, 2080, 1)
        self.relu: nn.Module = nn.Identity() if no_relu else nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + scale * proj(branches), optional ReLU."""
        out: torch.Tensor = self.relu(x + self.scale * self.proj(torch.cat([self.b0(x), self.b1(x)], 1)))
        return out


class InceptionResNetV2Trunk(nn.Module):
    """Inception-ResNet-v2 feature trunk split at the 17x17x1088 stage.

    ``lower(x)`` runs stem .. ``block (17)`` repeats (the "30 blocks" after which Qi 2019 adds
    the CAM pathway, Eq. 4); ``upper(a)`` runs reduction-B .. conv 1x1 to 1536.
    """

    def __init__(self, in_chans: int = 3, repeats: tuple[int, int, int] = (10, 20, 9)) -> None:
        super().__init__()
        n35, n17, n8 = repeats
        self.stem = Stem(in_chans)
        self.mixed_5b = Mixed5b()
        self.repeat_35 = nn.Sequential(*[Block35() for _ in range(n35)])
        self.mixed_6a = Mixed6a()
        self.repeat_17 = nn.Sequential(*[Block17() for _ in range(n17)])
        self.mixed_7a = Mixed7a()
        self.repeat_8 = nn.Sequential(*[Block8() for _ in range(n8)])
        self.block8 = Block8(no_relu=True)
        self.conv_7b = ConvBN(2080, 1536, 1)
        self.mid_channels = 1088
        self.out_channels = 1536

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> 17x17x1088 (after the block (17) repeats)."""
        x = self.repeat_35(self.mixed_5b(self.stem(x)))
        out: torch.Tensor = self.repeat_17(self.mixed_6a(x))
        return out

    def upper(self, a: torch.Tensor) -> torch.Tensor:
        """17x17x1088 -> 8x8x1536."""
        out: torch.Tensor = self.conv_7b(self.block8(self.repeat_8(self.mixed_7a(a))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Full trunk."""
        return self.upper(self.lower(x))
