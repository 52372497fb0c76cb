"""`breast-engine bench patch-map --json`: An 2019 stride-64 local map, per-patch loop vs dense.

The image is a REAL mammogram: a mini-MIAS image (``--mias-dir``, default
``../shared/data/mias-dev``; ``--mias-id``) up-sampled to 2048 x 2048, flipped and cropped
right-aligned on the nipple (:func:`engine.models.an.orient_and_crop`, An 2019 Data
Preparation), the background outside the breast mask set to 0 (An evaluate the breast region;
this also removes the film labels) and brought to the x0.5 magnification at which the
aggregated local results are computed (An 2019, Fig. 1). Without the data folder a SYNTHETIC
mammogram (:func:`engine.data.synthetic.synthetic_mammogram`) goes through the same steps and
the JSON says so.

The tissue classifier (:class:`engine.models.an.AnPatchClassifier`, seed 0; no trained An
weights are shipped) gets a data-dependent re-scaling of its layers (LSUV, Mishkin & Matas 2016)
so that its map actually varies over the image (with the default initialisation every window
gives p = 0.5 +- 1e-6, which would make the equality check meaningless). Both methods evaluate
the very same model, in eval mode under ``torch.inference_mode``, side by side in this run:

* ``baseline_s``: :func:`engine.models.an.local_map_loop`, every 256 px window at stride 64 sent
  through the model on its own (batch of 1, default memory format);
* ``ours_s``: :func:`engine.models.an.local_map_dense`: windows that are entirely background
  get the network's output on a constant input once (broadcast), the convolutions run over the
  breast's bounding box grown layer by layer by the receptive field (not over the whole image),
  channels-last, and the kxk head is applied as a strided convolution at the stride-64 positions.

Both maps are compared on ALL window positions (background ones included, also reported
separately). The measurement is repeated (``--repeats``), interleaving baseline and ours, with
1 thread and with the default thread count; the medians are reported with every run and the
load average. Top-level ``baseline_s`` / ``ours_s`` / ``speedup`` are the 1-thread medians.
``--strong-baseline`` also times the per-patch loop with a channels-last model.
Targets: speedup >= 20, max_abs_diff <= 1e-4 (issue 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

NAME = "patch-map"
HELP = "An 2019 stride-64 patch map: per-patch loop vs fully convolutional (2048x2048 mammogram)"
DEFAULT_MIAS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mias-dev"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--size", type=int, default=2048, help="side of the mammogram crop (px)")
    parser.add_argument("--scale", type=float, default=0.5, help="magnification of the map (An: x0.5)")
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--mias-dir", default=str(DEFAULT_MIAS), help="mini-MIAS folder (images/mdbNNN.png)")
    parser.add_argument("--mias-id", default="mdb023", help="which mini-MIAS image")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic mammogram even if MIAS is there")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved baseline/ours repeats per thread count")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", default="1,default",
                        help="comma list of torch thread counts to measure ('default' = torch's own)")
    parser.add_argument("--strong-baseline", action="store_true",
                        help="also time the per-patch loop with a channels-last model (reported separately)")


def benchmark_image(size: int = 2048, scale: float = 0.5, *, mias_dir: str | Path | None = DEFAULT_MIAS,
                    mias_id: str = "mdb023") -> tuple[np.ndarray, str]:
    """The benchmark mammogram at the map's magnification, and a description of it.

    Args:
        size: Side of the up-sampled image and of An's nipple-aligned crop.
        scale: Magnification of the map (x0.5).
        mias_dir: mini-MIAS folder; None or missing -> synthetic mammogram.
        mias_id: Image name without extension.

    Returns:
        ``(float32 image in [0, 1], description)``.
    """
    import cv2

    from engine.imaging.breast import breast_mask
    from engine.models.an import orient_and_crop, rescale

    path = Path(mias_dir) / "images" / f"{mias_id}.png" if mias_dir else None
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path is not None and path.is_file() else None
    if raw is not None:
        top = float(np.iinfo(raw.dtype).max) if raw.dtype.kind == "u" else float(raw.max())  # type: ignore[type-var]
        src = raw.astype(np.float32) / top
        desc = f"mini-MIAS {mias_id} ({raw.shape[1]}x{raw.shape[0]}) up-sampled to {size}x{size}"
    else:
        from engine.data.synthetic import synthetic_mammogram

        src = synthetic_mammogram(0, rows=size, cols=size)["image"].astype(np.float32) / 4095.0
        desc = f"SYNTHETIC mammogram {size}x{size} (mini-MIAS not found at {mias_dir})"
    up = cv2.resize(src, (size, size), interpolation=cv2.INTER_CUBIC) if src.shape != (size, size) else src
    up = np.clip(up, 0.0, 1.0)
    crop = orient_and_crop(up, size=size).image
    crop = np.where(breast_mask(crop), crop, 0.0).astype(np.float32)
    img = rescale(crop, scale) if scale != 1.0 else crop
    desc += f", An nipple-aligned crop, background outside the breast mask = 0, x{scale} -> {img.shape[1]}x{img.shape[0]}"
    return np.ascontiguousarray(img, dtype=np.float32), desc


@torch.no_grad()
def lsuv_rescale(model: torch.nn.Module, img: np.ndarray | torch.Tensor, *, n: int = 8, final_std: float = 1.5) -> None:
    """Re-scale every convolution so its output has unit variance on patches of ``img`` (LSUV).

    Mishkin & Matas 2016, "All you need is a good init" (variance part only). The last layer is
    scaled to logits of std ``final_std`` so p(finding) spreads over (0, 1).

    Args:
        model: The patch classifier (changed in place).
        img: A ``(rows, cols)`` image (``n`` random patches are taken) or a ``(N, 1, p, p)`` batch.
        n: Patches taken from an image.
        final_std: Target std of the logits.
    """
    if isinstance(img, torch.Tensor) and img.ndim == 4:
        xs = img.float()
    else:
        a = np.asarray(img, np.float32)
        rng = np.random.default_rng(0)
        p = int(getattr(model, "patch", 256))
        h, w = a.shape
        xs = torch.stack([torch.from_numpy(a[r:r + p, c:c + p]) for r, c in
                          zip(rng.integers(0, h - p + 1, n), rng.integers(0, w - p + 1, n))])[:, None]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for i, conv in enumerate(convs):
        out: list[torch.Tensor] = []
        hook = conv.register_forward_hook(lambda _m, _i, o: out.append(o))
        model(xs)
        hook.remove()
        sd = float(out[0].std())
        if sd > 0:
            target = final_std if i == len(convs) - 1 else 1.0
            conv.weight.mul_(target / sd)
            if conv.bias is not None:
                conv.bias.mul_(target / sd)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(model: Any, t_img: torch.Tensor, stride: int, device: torch.device, repeats: int,
             strong: bool) -> tuple[dict[str, Any], np.ndarray]:
    """Interleaved repeats of the per-patch loop and the dense map at the current thread count.

    Returns:
        ``(figures, the per-patch loop's map)``.
    """
    from engine.models.an import background_windows, local_map_dense, local_map_loop

    p = model.patch
    local_map_dense(model, t_img, stride=stride)  # warm-up (allocator, oneDNN kernels)
    local_map_loop(model, t_img[: p + stride, : p + stride], stride=stride)
    base_t: list[float] = []
    ours_t: list[float] = []
    plain_t: list[float] = []
    diff = diff_bg = 0.0
    base = ours = np.zeros(0)
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        base = local_map_loop(model, t_img, stride=stride)
        _sync(device)
        base_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = local_map_dense(model, t_img, stride=stride)
        _sync(device)
        ours_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain = local_map_dense(model, t_img, stride=stride, skip_background=False)
        _sync(device)
        plain_t.append(time.perf_counter() - t0)
        bg = background_windows(t_img, p, stride)
        diff = max(diff, float(np.abs(ours - base).max()), float(np.abs(plain - base).max()))
        if bg.any():
            diff_bg = max(diff_bg, float(np.abs(ours - base)[bg].max()))
    b, o, pl = statistics.median(base_t), statistics.median(ours_t), statistics.median(plain_t)
    res: dict[str, Any] = {
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "baseline_s": round(b, 4),
        "ours_s": round(o, 4),
        "speedup": round(b / o, 2),
        "max_abs_diff": diff,
        "max_abs_diff_background_windows": diff_bg,
        "plain_dense_s": round(pl, 4),
        "speedup_plain_dense": round(b / pl, 2),
        "baseline_runs_s": [round(x, 4) for x in base_t],
        "ours_runs_s": [round(x, 4) for x in ours_t],
        "speedup_min_over_runs": round(min(bt / ot for bt, ot in zip(base_t, ours_t)), 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if strong:
        t0 = time.perf_counter()
        strong_map = local_map_loop(model, t_img, stride=stride, channels_last=True)
        _sync(device)
        s = time.perf_counter() - t0
        res.update({"baseline_channels_last_s": round(s, 4), "speedup_vs_channels_last_loop": round(s / o, 2),
                    "max_abs_diff_channels_last_loop": float(np.abs(ours - strong_map).max())})
    return res, base


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both ways on the same image and compare the maps."""
    from engine.models import get_model
    from engine.models.an import background_windows

    size = int(getattr(args, "size", 2048))
    scale = float(getattr(args, "scale", 0.5))
    stride = int(getattr(args, "stride", 64))
    repeats = int(getattr(args, "repeats", 3))
    dev_arg = getattr(args, "device", "auto")
    device = torch.device("cuda" if dev_arg == "cuda" or (dev_arg == "auto" and torch.cuda.is_available()) else "cpu")
    mias = None if getattr(args, "synthetic", False) else getattr(args, "mias_dir", str(DEFAULT_MIAS))
    img, desc = benchmark_image(size, scale, mias_dir=mias, mias_id=getattr(args, "mias_id", "mdb023"))
    default_threads = torch.get_num_threads()
    load_before = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None

    torch.manual_seed(0)
    model: Any = get_model("an_patch_classifier").eval()
    lsuv_rescale(model, img)
    model = model.to(device)
    t_img = torch.from_numpy(img)

    settings: list[int] = []
    for tok in str(getattr(args, "threads", "1,default")).split(","):
        tok = tok.strip()
        if tok:
            n = default_threads if tok == "default" else int(tok)
            if n > 0 and n not in settings:
                settings.append(n)
    runs: dict[str, Any] = {}
    ref = np.zeros(0)
    for n in settings if device.type == "cpu" else [default_threads]:
        torch.set_num_threads(n)
        runs[f"threads_{n}"], ref = _measure(model, t_img, stride, device, repeats,
                                             bool(getattr(args, "strong_baseline", False)))
    torch.set_num_threads(default_threads)
    primary = next(iter(runs.values()))
    bg = background_windows(t_img, model.patch, stride)
    nz = np.nonzero(img)
    box_frac = ((nz[0].max() - nz[0].min() + 1) * (nz[1].max() - nz[1].min() + 1) / img.size) if nz[0].size else 0.0
    return {
        "baseline_s": primary["baseline_s"],
        "ours_s": primary["ours_s"],
        "speedup": primary["speedup"],
        "max_abs_diff": max(r["max_abs_diff"] for r in runs.values()),
        "threads": primary["threads"],
        "default_threads": default_threads,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_before": load_before,
        "runs": runs,
        "map_shape": list(ref.shape),
        "patches": int(ref.size),
        "background_windows": int(bg.sum()),
        "breast_bbox_area_frac": round(float(box_frac), 3),
        "map_p_min_max_std": [round(float(ref.min()), 4), round(float(ref.max()), 4), round(float(ref.std()), 4)],
        "image": desc,
        "model": "an_patch_classifier (torch seed 0, LSUV-rescaled init; no trained An weights are shipped)",
        "device": str(device),
        "repeats": repeats,
        "statistic": "median over interleaved repeats",
        "targets": {"speedup": 20, "max_abs_diff": 1e-4},
    }
