"""The shipped default models (resources/models): contract, integrity, and that they score images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.models.weights import models_root, read_spec, sha256_file

ROOT = Path(__file__).resolve().parents[2] / "resources" / "models"
DEFAULTS = json.loads((ROOT / "defaults.json").read_text()) if (ROOT / "defaults.json").is_file() else {}
BUSI_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"
FOLDERS = sorted(set(DEFAULTS.values()))


def test_defaults_cover_the_modalities() -> None:
    assert set(DEFAULTS) >= {"US", "MG"}
    for mod, name in DEFAULTS.items():
        assert (ROOT / name / "spec.json").is_file(), f"{mod} -> {name} has no spec.json"
        assert read_spec(ROOT / name).modality == mod


@pytest.mark.parametrize("name", FOLDERS)
def test_folder_contract(name: str) -> None:
    d = ROOT / name
    spec = read_spec(d)
    assert spec.name == name
    assert sha256_file(d / "weights.pt") == spec.sha256
    assert (d / "weights.pt").stat().st_size < 50e6
    card = (d / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "not a diagnosis" in card and spec.sha256 in card
    assert "95 %" in card or "95%" in card
    if spec.synthetic:
        assert "SYNTHETIC" in card
    else:
        assert "Licence" in card or "licence" in card
    if spec.modality == "MG":
        assert (d / "MIAS_Licence.txt").is_file()  # the MIAS licence travels with derived weights


def test_mri_default_is_marked_synthetic() -> None:
    if "MR" not in DEFAULTS:
        pytest.skip("no MR default shipped")
    assert read_spec(ROOT / DEFAULTS["MR"]).synthetic is True


@pytest.mark.parametrize("name", FOLDERS)
def test_shipped_weights_under_the_30_mb_file_limit(name: str) -> None:
    assert (ROOT / name / "weights.pt").stat().st_size < 30e6


def test_mri_default_is_the_resnet18_variant_and_loads() -> None:
    """The MR default is the ResNet-18 attention variant (ResNet-50 weights were 47 MB) and scores a slice."""
    if "MR" not in DEFAULTS:
        pytest.skip("no MR default shipped")
    from engine.data.synthetic import synthetic_mri_case
    from engine.inference import load_predictor

    assert read_spec(ROOT / DEFAULTS["MR"]).model == "mri_attention_resnet18"
    pred = load_predictor("MR")
    case = synthetic_mri_case(100001, malignant=True, n_slices=6, size=96)
    assert pred.predict(case["volume"][3]) == pytest.approx(pred.predict_batch([case["volume"][3]])[0], abs=1e-6)


def test_mri_default_reproduces_its_cards_test_auc() -> None:
    """The Predictor (what score and the app run) re-scores the card's independent SYNTHETIC test
    set (seeds 100000-100099, the slice through each lesion) and gets the card's malignancy AUC;
    another preprocessing, output index or untrained weights would not (float16 weights: 2e-3)."""
    if "MR" not in DEFAULTS:
        pytest.skip("no MR default shipped")
    from engine.data.synthetic import MRI_TASKS, synthetic_mri_case
    from engine.inference import load_predictor
    from engine.stats.roc import empirical_auc as auc
    from engine.train.recipes import _mri_item

    spec = read_spec(ROOT / DEFAULTS["MR"])
    want = spec.metrics["test_auc_delong_ci95"]["malignancy"][0]
    items = [_mri_item(s, 10, 128, MRI_TASKS, synthetic_mri_case) for s in range(100000, 100100)]
    p = load_predictor("MR").predict_batch([it.image for it in items])
    assert float(auc(np.array([it.label for it in items]), np.array(p))) == pytest.approx(want, abs=2e-3)


def test_models_root_is_this_folder() -> None:
    assert models_root().resolve() == ROOT.resolve()


def test_mg_default_scores_a_box() -> None:
    from engine.data.synthetic import synthetic_mammogram
    from engine.inference import load_predictor

    pred = load_predictor("MG")
    mg = synthetic_mammogram(2, rows=512, cols=416)
    img8 = (mg["image"] / 16).astype(np.uint8)
    p = pred.predict(img8, box=mg["box"])
    assert 0.0 <= p <= 1.0
    p2 = pred.predict(img8[:, ::-1].copy(), box=(416 - mg["box"][2], mg["box"][1], 416 - mg["box"][0], mg["box"][3]))
    assert abs(p - p2) < 0.05  # the chest wall is turned to the left first: mirror-invariant


@pytest.mark.skipif(not BUSI_DEV.is_dir(), reason="busi-dev not available")
def test_us_default_is_trained_not_random() -> None:
    """Sanity on training images (NOT a performance figure): malignant ones score higher."""
    from engine.data.busi import load_busi, read_gray
    from engine.inference import load_predictor

    pred = load_predictor("US")
    recs = load_busi(BUSI_DEV)
    ben = [r for r in recs if r.label == 0][:6]
    mal = [r for r in recs if r.label == 1][:6]
    pb = pred.predict_batch([read_gray(r.image) for r in ben])
    pm = pred.predict_batch([read_gray(r.image) for r in mal])
    assert np.mean(pm) > np.mean(pb) + 0.2
