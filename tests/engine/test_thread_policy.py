"""engine.threads: the intra-op limit counts the cores this process may use, not the host's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine import threads


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_limit_counts_the_granted_cores_not_the_hosts() -> None:
    """A process pinned to one core (as a container granted fewer cores than the host has) keeps
    one intra-op thread; ``os.cpu_count()`` there still reports every core of the machine."""
    code = (
        "import os, torch\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "torch.set_num_threads(8)\n"
        "from engine import threads\n"
        "print(threads.usable_cores(), threads.limit_intra_op(reserve=0), os.cpu_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    usable, limited, host = (int(x) for x in out.stdout.split())
    assert (usable, limited) == (1, 1)
    assert host == os.cpu_count()


def test_usable_cores_is_this_process_affinity() -> None:
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    assert threads.usable_cores() == want >= 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_memory_policy_is_applied_where_glibc_is() -> None:
    code = "from engine import threads; print(threads.keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
