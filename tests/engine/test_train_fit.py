"""engine.train: datasets, fit (learning, determinism, resume, cancel, hooks)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.errors import CaseFormatError, Cancelled, ConfigError
from engine.progress import CancelToken
from engine.train.config import TrainConfig
from engine.train.data import load_dataset
from engine.train.loop import fit, predict

torch.set_num_threads(1)


def make_blob_folder(root: Path, n_per_class: int = 12, size: int = 24, seed: int = 0,
                     groups_of: int = 1) -> Path:
    """Benign = dark noisy image; malignant = the same with a bright blob somewhere."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[:size, :size]
    for label in ("benign", "malignant"):
        for i in range(n_per_class):
            img = rng.normal(60, 15, (size, size))
            if label == "malignant":
                cy, cx = rng.integers(6, size - 6, 2)
                img += 150 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
            name = f"images/{label}_{i}.png"
            cv2.imwrite(str(root / name), np.clip(img, 0, 255).astype(np.uint8))
            rows.append({"image": name, "label": label, "group": f"{label}-{i // groups_of}"})
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "label", "group"])
        w.writeheader()
        w.writerows(rows)
    return root


class TinyNet(nn.Module):
    """Conv -> ReLU -> global max -> linear: learns 'is there a bright blob' in a few steps."""

    def __init__(self, in_chans: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).amax(dim=(2, 3))
        return self.fc(h)


def net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)  # model init is the caller's (fit seeds everything after)
    return TinyNet()


def tiny_cfg(path: Path, **train: object) -> TrainConfig:
    d = {
        "data": {"kind": "image_folder_csv", "path": str(path), "image_size": [24, 24],
                 "grayscale": True},
        "optim": {"name": "adam", "lr": 0.05},
        "train": {"epochs": 4, "batch_size": 8, "seed": 3, "device": "cpu", "select": ["auc", "loss"]},
    }
    d["train"].update(train)  # type: ignore[union-attr]
    return TrainConfig.from_dict(d)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_blob_folder(tmp_path_factory.mktemp("blobs"))


def _split(ds):  # type: ignore[no-untyped-def]
    idx = np.arange(len(ds))
    val = idx % 4 == 0
    return ds.subset(idx[~val], train=True), ds.subset(idx[val], train=False)


def test_dataset_reads_folder_and_labels(blobs: Path) -> None:
    ds = load_dataset(tiny_cfg(blobs))
    assert ds.classes == ["benign", "malignant"]
    assert len(ds) == 24 and ds.labels.sum() == 12
    x, y = ds[len(ds) - 1]
    assert x.shape == (1, 24, 24) and x.dtype == torch.float32 and y == 1
    ds.warm()
    assert len(ds.cache) == 24  # decoded once, kept in memory


def test_fit_learns_blobs_and_writes_run_folder(blobs: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(blobs)
    tr, va = _split(load_dataset(cfg))
    seen: list[tuple[int, int]] = []
    res = fit(net(), tr, va, cfg=cfg, run_dir=tmp_path / "run",
              progress=lambda d, t, m: seen.append((d, t)))
    assert res.history[-1]["val_auc"] > 0.9
    assert set(res.best) == {"auc", "loss"}
    for f in ("config.toml", "config.json", "metrics.csv", "train.log", "last.pt", "best_auc.pt"):
        assert (tmp_path / "run" / f).is_file(), f
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "config"} <= set(ck)
    assert seen and seen[-1][0] == seen[-1][1]  # progress reaches its total
    scores = predict(TinyNet().eval(), va, device="cpu")
    assert scores.shape == (len(va),)


def test_fit_is_deterministic(blobs: Path) -> None:
    cfg = tiny_cfg(blobs, epochs=2)
    cfg.augment.hflip = True
    cfg.augment.shift = 0.1
    tr, va = _split(load_dataset(cfg))
    a = fit(net(), tr, va, cfg=cfg)
    b = fit(net(), tr, va, cfg=cfg)
    for ra, rb in zip(a.history, b.history):
        assert {k: v for k, v in ra.items() if k != "time_s"} == {k: v for k, v in rb.items() if k != "time_s"}
    for k in a.final_state:
        assert torch.equal(a.final_state[k], b.final_state[k])


def test_resume_continues_exactly(blobs: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(blobs, epochs=3)
    cfg.augment.hflip = True
    tr, va = _split(load_dataset(cfg))
    full = fit(net(), tr, va, cfg=cfg, run_dir=tmp_path / "full")
    cfg2 = cfg.copy()
    cfg2.train.epochs = 3
    token = CancelToken()

    def stop_after_two(done: int, total: int, msg: str) -> None:
        if msg.startswith("epoch 2/3 loss"):
            token.cancel()

    with pytest.raises(Cancelled):
        fit(net(), tr, va, cfg=cfg2, run_dir=tmp_path / "part", progress=stop_after_two, cancel=token)
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = fit(net(), tr, va, cfg=cfg2, run_dir=tmp_path / "part", resume=True)
    assert len(resumed.history) == 3
    for k in full.final_state:
        assert torch.equal(full.final_state[k], resumed.final_state[k]), k
    assert (tmp_path / "part" / "metrics.csv").read_text().count("\n") == 4


class HookNet(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(self(x).view(-1), y.float())


def test_model_training_step_hook_is_used(blobs: Path) -> None:
    cfg = tiny_cfg(blobs, epochs=1, batch_size=6)
    tr, va = _split(load_dataset(cfg))
    m = HookNet()
    fit(m, tr, va, cfg=cfg)
    assert m.calls == 3  # 18 training images / 6


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_dataset_errors_say_what_to_fix(blobs: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(blobs)
    bad = tmp_path / "bad"
    bad.mkdir()
    # missing image files
    _write_csv(bad / "labels.csv", [{"image": "nope.png", "label": "benign"},
                                    {"image": "nope2.png", "label": "malignant"}])
    cfg.data.path = str(bad)
    with pytest.raises(CaseFormatError, match="do not exist.*row 2"):
        load_dataset(cfg)
    # one class only
    cv2.imwrite(str(bad / "a.png"), np.zeros((8, 8), np.uint8))
    _write_csv(bad / "labels.csv", [{"image": "a.png", "label": "benign"}])
    with pytest.raises(ConfigError, match="only one class"):
        load_dataset(cfg)
    # unknown label vs configured classes
    _write_csv(bad / "labels.csv", [{"image": "a.png", "label": "benign"}, {"image": "a.png", "label": "maybe"}])
    cfg.data.classes = ["benign", "malignant"]
    with pytest.raises(ConfigError, match="'maybe'.*not in data.classes"):
        load_dataset(cfg)
    # missing column
    _write_csv(bad / "labels.csv", [{"file": "a.png", "label": "benign"}])
    with pytest.raises(CaseFormatError, match="missing column.*image"):
        load_dataset(cfg)
    # missing folder
    cfg.data.path = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="not a folder"):
        load_dataset(cfg)


def test_bench_train_reports_side_by_side() -> None:
    import argparse

    from engine.bench import train as bench

    r = bench.run(argparse.Namespace(steps=2, epochs=2, batch_size=4, size=16, threads=1, device="cpu"))
    assert r["plain_steps_per_s"] > 0 and r["ours_steps_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["ours_steps_per_s"] / r["plain_steps_per_s"], rel=1e-2)
    assert r["target_ratio"] == 0.9 and r["timed_epochs_each"] == 2 and r["loader_batches_per_s"] > 0


def test_last_batch_of_one_is_dropped_for_batchnorm(blobs: Path) -> None:
    cfg = tiny_cfg(blobs, epochs=1, batch_size=4, select=[])
    ds = load_dataset(cfg).subset(range(9), train=True)  # 9 = 2 * 4 + 1
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                       nn.Flatten(), nn.Linear(2, 1))
    res = fit(bn, ds, None, cfg=cfg)  # would raise in BatchNorm on a batch of one
    assert len(res.history) == 1


def test_multilabel_targets_give_per_task_auc_and_mri_score() -> None:
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g)
    y = (x > 0).float()  # task k is "feature k is positive": learnable by a linear layer
    torch.manual_seed(0)
    model = nn.Linear(5, 5)
    model.output_activation = "sigmoid"  # type: ignore[assignment]
    cfg = TrainConfig.from_dict({"optim": {"name": "adam", "lr": 0.1},
                                 "train": {"epochs": 5, "batch_size": 8, "select": ["mri_score"]}})
    res = fit(model, TensorDataset(x[:30], y[:30]), TensorDataset(x[30:], y[30:]), cfg=cfg)
    last = res.history[-1]
    assert {f"val_auc_{k}" for k in range(5)} <= set(last)
    assert last["val_mri_score"] == pytest.approx(
        0.6 * last["val_auc_0"] + 0.4 * np.mean([last[f"val_auc_{k}"] for k in range(1, 5)]))
    assert last["val_mri_score"] > 0.9 and "mri_score" in res.best
