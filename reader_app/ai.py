"""Qt-free bridge between the viewer and ``engine.inference`` (scores, saliency, cache).

The viewer never invents a score: when no model is installed for a modality the result says
so (``ModelNotFoundError`` -> "no model installed"). Everything here runs inside a worker
thread (see ``qt_workers.py``); it only takes plain data in and returns plain data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.cases import Case
from engine.errors import BreastReaderError, ModelNotFoundError
from engine.io.types import LoadedImage
from engine.progress import ProgressCallback, check, report

# Names the engine may use for each viewer method (first that the predictor accepts wins).
METHOD_ALIASES: dict[str, tuple[str, ...]] = {
    "gradcam": ("gradcam", "grad-cam", "grad_cam", "GradCAM"),
    "cam": ("cam", "CAM"),
    "attention": ("attention", "attn"),
    "entropy": ("entropy", "entropy-gradient", "entropy_gradient"),
}


def to_ten(p: float) -> float:
    """A 0-1 malignancy probability on the readers' 0-10 scale."""
    return round(10.0 * float(p), 1)


@dataclass
class ModelInfo:
    """What the panel shows about the model used for one modality."""

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
class AIResult:
    """The AI's output for one case.

    Attributes:
        per_image: Malignancy probability per image_id.
        per_modality: Probability per modality (mean over its images; Habib's per-lesion mean).
        fused: Fused MG+US probability (from the fusion model if installed, else None).
        fused_source: How ``fused`` was obtained.
        models: ModelInfo per modality.
        saliency: {(image_id, method): float map in image pixel coordinates}.
        advice: Qi's cascade advice (when the Qi model is the one used), else None.
        errors: Human-readable problems (model missing, image failed...).
    """

    case_id: str
    per_image: dict[str, float] = field(default_factory=dict)
    per_modality: dict[str, float] = field(default_factory=dict)
    fused: float | None = None
    fused_source: str = ""
    models: dict[str, ModelInfo] = field(default_factory=dict)
    saliency: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    frames: dict[str, int | None] = field(default_factory=dict)  # MR slice scored per image
    advice: str | None = None
    errors: list[str] = field(default_factory=list)
    failed: set[tuple[str, str]] = field(default_factory=set)  # (image_id, method) not available

    @property
    def synthetic(self) -> bool:
        """Whether any model used was trained on synthetic data."""
        return any(m.synthetic for m in self.models.values())


# --------------------------------------------------------------------------- adapters
def probability_of(out: Any) -> float:
    """The malignancy probability from whatever ``Predictor.predict`` returned."""
    if isinstance(out, (int, float, np.floating)):
        return float(out)
    if isinstance(out, dict):
        for k in ("malignancy", "malignant", "prob", "probability", "score", "p_malignant"):
            if k in out:
                return probability_of(out[k])
        probs = out.get("probs")
        if isinstance(probs, dict) and "malignant" in probs:
            return float(probs["malignant"])
    for k in ("malignancy", "prob", "probability", "p_malignant", "score", "malignant"):
        v = getattr(out, k, None)
        if isinstance(v, (int, float, np.floating)):
            return float(v)
    probs = getattr(out, "probs", None)
    if isinstance(probs, dict) and "malignant" in probs:
        return float(probs["malignant"])
    raise TypeError(f"cannot read a malignancy probability from {type(out).__name__}")


def advice_of(out: Any) -> str | None:
    """Qi's cascade advice text if the prediction carries one."""
    for k in ("advice", "cascade_advice", "recommendation"):
        v = out.get(k) if isinstance(out, dict) else getattr(out, k, None)
        if isinstance(v, str) and v:
            return v
    return None


def map_of(out: Any) -> np.ndarray:
    """The float saliency map from whatever ``Predictor.saliency`` returned."""
    if isinstance(out, np.ndarray):
        return out
    if isinstance(out, dict):
        for k in ("map", "saliency", "heatmap"):
            if k in out:
                return map_of(out[k])
    for k in ("map", "saliency", "heatmap", "values"):
        v = getattr(out, k, None)
        if v is not None:
            return map_of(v)
    if hasattr(out, "detach"):
        return out.detach().cpu().float().numpy()
    raise TypeError(f"cannot read a saliency map from {type(out).__name__}")


def _model_info(modality: str, pred: Any) -> ModelInfo:
    spec = getattr(pred, "spec", None)
    name = getattr(pred, "name", None) or getattr(spec, "name", None) or type(pred).__name__
    card = getattr(pred, "card_path", None) or getattr(pred, "model_card", None)
    folder = getattr(pred, "folder", None)
    if card is None and folder is not None:
        card = Path(folder) / "MODEL_CARD.md"
    if card is None and spec is not None:
        try:
            from engine.models.weights import models_root

            cand = models_root() / str(spec.name) / "MODEL_CARD.md"
            card = cand if cand.exists() else None
        except Exception:  # noqa: BLE001 - the card link is a convenience only
            card = None
    device = str(getattr(pred, "device", "") or "")
    if not device:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    device = "CUDA" if "cuda" in device.lower() else "CPU"
    synthetic = bool(getattr(pred, "synthetic", False) or getattr(spec, "synthetic", False))
    arch = getattr(spec, "model", None)
    extra = getattr(spec, "extra", None)
    note = extra.get("saliency_note") if isinstance(extra, dict) else None
    return ModelInfo(modality, str(name), str(card) if card else None, synthetic, device,
                     architecture=str(arch) if arch else None, saliency_note=str(note) if note else None)


def default_loader(modality: str, model: str | None = None) -> Any:
    """``engine.inference.load_predictor``; ModelNotFoundError when the engine has none."""
    try:
        from engine.inference import load_predictor
    except ImportError as exc:
        raise ModelNotFoundError(f"no inference engine installed ({exc.name})") from None
    return load_predictor(modality, model=model)


def is_qi(info: ModelInfo) -> bool:
    """Whether the model is Qi et al.'s Mt-Net/Sn-Net cascade (registry names ``qi_*``)."""
    arch = (info.architecture or "").lower()
    return arch.startswith("qi") or (not arch and bool(info.name) and str(info.name).lower().startswith("qi"))


def qi_advice(p_malignant: float, p_solid: float | None, threshold: float = 0.5) -> str:
    """Qi 2019 cascade: Mt-Net (malignant?) then Sn-Net (solid nodule?); either positive ->
    further examination, else periodic follow-up. Without an Sn-Net score only Mt-Net decides."""
    try:
        from engine.models.qi import cascade_advice

        text = cascade_advice(p_malignant, p_solid if p_solid is not None else 0.0,
                              t_malignant=threshold, t_solid=threshold)
    except ImportError:
        text = ("further examination advised" if p_malignant >= threshold or (p_solid or 0.0) >= threshold
                else "periodic follow-up")
    text = text[0].upper() + text[1:]
    basis = "Mt-Net + Sn-Net" if p_solid is not None else "Mt-Net only (no Sn-Net installed)"
    return f"Qi et al. 2019 cascade: {text} ({basis})"


def installed_models() -> dict[str, list[str]]:
    """Installed weights folder names by modality (empty when the engine has none)."""
    out: dict[str, list[str]] = {}
    try:
        from engine.models.weights import list_weights, read_spec
    except ImportError:
        return out
    for name in list_weights():
        try:
            spec = read_spec(name)
        except (BreastReaderError, OSError, ValueError, TypeError):
            continue
        out.setdefault(str(spec.modality).upper(), []).append(name)
    return out


def _needs_box(pred: Any) -> bool | None:
    """Whether the model scores a reader's box: ``spec.extra["needs_box"]`` of its weights.

    Weights that do not say were trained on whole images/slices (their spec's preprocessing
    names no crop), so they get no box. None for predictors without a spec (then the box,
    if any, is passed and the predictor decides).
    """
    spec = getattr(pred, "spec", None)
    if spec is None:
        return None
    extra = getattr(spec, "extra", None)
    return bool(extra.get("needs_box", False)) if isinstance(extra, dict) else False


def _call(fn: Callable[..., Any], *args: Any, frame: int | None = None, **kw: Any) -> Any:
    """Call with ``frame=`` when given (MR slice), falling back for predictors without it."""
    if frame is None:
        return fn(*args, **kw)
    try:
        return fn(*args, frame=frame, **kw)
    except TypeError:
        return fn(*args, **kw)


# --------------------------------------------------------------------------- service
class AIService:
    """Loads predictors once, scores cases, computes saliency, caches per (case, model, boxes)."""

    def __init__(self, loader: Callable[[str, str | None], Any] = default_loader) -> None:
        self.loader = loader
        self.model_choice: dict[str, str | None] = {}  # modality -> explicit model name
        self._predictors: dict[tuple[str, str | None], Any] = {}
        self._missing: dict[tuple[str, str | None], str] = {}
        self._cache: dict[tuple[Any, ...], AIResult] = {}
        self._lock = threading.RLock()
        # one scoring at a time: Grad-CAM hooks on a shared model must not interleave
        self._run_lock = threading.Lock()

    def predictor(self, modality: str) -> Any:
        """The (cached) predictor for a modality; raises ModelNotFoundError."""
        key = (modality, self.model_choice.get(modality))
        with self._lock:
            if key in self._predictors:
                return self._predictors[key]
            if key in self._missing:
                raise ModelNotFoundError(self._missing[key])
        try:
            pred = self.loader(*key)
        except ModelNotFoundError as exc:
            with self._lock:
                self._missing[key] = str(exc)
            raise
        with self._lock:
            self._predictors[key] = pred
        return pred

    @staticmethod
    def _boxes(case: Case) -> tuple[tuple[str, tuple[float, ...] | None], ...]:
        return tuple((im.image_id, case.lesion_box(im.image_id)) for im in case.images)

    def cache_key(self, case: Case) -> tuple[Any, ...]:
        """(case, models chosen, lesion boxes): a new box invalidates the score."""
        return (case.case_id, tuple(sorted(self.model_choice.items())), self._boxes(case))

    def cached(self, case: Case) -> AIResult | None:
        """The cached result for the case as it is now, or None."""
        with self._lock:
            return self._cache.get(self.cache_key(case))

    def score_case(
        self,
        case: Case,
        images: dict[str, LoadedImage],
        methods: tuple[str, ...] = ("gradcam",),
        *,
        progress: ProgressCallback | None = None,
        cancel: Any = None,
    ) -> AIResult:
        """Score every image of the case and compute saliency for ``methods``.

        Per-modality probability = mean over the modality's images (Habib et al. 2020: the
        per-lesion score is the mean over the lesion's images). The fused score comes from the
        MG+US fusion model when one is installed and exposes ``predict_case``; otherwise it is
        left empty rather than invented.
        """
        with self._run_lock:
            return self._score_case(case, images, methods, progress=progress, cancel=cancel)

    def _score_case(
        self,
        case: Case,
        images: dict[str, LoadedImage],
        methods: tuple[str, ...],
        *,
        progress: ProgressCallback | None,
        cancel: Any,
    ) -> AIResult:
        key = self.cache_key(case)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and all((i, m) in hit.saliency or (i, m) in hit.failed for i in images for m in methods):
            return hit
        res = hit or AIResult(case.case_id)
        todo = [im for im in case.images if im.image_id in images]
        total = len(todo) * (1 + len(methods)) + 1
        done = 0
        for modality in case.modalities:
            mod_imgs = [im for im in todo if im.modality == modality]
            if not mod_imgs:
                continue
            try:
                pred = self.predictor(modality)
            except ModelNotFoundError as exc:
                res.models[modality] = ModelInfo(modality, error="no model installed", detail=str(exc))
                done += len(mod_imgs) * (1 + len(methods))
                continue
            info = res.models.get(modality) or _model_info(modality, pred)
            res.models[modality] = info
            probs = []
            for ci in mod_imgs:
                check(cancel)
                img = images[ci.image_id]
                box, frame = self._region(case, ci.image_id, img)
                needs_box = _needs_box(pred)
                if needs_box is False:
                    box = None  # trained on whole images: a reader's box would change what it sees
                elif needs_box and box is None:
                    if ci.image_id not in res.per_image:
                        res.errors.append(f"{ci.image_id}: no lesion box drawn; this model scores the region "
                                          "in a reader's box: draw one (B) to score this image")
                    done += 1 + len(methods)
                    continue
                if frame is None and img.pixels.ndim == 3 and not img.is_rgb:
                    frame = self._most_suspicious_slice(pred, img, box)
                res.frames[ci.image_id] = frame
                if ci.image_id not in res.per_image:
                    report(progress, done, total, f"scoring {ci.image_id}")
                    try:
                        out = _call(pred.predict, img, box=box, frame=frame)
                        res.per_image[ci.image_id] = probability_of(out)
                        adv = advice_of(out)
                        if adv and (res.advice is None):
                            res.advice = adv
                    except (BreastReaderError, TypeError, ValueError, RuntimeError) as exc:
                        res.errors.append(f"{ci.image_id}: {exc}")
                done += 1
                if ci.image_id in res.per_image:
                    probs.append(res.per_image[ci.image_id])
                for method in methods:
                    check(cancel)
                    report(progress, done, total, f"saliency {ci.image_id} ({method})")
                    if (ci.image_id, method) not in res.saliency and (ci.image_id, method) not in res.failed:
                        m = self._saliency(pred, img, method, box, res, ci.image_id, frame)
                        if m is not None and not float(np.max(m)) > float(np.min(m)):
                            res.errors.append(f"{ci.image_id}: the {method} map is empty for this image")
                        if m is not None:
                            res.saliency[(ci.image_id, method)] = m
                        else:
                            res.failed.add((ci.image_id, method))
                    done += 1
            if probs:
                res.per_modality[modality] = float(np.mean(probs))
            if is_qi(info) and res.advice is None and modality in res.per_modality:
                res.advice = qi_advice(res.per_modality[modality], None, float(getattr(getattr(pred, "spec", None),
                                                                                      "threshold", 0.5)))
        check(cancel)
        report(progress, done, total, "fusion")
        if res.fused is None and {"MG", "US"} <= set(res.per_modality):
            try:
                fusion = self.predictor("MG+US")
                pc = getattr(fusion, "predict_case", None)
                if pc is not None:
                    res.fused = probability_of(pc(case, images))
                    res.fused_source = f"fusion model {_model_info('MG+US', fusion).name}"
                    res.models["MG+US"] = _model_info("MG+US", fusion)
            except ModelNotFoundError:
                pass
            except (BreastReaderError, TypeError, ValueError, RuntimeError) as exc:
                res.errors.append(f"fusion: {exc}")
            if res.fused is None:
                res.fused = float(np.mean([res.per_modality["MG"], res.per_modality["US"]]))
                res.fused_source = "mean of MG and US scores (no fusion model installed)"
        report(progress, total, total, "done")
        with self._lock:
            self._cache[key] = res
        return res

    @staticmethod
    def _region(case: Case, image_id: str, img: LoadedImage) -> tuple[tuple[float, ...] | None, int | None]:
        """The reader's first lesion box on the image and, for a stack, its slice (None = not chosen)."""
        stack = img.pixels.ndim == 3 and not img.is_rgb
        for a in case.annotations_for(image_id):
            return a.bbox(), (a.frame if stack else None)
        return None, None

    @staticmethod
    def _most_suspicious_slice(pred: Any, img: LoadedImage, box: Any) -> int:
        """For a stack the reader has not annotated: the slice the model scores highest (the
        engine reads an unannotated stack as its maximum over slices), else the middle one."""
        fn = getattr(pred, "slice_scores", None)
        if callable(fn):
            try:
                return int(np.argmax(np.asarray(fn(img, box))))
            except (BreastReaderError, TypeError, ValueError, RuntimeError):
                pass
        return int(img.pixels.shape[0] // 2)

    @staticmethod
    def _saliency(pred: Any, img: LoadedImage, method: str, box: Any, res: AIResult, image_id: str,
                  frame: int | None = None) -> np.ndarray | None:
        fn = getattr(pred, "saliency", None)
        if fn is None:
            return None
        supported = getattr(pred, "saliency_methods", None)
        if callable(supported):
            try:
                names = tuple(supported())
            except Exception:  # noqa: BLE001 - a registry lookup failing must not stop scoring
                names = ()
            if names and not set(METHOD_ALIASES.get(method, (method,))) & set(names):
                res.errors.append(f"{image_id}: this model has no {method} saliency (has {', '.join(names)})")
                return None
        last: Exception | None = None
        for name in METHOD_ALIASES.get(method, (method,)):
            try:
                m = map_of(_call(fn, img, name, box=box, frame=frame))
                m = np.nan_to_num(np.asarray(m, dtype=np.float32))
                return m
            except (KeyError, ValueError, NotImplementedError, BreastReaderError, TypeError, RuntimeError) as exc:
                last = exc
        res.errors.append(f"{image_id}: {method} saliency unavailable ({last})")
        return None
