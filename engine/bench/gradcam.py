"""`breast-engine bench gradcam --json`: Grad-CAM cost of a five-crop model, library vs batched.

The US default scores Qi 2019's five crops of an image. pytorch-grad-cam, as the predictor used
it before issue 11, runs one crop at a time at batch 1, accumulates weight gradients and
backpropagates to the input, after a separate scoring pass. The batched implementation
(:class:`engine.saliency.gradcam.GradCAMSaliency.compute_maps`) runs the five crops as one batch,
takes only the gradient at the target layer (parameters detached) and returns the logits of the
same pass, which are the score. Both are timed side by side in this run on the same image: a
real BUSI ultrasound (``../shared/data/busi-dev``) when present, else a SYNTHETIC one, with the
installed US default. The maps are compared after the library's own post-processing
(:func:`library_postprocess`): the largest absolute difference, and the correlation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import torch

NAME = "gradcam"
HELP = "Grad-CAM of a five-crop model: pytorch-grad-cam per crop vs the batched pass (same run)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = leave default)")


def _library_maps(model: Any, crops: torch.Tensor, layer: str) -> tuple[np.ndarray, float]:
    """The previous path: a scoring pass, then pytorch-grad-cam on each crop at batch 1."""
    from engine import _torchvision_shim

    _torchvision_shim.ensure()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        score = float(model.malignancy(model(crops)).mean())
    maps = []
    for c in crops:
        cam = GradCAM(model=model, target_layers=[model.get_submodule(layer)])
        try:
            maps.append(cam(input_tensor=c[None].clone().requires_grad_(True), targets=[ClassifierOutputTarget(1)])[0])
        finally:
            cam.activations_and_grads.release()
            model.zero_grad(set_to_none=True)
    return np.stack(maps), score


def library_postprocess(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's steps after the per-layer map, applied to our min-max scaled maps.

    ``scale_cam_image`` resizes each map with ``cv2.resize`` (bilinear) to the input size, then
    ``aggregate_multi_layers`` clips at 0 and min-max scales again (1e-7 guard).

    Args:
        raw: ``(B, h, w)`` maps at the target layer's resolution, each min-max scaled.
        size: ``(rows, cols)`` of the network input.

    Returns:
        ``(B, rows, cols)`` float32, comparable element-wise with the library's output.
    """
    import cv2

    out = []
    for m in raw:
        r = np.maximum(cv2.resize(np.asarray(m, np.float32), (size[1], size[0])), 0)
        r = r - np.min(r)
        out.append(r / (1e-7 + np.max(r)))
    return np.stack(out).astype(np.float32)


def bench_image() -> tuple[np.ndarray, str]:
    """A real BUSI ultrasound (grey) when the dev data is present, else a SYNTHETIC one."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "busi-dev" / "images"
    files = sorted(root.glob("malignant_*.png")) if root.is_dir() else []
    if files:
        import cv2

        img = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
        if img is not None:
            return img, f"BUSI {files[0].name} (real)"
    rng = np.random.default_rng(0)
    px = (rng.random((480, 640)) * 120).astype(np.uint8)
    px[200:280, 300:380] = 30
    return px, "SYNTHETIC 480x640 ultrasound-like"


WHOLE_IMAGE_US = "us_effnet_lite0_busi"


def _installed(name: str) -> bool:
    from engine.errors import BreastReaderError
    from engine.models.weights import resolve_weights_dir

    try:
        return (resolve_weights_dir(name) / "weights.pt").is_file()
    except (BreastReaderError, OSError):
        return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time both paths; report medians, the speed-up and the agreement of maps and scores."""
    from engine.io.types import ImageMeta, LoadedImage
    from engine.models.weights import default_weights
    from engine.saliency.gradcam import GradCAMSaliency

    if getattr(args, "threads", 1):
        torch.set_num_threads(int(args.threads))
    repeats = int(getattr(args, "repeats", 5))
    # the five-crop whole-image US model (Grad-CAM per crop); the lesion-centred US default has
    # no Grad-CAM (its overlay is the mask-supervised attention)
    name = WHOLE_IMAGE_US if _installed(WHOLE_IMAGE_US) else default_weights("US")
    if name is None:
        raise SystemExit(f"bench gradcam needs the shipped {WHOLE_IMAGE_US} (resources/models)")
    from engine.inference import Predictor

    pred = Predictor(name, device="cpu")
    px, image_label = bench_image()
    crops = pred.transform(LoadedImage(px, ImageMeta(path=image_label, modality="US"))).tensor
    model, layer = pred.model, str(pred.model.saliency_layer)
    lib_t, new_t = [], []
    lib_maps, lib_score = _library_maps(model, crops, layer)
    sm = GradCAMSaliency(model)
    raw, logits = sm.compute_maps(crops)
    for _ in range(repeats):
        t0 = time.perf_counter()
        lib_maps, lib_score = _library_maps(model, crops, layer)
        lib_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw, logits = sm.compute_maps(crops)
        new_score = float(model.malignancy(logits).mean()) if logits is not None else float("nan")
        new_t.append(time.perf_counter() - t0)
    ours = library_postprocess(raw.float().numpy(), (int(crops.shape[-2]), int(crops.shape[-1])))
    corr = min(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ours, lib_maps))
    max_diff = float(np.abs(ours - lib_maps).max())
    lib_s, new_s = statistics.median(lib_t), statistics.median(new_t)
    return {"weights": name, "crops": int(crops.shape[0]), "input": list(crops.shape[1:]), "layer": layer,
            "library_per_crop_s": round(lib_s, 4), "batched_s": round(new_s, 4), "speedup": round(lib_s / new_s, 2),
            "score_abs_diff": abs(new_score - lib_score), "min_map_correlation": round(corr, 5),
            "max_map_abs_diff": max_diff, "map_grid": list(raw.shape[1:]),
            "threads": torch.get_num_threads(), "repeats": repeats, "image": image_label,
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
