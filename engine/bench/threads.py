"""`breast-engine bench threads --json`: the CPU thread policy, side by side, idle and under load.

On a shared machine the default of two OpenMP intra-op threads whose idle threads spin-wait
collapses when other processes want the same cores (issue 17 measured 4-77x slower). Each
policy runs in its own process (``OMP_WAIT_POLICY`` is read once, when libgomp loads with
torch), scoring the same SYNTHETIC US image with score + Grad-CAM through the default US model
(:meth:`engine.inference.Predictor.analyse`, as ``bench score``), first on the machine as it
is, then with ``--hogs`` busy-looping processes (default: one per core) competing for the CPUs.
Policies are interleaved round by round so that a change in background load hits all of them.

The policy the GUI and CLI apply (:mod:`engine.threads`) is chosen from this benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

NAME = "threads"
HELP = "CPU thread policy (OpenMP wait policy, intra-op threads) side by side, idle and under a CPU hog"

# "default": torch's own choice (one thread per core, libgomp's spin-then-sleep wait).
POLICIES: dict[str, dict[str, Any]] = {
    "default_2_threads": {"env": {}, "threads": 2},
    "2_threads_passive_wait": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}, "threads": 2},
    "1_thread": {"env": {}, "threads": 1},
}

_CHILD = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads({threads})
from engine.bench.threads import bench_image
from engine.inference import load_predictor
pred = load_predictor({modality!r})
method = pred.saliency_methods()[0]
img, box = bench_image({modality!r})
pred.analyse(img, method, box)
times = []
for _ in range({repeats}):
    t0 = time.perf_counter()
    pred.analyse(img, method, box)
    times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps({{"times": times, "weights": pred.name, "threads": torch.get_num_threads()}}))
"""


def bench_image(modality: str) -> tuple[Any, tuple[float, float, float, float] | None]:
    """The SYNTHETIC image (and MG lesion box) these timings score: US 480x640, MG 2048x1664."""
    import numpy as np

    from engine.io.types import ImageMeta, LoadedImage

    if modality == "MG":
        from engine.data.synthetic import synthetic_mammogram

        d = synthetic_mammogram(0, rows=2048, cols=1664)
        return LoadedImage(d["image"], ImageMeta(path="synthetic-mg", modality="MG", bits_stored=12)), d["box"]
    rng = np.random.default_rng(0)
    px = (rng.random((480, 640)) * 120).astype(np.uint8)
    px[200:280, 300:380] = 30
    return LoadedImage(px, ImageMeta(path="synthetic-us", modality="US")), None

_HOG = "import time\nend = time.time() + {limit}\nx = 0\nwhile time.time() < end:\n    x += 1\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per policy and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per load state")
    parser.add_argument("--hogs", type=int, default=0, help="busy-loop processes for the loaded run (0 = one per core)")
    parser.add_argument("--modality", default="US")
    parser.add_argument("--policies", default=",".join(POLICIES))


def _run_child(policy: str, modality: str, repeats: int, timeout_s: float) -> dict[str, Any]:
    spec = POLICIES[policy]
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        env.pop(k, None)
    env.update(spec["env"])
    code = _CHILD.format(threads=spec["threads"], modality=modality, repeats=repeats)
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    return dict(json.loads(line[len("RESULT "):]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds per case for each policy, idle and under load, and the ratios."""
    repeats = int(getattr(args, "repeats", 5))
    rounds = int(getattr(args, "rounds", 2))
    modality = str(getattr(args, "modality", "US")).upper()
    policies = [p.strip() for p in str(getattr(args, "policies", ",".join(POLICIES))).split(",") if p.strip()]
    n_hogs = int(getattr(args, "hogs", 0)) or (os.cpu_count() or 2)
    out: dict[str, Any] = {"modality": modality, "repeats": repeats, "rounds": rounds, "hogs": n_hogs,
                           "cpu_count": os.cpu_count(), "what": "score + saliency (Predictor.analyse) of "
                           "bench_image's SYNTHETIC 480x640 US image per policy, each in its own process", "states": {}}
    for state in ("as_is", "under_cpu_hog"):
        hogs: list[subprocess.Popen[bytes]] = []
        load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        if state == "under_cpu_hog":
            hogs = [subprocess.Popen([sys.executable, "-c", _HOG.format(limit=3600)]) for _ in range(n_hogs)]
            time.sleep(1.0)
        times: dict[str, list[float]] = {p: [] for p in policies}
        errors: dict[str, str] = {}
        try:
            for _ in range(rounds):
                for pol in policies:
                    r = _run_child(pol, modality, repeats, timeout_s=600)
                    if "error" in r:
                        errors[pol] = str(r["error"])
                    else:
                        times[pol].extend(float(t) for t in r["times"])
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        res: dict[str, Any] = {"load_avg_1min_before": round(load0, 2) if load0 is not None else None}
        for pol in policies:
            ts = times[pol]
            res[pol] = ({"median_s": round(statistics.median(ts), 4), "max_s": round(max(ts), 4), "n": len(ts)}
                        if ts else {"error": errors.get(pol, "no result")})
        out["states"][state] = res
    base = "default_2_threads"
    ratios: dict[str, Any] = {}
    for state, res in out["states"].items():
        b = res.get(base, {}).get("median_s")
        ratios[state] = {p: round(b / res[p]["median_s"], 2) for p in policies
                         if b and "median_s" in res.get(p, {})}
    out["speedup_vs_default"] = ratios
    from engine.threads import POLICY

    out["applied_policy"] = POLICY
    return out
