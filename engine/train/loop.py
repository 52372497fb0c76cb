"""Training loop: ``train_one_epoch``, ``evaluate``, ``fit``, ``predict``.

Structured like torchvision ``references/classification/train.py``: checkpoints hold
``{model, optimizer, scheduler, epoch, config}`` (plus history, best-so-far and RNG
states, so ``--resume`` continues exactly), the resolved config is saved in the run
folder, metrics per epoch go to ``metrics.csv`` and a log to ``train.log``.

Determinism: the sampler permutation and the augmentation depend only on
``(seed, epoch)`` (the permutation is the one :class:`torch.utils.data.DistributedSampler`
draws, so one process and N DDP processes see the same batches), torch/numpy/python
RNGs are seeded, and ``torch.use_deterministic_algorithms`` is on (warn-only) during fit.

Models may customise the step (Habib et al. 2020 multi-loss fusion, Qi et al. 2019
Algorithm 1, the MRI attention loss) by defining:

* ``training_step(batch) -> loss`` (full control of one step's forward + loss), or
* ``loss_fn(outputs, targets) -> loss`` (custom loss on the default forward), and
* ``predict_step(batch) -> scores`` (probabilities, used by :func:`evaluate`/:func:`predict`).

Otherwise a single logit (N,) / (N, 1) is trained with BCE and (N, K) logits with
cross-entropy; scores are sigmoid / softmax probabilities.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.errors import ConfigError
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import TrainConfig

log = logging.getLogger("engine.train")

StepFn = Callable[[nn.Module, Any], torch.Tensor]


# ----------------------------------------------------------------------- determinism
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # torch gives every worker base_seed + id; derive numpy/python seeds from it.
    s = torch.initial_seed() % (2**32)
    np.random.seed(s)
    random.seed(s)
    # one torch thread per worker: N workers x M threads would oversubscribe the CPU.
    # (Never touch OpenCV's thread pool here: reconfiguring it in a forked child deadlocks;
    # fit() makes OpenCV sequential in the parent before the workers fork.)
    torch.set_num_threads(1)


@contextmanager
def fork_safe_opencv(active: bool) -> Iterator[None]:
    """Make OpenCV sequential while DataLoader workers may fork (restored afterwards).

    A child forked while OpenCV's thread pool exists deadlocks when it uses or resizes that
    pool (seen as a futex wait in ``pthread_cond_destroy``); with threading disabled in the
    parent the children run OpenCV sequentially.
    """
    if not active:
        yield
        return
    import cv2

    prev = cv2.getNumThreads()
    cv2.setNumThreads(0)
    try:
        yield
    finally:
        cv2.setNumThreads(prev)


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside the block."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is a ConfigError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {spec!r} but no CUDA GPU is available; use auto or cpu")
    return torch.device(spec)


class EpochSampler(Sampler[int]):
    """Shuffles with ``randperm(n, seed + epoch)``: exactly DistributedSampler's order."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


# ----------------------------------------------------------------------- batches
def to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move tensors inside (nested) tuples/lists/dicts to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device, non_blocking) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    return batch


def _forward(model: nn.Module, x: Any) -> torch.Tensor:
    out = model(*x) if isinstance(x, (list, tuple)) else model(x)
    return out  # type: ignore[no-any-return]


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits for one logit per sample or (N, K) multi-label 0/1 targets,
    cross-entropy for (N, K) logits with class-index targets."""
    if outputs.ndim == 2 and targets.ndim == 2 and targets.shape == outputs.shape:
        return F.binary_cross_entropy_with_logits(outputs.float(), targets.float())
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(outputs.reshape(-1).float(), targets.reshape(-1).float())
    return F.cross_entropy(outputs.float(), targets.long())


def logits_to_scores(outputs: torch.Tensor) -> torch.Tensor:
    """Sigmoid of a single logit -> (N,), softmax of (N, 2) -> P(class 1) (N,), else (N, K)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return torch.sigmoid(outputs.reshape(-1).float())
    p = torch.softmax(outputs.float(), dim=-1)
    return p[:, 1] if p.shape[-1] == 2 else p


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def make_step_fn(model: nn.Module) -> StepFn:
    """The loss function of one training batch (model hooks first, else the default)."""
    inner = _unwrap(model)
    custom = getattr(inner, "training_step", None)
    if callable(custom):
        return lambda m, batch: custom(batch)  # type: ignore[no-any-return]
    loss_fn = getattr(inner, "loss_fn", None)
    if not callable(loss_fn):
        # engine.models' own convention (Habib BCE/LMCL): a ``loss(logits, target)`` method
        loss_fn = getattr(inner, "loss", None)
        if isinstance(loss_fn, nn.Module) or not callable(loss_fn):
            loss_fn = None
    lf: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = loss_fn if loss_fn is not None else default_loss

    def step(m: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        return lf(_forward(m, x), y)

    return step


def _score_batch(model: nn.Module, batch: Any) -> torch.Tensor:
    inner = _unwrap(model)
    custom = getattr(inner, "predict_step", None)
    if callable(custom):
        return custom(batch)  # type: ignore[no-any-return]
    x = batch[0]
    if isinstance(x, torch.Tensor) and x.ndim == 5:
        # multi-crop input (Qi et al. 2019 Fig. 4): average the crops' probabilities
        n, k = x.shape[:2]
        s = _activate(inner, _forward(model, x.reshape(n * k, *x.shape[2:])))
        return s.reshape(n, k, *s.shape[1:]).mean(dim=1)
    return _activate(inner, _forward(model, x))


def _activate(inner: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    # engine.models classifiers expose ``malignancy(logits)`` (binary heads) and
    # ``probabilities(logits)``; others may declare ``output_activation = "sigmoid"``
    # (multi-label heads) and the ``malignant_index`` of a softmax pair.
    k = outputs.shape[-1] if outputs.ndim == 2 else 1
    mal = getattr(inner, "malignancy", None)
    if k <= 2 and callable(mal):
        return mal(outputs).reshape(-1)  # type: ignore[no-any-return]
    prob = getattr(inner, "probabilities", None)
    if k > 2 and callable(prob):
        return prob(outputs)  # type: ignore[no-any-return]
    act = getattr(inner, "output_activation", "softmax")
    if outputs.ndim == 2 and outputs.shape[-1] > 1:
        if act == "sigmoid":
            return torch.sigmoid(outputs.float())
        if outputs.shape[-1] == 2:
            return torch.softmax(outputs.float(), dim=-1)[:, int(getattr(inner, "malignant_index", 1))]
    return logits_to_scores(outputs)


# ------------------------------------------------------------------------- epochs
@dataclass
class AmpState:
    """Mixed-precision settings of a run (disabled on CPU)."""

    enabled: bool = False
    dtype: torch.dtype = torch.float16
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device, want: bool) -> AmpState:
        """bf16 autocast where supported, else fp16 with a GradScaler; off on CPU."""
        if not want or device.type != "cuda":
            return cls(False)
        if torch.cuda.is_bf16_supported():
            return cls(True, torch.bfloat16, None)
        return cls(True, torch.float16, torch.amp.GradScaler("cuda"))


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    amp: AmpState | None = None,
    step_fn: StepFn | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    epoch: int = 0,
    epochs: int = 1,
    step_offset: int = 0,
    total_steps: int = 0,
    log_every: int = 1,
    grad_sync: Callable[[nn.Module], None] | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss.

    The step is the plain ``zero_grad / forward / loss / backward / step`` of a
    hand-written loop: the loss is accumulated on the device and read once per epoch
    (no per-step host sync), so throughput matches a plain loop (`breast-engine bench train`).

    Args:
        model: The model (possibly DDP-wrapped), put in train mode.
        loader: Iterable of batches ``(x, y, ...)``.
        optimizer: The optimiser.
        device: Where the batches go.
        amp: Mixed-precision state (``None`` = off).
        step_fn: ``step_fn(model, batch) -> loss`` (default :func:`make_step_fn`).
        progress: Progress callback ``(done, total, message)``.
        cancel: Cancellation token, checked every step.
        epoch: Epoch index (messages).
        epochs: Number of epochs (messages).
        step_offset: Steps done before this epoch (progress).
        total_steps: Steps of the whole run (progress).
        log_every: Progress every N steps.
        grad_sync: Called after backward (manual DDP all-reduce for custom steps).

    Returns:
        Mean loss over the epoch's batches (NaN for an empty loader).
    """
    amp = amp or AmpState()
    step_fn = step_fn or make_step_fn(model)
    model.train()
    total = torch.zeros((), device=device)
    n = 0
    non_blocking = device.type == "cuda"
    for batch in loader:
        check(cancel)
        batch = to_device(batch, device, non_blocking)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
            loss = step_fn(model, batch)
        if amp.scaler is not None:
            amp.scaler.scale(loss).backward()
            if grad_sync is not None:
                grad_sync(model)
            amp.scaler.step(optimizer)
            amp.scaler.update()
        else:
            loss.backward()
            if grad_sync is not None:
                grad_sync(model)
            optimizer.step()
        total += loss.detach()
        n += 1
        if progress is not None and (n % log_every == 0):
            report(progress, step_offset + n, total_steps, f"epoch {epoch + 1}/{epochs}")
    return float(total.item() / n) if n else float("nan")


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    amp: AmpState | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and targets over ``loader`` in eval mode (model restored to its mode)."""
    amp = amp or AmpState()
    was_training = model.training
    model.eval()
    scores: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    try:
        for batch in loader:
            check(cancel)
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=amp.dtype, enabled=amp.enabled):
                s = _score_batch(model, batch)
            scores.append(s.float().cpu().numpy())
            if isinstance(batch, (list, tuple)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
                targets.append(batch[1].cpu().numpy())
    finally:
        model.train(was_training)
    s_all = np.concatenate(scores) if scores else np.zeros(0)
    t_all = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    return s_all, t_all


def score_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Validation metrics from probabilities: loss (NLL), auc, accuracy, sens, spec, f2.

    Binary scores (N,) are called positive at 0.5; the F2 (Qi et al. 2019) is at that
    threshold. (N, K) scores with class-index targets give loss, accuracy and the macro
    one-vs-rest AUC. (N, K) scores with (N, K) 0/1 targets are multi-label (the MRI
    attention model's five sigmoid tasks): BCE loss, ``auc_<k>`` per task, ``auc`` = their
    mean, and for K = 5 ``mri_score``, the JFR 2018 challenge score (task 0 = malignancy).
    """
    from engine.metrics import auc, fbeta, mri_weighted_score, sensitivity, specificity

    out: dict[str, float] = {}
    if scores.size == 0:
        return out
    eps = 1e-7
    if scores.ndim == 1:
        t = targets.astype(np.int64).reshape(-1)
        p = np.clip(scores.astype(np.float64), eps, 1 - eps)
        out["loss"] = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
        pred = (scores >= 0.5).astype(np.int64)
        out["accuracy"] = float((pred == t).mean())
        both = 0 < t.sum() < t.size
        out["auc"] = auc(t, scores) if both else float("nan")
        out["sensitivity"] = sensitivity(t, pred)
        out["specificity"] = specificity(t, pred)
        out["f2"] = fbeta(t, pred, 2.0)
    elif targets.ndim == 2 and targets.shape == scores.shape:
        t2 = targets.astype(np.int64)
        p2 = np.clip(scores.astype(np.float64), eps, 1 - eps)
        out["loss"] = float(-np.mean(t2 * np.log(p2) + (1 - t2) * np.log(1 - p2)))
        per = [auc(t2[:, k], scores[:, k]) if 0 < t2[:, k].sum() < t2.shape[0] else float("nan")
               for k in range(t2.shape[1])]
        for k, v in enumerate(per):
            out[f"auc_{k}"] = v
        ok = [v for v in per if not np.isnan(v)]
        out["auc"] = float(np.mean(ok)) if ok else float("nan")
        if t2.shape[1] == 5 and not any(np.isnan(per)):
            out["mri_score"] = mri_weighted_score(per[0], per[1:])
    else:
        t = targets.astype(np.int64).reshape(-1)
        p = np.clip(scores[np.arange(t.size), t].astype(np.float64), eps, 1.0)
        out["loss"] = float(-np.mean(np.log(p)))
        out["accuracy"] = float((scores.argmax(1) == t).mean())
        aucs = [auc((t == k).astype(np.int64), scores[:, k]) for k in range(scores.shape[1])
                if 0 < (t == k).sum() < t.size]
        out["auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out


def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    amp: AmpState | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, float]:
    """Validation metrics of ``model`` on ``loader`` (see :func:`score_metrics`)."""
    s, t = predict_batches(model, loader, device=device, amp=amp, cancel=cancel)
    return score_metrics(s, t)


def predict(
    model: nn.Module,
    ds: Dataset,  # type: ignore[type-arg]
    *,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Scores of ``model`` on every item of ``ds`` in order.

    Returns:
        (N,) positive-class probabilities for binary models, (N, K) otherwise. Items with
        several crops (N, 5, C, H, W) are averaged (Qi et al. 2019 multi-input prediction).
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    with fork_safe_opencv(num_workers > 0):
        s, _ = predict_batches(model, loader, device=dev, cancel=cancel)
    return s


# --------------------------------------------------------------- optimiser/schedule
def build_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov; MRI paper), Adam, or Adadelta (Qi et al. 2019)."""
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay)
    if o.name == "adadelta":
        return torch.optim.Adadelta(params, lr=o.lr, rho=o.rho, weight_decay=o.weight_decay)
    raise ConfigError(f"optim.name {o.name!r} is not sgd, adam or adadelta")


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: step (``step_size``, ``gamma``), cosine to ``min_lr``, or none."""
    s = cfg.schedule
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.train.epochs), eta_min=s.min_lr)
    return None


def build_model(cfg: TrainConfig) -> nn.Module:
    """``get_model(cfg.model.name, **cfg.model.cfg)`` with config-level error messages.

    Raises:
        ConfigError: empty model name or an option the builder does not accept.
        ModelNotFoundError: unknown model (lists the registered ones).
    """
    import inspect

    from engine.models import get_model, model_info

    if not cfg.model.name:
        raise ConfigError("model.name is empty; run `breast-engine models` for the registered names")
    opts = dict(cfg.model.cfg)
    builder = model_info(cfg.model.name).builder
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}  # type: ignore[assignment]
    if "in_chans" in params and "in_chans" not in opts:
        opts["in_chans"] = cfg.channels  # follow the data unless the config says otherwise
    try:
        model = get_model(cfg.model.name, **opts)
    except TypeError as exc:
        raise ConfigError(f"model {cfg.model.name!r} rejected its options {opts}: {exc}") from None
    want = getattr(model, "in_chans", None)
    if isinstance(want, int) and want != cfg.channels:
        raise ConfigError(
            f"model {cfg.model.name!r} takes {want}-channel input but the data gives {cfg.channels}; "
            f"set data.grayscale = {str(want == 1).lower()} or model.cfg.in_chans = {cfg.channels}")
    min_size = getattr(model, "min_input_size", 0)
    if isinstance(min_size, int) and min(cfg.data.image_size) < min_size:
        raise ConfigError(f"model {cfg.model.name!r} needs images of at least {min_size} px; "
                          f"data.image_size is {cfg.data.image_size}")
    return model


# ---------------------------------------------------------------------- results
@dataclass
class BestCheckpoint:
    """Best epoch for one selection metric."""

    metric: str
    epoch: int
    value: float
    path: str | None = None
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: One dict per epoch (epoch, lr, train_loss, val_* metrics, time_s).
        best: Selection metric -> :class:`BestCheckpoint` (empty without validation data).
        final_state: State dict after the last epoch (CPU tensors).
        run_dir: The run folder, or None.
        device: Device used.
        wall_s: Seconds spent in fit.
    """

    history: list[dict[str, float]]
    best: dict[str, BestCheckpoint]
    final_state: dict[str, torch.Tensor]
    run_dir: Path | None
    device: str
    wall_s: float

    def state_for(self, metric: str | None = None) -> dict[str, torch.Tensor]:
        """Weights selected by ``metric`` (falls back to the final weights)."""
        if metric and metric in self.best:
            b = self.best[metric]
            if b.state is not None:
                return b.state
            if b.path is not None:
                ck = torch.load(b.path, map_location="cpu", weights_only=True)
                return ck["model"]  # type: ignore[no-any-return]
        return self.final_state


def _better(metric: str, new: float, old: float | None) -> bool:
    if new is None or (isinstance(new, float) and math.isnan(new)):
        return False
    if old is None:
        return True
    return new < old if metric == "loss" else new > old


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in _unwrap(model).state_dict().items()}


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    st: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                          "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), st["python_gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a run checkpoint (``weights_only=True``: tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


class _FileLog:
    def __init__(self, run_dir: Path | None) -> None:
        self.handler: logging.Handler | None = None
        if run_dir is not None:
            self.handler = logging.FileHandler(run_dir / "train.log")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(self.handler)
            log.setLevel(logging.INFO)

    def close(self) -> None:
        if self.handler is not None:
            log.removeHandler(self.handler)
            self.handler.close()


def _write_metrics_csv(path: Path, history: Sequence[dict[str, float]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow(row)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- fit
def make_train_loader(
    train_ds: Dataset, cfg: TrainConfig, device: torch.device  # type: ignore[type-arg]
) -> tuple[DataLoader, Any, torch.Generator]:  # type: ignore[type-arg]
    """The training DataLoader of :func:`fit` (and of ``bench train``).

    One process: :class:`EpochSampler`; under torch.distributed: DistributedSampler with
    the same ``(seed, epoch)`` permutation and ``batch_size / world`` per process.

    Returns:
        ``(loader, sampler, generator)``; call ``sampler.set_epoch(e)`` and re-seed the
        generator (worker seeds) every epoch.
    """
    import torch.distributed as dist

    rc = cfg.train
    if dist.is_available() and dist.is_initialized():
        from torch.utils.data.distributed import DistributedSampler

        world = dist.get_world_size()
        sampler: Any = DistributedSampler(train_ds, num_replicas=world, rank=dist.get_rank(), shuffle=True,
                                          seed=rc.seed, drop_last=False)
    else:
        world = 1
        sampler = EpochSampler(len(train_ds), seed=rc.seed)  # type: ignore[arg-type]
    gen = torch.Generator()
    per_rank = rc.batch_size // world
    n_rank = len(sampler)
    # A last batch of one sample breaks batch-norm training ("expected more than 1 value
    # per channel"): drop it in that case only.
    drop_last = n_rank > 1 and per_rank > 1 and n_rank % per_rank == 1
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler,
                        num_workers=rc.num_workers, worker_init_fn=_worker_init,
                        generator=gen, pin_memory=device.type == "cuda", drop_last=drop_last)
    return loader, sampler, gen


def fit(
    model: nn.Module,
    train_ds: Dataset,  # type: ignore[type-arg]
    val_ds: Dataset | None = None,  # type: ignore[type-arg]
    *,
    cfg: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    keep_best_in_memory: bool | None = None,
) -> FitResult:
    """Train ``model`` on ``train_ds``, selecting checkpoints on ``val_ds``.

    Runs under ``torch.distributed`` when a process group is initialised
    (:mod:`engine.train.distributed`): the model is wrapped in DistributedDataParallel,
    each process takes ``batch_size / world_size`` samples of every global batch, and
    only rank 0 writes files.

    Args:
        model: Any ``nn.Module`` (hooks: see the module docstring). Trained in place.
        train_ds: Dataset of ``(x, y)`` (``set_epoch(epoch)`` is called when present).
        val_ds: Validation dataset (optional); drives ``cfg.train.select``.
        cfg: Resolved configuration (optimiser, schedule, epochs, batch, seed, device...).
        progress: ``(done_steps, total_steps, message)`` callback.
        cancel: Cancellation token (raises :class:`engine.errors.Cancelled`; the last
            completed epoch's checkpoint stays on disk).
        run_dir: Folder for config, checkpoints, metrics.csv, train.log (None = no files).
        resume: Continue from ``run_dir/last.pt`` exactly where it stopped.
        keep_best_in_memory: Keep the best states in memory (default: when no run_dir).

    Returns:
        :class:`FitResult`.
    """
    import torch.distributed as dist

    t0 = time.perf_counter()
    rc = cfg.train
    distributed = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if distributed else 1
    rank = dist.get_rank() if distributed else 0
    if rc.batch_size % world:
        raise ConfigError(f"train.batch_size {rc.batch_size} must be divisible by the {world} processes")
    per_rank_batch = rc.batch_size // world
    if len(train_ds) == 0:  # type: ignore[arg-type]
        raise ConfigError("the training set is empty")

    if distributed and torch.cuda.is_available() and rc.device in ("auto", "cuda"):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = resolve_device(rc.device)
    prev_threads = torch.get_num_threads()
    if rc.threads > 0:
        torch.set_num_threads(rc.threads)
    keep_mem = (run_dir is None) if keep_best_in_memory is None else keep_best_in_memory
    rdir = Path(run_dir) if run_dir is not None else None
    writer = rank == 0 and rdir is not None
    if writer:
        assert rdir is not None
        rdir.mkdir(parents=True, exist_ok=True)
        cfg.save(rdir)
    flog = _FileLog(rdir if writer else None)

    seed_everything(rc.seed)
    try:
        with deterministic(rc.deterministic), fork_safe_opencv(rc.num_workers > 0):
            report(progress, 0, 0, "decoding images")
            for ds in (train_ds, val_ds):
                if ds is not None and hasattr(ds, "warm"):
                    ds.warm(None, cancel)  # decode once before workers fork
            model.to(device)
            net: nn.Module = model
            grad_sync = None
            if distributed:
                ddp_kw: dict[str, Any] = {"device_ids": [device.index]} if device.type == "cuda" else {}
                net = nn.parallel.DistributedDataParallel(model, **ddp_kw)
                if callable(getattr(model, "training_step", None)):
                    # A custom step bypasses DDP.forward (no reducer): average grads by hand.
                    net = model
                    grad_sync = _allreduce_grads
            optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
            scheduler = build_scheduler(optimizer, cfg)
            amp = AmpState.for_device(device, rc.amp)

            loader, sampler, gen = make_train_loader(train_ds, cfg, device)
            val_loader = None
            if val_ds is not None and len(val_ds) > 0:  # type: ignore[arg-type]
                val_loader = DataLoader(val_ds, batch_size=max(1, per_rank_batch * 2), shuffle=False,
                                        num_workers=rc.num_workers, worker_init_fn=_worker_init)

            history: list[dict[str, float]] = []
            best: dict[str, BestCheckpoint] = {}
            start = 0
            if resume:
                if rdir is None or not (rdir / "last.pt").is_file():
                    raise ConfigError(f"cannot resume: {rdir}/last.pt does not exist")
                ck = load_checkpoint(rdir / "last.pt")
                model.load_state_dict(ck["model"])
                optimizer.load_state_dict(ck["optimizer"])
                if scheduler is not None and ck.get("scheduler") is not None:
                    scheduler.load_state_dict(ck["scheduler"])
                if amp.scaler is not None and ck.get("scaler") is not None:
                    amp.scaler.load_state_dict(ck["scaler"])
                history = list(ck.get("history", []))
                for m, b in ck.get("best", {}).items():
                    best[m] = BestCheckpoint(m, int(b["epoch"]), float(b["value"]), b.get("path"))
                _set_rng_state(ck["rng"])
                start = int(ck["epoch"]) + 1
                log.info("resumed %s at epoch %d", rdir, start + 1)

            steps_per_epoch = len(loader)
            total_steps = steps_per_epoch * rc.epochs
            step_fn = make_step_fn(net)
            log.info("fit: model=%s device=%s world=%d train=%d val=%d epochs=%d batch=%d",
                     type(model).__name__, device, world, len(train_ds),  # type: ignore[arg-type]
                     len(val_ds) if val_ds is not None else 0, rc.epochs, rc.batch_size)  # type: ignore[arg-type]
            for epoch in range(start, rc.epochs):
                check(cancel)
                te = time.perf_counter()
                sampler.set_epoch(epoch)
                gen.manual_seed(rc.seed * 100003 + epoch)
                if hasattr(train_ds, "set_epoch"):
                    train_ds.set_epoch(epoch)
                lr = float(optimizer.param_groups[0]["lr"])
                train_loss = train_one_epoch(
                    net, loader, optimizer, device=device, amp=amp, step_fn=step_fn,
                    progress=progress, cancel=cancel, epoch=epoch, epochs=rc.epochs,
                    step_offset=epoch * steps_per_epoch, total_steps=total_steps,
                    log_every=max(1, rc.log_every), grad_sync=grad_sync)
                if distributed:
                    t = torch.tensor([train_loss], device=device)
                    dist.all_reduce(t)
                    train_loss = float(t.item() / world)
                if scheduler is not None:
                    scheduler.step()
                row: dict[str, float] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
                if val_loader is not None:
                    vm = evaluate(net if not distributed else model, val_loader, device=device, amp=amp,
                                  cancel=cancel)
                    row.update({f"val_{k}": v for k, v in vm.items()})
                    for m in rc.select:
                        v = vm.get(m)
                        if v is not None and _better(m, v, best[m].value if m in best else None):
                            state = _cpu_state(model)
                            path = None
                            if writer:
                                assert rdir is not None
                                path = str(rdir / f"best_{m}.pt")
                                _atomic_save({"model": state, "epoch": epoch, "metric": m, "value": v,
                                              "config": cfg.to_dict()}, Path(path))
                            best[m] = BestCheckpoint(m, epoch, float(v), path, state if keep_mem else None)
                row["time_s"] = round(time.perf_counter() - te, 3)
                history.append(row)
                msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                log.info(msg)
                report(progress, (epoch + 1) * steps_per_epoch, total_steps,
                       f"epoch {epoch + 1}/{rc.epochs} loss {train_loss:.4f}"
                       + (f" val_auc {row.get('val_auc', float('nan')):.3f}" if val_loader is not None else ""))
                if writer:
                    assert rdir is not None
                    _write_metrics_csv(rdir / "metrics.csv", history)
                    _atomic_save({
                        "model": _unwrap(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "scaler": amp.scaler.state_dict() if amp.scaler is not None else None,
                        "epoch": epoch,
                        "config": cfg.to_dict(),
                        "history": history,
                        "best": {m: {"epoch": b.epoch, "value": b.value, "path": b.path}
                                 for m, b in best.items()},
                        "rng": _rng_state(),
                    }, rdir / "last.pt")
            final = _cpu_state(model)
            if writer:
                assert rdir is not None
                torch.save(final, rdir / "final_weights.pt")
    finally:
        flog.close()
        torch.set_num_threads(prev_threads)
    return FitResult(history, best, final, rdir, str(device), time.perf_counter() - t0)


def _allreduce_grads(model: nn.Module) -> None:
    import torch.distributed as dist

    world = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy (fresh training per fold from the same initial weights)."""
    return copy.deepcopy(model)
