"""Training loop: ``fit`` (and, re-exported from :mod:`.steps` / :mod:`.runtime` / :mod:`.checkpoints`,
``train_one_epoch``, ``evaluate``, ``predict``, seeding, checkpoints).

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
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from engine.errors import ConfigError
from engine.progress import CancelToken, ProgressCallback, check, report
from engine.train.config import TrainConfig
from engine.train.checkpoints import (
    BestCheckpoint,
    FitResult,
    _atomic_save,
    _better,
    _cpu_state,
    _FileLog,
    _rng_state,
    _set_rng_state,
    _write_metrics_csv,
    load_checkpoint,
)
from engine.train.runtime import (
    EpochSampler,
    _worker_init,
    deterministic,
    fork_safe_opencv,
    resolve_device,
    seed_everything,
)
from engine.train.steps import (
    AmpState,
    StepFn,
    _activate,
    _forward,
    _score_batch,
    _unwrap,
    default_loss,
    evaluate,
    logits_to_scores,
    make_step_fn,
    predict,
    predict_batches,
    score_metrics,
    to_device,
    train_one_epoch,
)

log = logging.getLogger("engine.train")


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


def build_model(cfg: TrainConfig, *, channels: int | None = None,
                image_size: Sequence[int] | None = None) -> nn.Module:
    """``get_model(cfg.model.name, **cfg.model.cfg)`` with config-level error messages (the one
    model builder of every trainer, recipe and protocol).

    Args:
        cfg: The config.
        channels: Input channels the model is fed (default: the ``[data]`` channels; a recipe
            passes its ``[ship] preprocess`` ones).
        image_size: Input ``(h, w)`` (default ``data.image_size``).

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
    chans = cfg.channels if channels is None else int(channels)
    size = list(cfg.data.image_size if image_size is None else image_size)
    if "in_chans" in params and "in_chans" not in opts:
        opts["in_chans"] = chans  # follow the data unless the config says otherwise
    try:
        model = get_model(cfg.model.name, **opts)
    except TypeError as exc:
        raise ConfigError(f"model {cfg.model.name!r} rejected its options {opts}: {exc}") from None
    want = getattr(model, "in_chans", None)
    if isinstance(want, int) and want != chans:
        raise ConfigError(
            f"model {cfg.model.name!r} takes {want}-channel input but the data gives {chans}; "
            f"set data.grayscale = {str(want == 1).lower()} or model.cfg.in_chans = {chans}")
    min_size = getattr(model, "min_input_size", 0)
    if isinstance(min_size, int) and min(size) < min_size:
        raise ConfigError(f"model {cfg.model.name!r} needs images of at least {min_size} px; "
                          f"the input size is {size}")
    return model


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


__all__ = [
    "AmpState",
    "BestCheckpoint",
    "EpochSampler",
    "FitResult",
    "StepFn",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "clone_model",
    "default_loss",
    "deterministic",
    "evaluate",
    "fit",
    "fork_safe_opencv",
    "load_checkpoint",
    "logits_to_scores",
    "make_step_fn",
    "make_train_loader",
    "predict",
    "predict_batches",
    "resolve_device",
    "score_metrics",
    "seed_everything",
    "to_device",
    "train_one_epoch",
]
