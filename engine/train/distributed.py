"""torchrun-compatible DistributedDataParallel training (PyTorch's own engine, nothing home-made).

Launch any training command under ``torchrun``; the environment it sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) is read with the
``env://`` init method::

    torchrun --nproc_per_node=4 -m engine.cli.main train --config configs/busi_hijab.toml

:func:`engine.train.loop.fit` notices the initialised process group and wraps the model
in :class:`torch.nn.parallel.DistributedDataParallel` with a
:class:`torch.utils.data.DistributedSampler`; ``train.batch_size`` is the *global* batch,
split evenly over the processes, so N processes reproduce one process's training with
the same effective batch (tested on 2 CPU processes with gloo). NCCL is used on GPUs,
gloo on CPU.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0


def default_backend() -> str:
    """``nccl`` when CUDA (and NCCL) are available, else ``gloo``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def info() -> DistInfo:
    """The current process's rank/world (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init_from_env(backend: str | None = None) -> DistInfo:
    """Initialise the default process group from torchrun's environment (``env://``).

    Does nothing (rank 0 of 1) when ``WORLD_SIZE`` is unset or 1, or when a group is
    already initialised.

    Args:
        backend: ``nccl``/``gloo``; default :func:`default_backend`.

    Returns:
        The process's :class:`DistInfo`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return info()
    if not dist.is_initialized():
        be = backend or default_backend()
        if be == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=be, init_method="env://")
    return info()


def cleanup() -> None:
    """Destroy the process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    """A free TCP port on localhost (for local multi-process runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn_entry(local_rank: int, fn: Callable[..., Any], world_size: int, port: int,
                 backend: str, args: tuple[Any, ...]) -> None:
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank),
                       "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    init_from_env(backend)
    try:
        fn(local_rank, world_size, *args)
    finally:
        cleanup()


def spawn_local(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo",
                start_method: str = "spawn") -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` local processes, torchrun-style.

    Each process gets torchrun's environment variables and an ``env://`` process group,
    so ``fn`` sees exactly what it would under ``torchrun --nproc_per_node=world_size``.
    With ``start_method="spawn"`` (the default, always safe) ``fn`` must be importable at
    module level; ``"fork"`` starts faster on Linux (CPU tests) but is only safe when the
    children do not use OpenCV's thread pool (see :func:`engine.train.loop.fork_safe_opencv`).
    """
    import torch.multiprocessing as mp

    mp.start_processes(_spawn_entry, args=(fn, world_size, free_port(), backend, args),
                       nprocs=world_size, join=True, start_method=start_method)
