"""`breast-engine evaluate --protocol mri_localiser` (engine.train.mri_localiser) on a tiny
SYNTHETIC outlines folder in the mimbcd-dev layout, and its scoring worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main
from engine.errors import ConfigError

CONFIG = """
[data]
kind = "mimbcd_outlines"
path = "{data}"
image_size = [64, 64]

[model]
name = "mri_attention_resnet18"

[optim]
name = "adam"
lr = 3e-4

[train]
epochs = 1
batch_size = 4
seed = 0
threads = 1

[localiser]
init = "mri_attention_synthetic"
n_boot = 50
"""


def _outlines(root: Path, patients: int = 4, per_patient: int = 2) -> Path:
    """SYNTHETIC slices (speckle, one bright disc = the outlined lesion) and their outlines.json."""
    rng = np.random.default_rng(0)
    outlines = []
    for p in range(patients):
        for k in range(per_patient):
            img = (rng.random((96, 128)) * 40 + 20).astype(np.uint8)
            cx, cy = 30 + 20 * p, 30 + 15 * k
            cv2.circle(img, (cx, cy), 6, 250, -1)
            rel = f"mri/p{p}/s{k}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), img)
            outlines.append({"id": f"p{p}-s{k}", "patient_id": f"p{p}", "modality": "MR", "path": rel,
                             "bbox": [cx - 6, cy - 6, cx + 7, cy + 7]})
    outlines.append({"id": "us", "patient_id": "p0", "modality": "US", "path": "none.png", "bbox": [0, 0, 1, 1]})
    (root / "outlines.json").write_text(json.dumps({"outlines": outlines}))
    return root


def test_score_map_pointing_and_iou_worked_by_hand() -> None:
    from engine.train.mri_localiser import score_map

    m = np.zeros((16, 16), np.float32)
    m[4:8, 4:8] = 1.0  # region at half max: the box (4, 4, 8, 8)
    m[5, 6] = 2.0  # peak at column 6, row 5
    assert score_map(m, (4.0, 4.0, 8.0, 8.0)) == (1, pytest.approx(1 / 16))  # only the peak is above half max
    m[4:8, 4:8] = 1.5
    hit, iou = score_map(m, (4.0, 4.0, 12.0, 8.0))  # box twice the region: IoU 1/2
    assert hit == 1 and iou == pytest.approx(0.5)
    assert score_map(m, (10.0, 10.0, 14.0, 14.0)) == (0, 0.0)  # peak outside, no overlap


def test_protocol_runs_from_a_config_and_groups_patients(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _outlines(tmp_path / "mimbcd")
    cfg = tmp_path / "loc.toml"
    cfg.write_text(CONFIG.format(data=data))
    out = tmp_path / "res.json"
    assert main(["evaluate", "--config", str(cfg), "--protocol", "mri_localiser", "--folds", "2", "--quiet",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_slices"] == 8 and res["n_patients"] == 4 and len(res["per_slice"]) == 8
    folds = {}
    for r in res["per_slice"]:
        folds.setdefault(r["patient"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in folds.values())  # no patient in two folds
    # the lesion is the brightest thing in each slice: the no-learning baseline always points at it
    assert res["metrics"]["brightest"]["hit"]["mean"] == 1.0
    assert res["metrics"]["brightest"]["iou"]["mean"] > 0.2
    assert set(res["metrics"]) == {"brightest", "synthetic_zero_shot", "finetuned"}
    assert 0 < res["chance_pointing"] < 0.05 and res["budget"]["input"] == [64, 64]
    assert "result:" in capsys.readouterr().out


def test_protocol_refuses_other_kinds_and_other_protocols(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.train.config import load_config
    from engine.train.data import load_dataset
    from engine.train.mri_localiser import evaluate_mri_localiser

    data = _outlines(tmp_path / "mimbcd")
    cfg_path = tmp_path / "loc.toml"
    cfg_path.write_text(CONFIG.format(data=data))
    assert main(["evaluate", "--config", str(cfg_path), "--protocol", "kfold", "--quiet"]) != 0
    assert "mri_localiser" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="mri_localiser"):
        load_dataset(load_config(cfg_path))
    other = load_config(cfg_path, ["data.kind=image_folder_csv"])
    with pytest.raises(ConfigError, match="mimbcd_outlines"):
        evaluate_mri_localiser(other)
    (data / "outlines.json").unlink()
    with pytest.raises(ConfigError, match="outlines.json"):
        evaluate_mri_localiser(load_config(cfg_path))
