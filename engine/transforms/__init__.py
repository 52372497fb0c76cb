"""Model input preparation as data: a typed :class:`Preprocess` and the transform built from it.

Every weights folder's :class:`~engine.models.weights.WeightsSpec` holds a :class:`Preprocess`;
``spec.transforms()`` (torchvision ``weights.transforms()`` style) returns the
:class:`EvalTransform` that training (the ship recipes' feature extraction), ``evaluate``,
``breast-engine score`` and the GUI all use. No other code prepares model input.

The steps, in order:

1. **decode** (done by :func:`engine.io.reader.read_image`) and **plane**: an MR stack gives
   the chosen slice (default middle);
2. **intensity** to [0, 1] (``auto``: 8-bit / 255, else the first DICOM window, else the
   0.5-99.5 percentiles; ``percentile``: always the percentiles);
3. **colour policy** (``gray``: luminance, then replicated to ``in_chans``; ``keep``: RGB stays
   RGB for 3-channel models); ``clean = "film"``: on a mammogram, burned-in film labels,
   markers and film-border strips are masked to the background
   (:func:`engine.imaging.breast.clean_film`);
4. **crop policy** (``whole`` image, ``lesion_box`` = the reader's box + ``box_margin`` of its
   size per side, ``breast_box`` = the breast's bounding box); ``box`` says whether a box is
   ``ignored`` (whole-image models: a crop would be out of distribution), ``optional`` or
   ``required``; ``orient`` turns the chest wall to the left (An 2019);
5. **resize** with a named interpolation: ``stretch`` to ``size``, ``five_crop`` (shorter
   side to ``size``, Qi 2019's five uniformly spaced crops, scores averaged) or ``center_crop``
   (shorter side to ``size``, the central ``size`` crop: Qi's single-input evaluation);
6. **normalisation** ``(x - mean) / std`` (torchvision v2 ``Normalize``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import torch

from engine.imaging.breast import chest_wall_side
from engine.imaging.geometry import Box, center_crop, expand_box, five_crops, resize, resize_shorter_side
from engine.imaging.intensity import percentile_unit, to_gray, to_unit_range
from engine.io.types import LoadedImage

Intensity = Literal["auto", "percentile"]
Colour = Literal["gray", "keep"]
Crop = Literal["whole", "lesion_box", "breast_box"]
BoxPolicy = Literal["ignored", "optional", "required"]
Resize = Literal["stretch", "five_crop", "center_crop"]
Interpolation = Literal["bilinear", "bicubic", "nearest", "area"]
Clean = Literal["none", "film"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "intensity": ("auto", "percentile"),
    "colour": ("gray", "keep"),
    "crop": ("whole", "lesion_box", "breast_box"),
    "box": ("ignored", "optional", "required"),
    "resize": ("stretch", "five_crop", "center_crop"),
    "interpolation": ("bilinear", "bicubic", "nearest", "area"),
    "clean": ("none", "film"),
}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input (see the module docstring for the order).

    Attributes:
        size: ``[h, w]`` of the network input (five-crop: the crop side ``h``).
        in_chans: Channels fed to the network (gray is replicated).
        mean: Per-channel normalisation mean (on [0, 1] intensities).
        std: Per-channel normalisation std.
        intensity: ``auto`` or ``percentile``.
        colour: ``gray`` or ``keep``.
        crop: ``whole``, ``lesion_box`` or ``breast_box``.
        box: Reader's box policy: ``ignored``, ``optional`` or ``required``.
        box_margin: Fraction of the box size added per side.
        orient: Mirror mammograms so the chest wall is on the left.
        resize: ``stretch``, ``five_crop`` or ``center_crop``.
        interpolation: ``bilinear``, ``bicubic``, ``nearest`` or ``area``.
        antialias: Antialias when down-sampling (bilinear/bicubic).
        patch_px: With ``crop = "lesion_box"``: when > 0, the region is a fixed square of this
            many image pixels centred on the box (shifted inside the image) instead of the box +
            margin -- An et al. 2019's tissue patches at a fixed magnification, which keep the
            lesion's physical size; 0 = box + margin.
        clean: ``none`` or ``film``: on a mammogram, mask burned-in film labels, markers and
            film-border strips to the background before cropping
            (:func:`engine.imaging.breast.clean_film`).
        description: Free text for the model card.
    """

    size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    intensity: Intensity = "auto"
    colour: Colour = "gray"
    crop: Crop = "whole"
    box: BoxPolicy = "optional"
    box_margin: float = 0.15
    orient: bool = False
    resize: Resize = "stretch"
    interpolation: Interpolation = "bilinear"
    antialias: bool = True
    clean: Clean = "none"
    patch_px: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            v = getattr(self, name)
            if v not in allowed:
                raise ValueError(f"preprocess.{name} = {v!r}; expected one of {', '.join(allowed)}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"preprocess.size must be [h, w], got {list(self.size)}")
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, self.in_chans):
            raise ValueError("preprocess.mean/std must have one value per input channel")
        if self.patch_px < 0:
            raise ValueError(f"preprocess.patch_px must be >= 0, got {self.patch_px}")
        if self.crop == "lesion_box" and self.box == "ignored":
            raise ValueError("preprocess.crop = 'lesion_box' needs box 'optional' or 'required'")

    # ------------------------------------------------------------------ json
    def to_json(self) -> dict[str, Any]:
        """Plain JSON (lists instead of tuples)."""
        d = asdict(self)
        d["size"], d["mean"], d["std"] = list(self.size), list(self.mean), list(self.std)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        """Build from :meth:`to_json` output.

        Raises:
            ValueError: an unknown key or a value outside the allowed choices.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"preprocess: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        d = dict(data)
        for k in ("size", "mean", "std"):
            if k in d:
                d[k] = tuple(int(v) if k == "size" else float(v) for v in d[k])
        return cls(**d)

    @property
    def needs_box(self) -> bool | None:
        """``spec.extra["needs_box"]`` of older folders: True (required), False (ignored), None."""
        return {"required": True, "ignored": False}.get(self.box)

    @property
    def five_crop(self) -> bool:
        """Whether scores are averaged over Qi's five crops."""
        return self.resize == "five_crop"

    def with_(self, **changes: Any) -> Preprocess:
        """A copy with some fields changed (e.g. another box margin for a training view)."""
        return replace(self, **changes)


@dataclass
class Prepared:
    """A network input and how it maps back to the image.

    Attributes:
        tensor: ``(C, H, W)`` normalised input, or ``(5, C, H, W)`` Qi crops.
        region: ``(x0, y0, x1, y1)`` of the image that was used (whole image when no box).
        flipped: The region was mirrored left-right before resizing.
        image_shape: ``(rows, cols)`` of the 2-D image.
        frame: MR slice used (None for 2-D images).
    """

    tensor: torch.Tensor
    region: tuple[int, int, int, int]
    flipped: bool
    image_shape: tuple[int, int]
    frame: int | None = None


def is_stack(image: LoadedImage) -> bool:
    """Whether the image is a (frames, rows, cols) slice stack (not an RGB image)."""
    return image.pixels.ndim == 3 and not image.is_rgb


def image_plane(image: LoadedImage, frame: int | None = None) -> np.ndarray:
    """The 2-D (or RGB) plane to score: MR stacks give the middle slice by default."""
    px = image.pixels
    if is_stack(image):
        return px[px.shape[0] // 2 if frame is None else frame, ...]  # (the ellipsis types it as an array)
    return px


class BoxRequired(ValueError):
    """Raised by :class:`EvalTransform` when the policy needs a box and none was given."""


@dataclass
class EvalTransform:
    """The deterministic input preparation of one :class:`Preprocess` (callable).

    Attributes:
        pre: The preprocessing it implements.
        default_modality: Modality assumed for images that carry none (PNG/JPEG).
    """

    pre: Preprocess
    default_modality: str = "US"
    _norm: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from engine import _torchvision_shim

        _torchvision_shim.ensure()
        from torchvision.transforms import v2

        mean, std = list(self.pre.mean), list(self.pre.std)
        if len(mean) == 1 and self.pre.in_chans > 1:
            mean, std = mean * self.pre.in_chans, std * self.pre.in_chans
        self._norm = v2.Normalize(mean=mean, std=std)

    def box_for(self, box: Box | None) -> Box | None:
        """The box the model sees under the policy (None when ignored).

        Raises:
            BoxRequired: ``box = "required"`` and no box was given.
        """
        if self.pre.box == "ignored" or self.pre.crop != "lesion_box":
            return None
        if box is None and self.pre.box == "required":
            raise BoxRequired("this model scores the lesion inside a reader's box")
        return box

    def unit(self, image: LoadedImage | np.ndarray, frame: int | None = None) -> tuple[np.ndarray, str]:
        """Steps 1-3: the plane as float32 [0, 1], after the colour policy, and its modality."""
        if isinstance(image, LoadedImage):
            plane = image_plane(image, frame)
            windows: Sequence[tuple[float, float]] | None = image.meta.windows
            mod = str(image.meta.modality)
            if mod not in ("MG", "US", "MR"):  # PNG/JPEG carry no modality: trust the model's
                mod = self.default_modality
        else:
            plane, windows, mod = np.asarray(image), None, self.default_modality
        pre = self.pre
        if pre.colour == "gray" or pre.in_chans == 1:
            plane = to_gray(plane)
        a = percentile_unit(plane) if pre.intensity == "percentile" else to_unit_range(plane, windows)
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        return a, mod

    def region_tensor(self, image: LoadedImage | np.ndarray, *, box: Box | None = None, frame: int | None = None,
                      modality: str | None = None) -> tuple[torch.Tensor, tuple[int, int, int, int], bool,
                                                            tuple[int, int]]:
        """Steps 1-4: the cropped, oriented region as a ``(in_chans, h, w)`` [0, 1] tensor.

        Returns:
            ``(tensor, region (x0, y0, x1, y1), flipped, image shape (rows, cols))``.

        Raises:
            BoxRequired: the policy needs a box and none was given.
        """
        pre = self.pre
        a, mod = self.unit(image, frame)
        if modality:
            mod = modality
        if pre.clean == "film" and mod == "MG" and a.ndim == 2:
            from engine.imaging.breast import clean_film

            a = clean_film(a)
        shape = (int(a.shape[0]), int(a.shape[1]))
        b = self.box_for(box)
        if b is not None and pre.patch_px > 0:
            region = _fixed_patch(b, shape, int(pre.patch_px))
        elif b is not None:
            region = expand_box(b, shape, pre.box_margin)
        elif pre.crop == "breast_box":
            from engine.imaging.breast import breast_bbox

            region = breast_bbox(a)
        else:
            region = (0, 0, shape[1], shape[0])
        x0, y0, x1, y1 = region
        crop = a[y0:y1, x0:x1]
        flipped = False
        if pre.orient and mod == "MG":
            flipped = chest_wall_side(a if a.ndim == 2 else to_gray(a)) == "right"
            if flipped:
                crop = crop[:, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        if t.shape[0] == 1 and pre.in_chans == 3:
            t = t.expand(3, -1, -1)
        elif t.shape[0] == 3 and pre.in_chans == 1:
            t = t.mean(0, keepdim=True)
        return t.contiguous(), region, flipped, shape

    def resized(self, t: torch.Tensor) -> torch.Tensor:
        """Step 5 before any crop: ``stretch`` to ``size``, else the shorter side to ``size[0]``
        (aspect kept; what the five / centre / a training random crop are taken from)."""
        pre = self.pre
        if pre.resize == "stretch":
            return resize(t, (int(pre.size[0]), int(pre.size[1])), mode=pre.interpolation, antialias=pre.antialias)
        return resize_shorter_side(t, int(pre.size[0]), mode=pre.interpolation, antialias=pre.antialias)

    def normalise(self, t: torch.Tensor) -> torch.Tensor:
        """Step 6: ``(x - mean) / std`` per channel (torchvision v2 ``Normalize``; batched or not)."""
        out: torch.Tensor = self._norm(t)
        return out

    def __call__(self, image: LoadedImage | np.ndarray, *, box: Box | None = None, frame: int | None = None,
                 modality: str | None = None) -> Prepared:
        """Prepare one image (steps 1-6).

        Args:
            image: A :class:`LoadedImage` or a raw array.
            box: Reader's lesion box ``(x0, y0, x1, y1)`` in image pixels (policy decides).
            frame: MR slice (default middle).
            modality: Overrides the image's modality (decides MG orientation).

        Raises:
            BoxRequired: the policy needs a box and none was given.
        """
        pre = self.pre
        t, region, flipped, shape = self.region_tensor(image, box=box, frame=frame, modality=modality)
        if pre.five_crop:
            t = five_crops(t, int(pre.size[0]), mode=pre.interpolation, antialias=pre.antialias)
        else:
            rows, cols = int(t.shape[-2]), int(t.shape[-1])
            t = self.resized(t)
            if pre.resize == "center_crop":
                # report the part of the image the centre crop kept (saliency placement; a centred
                # crop is symmetric, so the chest-wall mirror does not move it)
                h, w = int(pre.size[0]), int(pre.size[1])
                sy, sx = rows / int(t.shape[-2]), cols / int(t.shape[-1])
                r0, c0 = (int(t.shape[-2]) - h) // 2, (int(t.shape[-1]) - w) // 2
                x0, y0 = region[0], region[1]
                region = (x0 + int(round(c0 * sx)), y0 + int(round(r0 * sy)),
                          x0 + int(round((c0 + w) * sx)), y0 + int(round((r0 + h) * sy)))
                t = center_crop(t, (h, w))
        t = self.normalise(t)
        used: int | None = None
        if isinstance(image, LoadedImage) and is_stack(image):
            used = int(image.pixels.shape[0]) // 2 if frame is None else frame
        return Prepared(t.contiguous(), region, flipped, shape, used)


def _fixed_patch(box: Box, shape: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """A ``side`` x ``side`` square centred on ``box``, shifted to lie inside ``shape`` (rows, cols)."""
    rows, cols = shape
    sy, sx = min(side, rows), min(side, cols)
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    x0 = int(round(min(max(cx - sx / 2, 0), cols - sx)))
    y0 = int(round(min(max(cy - sy / 2, 0), rows - sy)))
    return x0, y0, x0 + sx, y0 + sy


def from_legacy(spec_fields: dict[str, Any]) -> Preprocess:
    """The :class:`Preprocess` implied by a spec.json written before preprocessing was data.

    Such folders described preprocessing in prose and in ``extra`` (``box_margin``, ``orient``,
    ``needs_box``, ``multi_input``); colour images were kept in colour for 3-channel models.
    """
    extra = dict(spec_fields.get("extra") or {})
    modality = str(spec_fields.get("modality", "US"))
    in_chans = int(spec_fields.get("in_chans", 3))
    needs = extra.get("needs_box")
    box: BoxPolicy = "required" if needs else ("ignored" if needs is False else "optional")
    return Preprocess(
        size=tuple(int(v) for v in spec_fields.get("input_size", (224, 224))),  # type: ignore[arg-type]
        in_chans=in_chans,
        mean=tuple(float(v) for v in spec_fields.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(v) for v in spec_fields.get("std", (0.229, 0.224, 0.225))),
        colour="gray" if in_chans == 1 else "keep",
        crop="whole" if box == "ignored" else "lesion_box",
        box=box,
        box_margin=float(extra.get("box_margin", 0.15)),
        orient=bool(extra.get("orient", modality == "MG")),
        resize="five_crop" if extra.get("multi_input") else "stretch",
        description=str(spec_fields.get("preprocess") or ""),
    )


__all__ = ["BoxRequired", "EvalTransform", "Preprocess", "Prepared", "from_legacy", "image_plane", "is_stack"]
