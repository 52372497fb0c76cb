"""`breast-engine bench score --json`: one case (score + saliency) per modality, default models.

For each of US, MG (with a lesion box) and MR (a slice stack) a SYNTHETIC image is scored and
its saliency map computed with :meth:`engine.inference.Predictor.analyse` (one network pass when
the method allows). The installed default weights are used; when a modality has none yet, the
architecture the defaults use is built with random initialisation in a temporary folder and the
result is labelled ``"random-init (no shipped weights)"`` (timing only, the score is meaningless).
Median of ``--repeats`` runs after one warm-up. Target: <= 0.5 s per case on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

NAME = "score"
HELP = "one case (score + saliency) with the default models, per modality"
TARGET_S = 0.5

# What a modality's default is built from when nothing is installed yet.
_FALLBACK = {
    "US": ("efficientnet_lite0", {"pretrained": False}, [224, 224], 3, "gradcam"),
    "MG": ("efficientnet_lite0", {"pretrained": False}, [224, 224], 3, "gradcam"),
    "MR": ("mri_attention_resnet50", {"pretrained": False}, [240, 345], 1, "attention"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modalities", default="US,MG,MR")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave default)")


def _image(modality: str) -> tuple[Any, tuple[float, float, float, float] | None]:
    from engine.io.types import ImageMeta, LoadedImage

    rng = np.random.default_rng(0)
    if modality == "US":
        px = (rng.random((480, 640)) * 120).astype(np.uint8)
        px[200:280, 300:380] = 30
        return LoadedImage(px, ImageMeta(path="synthetic-us", modality="US")), None
    if modality == "MG":
        from engine.data.synthetic import synthetic_mammogram

        d = synthetic_mammogram(0, rows=2048, cols=1664)
        meta = ImageMeta(path="synthetic-mg", modality="MG", bits_stored=12)
        return LoadedImage(d["image"], meta), d["box"]
    px = (rng.random((48, 256, 256)) * 1000).astype(np.uint16)
    return LoadedImage(px, ImageMeta(path="synthetic-mr", modality="MR", bits_stored=12)), None


def _predictor(modality: str, tmp: Path, device: torch.device) -> tuple[Any, str, str]:
    from engine.inference import Predictor
    from engine.models import get_model
    from engine.models.registry import model_info
    from engine.models.weights import WeightsSpec, default_weights, save_weights

    name = default_weights(modality)
    if name is not None:
        p = Predictor(name, device)
        return p, f"default weights {name}", model_info(p.spec.model).saliency[0]
    arch, cfg, size, chans, method = _FALLBACK[modality]
    torch.manual_seed(0)
    model = get_model(arch, **cfg)
    mean = [0.5] * chans
    spec = WeightsSpec(name=f"random_{modality.lower()}", model=arch, model_cfg=cfg, modality=modality,
                       input_size=size, in_chans=chans, mean=mean, std=[0.5] * chans, init="random")
    save_weights(model, spec, tmp / spec.name)
    return Predictor(tmp / spec.name, device), f"random-init {arch} (no shipped weights)", method


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time score + saliency per modality."""
    dev_arg = getattr(args, "device", "auto")
    device = torch.device("cuda" if dev_arg == "cuda" or (dev_arg == "auto" and torch.cuda.is_available()) else "cpu")
    repeats = int(getattr(args, "repeats", 5))
    if getattr(args, "threads", 0):
        torch.set_num_threads(int(args.threads))
    mods = [m.strip().upper() for m in str(getattr(args, "modalities", "US,MG,MR")).split(",") if m.strip()]
    out: dict[str, Any] = {"target_s": TARGET_S, "device": str(device),
                           "threads": torch.get_num_threads(), "cases": {}}
    with tempfile.TemporaryDirectory() as td:
        for mod in mods:
            pred, label, method = _predictor(mod, Path(td), device)
            img, box = _image(mod)
            pred.analyse(img, method, box)  # warm-up
            times = []
            for _ in range(repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                score, sal = pred.analyse(img, method, box)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            out["cases"][mod] = {"seconds": round(statistics.median(times), 4), "weights": label,
                                 "saliency": f"{sal.method}@{sal.layer}", "score": round(score, 4),
                                 "map_shape": list(sal.map.shape), "box": box is not None}
    worst = max(c["seconds"] for c in out["cases"].values()) if out["cases"] else 0.0
    out["max_case_s"] = worst
    out["meets_target"] = bool(worst <= TARGET_S)
    # Other jobs on a shared machine inflate CPU timings: say how loaded it was.
    out["load_avg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    out["cpu_count"] = os.cpu_count()
    return out
