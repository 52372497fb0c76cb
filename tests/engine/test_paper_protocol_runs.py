"""Issue 11 item 7: the paper protocols' engine pieces and the reduced-budget configs.

* MRI 2019: lesion-free SYNTHETIC slices (no lesion in the slice) trained towards the empty
  attention mask; per-task AUCs where task k is scored by its own best-validation copy.
* Habib 2020: per-modality (MG, US) scores beside the fused one in cross-validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.train.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
torch.set_num_threads(1)


def _mri_cfg(**data: object) -> TrainConfig:
    d = {"kind": "synthetic_mri", "synthetic_n": 8, "synthetic_slices": 8, "synthetic_lesion_free": 4,
         "image_size": [64, 64], "grayscale": True, "mean": [0.3], "std": [0.25], "val_fraction": 0.34}
    d.update(data)
    return TrainConfig.from_dict({
        "data": d,
        "model": {"name": "mri_attention_resnet18",
                  "cfg": {"pretrained": False, "attention_balance": True, "attention_empty_mask": True}},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"epochs": 1, "batch_size": 8, "threads": 1,
                  "select": ["auc_0", "auc_1", "auc_2", "auc_3", "auc_4"]},
    })


def test_lesion_free_slices_hold_no_lesion() -> None:
    from engine.data.synthetic import synthetic_mri_case
    from engine.train.data import _mri_free_slice, _mri_lesion_slice, load_paper_dataset

    ds = load_paper_dataset(_mri_cfg())
    free = [s for s in ds.samples if s.path.endswith("/lesion-free")]
    assert len(ds) == 12 and len(free) == 4
    for s in free:
        assert s.box is None and s.targets == (0, 0, 0, 0, 0) and s.label == "benign"
        case = synthetic_mri_case(s.synthetic_seed, malignant=False, n_slices=8, size=64)
        z0, z1 = case["lesion_box"][:2]
        img = _mri_free_slice(case)
        assert img is not None
        # the chosen slice is outside the lesion slab: no lesion voxel on it
        outside = [z for z in range(8) if z < z0 or z >= z1]
        assert any(not case["lesion_mask"][z].any() for z in outside)
        assert not np.array_equal(img, _mri_lesion_slice(case))
    x, t, b = ds[len(ds) - 1]
    assert torch.all(b == -1) and torch.all(t == 0)


def test_empty_mask_supervises_attention_of_lesion_free_images() -> None:
    from engine.models.mri_attention import mri_attention_resnet18

    torch.manual_seed(0)
    net = mri_attention_resnet18(pretrained=False, attention_empty_mask=False)
    x = torch.rand(2, 1, 64, 64)
    t = torch.zeros(2, 5)
    none = torch.full((2, 4), -1.0)
    net.eval()
    base = net.training_step((x, t, none))
    logits, _ = net.forward_with_attention(x)
    cls = torch.nn.functional.binary_cross_entropy_with_logits(logits, t)
    assert torch.allclose(base, cls)  # without the flag a box-less image adds no attention term
    net.attention_empty_mask = True
    with_empty = net.training_step((x, t, none))
    _, att = net.forward_with_attention(x)
    expect = cls + -(torch.log(1 - att.clamp(1e-6, 1 - 1e-6))).mean()  # BCE to an all-zero mask
    assert torch.allclose(with_empty, expect, atol=1e-5)
    assert float((with_empty - base).detach()) > 1e-3


def test_cross_validate_reports_per_task_best_copies() -> None:
    from engine.train.protocols import cross_validate

    out = cross_validate(_mri_cfg(), protocol="kfold", folds=2)
    tasks = out["per_task"]
    assert [t["task"] for t in tasks] == [0, 1, 2, 3, 4]
    assert all(t["n"] == 12 for t in tasks)
    assert any(f"best auc_{t['task']}" in t["copy"] for t in tasks if t["task"] > 0)
    # task 0 over images equals the pooled malignancy AUC here (one image per lesion, one repeat)
    assert tasks[0]["auc"] == pytest.approx(out["pooled"]["auc"])


def test_habib_cross_validate_reports_each_modality_beside_the_fusion() -> None:
    from engine.train.protocols import cross_validate

    cfg = load_config(REPO / "configs" / "habib_fusion_synthetic_loo.toml",
                      ["data.synthetic_n=8", "train.epochs=1", "model.cfg.phase1_epochs=1"])
    out = cross_validate(cfg, protocol="kfold", folds=2)
    parts = {p["part"]: p for p in out["per_part"]}
    assert set(parts) == {"MG", "US", "fused"}
    assert parts["fused"]["auc"] == pytest.approx(out["pooled"]["auc"])
    assert all(p["n_lesions"] == 8 for p in parts.values())


@pytest.mark.parametrize("name", ["habib_fusion_synthetic_loo", "mri_attention_synthetic_3x3",
                                  "qi_mtnet_snnet_basic_reduced", "qi_mtnet_snnet_rem_reduced"])
def test_paper_run_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.toml")
    if name.startswith("qi_"):
        assert cfg.model.cfg["lam"] == (0.0 if "basic" in name else 1.0)
        if not (SHARED / "busi-dev").is_dir():
            pytest.skip("../shared/data/busi-dev is absent (dev data not in this clone)")
        from engine.train.data import load_dataset

        ds = load_dataset(cfg)
        assert len(ds) > 400


@pytest.mark.slow
def test_mri_3x3_reduced_budget_run() -> None:
    """The docs/results.md run (minutes on 2 CPU cores)."""
    from engine.train.protocols import cross_validate

    cfg = load_config(REPO / "configs" / "mri_attention_synthetic_3x3.toml")
    out = cross_validate(cfg, protocol="repeated-kfold", folds=3, repeats=3)
    assert len(out["per_fold"]) == 9 and len(out["per_task"]) == 5
