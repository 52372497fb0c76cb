"""An et al. 2019: multi-scale tissue patches, aggregated local results and heatmap regression.

"Mammography assessment with multi-scale patches, local aggregation and heatmap regression"
(An et al., 2019 seed paper). Implemented here:

* Data preparation: every scan flipped to one orientation (chest wall left), cropped without
  down-sampling to a 2048 x 2048 region right-aligned on the nipple (:func:`orient_and_crop`);
  tissue samples at magnifications x0.5, x0.33, x0.25; positives centred on the annotations'
  centres of mass (very large annotations ignored), negatives at a fixed stride of 32 px where
  the sample does not intersect any annotation (:func:`sample_patches`, the one patch sampler;
  :func:`multiscale_patches`).
* Tissue classifier ``q(z|x')``: a VGG-style CNN (:class:`AnPatchClassifier`) predicting the
  absence / presence of findings (BI-RADS <= 1 vs >= 2). Its convolutions are *unpadded* and its
  head is a convolution, so evaluating it densely on the whole image equals evaluating every
  patch separately at multiples of the network stride (32).
* Aggregated local results: the classifier evaluated at strides of 64 px
  (:func:`local_map_dense`, fully convolutional; :func:`local_map_loop`, the per-patch
  reference it must equal). Like An, who assess the breast region, the dense pass classifies
  the all-background windows once and convolves only the breast's bounding box (grown layer by
  layer by the receptive field), which is exact for valid convolutions.
* Heatmap regression (Bulat & Tzimiropoulos 2016): fully convolutional, 256 px in, three
  max-pools, 32 x 32 out, MSE against Gaussian-blurred down-sampled annotations
  (:class:`AnHeatmapFCN`, :func:`heatmap_target`), optionally with the local map concatenated
  before extra final convolutions (Fig. 2).
* Pixel saliency: ``|dH/dx|`` of the prediction entropy (Geras et al. 2017), kept only for
  positive patches inside the predicted heatmap and aggregated additively
  (:func:`entropy_gradient`, :func:`pixel_saliency`).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.imaging.breast import breast_mask, chest_wall_side
from engine.models.common import BreastClassifier
from engine.models.registry import register_model

PAPER = "An et al., 2019 (multi-scale tissue patches, stride-64 local aggregation, heatmap regression)"
CROP_SIZE = 2048
SCALES = (0.5, 0.33, 0.25)
PATCH = 256
NEG_STRIDE = 32
MAP_STRIDE = 64
HEATMAP_IN = 256
HEATMAP_OUT = 32

Lesion = tuple[float, float, float]
"""A finding as ``(cx, cy, radius)`` in image pixels (x = column, y = row from the top)."""


# -- preprocessing ------------------------------------------------------------------------------
@dataclass
class AnCrop:
    """A nipple-aligned crop and how to map coordinates between it and the source image.

    Attributes:
        image: ``(size, size)`` float32 crop (zero-padded where outside the scan).
        flipped: The source was mirrored left-right (chest wall moved to the left).
        row0: Source row of the crop's row 0 (after flipping; may be negative).
        col0: Source column of the crop's column 0 (after flipping; may be negative).
        source_shape: ``(rows, cols)`` of the source.
    """

    image: np.ndarray
    flipped: bool
    row0: int
    col0: int
    source_shape: tuple[int, int]

    def to_crop(self, x: float, y: float) -> tuple[float, float]:
        """Source pixel ``(x, y)`` -> crop pixel."""
        if self.flipped:
            x = self.source_shape[1] - 1 - x
        return x - self.col0, y - self.row0

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        """Crop pixel ``(x, y)`` -> source pixel."""
        x, y = x + self.col0, y + self.row0
        if self.flipped:
            x = self.source_shape[1] - 1 - x
        return x, y


def orient_and_crop(pixels: np.ndarray, *, size: int = CROP_SIZE) -> AnCrop:
    """Flip to one orientation (chest wall left) and crop ``size x size`` right-aligned on the nipple.

    The chest-wall side is :func:`engine.imaging.breast.chest_wall_side` (the side with more
    tissue in :func:`engine.imaging.breast.breast_mask`); the nipple is the breast pixel farthest
    from the chest wall among the central 80 % of the breast's rows (the top and bottom rows
    can hold the pectoral muscle or scanner artefacts). The crop is not down-sampled (An 2019,
    Data Preparation).

    Args:
        pixels: ``(rows, cols)`` mammogram.
        size: Crop side (2048 in the paper).
    """
    img = np.asarray(pixels, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError("orient_and_crop expects a (rows, cols) mammogram")
    mask = breast_mask(img)
    flipped = chest_wall_side(img) == "right"
    if flipped:
        img = img[:, ::-1]
        mask = mask[:, ::-1]
    rows_any = np.nonzero(mask.any(axis=1))[0]
    if rows_any.size:
        lo, hi = np.percentile(rows_any, [10, 90])
        band = np.arange(int(lo), int(hi) + 1)
        band = band[mask[band].any(axis=1)]
        right = np.array([np.nonzero(mask[r])[0].max() for r in band])
        nipple_col = int(right.max())
        nipple_row = int(np.median(band[right >= nipple_col - 2]))
    else:
        nipple_col, nipple_row = img.shape[1] - 1, img.shape[0] // 2
    col0 = nipple_col + 1 - size
    row0 = int(np.clip(nipple_row - size // 2, min(0, img.shape[0] - size), max(0, img.shape[0] - size)))
    out = np.zeros((size, size), np.float32)
    r_lo, r_hi = max(row0, 0), min(row0 + size, img.shape[0])
    c_lo, c_hi = max(col0, 0), min(col0 + size, img.shape[1])
    out[r_lo - row0:r_hi - row0, c_lo - col0:c_hi - col0] = img[r_lo:r_hi, c_lo:c_hi]
    return AnCrop(out, flipped, row0, col0, (int(pixels.shape[0]), int(pixels.shape[1])))


def rescale(img: np.ndarray, scale: float) -> np.ndarray:
    """Area-resample ``img`` by ``scale`` (magnification x0.5, x0.33, x0.25)."""
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img.astype(np.float32), (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _extract(img: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    r0, r1 = max(top, 0), min(top + size, img.shape[0])
    c0, c1 = max(left, 0), min(left + size, img.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = img[r0:r1, c0:c1]
    return out


class TissuePatches(NamedTuple):
    """Tissue samples of one magnification (:func:`sample_patches`).

    Attributes:
        patches: ``(N, patch, patch)`` float32, positives first.
        labels: ``(N,)`` int64, 1 = finding, 0 = no finding.
        centres: ``(row, col)`` of each sample's centre in the magnified image.
    """

    patches: np.ndarray
    labels: np.ndarray
    centres: list[tuple[int, int]]


def _touches(top: int, left: int, patch: int, lesions: Sequence[Lesion]) -> bool:
    """Whether the closed square ``[left, left + patch] x [top, top + patch]`` meets any
    annotation disc ``(cx, cy, r)`` (exact square-circle distance, not the disc's bounding box)."""
    for cx, cy, r in lesions:
        dx = max(left - cx, 0.0, cx - (left + patch))
        dy = max(top - cy, 0.0, cy - (top + patch))
        if dx * dx + dy * dy <= r * r:
            return True
    return False


def sample_patches(
    img: np.ndarray,
    lesions: Sequence[Lesion],
    *,
    scale: float = 0.5,
    patch: int = PATCH,
    stride: int = NEG_STRIDE,
    max_lesion_frac: float = 0.9,
    min_breast: float = 0.0,
    max_negatives: int | None = None,
    rng: random.Random | None = None,
) -> TissuePatches:
    """Tissue samples of one magnification, by An 2019's Data Preparation rules (the one sampler).

    * The image is area-resampled by ``scale`` (x0.5, x0.33, x0.25 of the 2048 px crop) and
      samples are ``patch`` px at that magnification (256 in the paper).
    * Positives ("sampling at the center of mass of annotated regions"): one sample centred on
      each annotation, zero-padded at the border; "very large annotations were ignored": a disc
      wider than ``max_lesion_frac * patch`` gives no positive (it still excludes negatives).
    * Negatives ("at fixed strides of 32 pixels for regions which did not intersect with any
      annotations"): every ``stride`` px, the sample inside the image, kept when its square does
      not meet any annotation disc. The paper keeps empty space, partial and full tissue
      (``min_breast = 0``); ``min_breast > 0`` keeps only samples centred in the breast
      (:func:`breast_mask`) with at least that share of breast pixels.
    * Counts: the paper keeps every negative (3038 / 311452 training patches, imbalance met by
      augmentation); ``max_negatives`` keeps a random subset per image (a CPU budget).

    Args:
        img: ``(rows, cols)`` crop at full resolution.
        lesions: ``(cx, cy, r)`` in ``img`` pixels (``r = 0``: a point annotation).
        scale: Magnification.
        patch: Sample side at that magnification.
        stride: Negative sampling stride at that magnification (32).
        max_lesion_frac: Size limit for positives.
        min_breast: Minimum share of breast pixels in a negative (0 = the paper: any content).
        max_negatives: Keep at most this many negatives (random subset), None = all.
        rng: Random source for the subset.

    Returns:
        :class:`TissuePatches` (patches, labels, centres).
    """
    small = rescale(img, scale)
    les = [(cx * scale, cy * scale, r * scale) for cx, cy, r in lesions]
    half = patch // 2
    pos_at = [(int(round(cy)) - half, int(round(cx)) - half) for cx, cy, r in les if 2 * r <= max_lesion_frac * patch]
    breast = breast_mask(small) if min_breast > 0 else None
    neg_at: list[tuple[int, int]] = []
    for top in range(0, max(small.shape[0] - patch, 0) + 1, stride):
        for left in range(0, max(small.shape[1] - patch, 0) + 1, stride):
            if _touches(top, left, patch, les):
                continue
            if breast is not None:
                r, c = min(top + half, small.shape[0] - 1), min(left + half, small.shape[1] - 1)
                if not breast[r, c] or breast[top:top + patch, left:left + patch].mean() < min_breast:
                    continue
            neg_at.append((top, left))
    if max_negatives is not None and len(neg_at) > max_negatives:
        neg_at = (rng or random).sample(neg_at, max_negatives)
    at = pos_at + neg_at
    patches = (np.stack([_extract(small, t, l, patch) for t, l in at]) if at
               else np.zeros((0, patch, patch), np.float32))
    labels = np.array([1] * len(pos_at) + [0] * len(neg_at), dtype=np.int64)
    return TissuePatches(patches, labels, [(t + half, l + half) for t, l in at])


def multiscale_patches(
    img: np.ndarray, lesions: Sequence[Lesion], *, scales: Sequence[float] = SCALES, patch: int = PATCH,
    stride: int = NEG_STRIDE, max_negatives: int | None = None, rng: random.Random | None = None,
) -> dict[float, TissuePatches]:
    """:func:`sample_patches` at every magnification (x0.5, x0.33, x0.25)."""
    return {s: sample_patches(img, lesions, scale=s, patch=patch, stride=stride, max_negatives=max_negatives, rng=rng)
            for s in scales}


# -- tissue classifier --------------------------------------------------------------------------
class AnPatchClassifier(BreastClassifier):
    """VGG-style tissue classifier with unpadded convolutions and a convolutional head.

    Five blocks of 3x3 valid convolutions + 2x2 max-pool (network stride 32), then a
    convolution covering the remaining field and a 1x1 convolution to 2 classes
    (no finding / finding). On a ``patch x patch`` input the head output is 1 x 1.
    """

    min_input_size = PATCH

    def __init__(self, *, patch: int = PATCH, widths: Sequence[int] = (8, 16, 32, 64, 128), hidden: int = 128,
                 dropout: float = 0.3, in_chans: int = 1) -> None:
        super().__init__(in_chans=in_chans, num_outputs=2, init_description="random He/Kaiming-normal init (trained from scratch)",
                         gray="native")
        layers: list[nn.Module] = []
        c = in_chans
        for i, w in enumerate(widths):
            n = 1 if i == len(widths) - 1 else 2
            for _ in range(n):
                layers += [nn.Conv2d(c, w, 3), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.stride = 2 ** len(widths)
        with torch.no_grad():
            k = int(self.body(torch.zeros(1, in_chans, patch, patch)).shape[-1])
        if k < 1:
            raise ValueError(f"patch {patch} is too small for {len(widths)} blocks")
        self.patch = patch
        self.min_input_size = patch
        self.head = nn.Sequential(nn.Conv2d(c, hidden, k), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Conv2d(hidden, 2, 1))
        # He initialisation: with PyTorch's default (fan-in uniform, gain 1/sqrt(3)) the signal
        # shrinks through the 9 unpadded ReLU convolutions and training from scratch stalls at
        # loss log 2 (seen on mini-MIAS patches); He et al. 2015 keeps activations at unit scale.
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_in", nonlinearity="relu")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out

    def dense_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, 2, h, w)``: logits of every patch at multiples of the network stride."""
        out: torch.Tensor = self.head(features)
        return out

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 2)`` (averaged over positions when the input is larger than a patch)."""
        out: torch.Tensor = self.head(features).mean(dim=(2, 3))
        return out


def _as_batch(image: np.ndarray | torch.Tensor, patch: int) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    h, w = t.shape[-2:]
    if h < patch or w < patch:
        t = F.pad(t, (0, max(0, patch - w), 0, max(0, patch - h)))
    return t


def local_map_grid(shape: tuple[int, int], patch: int, stride: int = MAP_STRIDE) -> tuple[int, int]:
    """Number of patch positions ``(rows, cols)`` at ``stride`` inside an image of ``shape``."""
    h, w = max(shape[0], patch), max(shape[1], patch)
    return (h - patch) // stride + 1, (w - patch) // stride + 1


@torch.inference_mode()
def local_map_loop(model: AnPatchClassifier, image: np.ndarray | torch.Tensor, *, stride: int = MAP_STRIDE,
                   channels_last: bool = False) -> np.ndarray:
    """Reference: classify every ``patch`` window at ``stride`` one at a time (batch of 1).

    ``channels_last`` runs the same loop with an NHWC copy of the model (a stronger baseline).

    Returns:
        ``(rows, cols)`` map of p(finding) at each window (top-left at ``stride * (i, j)``).
    """
    model.eval()
    net = copy.deepcopy(model).to(memory_format=torch.channels_last) if channels_last else model  # type: ignore[call-overload]
    t = _as_batch(image, model.patch)
    dev = next(model.parameters()).device
    nr, nc = local_map_grid((t.shape[-2], t.shape[-1]), model.patch, stride)
    out = np.zeros((nr, nc), np.float32)
    p = model.patch
    for i in range(nr):
        for j in range(nc):
            x = t[..., i * stride:i * stride + p, j * stride:j * stride + p].to(dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out[i, j] = float(torch.softmax(net(x), 1)[0, 1])
    return out


def _window_any(mask: torch.Tensor, patch: int, stride: int) -> torch.Tensor:
    """``(nr, nc)``: whether each ``patch`` window at ``stride`` holds a True pixel of ``mask``.

    Exact: ``mask`` is reduced on a ``gcd(patch, stride)`` block grid, then over the blocks of
    each window.
    """
    import math

    nr, nc = local_map_grid((mask.shape[0], mask.shape[1]), patch, stride)
    g = math.gcd(patch, stride)
    h, w = (nr - 1) * stride + patch, (nc - 1) * stride + patch
    blocks = mask[:h, :w].reshape(h // g, g, w // g, g).any(3).any(1)
    return F.max_pool2d(blocks[None, None].float(), patch // g, stride // g)[0, 0] > 0


def background_value(image: np.ndarray | torch.Tensor) -> float:
    """The background value of an image: the most common of its four corner pixels.

    After An's nipple-aligned crop (zero-padded) and a breast mask the corners are the
    background; on an image without a flat background any value is safe, it only decides which
    windows can be skipped (none, then).
    """
    a = torch.as_tensor(image)
    a = a.reshape(a.shape[-2], a.shape[-1])
    corners = [float(a[0, 0]), float(a[0, -1]), float(a[-1, 0]), float(a[-1, -1])]
    return max(corners, key=corners.count)


def background_windows(image: np.ndarray | torch.Tensor, patch: int, stride: int,
                       value: float | None = None) -> np.ndarray:
    """``(nr, nc)`` bool: the ``patch`` windows at ``stride`` whose pixels all equal the background.

    Args:
        image: ``(rows, cols)`` image.
        patch: Window side.
        stride: Window stride.
        value: Background value (default :func:`background_value`).
    """
    a = torch.as_tensor(np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image)
    a = a.reshape(a.shape[-2], a.shape[-1])
    c = background_value(a) if value is None else value
    return (~_window_any(a != c, patch, stride)).numpy()


def _layer_geometry(m: nn.Module) -> tuple[int, int] | None:
    """``(kernel, stride)`` of a layer the bounding-box pass understands, ``(1, 1)`` if pointwise."""
    if isinstance(m, (nn.ReLU, nn.Identity, nn.Dropout)):
        return 1, 1
    if isinstance(m, nn.Conv2d):
        if (m.padding not in ((0, 0), "valid") or m.stride != (1, 1) or m.dilation != (1, 1)
                or m.kernel_size[0] != m.kernel_size[1]):
            return None
        return int(m.kernel_size[0]), 1
    if isinstance(m, nn.MaxPool2d):
        k, s = m.kernel_size, m.stride
        if (m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)) or m.ceil_mode
                or not isinstance(k, int) or not isinstance(s, int)):
            return None
        return k, s
    return None


def _take(x: torch.Tensor, lo: tuple[int, int], want: tuple[int, int, int, int], fill: torch.Tensor) -> torch.Tensor:
    """Rows ``want[0]:want[1]``, cols ``want[2]:want[3]`` of a map stored as the crop ``x`` at ``lo``.

    Everything outside the stored crop is the constant per-channel ``fill`` ``(1, C, 1, 1)``; only
    the border strips are filled, the stored part is copied once (or returned as a view).
    """
    r0, c0 = lo
    r1, c1 = r0 + x.shape[-2], c0 + x.shape[-1]
    a0, a1, b0, b1 = want
    if a0 >= r0 and a1 <= r1 and b0 >= c0 and b1 <= c1:
        return x[..., a0 - r0:a1 - r0, b0 - c0:b1 - c0]
    out = torch.empty((x.shape[0], x.shape[1], a1 - a0, b1 - b0), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    i0, i1, j0, j1 = max(a0, r0), min(a1, r1), max(b0, c0), min(b1, c1)
    out[..., i0 - a0:i1 - a0, j0 - b0:j1 - b0] = x[..., i0 - r0:i1 - r0, j0 - c0:j1 - c0]
    out[..., : i0 - a0, :] = fill
    out[..., i1 - a0:, :] = fill
    out[..., :, : j0 - b0] = fill
    out[..., :, j1 - b0:] = fill
    return out


def _nhwc(w: torch.Tensor) -> torch.Tensor:
    """A copy of a 4-D tensor with explicit NHWC strides.

    With one channel, ``.contiguous(memory_format=torch.channels_last)`` keeps the NCHW strides
    (both layouts are "contiguous"), and PyTorch then sends the first convolution to its slow
    non-oneDNN path (~10x slower here); explicit strides select the NHWC oneDNN kernel.
    """
    n, c, h, wd = w.shape
    return torch.empty_strided(tuple(w.shape), (c * h * wd, 1, wd * c, c), dtype=w.dtype,
                               device=w.device).copy_(w)


def _conv_nhwc(x: torch.Tensor, m: nn.Conv2d, *, relu: bool) -> torch.Tensor:
    """Valid convolution of an NHWC map with NHWC weights, ReLU fused into it when asked.

    The fused oneDNN kernel (conv + ReLU in one pass, as PyTorch's inductor emits on CPU) is
    used when available; otherwise convolution then in-place ReLU (same values).
    """
    w = _nhwc(m.weight)
    if relu and x.device.type == "cpu" and m.padding_mode == "zeros" and hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        try:
            fused: torch.Tensor = torch.ops.mkldnn._convolution_pointwise(x, w, m.bias, [0, 0], [1, 1], [1, 1],
                                                                          m.groups, "relu", [None], "")
            return fused
        except (RuntimeError, TypeError):
            pass
    y = F.conv2d(x, w, m.bias, groups=m.groups)
    return torch.relu_(y) if relu else y


def _maxpool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 / stride-2 max-pool (floor) as two element-wise maxima of strided views.

    The same values as ``F.max_pool2d(x, 2)``, without the index bookkeeping of its CPU kernel
    (~5x faster on these thin NHWC maps).
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _needed(lo: int, n: int, k: int, s: int, n_out: int) -> tuple[int, int]:
    """Output range ``[o0, o1)`` of a (k, s) layer whose receptive field meets input ``[lo, lo + n)``."""
    return max(0, (lo - k) // s + 1), min(n_out, -(-(lo + n) // s))


Segment = list[tuple[nn.Module, int, int]]
"""Layers up to and including one down-sampling layer, each with its ``(kernel, stride)``."""


def _seg_forward(rng: list[tuple[int, int]], size: list[int], seg: Segment) -> tuple[list[tuple[int, int]], list[int]]:
    """Per dimension: output range whose receptive field meets input range ``rng``, output size."""
    for _, k, s in seg:
        if (k, s) != (1, 1):
            n_out = [(n - k) // s + 1 for n in size]
            rng = [_needed(a, b - a, k, s, n) for (a, b), n in zip(rng, n_out)]
            size = n_out
    return rng, size


def _seg_backward(rng: list[tuple[int, int]], seg: Segment) -> list[tuple[int, int]]:
    """Per dimension: the input range valid operations need to produce output range ``rng``."""
    for _, k, s in reversed(seg):
        if (k, s) != (1, 1):
            rng = [(a * s, (b - 1) * s + k) for a, b in rng]
    return rng


def _seg_constant(seg: Segment, v: torch.Tensor) -> torch.Tensor:
    """The segment's response ``(1, C, 1, 1)`` to a constant input ``v`` (position independent)."""
    for m, k, _ in seg:
        v = m(v.expand(-1, -1, k, k).clone(memory_format=torch.contiguous_format))
    return v


def _seg_run(seg: Segment, x: torch.Tensor) -> torch.Tensor:
    """Run a segment on an NHWC map: conv + ReLU fused, 2x2 max-pools as strided maxima."""
    fused = False
    for idx, (m, k, s) in enumerate(seg):
        if fused:  # this ReLU already ran inside the convolution
            fused = False
            continue
        if isinstance(m, nn.Conv2d):
            fused = idx + 1 < len(seg) and isinstance(seg[idx + 1][0], nn.ReLU)
            x = _conv_nhwc(x, m, relu=fused)
        elif isinstance(m, nn.MaxPool2d) and (k, s) == (2, 2):
            x = _maxpool2(x)
        else:
            x = m(x)  # pointwise (an in-place ReLU acts on a tensor this pass owns) or pooling
    return x


def _sparse_ok(net: AnPatchClassifier) -> bool:
    """Whether every layer is a valid conv / floor max-pool / pointwise op and the head is kxk then 1x1."""
    head = list(net.head)
    return (all(_layer_geometry(m) is not None for m in net.body) and isinstance(head[0], nn.Conv2d)
            and _layer_geometry(head[0]) is not None
            and all(_layer_geometry(m) == (1, 1) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
                    for m in head[1:]))


def _bbox_probs(net: AnPatchClassifier, t: torch.Tensor, box: tuple[int, int, int, int], nr: int, nc: int,
                stride: int, c: float) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """p(finding) of the windows whose receptive field reaches the box of pixels ``!= c``.

    A valid convolution / ReLU / max-pool output whose receptive field holds only ``c`` equals
    the layer's response to a constant image (position independent), so each layer is evaluated
    only on the bounding box of the positions whose receptive field reaches the non-background
    box (the breast's bounding box, grown by the kernel at every layer), the constant response
    filling in where a kernel overlaps the box edge. That constant response is obtained by
    running the same layers on a kxk constant input, and the full network on it gives the
    background windows' output. The kxk head (the classifier applied as a convolution) runs
    strided, at the stride-64 window positions only.

    Args:
        net: Tissue classifier (eval mode).
        t: ``(1, 1, H, W)`` image.
        box: ``(r0, r1, c0, c1)`` bounding box of the pixels ``!= c``.
        nr: Window rows.
        nc: Window columns.
        stride: Window stride.
        c: Background value.

    Returns:
        ``(probabilities (i1 - i0, j1 - j0), window box (i0, i1, j0, j1), background p(finding))``.
    """
    head = list(net.head)
    r0, r1, c0, c1 = box
    dev = next(net.parameters()).device
    # Segments end at each down-sampling layer: the stored map is grown (copied, the constant
    # response filling the border) once per segment, to the range its last layer needs.
    segments: list[Segment] = [[]]
    for m in net.body:
        k, s = _layer_geometry(m) or (1, 1)
        segments[-1].append((m, k, s))
        if s > 1:
            segments.append([])
    x = t[..., r0:r1, c0:c1]
    lo, full = (r0, c0), (int(t.shape[-2]), int(t.shape[-1]))
    first = True
    v = torch.full((1, t.shape[1], 1, 1), c, device=dev, dtype=x.dtype)
    for seg in segments:
        if not seg:
            continue
        # Forward: positions whose receptive field meets the stored box (the rest is constant).
        rng, size = _seg_forward([(lo[d], lo[d] + int(x.shape[2 + d])) for d in (0, 1)], list(full), seg)
        out_lo = (rng[0][0], rng[1][0])
        v_in, v = v, _seg_constant(seg, v)
        # Backward: the input range that yields exactly those outputs with valid operations.
        want_r, want_c = _seg_backward(rng, seg)
        want = (want_r[0], want_r[1], want_c[0], want_c[1])
        if first:  # the image itself is the background outside the box: slice it
            x = _nhwc(t[..., want[0]:want[1], want[2]:want[3]].to(dev))
        else:
            x = _take(x, lo, want, v_in)
        x = _seg_run(seg, x)
        first = False
        lo, full = out_lo, (size[0], size[1])
    # Window (i, j) reads features [step * i, step * i + k): network stride 32, window stride 64.
    conv0 = head[0]
    assert isinstance(conv0, nn.Conv2d)
    k = int(conv0.kernel_size[0])
    step = stride // net.stride
    (i0, i1), (j0, j1) = (_needed(lo[d], int(x.shape[2 + d]), k, step, (nr, nc)[d]) for d in (0, 1))
    fin = _take(x, lo, (i0 * step, (i1 - 1) * step + k, j0 * step, (j1 - 1) * step + k), v)
    hb = v.expand(-1, -1, k, k).contiguous()  # the head on constant features: background windows
    h = F.conv2d(fin, conv0.weight, conv0.bias, stride=step)
    hb = F.conv2d(hb, conv0.weight, conv0.bias)
    for m in head[1:]:
        h, hb = m(h), m(hb)
    prob = torch.softmax(h.float(), 1)[0, 1].cpu().numpy()
    return prob, (i0, i1, j0, j1), float(torch.softmax(hb.float(), 1)[0, 1, 0, 0])


@torch.inference_mode()
def local_map_dense(model: AnPatchClassifier, image: np.ndarray | torch.Tensor, *, stride: int = MAP_STRIDE,
                    tile: int = 1024, channels_last: bool = True, skip_background: bool = True) -> np.ndarray:
    """Fully convolutional stride-64 aggregated local map (equals :func:`local_map_loop`).

    The image is processed in overlapping tiles (``tile`` px of patch origins each) to bound
    memory; within a tile one convolution pass yields every patch's logits at the network
    stride, of which every ``stride // model.stride``-th is kept.

    With ``skip_background`` (An 2019 assess the breast region; the background outside it is
    flat after the nipple-aligned crop and breast mask), per tile:

    * windows whose pixels all equal the background value (:func:`background_windows`) are
      identical inputs, so they get one output, that of the network on a constant input
      (evaluated once, its spatial redundancy removed), broadcast to all of them;
    * the convolutions run only over the bounding box of the non-background pixels, grown layer
      by layer by the receptive field, with the background's constant response around it, and
      the kxk head runs strided at the window positions only (:func:`_bbox_probs`).

    The result equals the plain dense pass and the per-patch loop up to float rounding.
    """
    if stride % model.stride:
        raise ValueError(f"stride {stride} must be a multiple of the network stride {model.stride}")
    model.eval()
    t = _as_batch(image, model.patch)
    dev = next(model.parameters()).device
    nr, nc = local_map_grid((t.shape[-2], t.shape[-1]), model.patch, stride)
    step = stride // model.stride
    per_tile = max(1, tile // stride)
    out = np.zeros((nr, nc), np.float32)
    p = model.patch
    sparse = (skip_background and model.in_chans == 1 and t.shape[0] == 1 and t.shape[1] == 1
              and _sparse_ok(model))
    net: AnPatchClassifier | None = None
    for i0 in range(0, nr, per_tile):
        for j0 in range(0, nc, per_tile):
            i1, j1 = min(nr, i0 + per_tile), min(nc, j0 + per_tile)
            sub = t[..., i0 * stride:(i1 - 1) * stride + p, j0 * stride:(j1 - 1) * stride + p]
            if sparse and _sparse_tile(model, sub, stride, out[i0:i1, j0:j1]):
                continue
            if net is None:
                # channels-last copy: oneDNN / cuDNN run these thin convolutions 2-4x faster in NHWC.
                net = (copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                       if channels_last else model)
            x = sub.to(dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = net.dense_logits(net.forward_features(x))
            prob = torch.softmax(logits.float(), 1)[0, 1, ::step, ::step]
            out[i0:i1, j0:j1] = prob[: i1 - i0, : j1 - j0].cpu().numpy()
    return out


def _sparse_tile(model: AnPatchClassifier, sub: torch.Tensor, stride: int, out: np.ndarray) -> bool:
    """Fill ``out`` (the tile's windows): background broadcast + bounding-box pass.

    Returns:
        False (``out`` untouched) when the tile has no flat background to exploit.
    """
    nr, nc = out.shape
    p = model.patch
    img = sub[0, 0]
    c = background_value(img)
    diff = img != c
    rows = torch.nonzero(diff.any(1)).flatten()
    if rows.numel() == 0:
        return False  # a flat tile: rare, the plain pass is fine
    cols = torch.nonzero(diff.any(0)).flatten()
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    bg = (~_window_any(diff, p, stride)).numpy()
    if not bg.any() and box == (0, img.shape[0], 0, img.shape[1]):
        return False  # nothing to skip
    prob, (i0, i1, j0, j1), p_bg = _bbox_probs(model, sub, box, nr, nc, stride, c)
    out[bg] = p_bg
    done = bg.copy()
    inner = ~done[i0:i1, j0:j1]
    out[i0:i1, j0:j1][inner] = prob[inner]
    done[i0:i1, j0:j1] = True
    dev = next(model.parameters()).device
    for i, j in np.argwhere(~done):  # windows touching only pixels that no output reads
        x = sub[..., i * stride:i * stride + p, j * stride:j * stride + p].to(dev)
        out[i, j] = float(torch.softmax(model(x), 1)[0, 1])
    return True


# -- heatmap regression -------------------------------------------------------------------------
def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AnHeatmapFCN(nn.Module):
    """Fully convolutional heatmap regression: 256 x 256 in, three max-pools, 32 x 32 out.

    With ``use_local_map`` the stride-64 local map (resized to 32 x 32) is concatenated before
    additional final convolutions (An 2019, Fig. 2).
    """

    output_activation = "none"

    def __init__(self, *, in_chans: int = 1, use_local_map: bool = False, widths: Sequence[int] = (32, 64, 128, 128)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.body = nn.Sequential(
            *_conv(in_chans, w1), *_conv(w1, w1), nn.MaxPool2d(2),
            *_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(2),
            *_conv(w2, w3), *_conv(w3, w3), nn.MaxPool2d(2),
            *_conv(w3, w4), *_conv(w4, w4),
        )
        self.use_local_map = use_local_map
        self.in_chans = in_chans
        self.num_outputs = 1
        self.init_description = "random (trained from scratch)"
        self.out: nn.Module
        if use_local_map:
            self.out = nn.Sequential(*_conv(w4 + 1, 64), *_conv(64, 32), nn.Conv2d(32, 1, 1))
        else:
            self.out = nn.Conv2d(w4, 1, 1)

    def forward(self, x: torch.Tensor, local_map: torch.Tensor | None = None) -> torch.Tensor:
        """Heatmap ``(B, 1, H/8, W/8)``; ``local_map`` ``(B, 1, h, w)`` required with ``use_local_map``."""
        f = self.body(x)
        if self.use_local_map:
            if local_map is None:
                raise ValueError("this heatmap model needs the local map as a second input")
            lm = F.interpolate(local_map.to(f.dtype), size=f.shape[-2:], mode="bilinear", align_corners=False)
            f = torch.cat([f, lm], 1)
        out: torch.Tensor = self.out(f)
        return out

    def example_inputs(self, batch: int = 2, size: int = 64) -> tuple[torch.Tensor, ...]:
        """Random image batch (+ a local map when used)."""
        s = max(size, 32)
        x = torch.rand(batch, self.in_chans, s, s)
        return (x, torch.rand(batch, 1, 8, 8)) if self.use_local_map else (x,)


def heatmap_target(lesions: Sequence[Lesion], shape: tuple[int, int], *, out: int = HEATMAP_OUT,
                   sigma: float = 1.0) -> np.ndarray:
    """Down-sampled annotation discs, Gaussian blurred (MSE target of the heatmap model).

    Args:
        lesions: ``(cx, cy, r)`` in pixels of an image of ``shape`` ``(rows, cols)``.
        shape: Image shape.
        out: Output side (32).
        sigma: Blur in output pixels.

    Returns:
        ``(out, out)`` float32 in [0, 1] (max 1 when any lesion).
    """
    from scipy.ndimage import gaussian_filter

    rows, cols = shape
    yy, xx = np.mgrid[0:out, 0:out].astype(np.float32)
    xx = (xx + 0.5) * cols / out
    yy = (yy + 0.5) * rows / out
    t = np.zeros((out, out), np.float32)
    for cx, cy, r in lesions:
        rr = max(r, 0.5 * max(rows, cols) / out)
        t[(xx - cx) ** 2 + (yy - cy) ** 2 <= rr**2] = 1.0
    blurred: np.ndarray = np.asarray(gaussian_filter(t, sigma), dtype=np.float32)
    m = float(blurred.max())
    return blurred / m if m > 0 else blurred


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise mean squared error (An 2019)."""
    return F.mse_loss(pred, target.to(pred.dtype))


# -- entropy-gradient pixel saliency --------------------------------------------------------------
def entropy_gradient(model: BreastClassifier, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|dH/dx|`` per pixel of the prediction entropy ``H = -sum p log p`` (An 2019 Sec. 3).

    Args:
        model: A classifier returning logits.
        patches: ``(B, C, h, w)``.

    Returns:
        ``(saliency (B, h, w) summed over channels, p(positive) (B,))``.
    """
    x = patches.detach().clone().requires_grad_(True)
    logits = model(x)
    logp = torch.log_softmax(logits.float(), 1)
    h = -(logp.exp() * logp).sum(1)
    (g,) = torch.autograd.grad(h.sum(), x)
    return g.abs().sum(1).detach(), logp.exp()[:, 1].detach()


def pixel_saliency(model: AnPatchClassifier, image: np.ndarray, heatmap: np.ndarray, *, stride: int = MAP_STRIDE,
                   heat_threshold: float = 0.5, batch: int = 16) -> np.ndarray:
    """Full-scale saliency: entropy gradients of positive patches inside the predicted heatmap.

    Only patches classified positive whose centre lies where the (resized) heatmap exceeds
    ``heat_threshold * max`` contribute; their saliency is added at its global position and
    anything outside the heatmap is dropped (An 2019 Sec. 4.2).

    Args:
        model: Tissue classifier.
        image: ``(rows, cols)`` image at the classifier's magnification.
        heatmap: Predicted heatmap (any size; resized to the image).
        stride: Patch stride.
        heat_threshold: Fraction of the heatmap maximum defining "inside".
        batch: Patches per backward pass.

    Returns:
        ``(rows, cols)`` float32 saliency (not normalised).
    """
    import cv2

    model.eval()
    img = np.asarray(image, np.float32)
    rows, cols = img.shape
    hm = cv2.resize(np.asarray(heatmap, np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
    mx = float(hm.max())
    inside = hm >= heat_threshold * mx if mx > 0 else np.zeros_like(hm, bool)
    p = model.patch
    t = _as_batch(img, p)[0, 0]
    nr, nc = local_map_grid((rows, cols), p, stride)
    cand = [(i * stride, j * stride) for i in range(nr) for j in range(nc)
            if inside[min(i * stride + p // 2, rows - 1), min(j * stride + p // 2, cols - 1)]]
    acc = torch.zeros_like(t)
    dev = next(model.parameters()).device
    for k in range(0, len(cand), batch):
        chunk = cand[k:k + batch]
        xs = torch.stack([t[r:r + p, c:c + p] for r, c in chunk])[:, None].to(dev)
        sal, prob = entropy_gradient(model, xs)
        for (r, c), s, pr in zip(chunk, sal.cpu(), prob.cpu()):
            if pr >= 0.5:
                acc[r:r + p, c:c + p] += s
    out = acc[:rows, :cols].numpy()
    out[~inside] = 0.0
    return out


@register_model("an_patch_classifier", family="an", paper=PAPER, modalities=("MG",),
                task="tissue patch: no finding vs finding (BI-RADS <=1 vs >=2); dense stride-64 local map",
                saliency=("entropy", "gradcam"))
def an_patch_classifier(*, patch: int = PATCH, widths: Sequence[int] = (8, 16, 32, 64, 128), hidden: int = 128,
                        dropout: float = 0.3, in_chans: int = 1, pretrained: bool = False) -> AnPatchClassifier:
    """VGG-style tissue classifier (from scratch)."""
    return AnPatchClassifier(patch=patch, widths=tuple(widths), hidden=hidden, dropout=dropout, in_chans=in_chans)


@register_model("an_heatmap_fcn", family="an", paper=PAPER, modalities=("MG",),
                task="heatmap regression 256 px -> 32x32 (MSE on blurred annotations)", saliency=())
def an_heatmap_fcn(*, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 128),
                   pretrained: bool = False) -> AnHeatmapFCN:
    """Baseline heatmap regression."""
    return AnHeatmapFCN(in_chans=in_chans, use_local_map=False, widths=tuple(widths))


@register_model("an_heatmap_fcn_local", family="an", paper=PAPER, modalities=("MG",),
                task="heatmap regression with the aggregated local map as extra input (Fig. 2)", saliency=())
def an_heatmap_fcn_local(*, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 128),
                         pretrained: bool = False) -> AnHeatmapFCN:
    """Heatmap regression + local aggregated results."""
    return AnHeatmapFCN(in_chans=in_chans, use_local_map=True, widths=tuple(widths))
