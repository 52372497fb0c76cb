"""Dataset truth boxes never reach the AI as the reader's box (issue 17): the AI scores the
reader's own box, else its finder proposes one. Checked on the bundled demo case demo-01, whose
mini-MIAS film and BUSI ultrasound both carry dataset truth regions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui_helpers import drag, image_point

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"


@pytest.fixture()
def demo_copy(tmp_path: Path) -> Path:
    if not (DEMO / "study.json").exists():
        pytest.skip("no bundled demo study")
    dst = tmp_path / "demo"
    shutil.copytree(DEMO, dst)  # the reader's box drawn below must not be saved into the bundle
    return dst


def test_case_input_leaves_truth_boxes_out(demo_copy: Path) -> None:
    from engine.cases import Annotation, load_study
    from engine.inference.case import case_input
    from reader_app.imaging import ImageCache, load_case_images

    case = load_study(demo_copy).case("demo-01")
    truth = [a for a in case.annotations if a.is_truth]
    assert {a.image_id for a in truth} >= {"us_1", "mg_mlo"}  # the demo case carries truth boxes
    images, errors = load_case_images(case, ImageCache())
    assert not errors
    assert all(ci.box is None for ci in case_input(case, images).images)  # truth is no lesion box
    case.annotations.append(Annotation("us_1", "box", [[10, 12], [60, 50]], author="reader"))
    boxes = {ci.image_id: ci.box for ci in case_input(case, images).images}
    assert boxes == {"mg_mlo": None, "us_1": (10.0, 12.0, 60.0, 50.0)}
    assert case.reader_box("us_1") == (10, 12, 60, 50) and case.lesion_box("us_1") != case.reader_box("us_1")


def test_workstation_scores_the_readers_box_never_the_truth_box(make_window, loader, demo_copy: Path,
                                                                qtbot) -> None:
    win = make_window()
    with qtbot.waitSignal(win.case_loaded, timeout=30000):
        win.open_study(demo_copy)
    if win.state.current.case.case_id != "demo-01":
        with qtbot.waitSignal(win.case_loaded, timeout=30000):
            win.state.select_case("demo-01")
    qtbot.wait(50)
    with qtbot.waitSignal(win.ai_finished, timeout=30000):
        qtbot.keyClick(win.centralWidget(), Qt.Key.Key_A)  # score the case: no reader box yet
    assert loader.made["US"].boxes == [None] and loader.made["MG"].boxes == [None]
    us = next(v for v in win.views if v.slot.image_id == "us_1")
    w, h = us.image_size()
    truth_box = win.state.current.case.lesion_box("us_1")
    win.set_active(win.views.index(us))
    qtbot.keyClick(win.centralWidget(), Qt.Key.Key_B)
    drag(us.gv.viewport(), image_point(us, 0.2 * w, 0.25 * h), image_point(us, 0.5 * w, 0.6 * h))
    own = win.state.current.case.reader_box("us_1")
    assert own is not None and own != truth_box
    win._ai_worker = None
    with qtbot.waitSignal(win.ai_finished, timeout=30000):
        qtbot.keyClick(win.centralWidget(), Qt.Key.Key_A)  # re-score: the reader's box, not the truth's
    got = loader.made["US"].boxes[-1]
    assert got == pytest.approx(own) and got != pytest.approx(truth_box)
    assert loader.made["MG"].boxes[-1] is None  # the film still has only its truth circle: the finder's turn
