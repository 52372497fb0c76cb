"""The papers' own training procedures run through ``engine.train.fit`` / ``breast-engine train``.

* Habib et al. 2020: end-to-end sum of three losses and the two-step procedure (per-modality nets,
  then the fusion net on frozen descriptors) on paired MG+US batches.
* Qi et al. 2019: Algorithm 1 cross training of Mt-Net and Sn-Net with region enhance, Adadelta.
* MRI supervised attention (2019): five-output BCE + attention loss against lesion-box masks,
  per-task best checkpoints.

Tiny inputs and few steps throughout (CPU); every test asserts that something was learned or
that exactly the right parameters moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from engine.errors import ConfigError
from engine.models import get_model
from engine.train.config import TrainConfig
from engine.train.data import load_dataset
from engine.train.loop import fit

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def _cfg(**sections: dict[str, Any]) -> TrainConfig:
    base: dict[str, Any] = {"train": {"epochs": 2, "batch_size": 8, "device": "cpu", "amp": False,
                                      "deterministic": False, "select": ["auc"]}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return TrainConfig.from_dict(base)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------- Habib
class _BlobPairs(Dataset):  # type: ignore[type-arg]
    """Trivially separable pairs: malignant lesions are bright in MG and dark in US."""

    def __init__(self, n: int = 16, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 2
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        blob = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 5) ** 2).float()
        noise = 0.3 * torch.randn(n, 2, 1, size, size, generator=g)
        sign = (2 * self.y - 1).float().view(n, 1, 1, 1)
        self.mg = noise[:, 0] + sign * blob
        self.us = noise[:, 1] - sign * blob
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.y)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int, int]:
        return (self.mg[i], self.us[i]), int(self.y[i]), self.epoch


@pytest.mark.parametrize("loss", ["bce", "lmcl"])
def test_habib_end_to_end_learns_through_fit(loss: str) -> None:
    torch.manual_seed(0)
    model = get_model("habib_joint", arch="basic", loss=loss, pretrained=False)
    ds = _BlobPairs()
    cfg = _cfg(optim={"name": "adam", "lr": 1e-3}, train={"epochs": 4})
    res = fit(model, ds, ds, cfg=cfg)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.history[-1]["val_auc"] == pytest.approx(1.0)  # the fused score separates the classes


def test_habib_two_step_freezes_per_phase(tmp_path: Path) -> None:
    """Phase 1 moves only the MG/US nets; phase 2 (resumed) moves only the fusion net."""
    torch.manual_seed(0)
    cfg = _cfg(data={"kind": "synthetic_paired", "synthetic_n": 8, "image_size": [32, 32], "grayscale": True},
               model={"name": "habib_joint", "cfg": {"procedure": "two_step", "phase1_epochs": 1,
                                                     "pretrained": False}},
               optim={"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}, train={"epochs": 1})
    ds = load_dataset(cfg)
    assert ds.synthetic and len(ds) == 8 and list(ds.labels[:4]) == [0, 1, 0, 1]
    (mg0, us0), y0, ep0 = ds.subset(range(8), train=True)[0]
    assert mg0.shape == us0.shape == (1, 32, 32) and ep0 == 0
    from engine.train.loop import build_model

    model = build_model(cfg)
    assert model.procedure == "two_step"
    s0 = {n: _snapshot(getattr(model, n)) for n in ("mg", "us", "fusion")}
    fit(model, ds.subset(range(8), train=True), None, cfg=cfg, run_dir=tmp_path / "run")
    s1 = {n: _snapshot(getattr(model, n)) for n in ("mg", "us", "fusion")}
    assert not _same(s0["mg"], s1["mg"]) and not _same(s0["us"], s1["us"])
    assert _same(s0["fusion"], s1["fusion"])  # the fusion net waits for phase 2
    cfg2 = cfg.override(["train.epochs=2"])
    fit(model, ds.subset(range(8), train=True), None, cfg=cfg2, run_dir=tmp_path / "run", resume=True)
    s2 = {n: _snapshot(getattr(model, n)) for n in ("mg", "us", "fusion")}
    assert _same(s1["mg"], s2["mg"]) and _same(s1["us"], s2["us"])  # frozen (weight decay included)
    assert not _same(s1["fusion"], s2["fusion"])


def test_habib_two_step_needs_epoch_and_valid_procedure() -> None:
    model = get_model("habib_joint", procedure="two_step", pretrained=False)
    mg, us = model.example_inputs(batch=2, size=32)
    with pytest.raises(ConfigError, match="paired dataset"):
        model.training_step(((mg, us), torch.tensor([0, 1])))
    with pytest.raises(ConfigError, match="procedure"):
        get_model("habib_joint", procedure="sideways")


def test_habib_cli_train_synthetic_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    rc = main(["train", "--config", str(ROOT / "configs" / "habib_fusion_synthetic.toml"), "--quiet", "--json",
               "--run-dir", str(tmp_path / "run"), "--set", "data.synthetic_n=12", "--set", "data.image_size=[32,32]",
               "--set", "train.epochs=2", "--set", "model.cfg.phase1_epochs=1", "--set", "train.batch_size=4",
               "--set", "train.threads=1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["epochs"] == 2 and out["n_train"] + out["n_val"] == 12
    assert out["n_val"] == 3 and "val_auc" in out["last"]  # the fused score is validated each epoch
    assert out["best"]["auc"]["path"] == str(tmp_path / "run" / "best_auc.pt")
    assert (tmp_path / "run" / "best_auc.pt").is_file()
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["config"]["model"]["cfg"]["procedure"] == "two_step"
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert all(p.startswith("synthetic://paired/") for p in split["train"])


def test_paired_manifest(tmp_path: Path) -> None:
    rows = ["mg_path,us_path,label,group"]
    for i in range(4):
        for m in ("mg", "us"):
            cv2.imwrite(str(tmp_path / f"{m}{i}.png"), np.full((20, 24), 40 * i, np.uint8))
        rows.append(f"mg{i}.png,us{i}.png,{'malignant' if i % 2 else 'benign'},L{i // 2}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    cfg = _cfg(data={"kind": "paired_manifest", "path": str(tmp_path / "pairs.csv"), "image_size": [16, 16],
                     "grayscale": True})
    ds = load_dataset(cfg)
    assert ds.classes == ["benign", "malignant"] and ds.groups == ["L0", "L0", "L1", "L1"]
    (mg, us), y, _ = ds[3]
    assert mg.shape == (1, 16, 16) and y == 1 and not ds.synthetic
    (tmp_path / "bad.csv").write_text("mg_path,us_path,label\nmissing.png,us0.png,benign\nmg1.png,us1.png,malignant\n")
    with pytest.raises(Exception, match="do not exist"):
        load_dataset(cfg.override([f"data.path={json.dumps(str(tmp_path / 'bad.csv'))}"]))
    with pytest.raises(ConfigError, match="grayscale"):
        load_dataset(cfg.override(["data.grayscale=false"]))


# -------------------------------------------------------------------------------------- Qi
def _us_folder(tmp_path: Path, n: int = 8, size: int = 80) -> Path:
    """Tiny US-like folder: malignant = bright disc; masks empty for the 'normal' images."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = ["image,mask,label,solid"]
    rng = np.random.default_rng(0)
    for i in range(n):
        lab = ["benign", "malignant", "normal", "malignant"][i % 4]
        img = rng.integers(0, 60, (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if lab != "normal":
            cv2.circle(mask, (size // 2, size // 2), size // 5, 255, -1)
            img[mask > 0] = 220 if lab == "malignant" else 110
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), img)
        cv2.imwrite(str(tmp_path / "masks" / f"{i}.png"), mask)
        rows.append(f"images/{i}.png,masks/{i}.png,{lab},{int(lab != 'normal')}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def _qi_cfg(folder: Path, **data: Any) -> TrainConfig:
    return _cfg(data={"kind": "image_folder_csv", "path": str(folder), "image_size": [75, 75],
                      "classes": ["non_malignant", "malignant"],
                      "label_map": {"benign": "non_malignant", "normal": "non_malignant"}, **data},
                model={"name": "qi_mtnet_snnet_rem", "cfg": {"repeats": [1, 1, 1], "pretrained": False}},
                optim={"name": "adadelta", "lr": 1.0, "rho": 0.95, "weight_decay": 1e-4},
                train={"epochs": 3, "batch_size": 4})


def test_qi_algorithm1_through_fit(tmp_path: Path) -> None:
    from engine.train.loop import build_model

    folder = _us_folder(tmp_path)
    cfg = _qi_cfg(folder, aux_label="mask_nonempty")
    ds = load_dataset(cfg)
    assert list(ds.aux) == [1, 1, 0, 1, 1, 1, 0, 1]  # lesion outlined <=> non-empty mask
    assert list(ds.aux) == list(load_dataset(_qi_cfg(folder, aux_label="solid")).aux)  # a CSV column
    x, y, aux = ds[2]
    assert x.shape == (3, 75, 75) and (y, aux) == (0, 0)
    torch.manual_seed(0)
    model = build_model(cfg)
    sn0, mt0 = _snapshot(model.sn), _snapshot(model.mt)
    # Every CAM each net makes, and the CAM argument each net is called with (module pre-hooks on
    # the Mt-Net and Sn-Net calls: only the loss-bearing forwards go through __call__).
    made: dict[str, list[torch.Tensor]] = {"mt": [], "sn": []}
    fed: list[tuple[str, torch.Tensor | None, bool]] = []
    mt_cam, sn_fwc = model.mt.cam_from_features, model.sn.forward_with_cam

    def mt_cam_spy(*a: Any, **k: Any) -> torch.Tensor:
        out = mt_cam(*a, **k)
        made["mt"].append(out)
        return out

    def sn_fwc_spy(*a: Any, **k: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = sn_fwc(*a, **k)
        made["sn"].append(out[1])
        return out

    model.mt.cam_from_features = mt_cam_spy  # type: ignore[method-assign]
    model.sn.forward_with_cam = sn_fwc_spy  # type: ignore[method-assign]

    def pre(net: str) -> Any:
        def hook(mod: torch.nn.Module, args: tuple[Any, ...]) -> None:
            cam = args[1] if len(args) > 1 else None
            fed.append((net, cam, mod.training))
        return hook

    model.mt.register_forward_pre_hook(pre("mt"))
    model.sn.register_forward_pre_hook(pre("sn"))

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.shape == b.shape and a.data_ptr() == b.data_ptr()

    five = load_dataset(cfg.override(["data.resize=shorter_side", "data.eval_crops=5"]))
    assert five[0][0].shape == (5, 3, 75, 75)  # Qi's multi-input prediction at validation
    res = fit(model, ds.subset(range(8), train=True), five.subset(range(4), train=False), cfg=cfg)
    losses = [h["train_loss"] for h in res.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not _same(sn0, _snapshot(model.sn)) and not _same(mt0, _snapshot(model.mt))  # both nets trained
    train_calls = [(n, c) for n, c, training in fed if training]
    assert len(train_calls) == 2 * 3 * 2  # 2 batches x 3 epochs, one Mt-Net and one Sn-Net loss each
    # Algorithm 1 lines 17-20: the Sn-Net is always trained with the Mt-Net's CAM (never its own)
    sn_cams = [c for n, c in train_calls if n == "sn"]
    assert all(c is not None and any(same(c, m) for m in made["mt"]) for c in sn_cams)
    assert not any(same(c, m) for c in sn_cams if c is not None for m in made["sn"])
    # lines 4-16: the Mt-Net is trained either without a CAM or with the Sn-Net's CAM (never its own)
    mt_cams = [c for n, c in train_calls if n == "mt"]
    with_cam = [c for c in mt_cams if c is not None]
    assert 0 < len(with_cam) < len(mt_cams)  # both branches ran in these 6 steps
    assert all(any(same(c, m) for m in made["sn"]) for c in with_cam)
    assert not any(same(c, m) for c in with_cam for m in made["mt"])
    # validation (eval mode) is the REM chain: the Mt-Net scores with CAM^Sn
    val_mt = [c for n, c, training in fed if n == "mt" and not training]
    assert val_mt and all(c is not None and any(same(c, m) for m in made["sn"]) for c in val_mt)
    assert "val_auc" in res.history[-1]
    from engine.models.qi import cascade_advice

    model.eval()
    x0 = ds[0][0][None]
    with torch.no_grad():
        lm, ls = model.forward_both(x0)
    pm, ps = float(torch.softmax(lm, 1)[0, 1]), float(torch.softmax(ls, 1)[0, 1])
    assert model.advice(x0) == [cascade_advice(pm, ps)]
    assert model.advice(x0, t_malignant=pm, t_solid=2.0) == ["further examination advised"]  # Mt-Net alone
    assert model.advice(x0, t_malignant=2.0, t_solid=ps) == ["further examination advised"]  # Sn-Net alone
    assert model.advice(x0, t_malignant=pm + 1e-3, t_solid=ps + 1e-3) == ["periodic follow-up"]


@pytest.mark.parametrize("size, differ", [(80, False), (112, True)])
def test_basic_and_rem_differ_where_the_cam_is_spatial(size: int, differ: bool) -> None:
    """The two reduced-budget configs differ only in lam. At 80 px both nets end on a 1 x 1 grid,
    the min-max normalised CAM is 0 and REM is BASIC bit for bit (why the 80 px pair in
    docs/results.md was identical); at 112 px (2 x 2 grids) the CAM is spatial and REM's
    malignancy scores and training loss differ from BASIC's from the same initial weights."""
    from engine.train.config import load_config

    cfgs = {lam: load_config(ROOT / "configs" / f"qi_mtnet_snnet_{name}_reduced.toml",
                             [f"data.image_size=[{size},{size}]", "train.device=\"cpu\""])
            for lam, name in ((0.0, "basic"), (1.0, "rem"))}
    assert {lam: c.model.cfg["lam"] for lam, c in cfgs.items()} == {0.0: 0.0, 1.0: 1.0}
    from engine.train.loop import build_model

    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, size, size, generator=g)
    batch = (x, torch.tensor([0, 1]), torch.tensor([1, 0]))
    out: dict[float, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for lam, cfg in cfgs.items():
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        with torch.no_grad():
            f = model.mt.forward_features(x)
            cam = model.mt.cam_from_features(f, model.mt.forward_head(f), (size, size))
            p = model.malignancy(model(x))
        model.train()
        torch.manual_seed(5)  # p >= 0.5: the Mt-Net is trained with CAM^Sn (Algorithm 1 line 7)
        assert float(torch.rand(())) >= 0.5
        torch.manual_seed(5)
        loss = model.training_step(batch).detach()
        out[lam] = (cam, p, loss)
    cam = out[1.0][0]
    assert float(cam.max() - cam.min()) == (pytest.approx(1.0, abs=1e-4) if differ else 0.0)
    if differ:
        assert float((out[1.0][1] - out[0.0][1]).abs().max()) > 1e-4
        assert abs(float(out[1.0][2] - out[0.0][2])) > 1e-4
    else:
        assert torch.equal(out[1.0][1], out[0.0][1]) and torch.equal(out[1.0][2], out[0.0][2])


def test_qi_without_solid_labels_is_a_config_error(tmp_path: Path) -> None:
    folder = _us_folder(tmp_path, n=4)
    cfg = _qi_cfg(folder)
    model = get_model("qi_mtnet_snnet_rem", repeats=(1, 1, 1), pretrained=False)
    with pytest.raises(ConfigError, match="solid-nodule"):
        fit(model, load_dataset(cfg).subset(range(4), train=True), None, cfg=cfg.override(["train.epochs=1"]))
    with pytest.raises(ConfigError, match="nodules"):
        load_dataset(_qi_cfg(folder, aux_label="nodules"))


# ------------------------------------------------------------------------------------- MRI
def test_mri_attention_training_pulls_attention_into_the_box(tmp_path: Path) -> None:
    from engine.models.mri_attention import attention_mass_in_boxes, box_masks

    cfg = _cfg(data={"kind": "synthetic_mri", "synthetic_n": 8, "synthetic_slices": 4, "image_size": [64, 64],
                     "grayscale": True, "mean": [0.3], "std": [0.25]},
               model={"name": "mri_attention_resnet50",
                      "cfg": {"pretrained": False, "attention_balance": True, "attention_weight": 1.0}},
               optim={"name": "adam", "lr": 1e-3},
               train={"epochs": 4, "batch_size": 8, "select": ["auc_0", "loss"]})
    ds = load_dataset(cfg)
    x, targets, box = ds[1]
    assert x.shape == (1, 64, 64) and targets.shape == (5,) and targets[0] == 1 and ds.synthetic
    assert 0 <= box[0] < box[2] <= 64 and 0 <= box[1] < box[3] <= 64
    from engine.train.loop import build_model

    torch.manual_seed(0)
    model = build_model(cfg)
    X = torch.stack([ds[i][0] for i in range(len(ds))])
    B = torch.stack([ds[i][2] for i in range(len(ds))])

    def mass() -> float:
        # batch statistics: BatchNorm running averages need far more than this test's 4 steps
        model.train()
        with torch.no_grad():
            _, att = model.forward_with_attention(X)
        return float(attention_mass_in_boxes(att, box_masks(B, (64, 64), tuple(att.shape[-2:]))).mean())

    before = mass()
    res = fit(model, ds.subset(range(8), train=True), ds.subset(range(8), train=False), cfg=cfg,
              run_dir=tmp_path / "run")
    after = mass()
    assert after > before + 0.2, (before, after)  # uniform (~ the box's share of cells) -> mostly inside
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert {"val_auc_0", "val_auc_4", "val_auc"} <= set(res.history[-1])
    assert "auc_0" in res.best and (tmp_path / "run" / "best_auc_0.pt").is_file()  # per-task checkpoint


def test_mri_training_step_without_boxes_and_bad_select() -> None:
    torch.manual_seed(0)
    net = get_model("mri_attention_resnet50", pretrained=False)
    x = torch.rand(2, 1, 64, 64)
    no_box = torch.full((2, 4), -1.0)
    with torch.no_grad():
        plain = net.training_step((x, torch.zeros(2, 5)))
        skipped = net.training_step((x, torch.zeros(2, 5), no_box))
        boxed = net.training_step((x, torch.zeros(2, 5), torch.tensor([[0.0, 0, 31, 31]] * 2)))
        mal_only = net.training_step((x, torch.tensor([0, 1])))
    assert torch.isfinite(mal_only)
    assert float(skipped) == pytest.approx(float(plain), rel=1e-5)  # no box -> no attention term
    assert float(boxed) > float(skipped)  # the attention term is added
    with pytest.raises(ConfigError, match="train.select"):
        _cfg(train={"select": ["auc_x"]})


def test_boxed_manifest_scales_boxes_and_checks_tasks(tmp_path: Path) -> None:
    head = "path,label,malignant,mammary_gland,other_benign,idc,other_malignant,group,x0,y0,x1,y1"
    rows = [head]
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"s{i}.png"), np.full((100, 200), 30 * i, np.uint8))
        mal = i % 2
        box = "20,10,60,50" if i < 3 else ",,,"
        rows.append(f"s{i}.png,{'malignant' if mal else 'benign'},{mal},{1 - mal},0,{mal},0,P{i},{box}")
    (tmp_path / "mri.csv").write_text("\n".join(rows) + "\n")
    cfg = _cfg(data={"kind": "boxed_manifest", "path": str(tmp_path / "mri.csv"), "image_size": [50, 50],
                     "grayscale": True})
    ds = load_dataset(cfg)
    x, t, b = ds[1]
    assert x.shape == (1, 50, 50) and t.tolist() == [1, 0, 0, 1, 0]
    assert b.tolist() == pytest.approx([5.0, 5.0, 15.0, 25.0])  # 200x100 image -> 50x50 input
    assert ds[3][2].tolist() == [-1.0] * 4  # no box: no attention term
    (tmp_path / "bad.csv").write_text(head + "\ns0.png,benign,0,1,0,2,0,P0,,,,\n")
    with pytest.raises(Exception, match="idc must be 0 or 1"):
        load_dataset(cfg.override([f"data.path={json.dumps(str(tmp_path / 'bad.csv'))}"]))
