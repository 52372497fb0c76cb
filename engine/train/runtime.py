"""Determinism and devices for the trainer: seeding, DataLoader worker init, OpenCV threads, the
epoch sampler (the permutation :class:`torch.utils.data.DistributedSampler` draws).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from engine.errors import ConfigError


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
