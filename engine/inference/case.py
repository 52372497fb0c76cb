"""Case scoring: one entry point for ``breast-engine score`` and the GUI.

:class:`CaseScorer` takes a case (its images, the reader's boxes and chosen slices) and returns
every image's score, the per-modality scores, the MG+US fusion, Qi's cascade advice and the
saliency maps, each image's from the same forward pass as its score
(:meth:`engine.inference.predictor.Predictor.run`). The policies live here, once:

* **box**: the model's ``spec.preprocess.box`` decides; a whole-image model never sees a box,
  a lesion model does not score an image without one (the reader is told to draw one);
* **slice**: the reader's slice, else for a stack the slice the model scores highest;
* **per modality**: mean over the modality's images (Habib et al. 2020: the per-lesion score is
  the mean over the lesion's images);
* **fusion**: an installed ``MG+US`` model with ``predict_case``, else the mean of the MG and
  US scores, labelled as such; never invented when a modality has no score;
* **advice**: Qi et al. 2019's cascade when the US model is a Qi net;
* **saliency method** :data:`OWN_METHOD` (``"own"``): each model's own first method (the
  lesion model's mask-supervised attention, the whole-image model's Grad-CAM), kept under ``"own"``.

``reader_app`` only schedules :meth:`Scorer.score_case` off the GUI thread and shows the result.
Scores are research decision support, not a diagnosis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from engine.errors import BreastReaderError, ModelNotFoundError
from engine.io.types import LoadedImage
from engine.progress import ProgressCallback, check, report

if TYPE_CHECKING:  # the predictor imports torch: loaded only when a case is scored (issue 17)
    from engine.inference.predictor import Box, ImageItem, ImageOutput


#: Saliency method name meaning "each model's own first method" (registry order).
OWN_METHOD = "own"


def own_method(model: Any) -> str | None:
    """A model's own saliency method (its first registered one), or None when it has none."""
    fn = getattr(model, "saliency_methods", None)
    ms = tuple(fn()) if callable(fn) else ()
    return str(ms[0]) if ms else None


@dataclass
class CaseImage:
    """One image of a case to score.

    Attributes:
        image_id: Identifier (unique in the case).
        image: The decoded image.
        modality: ``"MG"``, ``"US"`` or ``"MR"``.
        box: The reader's lesion box ``(x0, y0, x1, y1)`` in image pixels, or None.
        frame: The reader's slice of a stack, or None (not chosen).
    """

    image_id: str
    image: LoadedImage
    modality: str
    box: Box | None = None
    frame: int | None = None


@dataclass
class CaseInput:
    """A case as the scorer sees it: an id and its images in reading order."""

    case_id: str
    images: list[CaseImage]
    source: Any = None  # the engine.cases.Case, when there is one (fusion models read it)


@dataclass
class ModelInfo:
    """What the reader is told about the model used for one modality."""

    modality: str
    name: str | None = None
    card: str | None = None
    synthetic: bool = False
    device: str = "CPU"
    error: str | None = None  # "no model installed" etc.
    architecture: str | None = None
    detail: str | None = None  # why there is no model (shown as a tooltip)
    saliency_note: str | None = None  # what the model's overlay does NOT show (spec.extra)


@dataclass
class CaseScores:
    """Everything the AI says about one case.

    Attributes:
        case_id: The case.
        per_image: Malignancy probability per image_id.
        per_modality: Probability per modality (mean over its images).
        fused: Fused MG+US probability, or None.
        fused_source: How ``fused`` was obtained.
        models: :class:`ModelInfo` per modality.
        saliency: ``{(image_id, method): float map in image pixel coordinates}``.
        frames: MR slice scored per image (None for 2-D images).
        advice: Qi's cascade advice, when a Qi model was used.
        errors: Human-readable problems (model missing, image failed, ...).
        failed: ``(image_id, method)`` pairs whose map is not available.
        lesion: Per image_id, what a lesion-centred model adds (an
            :class:`engine.lesion_us.LesionAssessment`: the box it scored and whether it is the
            finder's suggestion, the finder's outline, the raw score, the OOD distance and flag).
    """

    case_id: str
    per_image: dict[str, float] = field(default_factory=dict)
    per_modality: dict[str, float] = field(default_factory=dict)
    fused: float | None = None
    fused_source: str = ""
    models: dict[str, ModelInfo] = field(default_factory=dict)
    saliency: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    frames: dict[str, int | None] = field(default_factory=dict)
    advice: str | None = None
    errors: list[str] = field(default_factory=list)
    failed: set[tuple[str, str]] = field(default_factory=set)
    lesion: dict[str, Any] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        """Whether any model used was trained on synthetic data."""
        return any(m.synthetic for m in self.models.values())


@runtime_checkable
class Scorer(Protocol):
    """What the GUI and the CLI call: a case in, :class:`CaseScores` out (blocking; run it off the GUI thread)."""

    def score_case(self, case: CaseInput, methods: Sequence[str] = (), *, progress: ProgressCallback | None = None,
                   cancel: Any = None) -> CaseScores:
        """Score every image of ``case`` and compute the saliency ``methods``."""
        ...


class ImageModel(Protocol):
    """The per-modality model a :class:`CaseScorer` drives (a :class:`~engine.inference.Predictor`)."""

    name: str
    spec: Any

    def run(self, items: Sequence[ImageItem], methods: Sequence[str] = ()) -> list[ImageOutput]:
        """Scores and maps of several images from one pass."""
        ...


Loader = Callable[[str, "str | None"], Any]


def default_loader(modality: str, model: str | None = None) -> Any:
    """:func:`engine.inference.predictor.load_predictor`."""
    from engine.inference.predictor import load_predictor

    return load_predictor(modality, model=model)


def box_policy(spec: Any) -> str:
    """``"ignored"``, ``"optional"`` or ``"required"`` from a weights spec."""
    pre = getattr(spec, "preprocess", None)
    box = getattr(pre, "box", None)
    if isinstance(box, str):
        return box if getattr(pre, "crop", "lesion_box") == "lesion_box" else "ignored"
    return "optional"


def model_info(modality: str, pred: Any) -> ModelInfo:
    """The :class:`ModelInfo` of a loaded model."""
    spec = getattr(pred, "spec", None)
    name = getattr(pred, "name", None) or getattr(spec, "name", None) or type(pred).__name__
    card: Any = None
    folder = getattr(pred, "folder", None)
    if folder is not None and (Path(folder) / "MODEL_CARD.md").is_file():
        card = Path(folder) / "MODEL_CARD.md"
    device = str(getattr(pred, "device", "") or "cpu")
    synthetic = bool(getattr(spec, "synthetic", False) or getattr(pred, "synthetic", False))
    arch = getattr(spec, "model", None)
    extra = getattr(spec, "extra", None)
    note = extra.get("saliency_note") if isinstance(extra, dict) else None
    return ModelInfo(modality, str(name), str(card) if card else None, synthetic,
                     "CUDA" if "cuda" in device.lower() else "CPU",
                     architecture=str(arch) if arch else None, saliency_note=str(note) if note else None)


def is_qi(info: ModelInfo) -> bool:
    """Whether the model is Qi et al.'s Mt-Net/Sn-Net cascade (registry names ``qi_*``)."""
    arch = (info.architecture or "").lower()
    return arch.startswith("qi") or (not arch and bool(info.name) and str(info.name).lower().startswith("qi"))


def qi_advice(p_malignant: float, p_solid: float | None, threshold: float = 0.5) -> str:
    """Qi 2019 cascade: Mt-Net (malignant?) then Sn-Net (solid nodule?); either positive ->
    further examination, else periodic follow-up. Without an Sn-Net score only Mt-Net decides."""
    from engine.models.qi import cascade_advice

    text = cascade_advice(p_malignant, p_solid if p_solid is not None else 0.0, t_malignant=threshold,
                          t_solid=threshold)
    text = text[0].upper() + text[1:]
    basis = "Mt-Net + Sn-Net" if p_solid is not None else "Mt-Net only (no Sn-Net installed)"
    return f"Qi et al. 2019 cascade: {text} ({basis})"


class CaseScorer:
    """The engine's :class:`Scorer`: loads one model per modality (cached) and scores cases.

    Args:
        loader: ``(modality, model name or None) -> model`` (default: the installed defaults).
        model_choice: ``{modality: weights name}`` overriding the defaults.
    """

    def __init__(self, loader: Loader = default_loader, model_choice: dict[str, str | None] | None = None) -> None:
        self.loader = loader
        self.model_choice: dict[str, str | None] = model_choice if model_choice is not None else {}
        self._models: dict[tuple[str, str | None], Any] = {}
        self._missing: dict[tuple[str, str | None], str] = {}

    def model(self, modality: str) -> Any:
        """The (cached) model for a modality.

        Raises:
            ModelNotFoundError: nothing installed (remembered: not retried every case).
        """
        key = (modality, self.model_choice.get(modality))
        if key in self._models:
            return self._models[key]
        if key in self._missing:
            raise ModelNotFoundError(self._missing[key])
        try:
            m = self.loader(*key)
        except ModelNotFoundError as exc:
            self._missing[key] = str(exc)
            raise
        self._models[key] = m
        return m

    def score_case(self, case: CaseInput, methods: Sequence[str] = (), *, progress: ProgressCallback | None = None,
                   cancel: Any = None) -> CaseScores:
        """Score every image of ``case`` and compute the saliency ``methods`` (see module docstring).

        Raises:
            Cancelled: ``cancel`` was set (engine.progress).
        """
        from engine.inference.predictor import ImageItem

        res = CaseScores(case.case_id)
        total = len(case.images) + 1
        done = 0
        modalities = list(dict.fromkeys(ci.modality for ci in case.images))
        for modality in modalities:
            imgs = [ci for ci in case.images if ci.modality == modality]
            try:
                model = self.model(modality)
            except ModelNotFoundError as exc:
                res.models[modality] = ModelInfo(modality, error="no model installed", detail=str(exc))
                done += len(imgs)
                continue
            info = model_info(modality, model)
            res.models[modality] = info
            policy = box_policy(getattr(model, "spec", None))
            todo: list[CaseImage] = []
            for ci in imgs:
                if policy == "required" and ci.box is None:
                    res.errors.append(f"{ci.image_id}: no lesion box drawn; this model scores the region "
                                      "in a reader's box: draw one (B) to score this image")
                    done += 1
                    continue
                todo.append(ci)
            check(cancel)
            report(progress, done, total, f"scoring {len(todo)} {modality} image(s)")
            items = [ImageItem(ci.image, None if policy == "ignored" else ci.box, ci.frame) for ci in todo]
            own = own_method(model)
            actual = {m: (own if m == OWN_METHOD else m) for m in methods}
            run_methods = tuple(dict.fromkeys(a for a in actual.values() if a is not None))
            try:  # one batched pass for the modality's images
                outs: list[ImageOutput | Exception] = list(model.run(items, run_methods))
            except (BreastReaderError, TypeError, ValueError, RuntimeError):
                outs = []
                for it in items:  # isolate the image that failed
                    check(cancel)
                    try:
                        outs.append(model.run([it], run_methods)[0])
                    except (BreastReaderError, TypeError, ValueError, RuntimeError) as exc:
                        outs.append(exc)
            for ci, out in zip(todo, outs):
                done += 1
                if isinstance(out, Exception):
                    res.errors.append(f"{ci.image_id}: {out}")
                    res.failed.update((ci.image_id, m) for m in methods)
                    continue
                if not 0.0 <= float(out.score) <= 1.0:  # NaN fails this too: never shown, never fused
                    res.errors.append(f"{ci.image_id}: the model returned {float(out.score)!r}, not a probability; "
                                      "the image was not scored")
                    res.failed.update((ci.image_id, m) for m in methods)
                    continue
                res.per_image[ci.image_id] = float(out.score)
                res.frames[ci.image_id] = out.frame
                if getattr(out, "lesion", None) is not None:
                    res.lesion[ci.image_id] = out.lesion
                for m in methods:
                    a = actual[m]
                    sal = out.saliency.get(a) if a is not None else None
                    if sal is None:
                        res.failed.add((ci.image_id, m))
                        why = out.errors.get(a, "not computed") if a is not None else "the model has no saliency method"
                        res.errors.append(f"{ci.image_id}: {m} saliency unavailable ({why})")
                        continue
                    arr = np.asarray(getattr(sal, "map", sal), dtype=np.float32)
                    lo, hi = float(arr.min()), float(arr.max())
                    if not (np.isfinite(lo) and np.isfinite(hi)):  # a NaN/inf anywhere shows in min/max
                        arr = np.nan_to_num(arr)
                        lo, hi = float(arr.min()), float(arr.max())
                    if not hi > lo:
                        res.errors.append(f"{ci.image_id}: the {m} map is empty for this image")
                    res.saliency[(ci.image_id, m)] = arr
            report(progress, done, total, f"scored {modality}")
            probs = [res.per_image[ci.image_id] for ci in todo if ci.image_id in res.per_image]
            if probs:
                res.per_modality[modality] = float(np.mean(probs))
            if is_qi(info) and res.advice is None and modality in res.per_modality:
                thr = float(getattr(getattr(model, "spec", None), "threshold", 0.5))
                res.advice = qi_advice(res.per_modality[modality], None, thr)
        check(cancel)
        report(progress, done, total, "fusion")
        self._fuse(case, res)
        report(progress, total, total, "done")
        return res

    def _fuse(self, case: CaseInput, res: CaseScores) -> None:
        """MG+US fusion (installed fusion model with ``predict_case``, else the labelled mean)."""
        if not {"MG", "US"} <= set(res.per_modality):
            return
        try:
            fusion = self.model("MG+US")
            pc = getattr(fusion, "predict_case", None)
            if pc is not None:
                images = {ci.image_id: ci.image for ci in case.images}
                res.fused = float(pc(case.source, images))
                res.fused_source = f"fusion model {model_info('MG+US', fusion).name}"
                res.models["MG+US"] = model_info("MG+US", fusion)
        except ModelNotFoundError:
            pass
        except (BreastReaderError, TypeError, ValueError, RuntimeError) as exc:
            res.errors.append(f"fusion: {exc}")
        if res.fused is None:
            res.fused = float(np.mean([res.per_modality["MG"], res.per_modality["US"]]))
            res.fused_source = "mean of MG and US scores (no fusion model installed)"


def score_case(case: CaseInput, methods: Sequence[str] = (), *, scorer: Scorer | None = None,
               progress: ProgressCallback | None = None, cancel: Any = None) -> CaseScores:
    """Score a case with ``scorer`` (default: a :class:`CaseScorer` over the installed defaults)."""
    return (scorer or CaseScorer()).score_case(case, methods, progress=progress, cancel=cancel)


def case_input(case: Any, images: dict[str, LoadedImage]) -> CaseInput:
    """A :class:`CaseInput` from an :class:`engine.cases.Case` and its decoded images.

    The reader's first own lesion box on each image is its box; on a stack, that annotation's
    slice is the chosen slice (None = not chosen). Dataset truth annotations are never a box
    here (:attr:`engine.cases.model.Annotation.is_truth`): a truth box would hand the model the
    answer; with no reader box the model's own finder proposes the lesion.
    """
    out: list[CaseImage] = []
    for ci in case.images:
        img = images.get(ci.image_id)
        if img is None:
            continue
        box: Box | None = None
        frame: int | None = None
        stack = img.pixels.ndim == 3 and not img.is_rgb
        for a in case.reader_annotations_for(ci.image_id):
            b = a.bbox()
            box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            frame = a.frame if stack else None
            break
        out.append(CaseImage(ci.image_id, img, str(ci.modality), box, frame))
    return CaseInput(str(case.case_id), out, source=case)
