"""Qt-free bridge between the viewer and the engine's case scorer (schedules, caches, shows).

Every AI decision (box policy, slice choice, per-modality mean, fusion, Qi advice, saliency)
is made once, in :mod:`engine.inference.case`; this module turns the viewer's
:class:`~engine.cases.Case` into a :class:`~engine.inference.case.CaseInput`, calls a
:class:`~engine.inference.case.Scorer` and caches the result per (case, models chosen, boxes).
It runs inside a worker thread (see ``qt_workers.py``) and only takes plain data in and out.
The viewer never invents a score: with no model installed the result says so.

By default the models run in a separate process (:class:`engine.inference.process.ProcessScorer`):
the workstation's process never imports torch, so loading and running the models cannot hold
its GIL and freeze the event loop (issue 17). ``BREAST_READER_AI=inprocess`` (or an explicit
``loader``, as tests give) keeps the :class:`CaseScorer` in this process instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from engine.cases import Case
from engine.errors import BreastReaderError, ModelNotFoundError
from engine.inference.case import (
    CaseScorer,
    CaseScores,
    ModelInfo,
    Scorer,
    case_input,
    is_qi,
    model_info,
    qi_advice,
)
from engine.inference.process import ProcessScorer
from engine.io.types import LoadedImage
from engine.progress import ProgressCallback

AIResult = CaseScores  # the viewer's name for a case's scores
_model_info = model_info

__all__ = ["AIResult", "AIService", "ModelInfo", "Scorer", "default_loader", "installed_models", "is_qi",
           "qi_advice", "to_ten"]


#: Why a real MRI gets no malignancy score from a synthetic-trained model (issue 13).
MRI_SYNTHETIC_ONLY = ("MR: no malignancy score. The installed MRI model was trained on SYNTHETIC images only "
                      "and is not validated on real scanner MRI (on real DCE-MRI it ranked every benign lesion "
                      "above every malignant one); use the MRI window's kinetics (Ctrl+Shift+M) instead.")


def to_ten(p: float) -> float:
    """A 0-1 malignancy probability on the readers' 0-10 scale."""
    return round(10.0 * float(p), 1)


def default_loader(modality: str, model: str | None = None) -> Any:
    """``engine.inference.load_predictor``; ModelNotFoundError when the engine has none."""
    from engine.inference import load_predictor

    return load_predictor(modality, model=model)


def installed_models() -> dict[str, list[str]]:
    """Installed weights folder names by modality (empty when the engine has none); no torch import."""
    from engine.model_catalog import installed_by_modality

    return installed_by_modality()


def in_process_requested() -> bool:
    """Whether ``BREAST_READER_AI=inprocess`` asks for the models in the workstation's process."""
    return os.environ.get("BREAST_READER_AI", "").strip().lower() in ("inprocess", "in-process", "thread")


class AIService:
    """Schedules case scoring on a :class:`Scorer` and caches results per (case, models, boxes).

    Args:
        loader: ``(modality, model) -> model`` for an in-process :class:`CaseScorer` (tests'
            fakes). Without one the installed weights are scored in a model process
            (:class:`ProcessScorer`), unless :func:`in_process_requested`.
        scorer: Use this :class:`Scorer` instead (a GUI test double implements the same Protocol).
    """

    def __init__(self, loader: Callable[[str, str | None], Any] | None = None, *,
                 scorer: Scorer | None = None) -> None:
        self.model_choice: dict[str, str | None] = {}  # modality -> explicit model name
        if scorer is None:
            if loader is None and not in_process_requested():
                scorer = ProcessScorer()
            else:
                scorer = CaseScorer(loader or default_loader, self.model_choice)
        self.scorer: Scorer = scorer
        if hasattr(self.scorer, "model_choice"):
            self.scorer.model_choice = self.model_choice
        self._cache: dict[tuple[Any, ...], AIResult] = {}
        self._lock = threading.RLock()
        # one scoring at a time: saliency hooks on a shared model must not interleave
        self._run_lock = threading.Lock()

    @property
    def in_process(self) -> bool:
        """Whether the models run in this process (False: in a model process)."""
        return not isinstance(self.scorer, ProcessScorer)

    def shutdown(self) -> None:
        """Stop the model process, if any (a later request starts a new one)."""
        close = getattr(self.scorer, "close", None)
        if callable(close):
            close()

    def model_info(self, modality: str) -> ModelInfo:
        """What the reader is told about the modality's model; raises ModelNotFoundError."""
        fn = getattr(self.scorer, "model_info", None)
        if callable(fn):
            info: ModelInfo = fn(modality)
            return info
        return model_info(modality, self.predictor(modality))

    def predictor(self, modality: str) -> Any:
        """The (cached) model for a modality; raises ModelNotFoundError."""
        fn = getattr(self.scorer, "model", None)
        if fn is None:
            raise ModelNotFoundError(f"the scorer does not expose its {modality} model")
        return fn(modality)

    @staticmethod
    def _boxes(case: Case) -> tuple[tuple[str, tuple[float, ...] | None], ...]:
        # the reader's own boxes only (as case_input passes them): dataset truth never drives the AI
        return tuple((im.image_id, case.reader_box(im.image_id)) for im in case.images)

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
        """Score the case's images (and ``methods`` saliency) through the engine's scorer, cached."""
        with self._run_lock:
            key = self.cache_key(case)
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and all((i, m) in hit.saliency or (i, m) in hit.failed
                                       for i in images for m in methods if i in hit.per_image):
                return hit
            images, withheld = self._withhold_synthetic_mri(case, images)
            res = self.scorer.score_case(case_input(case, images), methods, progress=progress, cancel=cancel)
            if withheld and MRI_SYNTHETIC_ONLY not in res.errors:
                res.errors.append(MRI_SYNTHETIC_ONLY)
            with self._lock:
                self._cache[key] = res
            return res

    def warm_up(self, modalities: tuple[str, ...] = (), *, progress: ProgressCallback | None = None,
                cancel: Any = None) -> list[str]:
        """Import the model stack (torch) and load the models of ``modalities`` (run it in a worker).

        The first image never waits for this: the window shows the case, the AI panel says
        "loading model…", and a scoring asked for meanwhile queues behind it (same lock).

        Returns:
            One line per modality whose model could not be loaded.
        """
        from engine.progress import check, report

        remote = getattr(self.scorer, "warm_up", None)
        if callable(remote):  # the model process imports and loads; this process only waits
            with self._run_lock:
                out: list[str] = remote(modalities, progress=progress, cancel=cancel)
            return out
        problems: list[str] = []
        with self._run_lock:
            report(progress, 0, len(modalities) + 1, "loading model…")
            if isinstance(self.scorer, CaseScorer):
                from engine.inference import load_stack

                load_stack()  # torch, the models, the saliency
                from engine import threads

                threads.limit_intra_op(reserve=1)  # a core stays with the GUI thread (bench threads)
            for i, m in enumerate(modalities):
                check(cancel)
                report(progress, i + 1, len(modalities) + 1, f"loading {m} model…")
                try:
                    self.predictor(m)
                except (ModelNotFoundError, BreastReaderError) as exc:
                    problems.append(f"{m}: {exc}")
            report(progress, len(modalities) + 1, len(modalities) + 1, "models ready")
        # torch and the models are objects for the life of the process: freeze them so that no
        # later full garbage collection scans them with the GIL held (a GUI stall of 0.1-0.3 s)
        import gc

        gc.freeze()
        return problems

    def _withhold_synthetic_mri(self, case: Case, images: dict[str, LoadedImage]
                                ) -> tuple[dict[str, LoadedImage], bool]:
        """Issue 13: a synthetic-trained MRI model scores no real MRI (images of a case that is
        not synthetic): those images are left out, and the result says why."""
        mr = [ci.image_id for ci in case.images_of("MR") if ci.image_id in images]
        if not mr or case.synthetic or all(ci.synthetic for ci in case.images_of("MR")):
            return images, False
        try:
            info = self.model_info("MR")
        except (ModelNotFoundError, BreastReaderError):
            return images, False
        if not info.synthetic:
            return images, False
        return {k: v for k, v in images.items() if k not in mr}, True
