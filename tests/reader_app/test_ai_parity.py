"""Parity: every shipped default scores 20 real images identically (1e-5) through evaluate's data
path (engine.train.recipes: the app's reader + spec.transforms() + the network), `breast-engine
score` and the GUI's AI service (reader_app.ai.AIService on the engine's case scorer).

US: 20 BUSI images (busi-dev); MG: 20 mini-MIAS lesions in their annotation boxes (mias-dev);
MR (SYNTHETIC model): 20 synthetic slices written as 16-bit PNGs. Skips without ../shared/data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
N = 20


def _demo_items(modality: str):
    """The bundled demo's images of a modality (real BUSI / mini-MIAS copies) with the demo's boxes."""
    from engine.cases import load_study
    from engine.io.reader import read_image
    from engine.train.recipes import Item

    study = load_study(ROOT / "resources" / "demo")
    out = []
    for case in study.cases:
        cid = case.case_id
        for ci in case.images:
            if ci.modality == modality and not ci.synthetic and Path(ci.path).is_file():
                box = case.lesion_box(ci.image_id)
                out.append(Item(f"{cid}/{ci.image_id}", read_image(str(ci.path)), 0, cid,
                                box=None if box is None else tuple(float(v) for v in box), modality=modality,
                                path=str(ci.path)))
    return out


def _items(config: str, n: int = N):
    """The demo's images of the modality, then the dev data's up to n (the demo alone without ../shared)."""
    from engine.train.config import load_config
    from engine.train.recipes import load_items

    cfg = load_config(ROOT / "configs" / config)
    demo = _demo_items(cfg.ship.modality)
    if cfg.ship.modality == "MG":
        demo = [it for it in demo if it.box is not None]
    if cfg.data.kind != "synthetic_mri" and not Path(cfg.data.path).is_dir():
        if len(demo) < 3:
            pytest.skip(f"needs the dev data ({cfg.data.path}; ../shared/data beside the clone)")
        return demo
    if cfg.data.kind == "mias_lesions":
        cfg.data.path = str(SHARED / "mias-dev")
    items = load_items(cfg)
    k = n - len(demo)
    if cfg.data.kind == "busi":  # both classes among the dev images
        items = [it for it in items if it.label == 1][: k // 2] + [it for it in items if it.label == 0][: k - k // 2]
    return demo + items[:k]


def _gui_scores(items, modality: str, tmp: Path, model: str | None = None) -> list[float]:
    from engine.cases import Annotation, Case, CaseImage
    from reader_app.ai import AIService

    svc = AIService()
    if model is not None:
        svc.model_choice[modality] = model
    out = []
    for i, it in enumerate(items):
        # synthetic MR images are flagged so: a synthetic-trained MR model scores no real MRI (issue 13)
        case = Case(f"c{i}", tmp, images=[CaseImage("img", Path(it.path), modality, synthetic=modality == "MR")],
                    synthetic=modality == "MR")
        if it.box is not None:
            x0, y0, x1, y1 = it.box
            case.annotations.append(Annotation("img", "box", [[x0, y0], [x1, y1]]))
        from engine.io.reader import read_image

        res = svc.score_case(case, {"img": read_image(it.path)}, ())
        assert "img" in res.per_image, res.errors
        out.append(res.per_image["img"])
    return out


def _cli_scores(items, modality: str, tmp: Path, model: str | None = None) -> list[float]:
    man = tmp / "manifest.csv"
    with man.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "modality", "x0", "y0", "x1", "y1"])
        for it in items:
            w.writerow([it.path, modality, *(it.box if it.box is not None else ("", "", "", ""))])
    out = tmp / "scores.csv"
    assert main(["score", "--manifest", str(man), "--out", str(out), *(["--model", model] if model else [])]) == 0
    with out.open() as fh:
        return [float(r["score"]) for r in csv.DictReader(fh)]


def _check(config: str, weights: str, modality: str, items, tmp: Path) -> None:
    from engine.models.weights import default_weights, load_weights
    from engine.train.recipes import score_items

    model, spec = load_weights(weights)
    evaluated = score_items(model, spec, items)
    assert len(set(np.round(evaluated, 3))) > 2  # real, varied scores
    explicit = None if default_weights(modality) == weights else weights
    assert _cli_scores(items, modality, tmp, explicit) == pytest.approx(evaluated, abs=1e-5)
    assert _gui_scores(items, modality, tmp, explicit) == pytest.approx(evaluated, abs=1e-5)


def test_us_whole_image_model_parity(tmp_path: Path) -> None:
    """The whole-image US model (the previous default; the lesion model's context part)."""
    _check("us_effnet_lite0_busi.toml", "us_effnet_lite0_busi", "US", _items("us_effnet_lite0_busi.toml"), tmp_path)


def test_us_default_is_the_lesion_model_and_scores_alike_everywhere(tmp_path: Path) -> None:
    """The US default (lesion-centred, calibrated): the engine's lesion pipeline, `score` and the
    GUI's AI service give the same calibrated score, with the reader's box and without one (finder)."""
    from engine.inference import Predictor
    from engine.models.weights import default_weights

    assert default_weights("US") == "us_lesion_lite0_busi"
    items = _items("us_effnet_lite0_busi.toml", 12)
    for i, it in enumerate(items):  # half with a box around the image centre, half without (finder)
        if i % 2 and it.box is None:
            h, w = np.asarray(getattr(it.image, "pixels", it.image)).shape[:2]
            it.box = (w * 0.3, h * 0.3, w * 0.7, h * 0.6)
        elif not i % 2:
            it.box = None
    pred = Predictor("us_lesion_lite0_busi", "cpu")
    assessed = [pred.assess(it.image, it.box) for it in items]
    want = [a.score for a in assessed]
    assert {a.box_source for a in assessed} == {"reader", "finder"}
    assert len(set(np.round(want, 3))) > 2
    assert _cli_scores(items, "US", tmp_path) == pytest.approx(want, abs=1e-5)
    assert _gui_scores(items, "US", tmp_path) == pytest.approx(want, abs=1e-5)


def test_mg_frozen_head_model_parity(tmp_path: Path) -> None:
    """The frozen-head MG lesion model (the previous default), by name."""
    _check("mg_effnet_lite0_mias_lesion.toml", "mg_effnet_lite0_mias_lesion", "MG",
           _items("mg_effnet_lite0_mias_lesion.toml"), tmp_path)


def test_mg_default_is_the_calibrated_lesion_model_and_scores_alike_everywhere(tmp_path: Path) -> None:
    """The MG default (clean film, reader's box, Platt-calibrated, OOD): the engine's lesion
    pipeline, `score` and the GUI's AI service give the same calibrated score for real mini-MIAS
    lesion boxes."""
    from engine.inference import Predictor
    from engine.models.weights import default_weights

    assert default_weights("MG") == "mg_lesion_lite0_mias"
    items = _items("mg_effnet_lite0_mias_lesion.toml")
    assert all(it.box is not None for it in items)
    pred = Predictor("mg_lesion_lite0_mias", "cpu")
    assessed = [pred.assess(it.image, it.box) for it in items]
    want = [a.score for a in assessed]
    assert {a.box_source for a in assessed} == {"reader"}
    assert len(set(np.round(want, 4))) > 2
    assert _cli_scores(items, "MG", tmp_path) == pytest.approx(want, abs=1e-5)
    assert _gui_scores(items, "MG", tmp_path) == pytest.approx(want, abs=1e-5)


def test_mr_default_parity(tmp_path: Path) -> None:
    """SYNTHETIC MR slices (the model is synthetic-only): 16-bit PNG files read back bit-exactly."""
    from engine.train.config import load_config
    from engine.train.recipes import load_items

    cfg = load_config(ROOT / "configs" / "mri_attention_synthetic_default.toml",
                      ["data.synthetic_n=20", "data.synthetic_seed=500"])
    items = load_items(cfg)
    for it in items:
        f = tmp_path / f"{it.item_id}.png"
        cv2.imwrite(str(f), np.asarray(it.image, np.uint16))
        it.path = str(f)
    _check("mri_attention_synthetic_default.toml", "mri_attention_synthetic", "MR", items, tmp_path)


def test_gui_window_shows_the_shipped_models_scores(qtbot, data_dir, monkeypatch, tmp_path) -> None:
    """The real window, the real shipped weights, the bundled demo: the panel's US score is the
    engine predictor's calibrated score of that image with the reader's box (the lesion-centred
    default uses it), the OOD figure sits beside it, and the overlay is the model's own
    (mask-supervised attention)."""
    from engine.inference import load_predictor
    from reader_app.main import demo_study_dir, preload_engine
    from reader_app.qt_main import MainWindow

    monkeypatch.delenv("BREAST_READER_MODELS")
    if not (demo_study_dir() / "study.json").exists():
        pytest.skip("no bundled demo study")
    import shutil

    demo = tmp_path / "demo"
    shutil.copytree(demo_study_dir(), demo)  # the reader's box below must not be saved into the bundle
    preload_engine()
    win = MainWindow(ai_display="always")  # reading default is "after_rating" (issue-17); this checks scores
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    with qtbot.waitSignal(win.case_loaded, timeout=30000):
        win.open_study(demo)
    if win.state.current.case.case_id != "demo-01":
        with qtbot.waitSignal(win.case_loaded, timeout=30000):
            win.state.select_case("demo-01")
    case = win.state.current.case
    win.state.new_annotation("us_1", "box", [[5, 5], [40, 40]])  # a reader's box: the lesion model uses it
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.score_case()
    res = win.ai_result
    assert res is not None and res.models["US"].name == "us_lesion_lite0_busi"
    us_img = win.images["us_1"]
    box = case.reader_box("us_1")  # the reader's own box (the BUSI truth box on us_1 never reaches the AI)
    a = load_predictor("US").assess(us_img, box)
    assert res.per_image["us_1"] == pytest.approx(a.score, abs=1e-5)
    assert res.lesion["us_1"].box_source == "reader" and res.lesion["us_1"].box == a.box
    text = win.ai_panel.scores.text()
    assert f"calibrated p = <b>{res.per_modality['US']:.2f}</b>" in text and "OOD" in text
    assert all(v.view_state.method == "own" for v in win.views)
    sal = res.saliency[("us_1", "own")]
    assert sal.shape == us_img.pixels.shape[:2]
    assert sal == pytest.approx(load_predictor("US").assess(us_img, box, saliency="attention").saliency.map, abs=1e-5)
    assert case.case_id == "demo-01"
