"""Fit results, checkpoints (``{model, optimizer, scheduler, epoch, config}`` + RNG states), run-folder logs.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from engine.train.steps import _unwrap

log = logging.getLogger("engine.train")


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
