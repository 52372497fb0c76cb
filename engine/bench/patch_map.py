"""`breast-engine bench patch-map --json`: An 2019 stride-64 local map, per-patch loop vs dense.

A SYNTHETIC 2048 x 2048 mammogram crop (An's base crop size) is brought to the x0.5
magnification at which the aggregated local results are computed (An 2019, Fig. 1) and the
tissue classifier (:class:`engine.models.an.AnPatchClassifier`, fixed seed) is evaluated on every
256 px window at stride 64 twice, side by side in this run:

* ``baseline_s``: :func:`engine.models.an.local_map_loop`, one forward pass per window;
* ``ours_s``: :func:`engine.models.an.local_map_dense`, one fully convolutional pass
  (channels-last memory format).

``--strong-baseline`` also times the per-patch loop with a channels-last model, so the share
of the gain that comes from the memory format alone is visible.

Prints ``{"baseline_s", "ours_s", "speedup", "max_abs_diff", ...}``. Targets: speedup >= 20,
max_abs_diff <= 1e-4 (issue 3). ``--scale 1`` evaluates the full-resolution 2048 image.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

NAME = "patch-map"
HELP = "An 2019 stride-64 patch map: per-patch loop vs fully convolutional (2048x2048 image)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--size", type=int, default=2048, help="side of the mammogram crop (px)")
    parser.add_argument("--scale", type=float, default=0.5, help="magnification of the map (An: x0.5)")
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave default)")
    parser.add_argument("--strong-baseline", action="store_true",
                        help="also time the per-patch loop with a channels-last model (reported separately)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both ways on the same image and compare the maps."""
    from engine.data.synthetic import synthetic_mammogram
    from engine.models import get_model
    from engine.models.an import local_map_dense, local_map_loop, rescale

    size = int(getattr(args, "size", 2048))
    scale = float(getattr(args, "scale", 0.5))
    stride = int(getattr(args, "stride", 64))
    dev_arg = getattr(args, "device", "auto")
    if getattr(args, "threads", 0):
        torch.set_num_threads(int(args.threads))
    device = torch.device("cuda" if dev_arg == "cuda" or (dev_arg == "auto" and torch.cuda.is_available()) else "cpu")
    mg = synthetic_mammogram(0, rows=size, cols=size)["image"].astype(np.float32) / 4095.0
    img = rescale(mg, scale) if scale != 1.0 else mg
    torch.manual_seed(0)
    model: Any = get_model("an_patch_classifier").to(device).eval()
    t_img = torch.from_numpy(img)
    local_map_dense(model, t_img[:512, :512], stride=stride)  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    ours = local_map_dense(model, t_img, stride=stride)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = _loop(model, t_img, stride, device)
    baseline_s = time.perf_counter() - t0
    extra: dict[str, Any] = {}
    if getattr(args, "strong_baseline", False):
        t0 = time.perf_counter()
        strong = local_map_loop(model, t_img, stride=stride, channels_last=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        s = time.perf_counter() - t0
        extra = {"baseline_channels_last_s": round(s, 4), "speedup_vs_channels_last_loop": round(s / ours_s, 2),
                 "max_abs_diff_channels_last_loop": float(np.abs(ours - strong).max())}
    return {
        "baseline_s": round(baseline_s, 4),
        "ours_s": round(ours_s, 4),
        "speedup": round(baseline_s / ours_s, 2),
        "max_abs_diff": float(np.abs(ours - base).max()),
        "map_shape": list(ours.shape),
        "patches": int(ours.size),
        "image": f"{size}x{size} synthetic mammogram at x{scale} -> {img.shape[0]}x{img.shape[1]}",
        "device": str(device) + ("" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"),
        "targets": {"speedup": 20, "max_abs_diff": 1e-4},
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        **extra,
    }


def _loop(model: Any, img: torch.Tensor, stride: int, device: torch.device) -> np.ndarray:
    """The per-patch reference (each window sent to the model's device on its own)."""
    from engine.models.an import local_map_loop

    out = local_map_loop(model, img, stride=stride)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out
