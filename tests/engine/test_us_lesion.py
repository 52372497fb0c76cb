"""Ultrasound cleaning, calibration / OOD statistics and the lesion-centred US pipeline."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.imaging.ultrasound import clean_ultrasound, marker_mask, scan_area, scanner_shift
from engine.stats.calibration import apply_platt, expected_calibration_error, fit_platt, fit_temperature, reliability
from engine.stats.ood import fit_mahalanobis, fit_subspace_distance, mahalanobis, ood_threshold, subspace_distance

BUSI_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"
needs_busi = pytest.mark.skipif(not (BUSI_DEV / "labels.csv").is_file(), reason="shared/data/busi-dev not present")

# BUSI images with burned-in calipers/text (looked at), and images without any marks.
MARKED = ("malignant_114", "benign_278", "benign_5", "benign_242", "malignant_61")
CLEAN = ("benign_180", "benign_191", "benign_124", "malignant_8")


def _busi(name: str) -> np.ndarray:
    a = cv2.imread(str(BUSI_DEV / "images" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    assert a is not None
    return a


@needs_busi
def test_marks_found_on_marked_busi_images_and_few_on_clean_ones() -> None:
    marked = [int(marker_mask(_busi(n)).sum()) for n in MARKED]
    clean = [int(marker_mask(_busi(n)).sum()) for n in CLEAN]
    assert min(marked) > 80, marked  # crosses, dotted lines, "LT3", "LT", "T AX"
    assert max(clean) < 60 and max(clean) < 0.7 * min(marked), (marked, clean)


@needs_busi
def test_caliper_cross_is_inpainted_and_lesion_kept() -> None:
    g = _busi("malignant_114")
    m = marker_mask(g)
    c = clean_ultrasound(g)
    x0, y0, x1, y1 = c.area
    before = g[m].astype(float).mean()
    after = c.image[m[y0:y1, x0:x1]].astype(float).mean()
    assert before - after > 40  # bright marks replaced by surrounding speckle
    mask = cv2.imread(str(BUSI_DEV / "masks" / "malignant_114.png"), cv2.IMREAD_GRAYSCALE) > 127
    lesion_changed = np.abs(c.image.astype(int) - g[y0:y1, x0:x1].astype(int))[mask[y0:y1, x0:x1]] > 10
    assert lesion_changed.mean() < 0.05  # the lesion itself is left alone


def test_scan_area_strips_frame_ruler_and_text() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((300, 400), np.uint8)
    img[40:260, 60:360] = np.clip(rng.normal(90, 30, (220, 300)), 10, 255).astype(np.uint8)
    for y in range(40, 260, 20):  # ruler ticks left of the scan area
        img[y:y + 2, 48:56] = 255
    cv2.putText(img, "GE 12L", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1)
    x0, y0, x1, y1 = scan_area(img)
    assert abs(x0 - 60) <= 3 and abs(y0 - 40) <= 3 and abs(x1 - 360) <= 3 and abs(y1 - 260) <= 3


def test_colour_marks_are_marks_and_scanner_shift_keeps_shape() -> None:
    g = np.full((80, 80), 100, np.uint8)
    rgb = np.stack([g, g, g], -1)
    rgb[10:14, 10:30] = (0, 255, 255)
    assert marker_mask(g, rgb)[10:14, 10:30].all() and not marker_mask(g, rgb)[40:, 40:].any()
    out = scanner_shift(g, np.random.default_rng(1))
    assert out.shape == g.shape and out.dtype == np.uint8
    assert np.array_equal(scanner_shift(g, np.random.default_rng(1), strength=0.0, geometry=False), g)


def test_platt_recovers_a_known_miscalibration_and_lowers_ece() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(int)
    over = 1 / (1 + np.exp(-(3 * z + 1)))  # over-confident and shifted
    a, b = fit_platt(over, y)
    assert abs(a - 1 / 3) < 0.05 and abs(b + 1 / 3) < 0.1
    cal = apply_platt(over, a, b)
    assert expected_calibration_error(cal, y) < 0.03 < expected_calibration_error(over, y)
    assert abs(fit_temperature(over, y) - 3.0) < 0.4
    r = reliability(cal, y, 10)
    assert r.counts.sum() == 4000 and len(r.mean_predicted) == 10
    with pytest.raises(ValueError):
        fit_platt(np.array([0.2, 0.3]), np.array([1, 1]))


def test_mahalanobis_flags_shifted_features() -> None:
    rng = np.random.default_rng(0)
    cov = rng.normal(size=(50, 50))
    train = rng.normal(size=(300, 50)) @ cov
    held = rng.normal(size=(200, 50)) @ cov
    mean, W = fit_mahalanobis(train, 16)
    thr = ood_threshold(mahalanobis(held, mean, W), 95)
    # a shift along the main direction of variation (the PCA subspace the distance models)
    _, sv, vt = np.linalg.svd(train - train.mean(0), full_matrices=False)
    shifted = held + 5.0 * sv[0] / np.sqrt(len(train)) * vt[0]
    assert (mahalanobis(held, mean, W) > thr).mean() < 0.1
    assert (mahalanobis(shifted, mean, W) > thr).mean() > 0.9


def test_subspace_distance_also_sees_shifts_outside_the_principal_subspace() -> None:
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(5, 40))
    train = rng.normal(size=(400, 5)) @ basis + 0.05 * rng.normal(size=(400, 40))
    held = rng.normal(size=(200, 5)) @ basis + 0.05 * rng.normal(size=(200, 40))
    fit = fit_subspace_distance(train, 5)
    thr = ood_threshold(subspace_distance(held, *fit), 95)
    _, _, P, _ = fit
    off = np.linalg.svd(np.eye(40) - P.T @ P)[0][:, 0]  # a direction outside the fitted subspace
    shifted = held + 1.0 * off
    assert (subspace_distance(shifted, *fit) > thr).mean() > 0.9
    mean, W = fit_mahalanobis(train, 5)
    assert (mahalanobis(shifted, mean, W) > ood_threshold(mahalanobis(held, mean, W), 95)).mean() < 0.2


def test_lesion_model_cam_is_an_exact_decomposition() -> None:
    from engine.models import get_model

    torch.manual_seed(0)
    m = get_model("lite0_lesion_attention", in_chans=1, pretrained=False).eval()
    x = torch.randn(2, 1, 96, 96)
    logits, ev = m.forward_with_evidence(x)
    margin = logits[:, 1] - logits[:, 0] - (m.head.bias[1] - m.head.bias[0])
    assert torch.allclose(ev.sum(dim=(1, 2)), margin, rtol=1e-3, atol=1e-4)
    assert m.lesion_logits(torch.randn(1, 1, 160, 160)).shape == (1, 1, 40, 40)


# ---- the shipped model through the CLI -------------------------------------------------------
def _read(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_busi
def test_score_saliency_contract_with_the_lesion_model(tmp_path: Path) -> None:
    from engine.cli.main import main

    man = tmp_path / "m.csv"
    g = _busi("malignant_114")
    mask = cv2.imread(str(BUSI_DEV / "masks" / "malignant_114.png"), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(mask)
    img2 = tmp_path / "benign_180.png"
    cv2.imwrite(str(img2), _busi("benign_180"))
    man.write_text("reader,path,modality,x0,y0,x1,y1\n"
                   f"r1,{BUSI_DEV / 'images' / 'malignant_114.png'},US,{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}\n"
                   f"r2,{img2},US,,,,\n")
    out, sal = tmp_path / "o.csv", tmp_path / "sal"
    rc = main(["score", "--model", "us_lesion_lite0_busi", "--manifest", str(man), "--out", str(out),
               "--saliency", str(sal)])
    assert rc == 0
    rows = _read(out)
    assert list(rows[0])[:7] == ["reader", "path", "modality", "x0", "y0", "x1", "y1"]
    assert [r["reader"] for r in rows] == ["r1", "r2"]
    for k in ("box_x0", "box_y0", "box_x1", "box_y1", "ood", "saliency_x", "saliency_y"):
        assert all(r[k] != "" for r in rows), k
    # the reader's box is the lesion box; without one the finder's box is written
    assert [float(rows[0][k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1")] == [
        float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    m1 = np.load(sal / "malignant_114.npy")
    m2 = np.load(sal / "benign_180.npy")
    assert m1.dtype == np.float32 and m1.shape == g.shape and m2.shape == _busi("benign_180").shape
    py, px = np.unravel_index(int(np.argmax(m1)), m1.shape)
    assert (int(rows[0]["saliency_x"]), int(rows[0]["saliency_y"])) == (px, py)
    assert mask[py, px]  # the lesion-supervised overlay peaks in the lesion on this image
    bx = [float(rows[1][k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1")]
    assert 0 <= bx[0] < bx[2] <= m2.shape[1] and 0 <= bx[1] < bx[3] <= m2.shape[0]
    assert 0.0 <= float(rows[0]["score"]) <= 1.0 and float(rows[0]["ood"]) > 0
    assert rows[0]["ood_flag"] in ("0", "1")


@needs_busi
def test_ood_flags_a_mammogram_fed_as_ultrasound() -> None:
    from engine.inference import Predictor
    from engine.io.reader import read_image

    mg = BUSI_DEV.parent / "mias-dev" / "images" / "mdb001.png"
    if not mg.is_file():
        pytest.skip("mias-dev not present")
    p = Predictor("us_lesion_lite0_busi", "cpu")
    a = p.assess(read_image(mg, modality_hint="US"))
    b = p.assess(read_image(BUSI_DEV / "images" / "benign_180.png", modality_hint="US"))
    assert a.ood_flag and a.ood > b.ood and 0.0 <= a.score <= 1.0  # flagged, score still given


def test_score_saliency_on_a_plain_model_keeps_the_pixel_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli.main import main
    from engine.models import get_model
    from engine.models.weights import WeightsSpec, save_weights

    models = tmp_path / "models"
    spec = WeightsSpec(name="tiny_us", model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality="US",
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)")
    torch.manual_seed(0)
    save_weights(get_model("habib_basic_cnn", in_chans=1), spec, models / "tiny_us")
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(imgs / "a.png"), (rng.random((61, 83)) * 255).astype(np.uint8))
    out = tmp_path / "o.csv"
    rc = main(["score", "--model", "tiny_us", "--modality", "US", str(imgs / "a.png"), "--out", str(out),
               "--saliency", str(tmp_path / "s")])
    assert rc == 0
    row = _read(out)[0]
    m = np.load(tmp_path / "s" / "a.npy")
    assert m.shape == (61, 83) and m.dtype == np.float32
    py, px = np.unravel_index(int(np.argmax(m)), m.shape)
    assert (int(row["saliency_x"]), int(row["saliency_y"])) == (px, py)
    assert row["ood"] == "" and row["box_x0"] == ""


def test_lesion_pipeline_on_a_realistic_synthetic_image_keeps_the_pixel_grid() -> None:
    """No shared data needed: a speckle image with a dark hypoechoic ellipse, UI frame and text."""
    from engine.inference import Predictor

    rng = np.random.default_rng(3)
    img = np.zeros((300, 420), np.uint8)
    tissue = np.clip(rng.gamma(2.0, 45.0, (240, 360)), 0, 255).astype(np.uint8)
    cv2.ellipse(tissue, (180, 110), (45, 28), 0, 0, 360, 12, -1)
    img[40:280, 40:400] = tissue
    cv2.putText(img, "L BREAST 12MHz", (45, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    p = Predictor("us_lesion_lite0_busi", "cpu")
    a = p.assess(img, (170, 110, 270, 190), saliency="attention")
    assert a.box_source == "reader" and a.box == (170, 110, 270, 190) and not a.contour
    x0, y0, x1, y1 = a.region
    assert x0 <= 170 and y0 <= 110 and x1 >= 270 and y1 >= 190  # box + context margin
    assert a.saliency is not None and a.saliency.map.shape == img.shape
    outside = a.saliency.map.copy()
    outside[y0:y1, x0:x1] = 0
    assert float(outside.max()) == 0.0 and float(a.saliency.map.max()) == pytest.approx(1.0)
    f = p.assess(img)
    assert f.box_source == "finder" and len(f.contour) >= 3
    fx0, fy0, fx1, fy1 = f.box
    assert 40 <= fx0 < fx1 <= 400 and 40 <= fy0 < fy1 <= 280  # inside the scan area, not in the text
    ex0, ey0, ex1, ey1 = 175, 122, 266, 179  # the dark ellipse (centre 220,150; axes 45 x 28)
    inter = max(0, min(fx1, ex1) - max(fx0, ex0)) * max(0, min(fy1, ey1) - max(fy0, ey0))
    union = (fx1 - fx0) * (fy1 - fy0) + (ex1 - ex0) * (ey1 - ey0) - inter
    assert inter / union > 0.5  # the finder found the hypoechoic mass
    assert 0.0 <= f.score <= 1.0 and 0.0 <= f.raw_score <= 1.0


@needs_busi
def test_finder_options_mirror_map_and_margins_change_only_the_no_box_score() -> None:
    """spec.extra finder_tta / finder_margins (the recipe's ship.finder_*): a reader's box is scored
    as before; the finder's box at several margins is the mean logit of each margin's score."""
    from engine.inference import Predictor
    from engine.stats.calibration import logit

    img = _busi("malignant_8")
    p = Predictor("us_lesion_lite0_busi", "cpu")
    assert p.lesion is not None
    p.lesion.context_name, p.lesion.context_weight = None, 0.0  # the lesion crop's own logit
    box = (100.0, 80.0, 220.0, 170.0)
    base_box, base = p.assess(img, box), p.assess(img)
    per_margin = []
    for mg in (0.3, 0.5):
        p.lesion.finder_margins = [mg]
        per_margin.append(float(logit(np.array([p.assess(img).raw_score]))[0]))
    assert per_margin[0] == pytest.approx(float(logit(np.array([base.raw_score]))[0]), abs=1e-6)
    p.lesion.finder_margins = [0.3, 0.5]
    both = p.assess(img)
    assert float(logit(np.array([both.raw_score]))[0]) == pytest.approx(np.mean(per_margin), abs=1e-4)
    assert both.region == base.region and p.assess(img, box).raw_score == pytest.approx(base_box.raw_score, abs=1e-7)
    p.lesion.finder_margins = [0.3]
    p.lesion.finder_tta = True
    _, _, prob = p.lesion.find(img)
    p.lesion.finder_tta = False
    _, _, prob0 = p.lesion.find(img)
    p.lesion.finder_tta = True
    _, _, prob_m = p.lesion.find(img[:, ::-1].copy())  # the mirror image's map, seen from the other side
    assert np.abs(prob - prob0).max() > 1e-3  # the mirror pass changes the map ...
    assert prob == pytest.approx(prob_m[:, ::-1], abs=2e-2)  # ... and makes it mirror-symmetric


def test_candidate_boxes_by_mass_worked_by_hand() -> None:
    from engine.lesion_us import box_from_prob, candidate_boxes

    p = np.zeros((50, 60), np.float32)
    p[5:15, 5:15] = 0.9  # mass 90: the largest region
    p[30:35, 40:50] = 0.8  # mass 40: kept (>= 25 % of 90)
    p[45:47, 2:4] = 0.6  # mass 2.4: dropped (< 25 %)
    c = candidate_boxes(p)
    assert [b for b, _ in c] == [(5, 5, 15, 15), (40, 30, 50, 35)]
    assert [round(m, 3) for _, m in c] == [90.0, 40.0]
    assert c[0][0] == box_from_prob(p)[0]
    assert len(candidate_boxes(p, most=1)) == 1 and len(candidate_boxes(p, keep=0.01)) == 3
    q = np.full((10, 10), 0.2, np.float32)  # nothing above 0.5: the region above half the maximum
    assert candidate_boxes(q) == [((0, 0, 10, 10), pytest.approx(20.0))]
