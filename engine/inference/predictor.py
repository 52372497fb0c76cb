"""Scoring images with shipped weights: probability of malignancy and saliency, one pass.

A :class:`Predictor` wraps one weights folder (:mod:`engine.models.weights`). Its input
preparation is ``spec.transforms()`` (:mod:`engine.transforms`): the same function training,
``evaluate``, ``breast-engine score`` and the GUI use. :meth:`Predictor.run` scores a batch of
images and computes their saliency maps from the same forward pass (Qi 2019's five crops of
every image in one batch).

Inference runs on CUDA with autocast when available, else on CPU. There is never a silent
random model: with nothing installed :func:`load_predictor` raises ``ModelNotFoundError``.
Scores are research decision support, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import BoxRequiredError, ModelNotFoundError
from engine.imaging.geometry import expand_box, five_crop_layout
from engine.imaging.intensity import to_gray, to_unit_range
from engine.io.types import LoadedImage
from engine.models.weights import WeightsSpec, default_weights, load_weights, resolve_weights_dir
from engine.saliency import SaliencyMap, get_saliency
from engine.saliency.base import normalise
from engine.transforms import BoxRequired, Prepared, image_plane, is_stack

Box = tuple[float, float, float, float]

__all__ = ["Box", "ImageItem", "ImageOutput", "Predictor", "Prepared", "expand_box",
           "image_plane", "is_stack", "load_predictor", "pick_device", "prepare_input", "to_gray", "to_unit_range"]


def pick_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_input(
    image: LoadedImage | np.ndarray, spec: WeightsSpec, *, box: Box | None = None, frame: int | None = None,
    modality: str | None = None,
) -> Prepared:
    """``spec.transforms()(image, box=..., frame=..., modality=...)`` (kept for callers).

    A box is used as the spec's box policy says (ignored by whole-image models).

    Raises:
        BoxRequiredError: the model scores a reader's box and none was given.
    """
    try:
        return spec.transforms()(image, box=box, frame=frame, modality=modality)
    except BoxRequired:
        raise BoxRequiredError(
            f"model {spec.name} scores the lesion inside a reader's box; draw a box or give "
            "x0,y0,x1,y1 (pixels) in the manifest"
        ) from None


@dataclass
class ImageItem:
    """One image to score: the image, the reader's box and slice (None = not chosen)."""

    image: LoadedImage | np.ndarray
    box: Box | None = None
    frame: int | None = None


@dataclass
class ImageOutput:
    """Score and saliency maps of one :class:`ImageItem` (maps in image pixel coordinates)."""

    score: float
    frame: int | None = None
    region: tuple[int, int, int, int] | None = None
    saliency: dict[str, SaliencyMap] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Lesion-centred models (engine.lesion_us): box used, its source, finder outline, raw
    #: score, OOD distance/flag -- an :class:`engine.lesion_us.LesionAssessment`; else None.
    lesion: Any = None


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
        self.transform = self.spec.transforms()
        self.folder = resolve_weights_dir(weights)
        from engine.lesion_mg import LesionMGScorer, is_mg_lesion_pipeline
        from engine.lesion_us import LesionUSScorer, is_lesion_pipeline

        # Lesion-centred weights: calibrated score + OOD distance (US: clean input and finder box,
        # engine.lesion_us; MG: clean film, reader's box, engine.lesion_mg).
        self.lesion: Any = None
        if is_lesion_pipeline(self.spec):
            self.lesion = LesionUSScorer(self.model, self.spec, self.device, load_context=Predictor)
        elif is_mg_lesion_pipeline(self.spec):
            self.lesion = LesionMGScorer(self.model, self.spec, self.device, saliency_fn=self._plain_saliency)

    def _plain_saliency(self, image: LoadedImage | np.ndarray, box: Box, method: str,
                        prepared: Prepared | None = None) -> SaliencyMap:
        """The classifier's own saliency of the prepared crop (MG lesion pipeline's overlay);
        ``prepared``: the input the lesion scorer has just made of ``image`` and ``box`` (film
        cleaning and cropping of a full-field film are not repeated)."""
        out = self._run_plain([ImageItem(image, box)], (method,),
                              prepared=None if prepared is None else [prepared])[0]
        if method not in out.saliency:
            raise ValueError(out.errors.get(method, f"{method} saliency unavailable"))
        return out.saliency[method]

    def assess(self, image: LoadedImage | np.ndarray, box: Box | None = None, saliency: str | None = None) -> Any:
        """The :class:`engine.lesion_us.LesionAssessment` of one image (lesion pipelines), else None."""
        if self.lesion is None:
            return None
        return self.lesion.assess(image, box, saliency=saliency)

    @property
    def synthetic(self) -> bool:
        """Whether the weights were trained on synthetic data."""
        return bool(self.spec.synthetic)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda")

    def prepare(self, image: LoadedImage | np.ndarray, box: Box | None = None, frame: int | None = None) -> Prepared:
        """``spec.transforms()`` of this predictor (box policy applied)."""
        return prepare_input(image, self.spec, box=box, frame=frame)

    @torch.no_grad()
    def _scores(self, batch: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = self.model(batch.to(self.device))
        scores: torch.Tensor = self.model.malignancy(logits.float()).float().cpu()
        return scores

    def _box_for_model(self, box: Box | None) -> Box | None:
        """The box this model sees under its spec's box policy (None when ignored).

        A whole-image model ignores a reader's box: it was trained on whole images, and a crop
        would be out of distribution (a BUSI case scored 0.96 whole but 0.06 cropped). A lesion
        model refuses to run without one.

        Raises:
            BoxRequiredError: the model scores a lesion region and no box was given.
        """
        try:
            return self.transform.box_for(box)
        except BoxRequired:
            raise BoxRequiredError(
                f"model {self.name} scores the lesion inside a reader's box; draw a box or give "
                "x0,y0,x1,y1 (pixels) in the manifest"
            ) from None

    def _batch_scores(self, preps: Sequence[Prepared], batch_size: int = 16) -> list[float]:
        """Scores of prepared inputs; five-crop inputs are batched crop-wise and averaged."""
        if not preps:
            return []
        five = preps[0].tensor.ndim == 4
        flat = torch.cat([p.tensor for p in preps]) if five else torch.stack([p.tensor for p in preps])
        per = int(preps[0].tensor.shape[0]) if five else 1
        step = max(per, (batch_size // per) * per)
        vals = torch.cat([self._scores(flat[i:i + step]) for i in range(0, flat.shape[0], step)])
        return [float(v) for v in vals.view(len(preps), per).mean(dim=1)]

    def slice_scores(self, image: LoadedImage, box: Box | None = None, *, batch_size: int = 16) -> np.ndarray:
        """Probability of malignancy of every slice of an MR stack, in slice order."""
        box = self._box_for_model(box)
        n = int(image.pixels.shape[0])
        preps = [self.transform(image, box=box, frame=f) for f in range(n)]
        return np.asarray(self._batch_scores(preps, batch_size), dtype=np.float64)

    def predict(self, image: LoadedImage | np.ndarray, box: Box | None = None, frame: int | None = None) -> float:
        """Probability of malignancy in [0, 1] of one image (in the box when the model uses one).

        For an MR stack without ``frame`` the score is the maximum over its slices.

        Raises:
            BoxRequiredError: a lesion-box model was called without a box.
        """
        if self.lesion is not None:
            return float(self.lesion.assess(image, box).score)
        box = self._box_for_model(box)
        if frame is None and isinstance(image, LoadedImage) and is_stack(image):
            return float(self.slice_scores(image, box).max())  # every slice is scored already
        return self._batch_scores([self.transform(image, box=box, frame=frame)])[0]

    def predict_batch(
        self, images: Sequence[LoadedImage | np.ndarray], boxes: Sequence[Box | None] | None = None, *,
        batch_size: int = 16,
    ) -> list[float]:
        """Probabilities of malignancy of several images, in order (2-D images; stacks: their max)."""
        bx = list(boxes) if boxes is not None else [None] * len(images)
        if len(bx) != len(images):
            raise ValueError("boxes must match images")
        if self.lesion is not None:
            return [self.predict(im, b) for im, b in zip(images, bx)]
        out: list[float] = []
        for i in range(0, len(images), batch_size):
            chunk = list(zip(images[i:i + batch_size], bx[i:i + batch_size]))
            if any(isinstance(im, LoadedImage) and is_stack(im) for im, _ in chunk):
                out.extend(self.predict(im, b) for im, b in chunk)
                continue
            preps = [self.transform(im, box=self._box_for_model(b)) for im, b in chunk]
            out.extend(self._batch_scores(preps, batch_size))
        return out

    def saliency_methods(self) -> tuple[str, ...]:
        """Methods this model supports (from the registry)."""
        from engine.models.registry import model_info

        return model_info(self.spec.model).saliency

    def most_suspicious_slice(self, image: LoadedImage, box: Box | None = None) -> int:
        """For an unannotated stack: the slice the model scores highest.

        A stack's middle slice need not contain the lesion (a malignant synthetic case scored
        0.04 there and 0.92-0.97 on the lesion slices), so without a reader's slice the stack
        is read like a radiologist scrolls it: its score is the maximum over slices.
        """
        return int(np.argmax(self.slice_scores(image, box)))

    def run(self, items: Sequence[ImageItem], methods: Sequence[str] = (), *, batch_size: int = 16) -> list[ImageOutput]:
        """Scores and saliency maps of several images from one forward pass per batch.

        With no methods the batch runs without autograd. With methods, each method's batched
        pass (:meth:`~engine.saliency.base.SaliencyMethod.compute_maps`) also gives the logits,
        and the first method's logits are the score: the network is not run a second time.
        Qi five-crop inputs contribute all five crops to the batch; each crop's map is placed
        where the crop came from and averaged where crops overlap (the inputs the score
        averages over), then normalised once.

        Args:
            items: Images with their box (policy applied) and slice (None: 2-D image, or for a
                stack the most suspicious slice).
            methods: Saliency methods (``gradcam``/``cam``/``attention``/``entropy``).

        Raises:
            BoxRequiredError: a lesion-box model and an item without a box.
        """
        if self.lesion is not None:
            return self._run_lesion(items, methods)
        return self._run_plain(items, methods, batch_size=batch_size)

    def _run_plain(self, items: Sequence[ImageItem], methods: Sequence[str] = (), *,
                   batch_size: int = 16, prepared: Sequence[Prepared] | None = None) -> list[ImageOutput]:
        """:meth:`run` for plain classifiers (one batched pass per method); ``prepared``: the
        items' inputs already made by ``self.transform`` (same order)."""
        supported = self.saliency_methods()
        preps: list[Prepared] = list(prepared) if prepared is not None else []
        for it in items if prepared is None else ():
            box = self._box_for_model(it.box)
            frame = it.frame
            if frame is None and isinstance(it.image, LoadedImage) and is_stack(it.image):
                frame = self.most_suspicious_slice(it.image, box)
            preps.append(self.transform(it.image, box=box, frame=frame))
        outs = [ImageOutput(0.0, p.frame, p.region) for p in preps]
        usable = [m for m in methods if m in supported]
        for m in methods:
            if m not in supported:
                for o in outs:
                    o.errors[m] = f"this model has no {m} saliency (has {', '.join(supported) or 'none'})"
        five = bool(preps) and preps[0].tensor.ndim == 4
        per = int(preps[0].tensor.shape[0]) if five else 1
        step = max(1, batch_size // per)
        for start in range(0, len(preps), step):
            chunk = preps[start:start + step]
            flat = torch.cat([p.tensor for p in chunk]) if five else torch.stack([p.tensor for p in chunk])
            flat = flat.to(self.device)
            first = True
            for m in usable:
                sm = get_saliency(m)(self.model)
                try:
                    raw, logits = sm.compute_maps(flat)
                except (ValueError, RuntimeError, NotImplementedError) as exc:
                    for o in outs[start:start + len(chunk)]:
                        o.errors[m] = str(exc)
                    continue
                if first and logits is not None:
                    probs = self.model.malignancy(logits.float()).float().cpu().view(len(chunk), per).mean(dim=1)
                    for o, v in zip(outs[start:start + len(chunk)], probs):
                        o.score = float(v)
                    first = False
                for k, (p, o) in enumerate(zip(chunk, outs[start:start + len(chunk)])):
                    o.saliency[m] = self._place(raw[k * per:(k + 1) * per].float().cpu(), p, sm, m)
            if first:  # no saliency pass gave logits: plain scoring, no autograd
                for o, v in zip(outs[start:start + len(chunk)], self._batch_scores(chunk, batch_size)):
                    o.score = v
        return outs

    def _run_lesion(self, items: Sequence[ImageItem], methods: Sequence[str]) -> list[ImageOutput]:
        """:meth:`run` for lesion pipelines: one assessment per image (+ one per extra method)."""
        assert self.lesion is not None
        supported = self.saliency_methods()
        outs: list[ImageOutput] = []
        for it in items:
            usable = [m for m in methods if m in supported]
            a = self.lesion.assess(it.image, it.box, saliency=usable[0] if usable else None)
            o = ImageOutput(a.score, None, a.region, lesion=a)
            if a.saliency is not None:
                o.saliency[usable[0]] = a.saliency
            for m in usable[1:]:
                extra = self.lesion.assess(it.image, it.box, saliency=m).saliency
                if extra is not None:
                    o.saliency[m] = extra
            for m in methods:
                if m not in supported:
                    o.errors[m] = f"this model has no {m} saliency (has {', '.join(supported)})"
            outs.append(o)
        return outs

    def _place(self, raw: torch.Tensor, p: Prepared, sm: Any, method: str) -> SaliencyMap:
        """Raw map(s) of one prepared input -> normalised map in the image's pixel grid."""
        x0, y0, x1, y1 = p.region
        size = int(p.tensor.shape[-1])
        if p.tensor.ndim == 4:
            (rh, rw), offsets = five_crop_layout((y1 - y0, x1 - x0), size)
            acc = torch.zeros(rh, rw)
            cnt = torch.zeros(rh, rw)
            ups = F.interpolate(raw[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
            for up, (top, left) in zip(ups, offsets):
                acc[top:top + size, left:left + size] += up
                cnt[top:top + size, left:left + size] += 1.0
            region = F.interpolate((acc / cnt.clamp_min(1.0))[None, None], size=(y1 - y0, x1 - x0),
                                   mode="bilinear", align_corners=False)[0, 0]
        else:
            region = F.interpolate(raw[:1, None] if raw.ndim == 3 else raw[None, None], size=(y1 - y0, x1 - x0),
                                   mode="bilinear", align_corners=False)[0, 0]
        m = normalise(region.numpy())
        if p.flipped:
            m = m[:, ::-1]
        full = np.zeros(p.image_shape, np.float32)
        full[y0:y1, x0:x1] = m
        extra: dict[str, Any] = {"architecture": self.spec.model}
        if p.frame is not None:
            extra["frame"] = p.frame
        box = None if (x0, y0, x1, y1) == (0, 0, p.image_shape[1], p.image_shape[0]) else (x0, y0, x1, y1)
        return SaliencyMap(full, method, sm.layer, model=self.name, box=box, extra=extra)

    def analyse(self, image: LoadedImage | np.ndarray, method: str | None = None, box: Box | None = None,
                frame: int | None = None) -> tuple[float, SaliencyMap]:
        """Score and saliency map of one image from one network pass (:meth:`run`).

        Args:
            image: The image.
            method: ``gradcam``/``cam``/``attention``/``entropy``; default the model's first.
            box: Optional lesion box (same as for :meth:`predict`).
            frame: MR slice.

        Returns:
            ``(probability of malignancy, saliency map in the image's pixel coordinates, zero
            outside the scored region)``.

        Raises:
            ValueError: the model has no such saliency method.
        """
        methods = self.saliency_methods()
        if method is None:
            if not methods:
                raise ValueError(f"model {self.spec.model} has no saliency method")
            method = methods[0]
        out = self.run([ImageItem(image, box, frame)], (method,))[0]
        if method not in out.saliency:
            raise ValueError(out.errors.get(method, f"{method} saliency unavailable"))
        return out.score, out.saliency[method]

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
