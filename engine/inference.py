"""Scoring images with shipped weights: preprocessing, probability of malignancy, saliency.

A :class:`Predictor` wraps one weights folder (:mod:`engine.models.weights`). Preprocessing
follows the folder's :class:`~engine.models.weights.WeightsSpec`:

1. intensities to [0, 1] (8-bit /255; otherwise the first DICOM window, else the 0.5-99.5
   percentiles); RGB to luminance for 1-channel models, gray replicated for 3-channel models;
   MR stacks use the middle slice unless a frame is given;
2. when the reader drew a lesion box, the box plus a margin (``spec.extra["box_margin"]``,
   default 0.15 of the box size per side) is cropped: Habib 2020 and An 2019 score the lesion
   region, not the whole image;
3. mammograms are flipped so the chest wall is on the left (An 2019), when
   ``spec.extra["orient"]`` is true (default for MG);
4. resized to ``spec.input_size`` and normalised with ``spec.mean`` / ``spec.std``;
   ``spec.extra["multi_input"]`` averages Qi 2019's five crops instead of resizing.

Inference runs on CUDA with autocast when available, else on CPU. There is never a silent
random model: with nothing installed :func:`load_predictor` raises ``ModelNotFoundError``.
Scores are research decision support, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import BoxRequiredError, ModelNotFoundError
from engine.io.types import LoadedImage
from engine.models.weights import WeightsSpec, default_weights, load_weights, resolve_weights_dir
from engine.saliency import SaliencyMap, get_saliency
from engine.saliency.base import normalise

Box = tuple[float, float, float, float]


def pick_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_unit_range(pixels: np.ndarray, windows: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """Intensities to float32 [0, 1] (uint8 / 255, else first window, else robust min-max)."""
    a = np.asarray(pixels)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if windows:
        c, w = windows[0]
        if w > 0:
            return np.clip((a - (c - w / 2.0)) / w, 0.0, 1.0)
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def to_gray(a: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) RGB -> luminance; 2-D unchanged."""
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return (a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114).astype(np.float32)
    return a


def chest_wall_on_right(gray: np.ndarray) -> bool:
    """True when more tissue lies in the right half (the image must be mirrored; An 2019)."""
    from engine.models.an import breast_mask

    small = gray[:: max(1, gray.shape[0] // 256), :: max(1, gray.shape[1] // 256)]
    m = breast_mask(small)
    half = m.shape[1] // 2
    return bool(m[:, half:].sum() > m[:, :half].sum())


def expand_box(box: Box, shape: tuple[int, int], margin: float = 0.15, min_side: int = 16) -> tuple[int, int, int, int]:
    """Box ``(x0, y0, x1, y1)`` grown by ``margin`` of its size per side, clipped to ``shape``.

    Returns:
        Integer ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1``.
    """
    rows, cols = shape
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, x1, y0, y1 = x0 - mx, x1 + mx, y0 - my, y1 + my
    if x1 - x0 < min_side:
        c = (x0 + x1) / 2
        x0, x1 = c - min_side / 2, c + min_side / 2
    if y1 - y0 < min_side:
        c = (y0 + y1) / 2
        y0, y1 = c - min_side / 2, c + min_side / 2
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(cols, int(np.ceil(x1))), min(rows, int(np.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"box {box} lies outside the image ({cols} x {rows})")
    return ix0, iy0, ix1, iy1


@dataclass
class Prepared:
    """A network input and how it maps back to the image.

    Attributes:
        tensor: ``(C, H, W)`` normalised input (or ``(5, C, H, W)`` Qi crops).
        region: ``(x0, y0, x1, y1)`` of the image that was used (whole image when no box).
        flipped: The region was mirrored left-right before resizing.
        image_shape: ``(rows, cols)`` of the 2-D image.
    """

    tensor: torch.Tensor
    region: tuple[int, int, int, int]
    flipped: bool
    image_shape: tuple[int, int]


def is_stack(image: LoadedImage) -> bool:
    """Whether the image is a (frames, rows, cols) slice stack (not an RGB image)."""
    return image.pixels.ndim == 3 and not image.is_rgb


def image_plane(image: LoadedImage, frame: int | None = None) -> np.ndarray:
    """The 2-D (or RGB) plane to score: MR stacks give the middle slice by default."""
    px = image.pixels
    if is_stack(image):
        return px[px.shape[0] // 2 if frame is None else frame]
    return px


def prepare_input(
    image: LoadedImage | np.ndarray, spec: WeightsSpec, *, box: Box | None = None, frame: int | None = None,
    modality: str | None = None,
) -> Prepared:
    """Preprocess one image exactly as the shipped model expects (see module docstring).

    Training code should use this too, so that training and inference agree.

    Args:
        image: A :class:`LoadedImage` or a raw array.
        spec: The weights' spec.
        box: Optional lesion box ``(x0, y0, x1, y1)`` in image pixels.
        frame: MR slice index (default middle).
        modality: Overrides the image's modality (decides MG orientation).
    """
    if isinstance(image, LoadedImage):
        plane = image_plane(image, frame)
        windows = image.meta.windows
        mod = modality or image.meta.modality
        if mod not in ("MG", "US", "MR"):  # PNG/JPEG carry no modality: trust the model's
            mod = spec.modality
    else:
        plane, windows, mod = np.asarray(image), None, modality or spec.modality
    a = to_unit_range(plane, windows)
    if spec.in_chans == 1 or a.ndim == 2:
        a = to_gray(a)
    shape = (int(a.shape[0]), int(a.shape[1]))
    if box is not None:
        region = expand_box(box, shape, float(spec.extra.get("box_margin", 0.15)))
    else:
        region = (0, 0, shape[1], shape[0])
    x0, y0, x1, y1 = region
    crop = a[y0:y1, x0:x1]
    flipped = False
    if bool(spec.extra.get("orient", mod == "MG")) and mod == "MG":
        flipped = chest_wall_on_right(to_gray(a))
        if flipped:
            crop = crop[:, ::-1]
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    if t.shape[0] == 1 and spec.in_chans == 3:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 3 and spec.in_chans == 1:
        t = t.mean(0, keepdim=True)
    mean = torch.tensor(spec.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(spec.std, dtype=torch.float32)[:, None, None]
    if spec.extra.get("multi_input"):
        from engine.models.qi import five_crops

        t = (five_crops(t.contiguous(), int(spec.input_size[0])) - mean) / std
    else:
        h, w = int(spec.input_size[0]), int(spec.input_size[1])
        t = F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
        t = (t - mean) / std
    return Prepared(t.contiguous(), region, flipped, shape)


class Predictor:
    """Score images with one weights folder.

    Args:
        weights: Folder path or installed weights name.
        device: Torch device (default CUDA when available, else CPU).
    """

    def __init__(self, weights: str | Path, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else pick_device()
        model, self.spec = load_weights(weights)
        # Any: every registered classifier has malignancy(); nn.Module's typing does not know it.
        self.model: Any = model.to(self.device).eval()
        self.name = self.spec.name

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda")

    def prepare(self, image: LoadedImage | np.ndarray, box: Box | None = None, frame: int | None = None) -> Prepared:
        """:func:`prepare_input` with this predictor's spec."""
        return prepare_input(image, self.spec, box=box, frame=frame)

    @torch.no_grad()
    def _scores(self, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = self.model(batch.to(self.device))
        return self.model.malignancy(logits.float()).float().cpu()

    def _box_for_model(self, box: Box | None) -> Box | None:
        """The box this model should see, from ``spec.extra["needs_box"]``.

        A whole-image model (``needs_box`` false) ignores a reader's box: it was trained on
        whole images, and a crop would be out of distribution (a BUSI case scored 0.96 whole
        but 0.06 cropped). A lesion model (``needs_box`` true) refuses to run without one.

        Raises:
            BoxRequiredError: the model scores a lesion region and no box was given.
        """
        needs = self.spec.extra.get("needs_box")
        if needs is False:
            return None
        if needs and box is None:
            raise BoxRequiredError(
                f"model {self.name} scores the lesion inside a reader's box; draw a box or give "
                "x0,y0,x1,y1 (pixels) in the manifest"
            )
        return box

    def slice_scores(self, image: LoadedImage, box: Box | None = None, *, batch_size: int = 16) -> np.ndarray:
        """Probability of malignancy of every slice of an MR stack, in slice order."""
        box = self._box_for_model(box)
        n = int(image.pixels.shape[0])
        out: list[float] = []
        for i in range(0, n, batch_size):
            ts = [self.prepare(image, box, f).tensor for f in range(i, min(n, i + batch_size))]
            if ts[0].ndim == 4:  # five-crop models: one image at a time
                out.extend(float(self._scores(t).mean()) for t in ts)
            else:
                out.extend(float(v) for v in self._scores(torch.stack(ts)))
        return np.asarray(out, dtype=np.float64)

    def _frame_for(self, image: LoadedImage | np.ndarray, box: Box | None, frame: int | None) -> int | None:
        """The slice to read: the given one, or for an unannotated stack the most suspicious one.

        A stack's middle slice need not contain the lesion (a malignant synthetic case scored
        0.04 there and 0.92-0.97 on the lesion slices), so without a reader's slice the stack
        is read like a radiologist scrolls it: its score is the maximum over slices.
        """
        if frame is not None or not (isinstance(image, LoadedImage) and is_stack(image)):
            return frame
        return int(np.argmax(self.slice_scores(image, box)))

    def predict(self, image: LoadedImage | np.ndarray, box: Box | None = None, frame: int | None = None) -> float:
        """Probability of malignancy in [0, 1] of one image (in the box when given).

        For an MR stack without ``frame`` the score is the maximum over its slices.

        Raises:
            BoxRequiredError: a lesion-box model was called without a box.
        """
        box = self._box_for_model(box)
        if frame is None and isinstance(image, LoadedImage) and is_stack(image):
            return float(self.slice_scores(image, box).max())  # every slice is scored already
        p = self.prepare(image, box, frame)
        if p.tensor.ndim == 4:  # Qi five crops: average
            return float(self._scores(p.tensor).mean())
        return float(self._scores(p.tensor[None])[0])

    def predict_batch(
        self, images: Sequence[LoadedImage | np.ndarray], boxes: Sequence[Box | None] | None = None, *,
        batch_size: int = 16,
    ) -> list[float]:
        """Probabilities of malignancy of several images, in order."""
        bx = list(boxes) if boxes is not None else [None] * len(images)
        if len(bx) != len(images):
            raise ValueError("boxes must match images")
        if self.spec.extra.get("multi_input"):
            return [self.predict(im, b) for im, b in zip(images, bx)]
        bx = [self._box_for_model(b) for b in bx]
        out: list[float] = []
        for i in range(0, len(images), batch_size):
            ts = [self.prepare(im, b).tensor for im, b in zip(images[i:i + batch_size], bx[i:i + batch_size])]
            out.extend(float(v) for v in self._scores(torch.stack(ts)))
        return out

    def saliency_methods(self) -> tuple[str, ...]:
        """Methods this model supports (from the registry)."""
        from engine.models.registry import model_info

        return model_info(self.spec.model).saliency

    def analyse(self, image: LoadedImage | np.ndarray, method: str | None = None, box: Box | None = None,
                frame: int | None = None) -> tuple[float, SaliencyMap]:
        """Score and saliency map of one image, sharing the network pass when the method allows.

        Args:
            image: The image.
            method: ``gradcam``/``cam``/``attention``/``entropy``; default the model's first.
            box: Optional lesion box (same as for :meth:`predict`).
            frame: MR slice.

        Returns:
            ``(probability of malignancy, saliency map in the image's pixel coordinates, zero
            outside the scored region)``.
        """
        methods = self.saliency_methods()
        if method is None:
            if not methods:
                raise ValueError(f"model {self.spec.model} has no saliency method")
            method = methods[0]
        box = self._box_for_model(box)
        frame = self._frame_for(image, box, frame)
        p = self.prepare(image, box, frame)
        x0, y0, x1, y1 = p.region
        sm = get_saliency(method)(self.model)
        if p.tensor.ndim == 4:
            # Qi five crops: a map per crop, placed where the crop came from and averaged
            # where crops overlap -- the same inputs the score averages over.
            from engine.models.qi import five_crop_layout

            size = int(p.tensor.shape[-1])
            (rh, rw), offsets = five_crop_layout((y1 - y0, x1 - x0), size)
            acc = np.zeros((rh, rw), np.float32)
            cnt = np.zeros((rh, rw), np.float32)
            logits = []
            for crop, (top, left) in zip(p.tensor, offsets):
                part = sm(crop[None].to(self.device), out_shape=(size, size))
                # Combine the crops' un-normalised maps and normalise once, so a crop with weak
                # evidence is not stretched to the same peak as the crop the score came from
                # (pytorch-grad-cam already scales each Grad-CAM map itself; CAM, attention and
                # entropy maps keep their magnitudes).
                assert sm.last_raw is not None
                acc[top:top + size, left:left + size] += sm.last_raw
                cnt[top:top + size, left:left + size] += 1.0
                if sm.last_logits is not None:
                    logits.append(sm.last_logits.float())
            import cv2

            canvas = cv2.resize(acc / np.maximum(cnt, 1.0), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            sal = SaliencyMap(normalise(canvas), sm.name, sm.layer)
            if len(logits) == len(offsets):
                score = float(self.model.malignancy(torch.cat(logits)).mean())
            else:
                score = self.predict(image, box, frame)
        else:
            sal = sm(p.tensor[None].to(self.device), out_shape=(y1 - y0, x1 - x0))
            if sm.last_logits is not None:
                score = float(self.model.malignancy(sm.last_logits.float())[0])
            else:
                score = self.predict(image, box, frame)
        m = sal.map[:, ::-1] if p.flipped else sal.map
        full = np.zeros(p.image_shape, np.float32)
        full[y0:y1, x0:x1] = m
        extra: dict[str, Any] = {"architecture": self.spec.model}
        if isinstance(image, LoadedImage) and is_stack(image):
            extra["frame"] = frame
        smap = SaliencyMap(full, sal.method, sal.layer, model=self.name,
                           box=None if box is None else (x0, y0, x1, y1), extra=extra)
        return score, smap

    def saliency(self, image: LoadedImage | np.ndarray, method: str | None = None, box: Box | None = None,
                 frame: int | None = None) -> SaliencyMap:
        """Saliency map in the image's pixel coordinates (zero outside the scored region)."""
        return self.analyse(image, method, box, frame)[1]


def load_predictor(modality: str, model: str | Path | None = None, device: torch.device | str | None = None) -> Predictor:
    """The predictor for ``modality`` (installed default) or for an explicit weights name/folder.

    Raises:
        ModelNotFoundError: nothing installed for the modality, or ``model`` names no weights
            (a registered architecture without trained weights is refused, never run random).
    """
    if model is not None:
        try:
            resolve_weights_dir(model)
        except ModelNotFoundError:
            from engine.models.registry import _REGISTRY, _ensure_loaded

            _ensure_loaded()
            if str(model) in _REGISTRY:
                raise ModelNotFoundError(
                    f"{model!s} is a model architecture without trained weights; pass a weights folder "
                    "(resources/models/<name>) instead"
                ) from None
            raise
        return Predictor(model, device)
    name = default_weights(modality)
    if name is None:
        raise ModelNotFoundError(
            f"no default model is installed for {modality} (resources/models/defaults.json); "
            "train one or pass --model"
        )
    return Predictor(name, device)
