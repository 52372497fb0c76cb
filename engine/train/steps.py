"""One step, one epoch, scoring: the default forward/loss/activation, model hooks
(``training_step`` / ``loss_fn`` / ``predict_step``), :func:`train_one_epoch`, :func:`evaluate`, :func:`predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.runtime import EpochSampler, fork_safe_opencv, resolve_device

StepFn = Callable[[nn.Module, Any], torch.Tensor]


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
        return lambda m, batch: custom(batch)
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
