"""`breast-engine ship` of the ultrasound lesion recipe (`train.mode = "us_lesion"`) on a tiny
SYNTHETIC BUSI-layout folder: same config + seed -> same bytes, another seed -> other weights,
the card's figures are `evaluate --protocol recipe` of the same config, the whole-image context
scores come from the context config's own recipe."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main
from tests.engine.tiny_study import TinyBusi


CONTEXT = """
[data]
kind = "busi"
path = "{data}"

[model]
name = "efficientnet_lite0"

[model.cfg]
num_classes = 2
in_chans = 3
pretrained = false

[train]
mode = "linear_probe"
seed = 1
threads = 1

[ship]
name = "tiny_ctx"
modality = "US"
c = 0.1
folds = 2
repeats = 2
parity_images = 1
synthetic = true

[ship.preprocess]
size = [32, 32]
in_chans = 3
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
crop = "whole"
box = "ignored"
resize = "stretch"
"""

LESION = """
[data]
kind = "busi"
path = "{data}"
box_margin = 0.3

[model]
name = "lite0_lesion_attention"

[model.cfg]
num_classes = 2
in_chans = 1
pretrained = false
ood_dims = 4  # 14 images: the OOD subspace is capped by the sample

[train]
mode = "us_lesion"
seed = 2
epochs = 1
threads = 1

[ship]
name = "tiny_lesion"
modality = "US"
c = 0.1
folds = 2
ood_percentile = 90.0
context_config = "ctx.toml"
parity_images = 2
synthetic = true
"""


@pytest.fixture
def configs(tmp_path: Path, tiny_busi: TinyBusi, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tiny_busi(n=14, normals=2)
    (tmp_path / "ctx.toml").write_text(CONTEXT.format(data=data))
    (tmp_path / "lesion.toml").write_text(LESION.format(data=data))
    models = tmp_path / "models"
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))  # the context model the predictor loads
    assert main(["ship", str(tmp_path / "ctx.toml"), "--out", str(models / "tiny_ctx"), "--quiet"]) == 0
    return tmp_path


@pytest.mark.slow
def test_us_lesion_ship_same_bytes_card_is_evaluate_seed_changes_weights(configs: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = configs / "lesion.toml"
    a, b = configs / "a", configs / "b"
    assert main(["ship", str(cfg), "--out", str(a), "--quiet"]) == 0
    assert main(["ship", str(cfg), "--out", str(b), "--quiet"]) == 0
    for f in ("weights.pt", "spec.json", "MODEL_CARD.md"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    spec = json.loads((a / "spec.json").read_text())
    ex = spec["extra"]
    assert ex["pipeline"] == "us_lesion" and ex["context_model"] == "tiny_ctx" and ex["context_weight"] == 0.5
    assert len(ex["platt"]) == 2 and np.isfinite(ex["ood_threshold"]) and spec["synthetic"] is True
    m = spec["metrics"]
    assert m["n_images"] == 14 and m["n_lesion"] == 12
    # the context model's out-of-fold scores: one partition per repeat of its own recipe
    assert len(m["cv_auc"]["box"]["partitions"]) == 2 and "context_only" in m["cv_auc"]["box"]["partitions"][0]
    assert 0.0 <= m["finder"]["dice"][0] <= 1.0 and m["pointing"]["centre_all"][3] == 12
    capsys.readouterr()
    assert main(["evaluate", "--config", str(cfg), "--protocol", "recipe", "--json", "--quiet"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated == m  # the card's figures are evaluate's, on the same config
    card = (a / "MODEL_CARD.md").read_text()
    assert spec["sha256"] in card and "SYNTHETIC" in card
    assert f"{m['cv_auc']['box']['partitions'][0]['combined'][0]:.3f}" in card
    c = configs / "c"
    assert main(["ship", str(cfg), "--out", str(c), "--quiet", "--set", "train.seed=3"]) == 0
    assert (c / "weights.pt").read_bytes() != (a / "weights.pt").read_bytes()


def test_us_lesion_needs_busi_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(LESION.replace('kind = "busi"', 'kind = "mias_lesions"').format(data=tmp_path)
                   .replace('context_config = "ctx.toml"\n', ""))
    assert main(["ship", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) != 0
    assert "us_lesion" in capsys.readouterr().err


def test_the_shipped_us_default_is_described_by_its_config() -> None:
    """configs/us_lesion_lite0_busi.toml names the shipped folder, its context model's config and
    the leave-source-out data; the shipped spec carries that recipe's figures (no hand-typed ones)."""
    from engine.train.config import load_config

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "configs" / "us_lesion_lite0_busi.toml")
    assert cfg.train.mode == "us_lesion" and cfg.ship.name == "us_lesion_lite0_busi"
    ctx = load_config(cfg.ship.context_config)
    assert Path(cfg.ship.context_config).name == "us_effnet_lite0_busi.toml" and ctx.train.mode == "linear_probe"
    assert Path(cfg.ship.lso_data).name == "mimbcd-dev"
    spec = json.loads((repo / "resources" / "models" / cfg.ship.name / "spec.json").read_text())
    assert spec["extra"]["context_model"] == ctx.ship.name and spec["extra"]["box_margin"] == cfg.data.box_margin
    m = spec["metrics"]
    assert m["recipe"].startswith("us_lesion") and len(m["cv_auc"]["box"]["partitions"]) == ctx.ship.repeats
    assert spec["extra"]["platt"] == m["calibration"]["box"]["platt_all"]
    assert spec["extra"]["ood_threshold"] == m["ood"]["threshold"]
    assert "NOT pathology" in m["leave_source_out_birads"]["label"]


def _synthetic_mimbcd(root: Path, busi: Path) -> Path:
    """A SYNTHETIC mimbcd-dev layout: 6 patients' ultrasound DICOMs (the tiny BUSI images), BI-RADS
    labels (3 of them >= 4) and one outline box per image."""
    from engine.io.writer import write_dicom

    rows = ["patient_id,birads_final,ai_birads_uta11"]
    outlines = []
    imgs = sorted((busi / "images").glob("*.png"))
    for i in range(6):
        pid = f"mimbcd-p{i + 17:02d}"
        src = [p for p in imgs if ("malignant" in p.name) == (i % 2 == 1)][i // 2]
        px = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
        rel = f"us/{pid}/US01.dcm"
        (root / "us" / pid).mkdir(parents=True)
        write_dicom(root / rel, px, modality="US", patient_id=pid)
        rows.append(f"{pid},,{5 if i % 2 else 2}")
        outlines.append({"modality": "US", "path": rel, "bbox": [20.0, 20.0, 70.0, 60.0]})
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "outlines.json").write_text(json.dumps({"outlines": outlines}))
    return root


@pytest.mark.slow
def test_compare_and_saliency_protocols_write_reproducible_results(configs: Path) -> None:
    """--protocol saliency (out-of-fold pointing of the whole-image config) and --protocol compare
    (shipped lesion model vs its context model) on SYNTHETIC data: the same JSON twice."""
    lso = _synthetic_mimbcd(configs / "mimbcd", configs / "busi")
    cfg = configs / "lesion.toml"
    cfg.write_text(cfg.read_text() + f'lso_data = "{lso}"\n')
    models = configs / "models"
    assert main(["ship", str(cfg), "--out", str(models / "tiny_lesion"), "--quiet"]) == 0
    lso_m = json.loads((models / "tiny_lesion" / "spec.json").read_text())["metrics"]["leave_source_out_birads"]
    # the recipe's leave-source-out check also scores the lesion crop alone and the context model
    assert lso_m["context_model"]["name"] == "tiny_ctx" and lso_m["no box"]["n_patients"] == 6
    assert len(lso_m["lesion_crop_only"]["no box"]) == 3 and len(lso_m["context_model"]["no box paired_diff_se_z_p"]) == 4
    card = (models / "tiny_lesion" / "MODEL_CARD.md").read_text()
    assert "## Default? (this model vs `tiny_ctx`" in card and "lesion crop only AUC" in card
    outs = []
    for proto, conf in (("saliency", configs / "ctx.toml"), ("compare", cfg)):
        for k in range(2):
            out = configs / f"{proto}{k}.json"
            assert main(["evaluate", "--config", str(conf), "--protocol", proto, "--out", str(out), "--quiet"]) == 0
            r = json.loads(out.read_text())
            r.pop("wall_s")
            outs.append(r)
    sal, sal2, cmp_, cmp2 = outs
    assert sal == sal2 and cmp_ == cmp2
    assert sal["all"]["model"]["n"] == 12 and sal["all"]["centre_prior"]["n"] == 12
    assert 0 <= sal["all"]["model"]["hit"]["rate"] <= 1 and len(sal["peaks_xy"]) == 12
    assert cmp_["models"] == ["tiny_lesion", "tiny_ctx"]
    nb = cmp_["leave_source_out_mimbcd"]["no box"]
    assert nb["n_patients"] == 6 and nb["n_birads_ge4"] == 3 and len(nb["per_patient"]) == 6
    # the recipe and the protocol score the same images through the same installed predictors
    assert nb["tiny_lesion"][0] == pytest.approx(lso_m["no box"]["auc_birads4_vs_le3"][0], abs=1e-4)
    assert len(cmp_["calibration_whole_model"]["ece_oof_per_partition"]) == 2
    assert cmp_["pointing_whole_model"][f"{sal['method']}_all"][3] == 12


def test_pointing_game_localisation_worked_by_hand() -> None:
    from engine.train.saliency_oof import centre_prior, localisation

    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 1  # area share 100 / 1600
    sal = np.zeros((40, 40), np.float32)
    sal[15, 15] = 3.0  # peak inside, 3/4 of the mass inside
    sal[35, 35] = 1.0
    r = localisation(sal, mask)
    assert r["hit"] == 1.0 and r["hit_tol"] == 1.0
    assert r["mass_share"] == pytest.approx(0.75) and r["enrichment"] == pytest.approx(0.75 / (100 / 1600))
    sal[15, 15] = 0.5  # the peak moves outside, 25 px from the mask: a miss even with tolerance
    r = localisation(sal, mask)
    assert r["hit"] == 0.0 and r["hit_tol"] == 0.0
    sal[:] = 0
    sal[28, 15] = 1.0  # 9 px below the mask: outside, but within the 15 px tolerance
    r = localisation(sal, mask)
    assert r["hit"] == 0.0 and r["hit_tol"] == 1.0
    c = centre_prior((41, 61))
    assert np.unravel_index(int(np.argmax(c)), c.shape) == (20, 30)
