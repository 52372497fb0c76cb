"""DDP on 2 CPU processes (gloo) equals single-process training with the same effective batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from engine.train.config import TrainConfig
from engine.train.distributed import spawn_local
from engine.train.loop import fit


def _setup() -> tuple[nn.Module, TensorDataset, TrainConfig]:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 6, 6, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    torch.manual_seed(1)
    # no dropout / batch norm: per-sample gradients average exactly
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(48, 1))
    cfg = TrainConfig.from_dict({
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
        "train": {"epochs": 3, "batch_size": 8, "seed": 5, "device": "cpu", "select": []},
    })
    return model, TensorDataset(x, y), cfg


def _worker(rank: int, world: int, out: str) -> None:
    from engine.train.distributed import info

    model, ds, cfg = _setup()
    res = fit(model, ds, None, cfg=cfg)
    if rank == 0:
        torch.save({"state": res.final_state, "world": info().world_size}, out)


def test_two_process_gloo_equals_single_process(tmp_path: Path) -> None:
    model, ds, cfg = _setup()
    single = fit(model, ds, None, cfg=cfg).final_state
    out = tmp_path / "ddp.pt"
    spawn_local(_worker, 2, str(out), start_method="fork")
    saved = torch.load(out, weights_only=True)
    assert saved["world"] == 2  # really ran under a 2-process group
    ddp = saved["state"]
    assert set(ddp) == set(single)
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], atol=1e-5, rtol=0)
    # and the comparison can fail: training moved the weights, and a per-process batch
    # of 4 without gradient averaging would have given different ones
    model0, _, cfg4 = _setup()
    assert not torch.allclose(model0.state_dict()["3.weight"], single["3.weight"], atol=1e-3)
    cfg4.train.batch_size = 4
    other = fit(model0, ds, None, cfg=cfg4).final_state
    assert not torch.allclose(other["3.weight"], single["3.weight"], atol=1e-3)


@pytest.mark.slow
def test_torchrun_two_processes_train_cli(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node=2 -m engine.cli.main train` joins env:// and writes one run."""
    import shutil
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_fit import make_blob_folder

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    make_blob_folder(tmp_path / "data", n_per_class=8, size=32)
    (tmp_path / "c.toml").write_text(
        '[data]\npath = "data"\nimage_size = [32, 32]\ngrayscale = true\nval_fraction = 0.25\n'
        '[model]\nname = "habib_basic_cnn"\n[train]\nepochs = 1\nbatch_size = 4\ndevice = "cpu"\nthreads = 1\n')
    run = tmp_path / "run"
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "-m", "engine.cli.main", "train", "--config",
                           str(tmp_path / "c.toml"), "--run-dir", str(run), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world=2" in (run / "train.log").read_text()
    assert (run / "last.pt").is_file() and (run / "metrics.csv").read_text().count("\n") == 2
