"""`breast-engine bench train --json`: fit's training step vs a plain hand-written torch loop.

Both train the same small CNN on the same in-memory tensors with the same optimiser and
batch size, one epoch each in turn, so they see the same machine load. The plain loop is
the bare minimum (``randperm`` indexing of the tensors, ``zero_grad / forward / BCE /
backward / step``); ours is what :func:`engine.train.loop.fit` runs per epoch: its
DataLoader + sampler (:func:`make_train_loader`), step function, cancellation checks and
progress callback (:func:`train_one_epoch`), under fit's determinism setting. Throughput
is the median epoch time of each (the first epoch is a warm-up and not counted).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

NAME = "train"
HELP = "training-step throughput of fit() vs a plain torch loop (target ratio >= 0.9)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--steps", type=int, default=16, help="steps per epoch (default 16)")
    parser.add_argument("--epochs", type=int, default=12, help="timed epochs of each loop, alternating (default 12)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="image side (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 1),
    )


class _Plain:
    """The hand-written loop: randperm indexing of the tensors, no DataLoader."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bs: int, device: torch.device) -> None:
        torch.manual_seed(0)
        self.model = _model().to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x, self.y, self.bs = x.to(device), y.to(device), bs

    def epoch(self, e: int) -> None:
        self.model.train()
        n = self.x.shape[0]
        perm = torch.randperm(n, device=self.x.device)
        for i in range(0, n, self.bs):
            idx = perm[i:i + self.bs]
            self.opt.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(self.model(self.x[idx]).reshape(-1), self.y[idx].float())
            loss.backward()
            self.opt.step()


class _Ours:
    """fit()'s training path: its DataLoader/sampler, step function, optimiser and epoch loop."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bs: int, device: torch.device) -> None:
        from engine.train.config import TrainConfig
        from engine.train.loop import AmpState, build_optimizer, make_step_fn, make_train_loader

        self.cfg = TrainConfig.from_dict({
            "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "train": {"batch_size": bs, "device": str(device), "select": [], "amp": False},
        })
        torch.manual_seed(0)
        self.model = _model().to(device)
        self.opt = build_optimizer(self.model.parameters(), self.cfg)
        self.loader, self.sampler, self.gen = make_train_loader(TensorDataset(x, y), self.cfg, device)
        self.step_fn = make_step_fn(self.model)
        self.amp = AmpState.for_device(device, False)
        self.device = device

    def epoch(self, e: int) -> None:
        from engine.train.loop import train_one_epoch

        self.sampler.set_epoch(e)
        self.gen.manual_seed(e)
        train_one_epoch(self.model, self.loader, self.opt, device=self.device, amp=self.amp,
                        step_fn=self.step_fn, progress=lambda d, t, m: None, epoch=e, epochs=1000,
                        total_steps=1000)


def _loader_batches_per_s(x: torch.Tensor, bs: int, steps: int, threads: int) -> float:
    """Batches/s of a warm LabelledImages (PNG files, decoded once) with Hijab augmentation."""
    import tempfile
    from pathlib import Path

    import cv2
    import numpy as np

    from engine.train.config import TrainConfig
    from engine.train.data import load_dataset
    from engine.train.loop import make_train_loader

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lines = ["image,label"]
        imgs = (x[:, 0].numpy() * 40 + 128).clip(0, 255).astype(np.uint8)
        for i, a in enumerate(imgs):
            cv2.imwrite(str(root / f"{i}.png"), a)
            lines.append(f"{i}.png,{'malignant' if i % 2 else 'benign'}")
        (root / "labels.csv").write_text("\n".join(lines) + "\n")
        cfg = TrainConfig.from_dict({
            "data": {"path": tmp, "image_size": list(imgs.shape[1:]), "grayscale": True},
            "augment": {"preset": "hijab"}, "train": {"batch_size": bs, "device": "cpu"}})
        ds = load_dataset(cfg)
        ds.warm()
        train = ds.subset(range(len(ds)), train=True)
        loader, sampler, _ = make_train_loader(train, cfg, torch.device("cpu"))
        times = []
        for e in range(3):
            sampler.set_epoch(e)
            train.set_epoch(e)
            t0 = time.perf_counter()
            for _ in loader:
                pass
            times.append(time.perf_counter() - t0)
    return len(loader) / statistics.median(times[1:])


def _timed(fn: Any, e: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn(e)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns plain/ours steps per second and their ratio.

    Epochs of the two loops alternate (plain, ours, plain, ours, ...) so that both see
    the same machine load; each side's median epoch time gives its throughput.
    """
    from engine.train.loop import deterministic, resolve_device

    steps = getattr(args, "steps", 16)
    epochs = max(2, getattr(args, "epochs", 12))
    bs = getattr(args, "batch_size", 16)
    size = getattr(args, "size", 64)
    threads = getattr(args, "threads", 1)
    dev_name = getattr(args, "device", "auto")
    prev_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(dev_name)
    g = torch.Generator().manual_seed(0)
    n = steps * bs
    x = torch.randn(n, 1, size, size, generator=g)
    y = (torch.rand(n, generator=g) < 0.5).long()
    plain_t: list[float] = []
    ours_t: list[float] = []
    try:
        plain = _Plain(x, y, bs, device)
        ours = _Ours(x, y, bs, device)
        with deterministic(ours.cfg.train.deterministic):  # fit's setting, for both sides
            for e in range(epochs + 1):
                tp = _timed(plain.epoch, e, device)
                to = _timed(ours.epoch, e, device)
                if e:  # epoch 0 is warm-up
                    plain_t.append(tp)
                    ours_t.append(to)
    finally:
        torch.set_num_threads(prev_threads)
    p = steps / statistics.median(plain_t)
    o = steps / statistics.median(ours_t)
    loader_rate = _loader_batches_per_s(x, bs, steps, threads)
    return {
        "plain_steps_per_s": round(p, 3),
        "ours_steps_per_s": round(o, 3),
        "ratio": round(o / p, 4),
        "target_ratio": 0.9,
        "device": str(device),
        "batch_size": bs,
        "image_size": size,
        "steps_per_epoch": steps,
        "timed_epochs_each": len(plain_t),
        "threads": threads if threads > 0 else torch.get_num_threads(),
        # cached, augmented (Hijab preset) image batches from PNG files, main process only:
        # data loading keeps ahead of the step when this exceeds ours_steps_per_s
        "loader_batches_per_s": round(loader_rate, 3),
    }
