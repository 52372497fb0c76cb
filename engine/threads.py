"""The CPU thread policy of the GUI and the CLI, applied before torch is imported, and the
memory policy of the engine's scoring processes (:func:`keep_freed_memory`).

Measured with ``breast-engine bench threads`` (benchmarks/results/threads.json, docs/benchmarks.md):
with the default two OpenMP intra-op threads, an idle OpenMP thread spin-waits for work; when
other processes want the same cores the spinning thread and the one doing the work take turns
on a core and a forward pass gets many times slower. A passive wait policy (idle OpenMP threads
sleep) removes the spinning; it is set here as an environment default (a user's own
``OMP_WAIT_POLICY`` wins) and must be in place before libgomp loads with torch.
"""

from __future__ import annotations

import os
import sys

#: What :func:`apply` sets (as defaults: variables already in the environment are kept).
POLICY: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply() -> bool:
    """Set :data:`POLICY` in ``os.environ`` (keeping the user's values).

    Returns:
        False when torch is already imported (too late for OpenMP to read it), else True.
    """
    for k, v in POLICY.items():
        os.environ.setdefault(k, v)
    return "torch" not in sys.modules


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one (a container or
    ``taskset`` limit), else ``os.cpu_count()``. A CI container granted 2 cores of a 64-core
    host reports 64 in ``os.cpu_count()``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def limit_intra_op(reserve: int = 1) -> int:
    """Interactive use: torch's intra-op threads = cores - ``reserve`` (at least 1), so that a
    forward pass in a worker leaves a core to the GUI thread. Imports torch; call it off the
    GUI thread (the workstation's model warm-up does).

    Returns:
        The number of intra-op threads now in use.
    """
    import torch

    n = max(1, usable_cores() - max(0, reserve))
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)
    return int(torch.get_num_threads())


#: glibc malloc settings of the engine's scoring processes (the model process, ``breast-engine``):
#: freed blocks up to MMAP_THRESHOLD come from the heap and up to TRIM_THRESHOLD of free heap top
#: stays mapped, so a request reuses the previous one's memory. With glibc's defaults the model
#: process gave each MG request's full-size arrays back to the kernel and faulted them in again:
#: ~10 000 page faults and 25-40 ms of system time per 2048x1664 mammogram (none in a process
#: whose history had raised glibc's dynamic thresholds), about half its extra cost over
#: ``bench score``. The cost: up to TRIM_THRESHOLD of freed memory stays with the process.
MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Apply :data:`MMAP_THRESHOLD` / :data:`TRIM_THRESHOLD` with ``mallopt`` (glibc only).

    Returns:
        True when both were set; False where there is no glibc ``mallopt``.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
