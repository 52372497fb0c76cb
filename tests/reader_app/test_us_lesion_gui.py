"""Issue 12 in the viewer: the lesion finder's box as a suggestion, Enter accepts it, a drawn box
replaces it; the calibrated score with the OOD warning beside it; the saliency method in the menu.

A fake lesion-centred US predictor (same surface as :class:`engine.inference.Predictor` with an
``engine.lesion_us.LesionAssessment`` per image) keeps these fast; the real shipped model in the
real window is covered by ``test_ai_parity.py`` and the screenshot test at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from studies import FakePredictor, fake_loader

FINDER_BOX = (50, 40, 110, 80)


class FakeLesionPredictor(FakePredictor):
    """US model that proposes ``FINDER_BOX`` without a reader's box, and flags OOD on demand."""

    def __init__(self, ood: float = 12.5) -> None:
        super().__init__("US")
        self.name = "fake-us-lesion"
        self.ood = ood

    def saliency_methods(self) -> tuple[str, ...]:
        return ("attention", "cam")

    def score(self, image, box=None) -> float:
        return 0.83 if box is None else 0.61

    def run(self, items, methods=()):
        from engine.inference import ImageOutput
        from engine.lesion_us import LesionAssessment
        from engine.saliency import SaliencyMap

        outs = []
        for it in items:
            self.calls += 1
            self.boxes.append(it.box)
            box = FINDER_BOX if it.box is None else tuple(int(v) for v in it.box)
            src = "finder" if it.box is None else "reader"
            p = self.score(it.image, it.box)
            a = LesionAssessment(p, p - 0.05, box, src, box, ood=self.ood, ood_threshold=10.45)
            out = ImageOutput(p, it.frame, box, lesion=a)
            for m in methods:
                if m != "attention":
                    out.errors[m] = f"{m} not supported"
                    continue
                arr = np.zeros((120, 160), np.float32)
                arr[box[1]:box[3], box[0]:box[2]] = 1.0
                out.saliency[m] = SaliencyMap(arr, m, "fake lesion attention")
            outs.append(out)
        return outs


def _loader(ood: float = 12.5):
    base = fake_loader()
    us = FakeLesionPredictor(ood)

    def load(modality: str, model: str | None = None):
        return us if modality == "US" else base(modality, model)

    load.us = us  # type: ignore[attr-defined]
    return load


def _open_us_case(make_window, study_dir: Path, qtbot, ood: float = 12.5):
    win = make_window(_loader(ood))
    with qtbot.waitSignal(win.case_loaded, timeout=10000):
        assert win.open_study(study_dir)
    if win.state.current.case.case_id != "U001":
        with qtbot.waitSignal(win.case_loaded, timeout=10000):
            win.state.select_case("U001")
    with qtbot.waitSignal(win.ai_finished, timeout=10000):
        win.score_case()
    view = next(v for v in win.views if v.slot.image_id == "us_ok")
    win.set_active(win.views.index(view))
    return win, view


def test_finder_box_is_shown_as_a_dashed_labelled_suggestion(make_window, study_dir, qtbot):
    win, view = _open_us_case(make_window, study_dir, qtbot)
    assert win.state.current.case.lesion_box("us_ok") is None
    assert view.suggestion_box == tuple(float(v) for v in FINDER_BOX)
    assert view.suggestion_item.isVisible() and view.suggestion_label.isVisible()
    assert view.suggestion_item.pen().style() == Qt.PenStyle.DashLine
    assert "AI suggestion" in view.suggestion_label.textItem.toPlainText()
    r = view.suggestion_item.path().boundingRect()
    assert (r.left(), r.top(), r.right(), r.bottom()) == pytest.approx(FINDER_BOX)
    assert not win.state.current.case.annotations_for("us_ok")  # a suggestion, not the reader's mark


def test_enter_accepts_the_suggestion_as_the_readers_box_and_rescores(make_window, study_dir, qtbot):
    win, view = _open_us_case(make_window, study_dir, qtbot)
    with qtbot.waitSignal(win.ai_finished, timeout=10000):
        win.activateWindow()
        qtbot.keyClick(win, Qt.Key.Key_Return)
    anns = win.state.current.case.annotations_for("us_ok")
    assert len(anns) == 1 and anns[0].kind == "box"
    assert tuple(anns[0].bbox()) == pytest.approx(FINDER_BOX)
    assert view.suggestion_box is None and view.suggestion_item is None and view.suggestion_label is None
    # re-scored with the reader's (accepted) box: the model now scored that box
    assert win.ai_result.lesion["us_ok"].box_source == "reader"
    assert tuple(win.ai_result.lesion["us_ok"].box) == FINDER_BOX


def test_drawing_a_box_replaces_the_suggestion(make_window, study_dir, qtbot):
    from test_gui import drag

    win, view = _open_us_case(make_window, study_dir, qtbot)
    assert view.suggestion_box is not None
    win.state.set_tool("box")
    drag(view, [(20, 20), (40, 35), (60, 50)])
    anns = win.state.current.case.annotations_for("us_ok")
    assert len(anns) == 1
    x0, y0, x1, y1 = anns[0].bbox()
    assert (x0, y0) == pytest.approx((20, 20), abs=1.5) and (x1, y1) == pytest.approx((60, 50), abs=1.5)
    assert view.suggestion_box is None and view.suggestion_item is None and view.suggestion_label is None
    # Enter no longer adds anything: there is no suggestion left to accept
    win.state.set_tool("navigate")
    win.activateWindow()
    qtbot.keyClick(win, Qt.Key.Key_Return)
    assert len(win.state.current.case.annotations_for("us_ok")) == 1


def test_panel_shows_calibrated_score_with_the_ood_warning_beside_it(make_window, study_dir, qtbot):
    win, _ = _open_us_case(make_window, study_dir, qtbot, ood=12.5)
    text = win.ai_panel.scores.text()
    row = next(r for r in text.split("<tr>") if "<b>US</b>" in r)
    assert "calibrated p = <b>0.83</b>" in row  # the score is there ...
    assert "⚠ OOD" in row and "12.5 &gt; 10.4" in row  # ... and the warning in the same row, beside it
    assert row.index("0.83") < row.index("OOD")


def test_panel_says_in_distribution_when_not_flagged(make_window, study_dir, qtbot):
    win, _ = _open_us_case(make_window, study_dir, qtbot, ood=7.0)
    row = next(r for r in win.ai_panel.scores.text().split("<tr>") if "<b>US</b>" in r)
    assert "calibrated p = <b>0.83</b>" in row and "⚠" not in row and "in distribution" in row


def test_default_overlay_is_the_lesion_models_own_attention(make_window, study_dir, qtbot):
    win, view = _open_us_case(make_window, study_dir, qtbot)
    assert view.view_state.method == "own"
    m = win.ai_result.saliency[("us_ok", "own")]
    x0, y0, x1, y1 = FINDER_BOX
    assert float(m[y0:y1, x0:x1].min()) == 1.0 and float(m.sum()) == (x1 - x0) * (y1 - y0)
    assert view.overlay.isVisible()


def test_saliency_method_is_selectable_in_the_view_menu(make_window, study_dir, qtbot):
    win, view = _open_us_case(make_window, study_dir, qtbot)
    menu = next(a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "View")
    sub = next(a.menu() for a in menu.actions() if a.text() == "Saliency method")
    labels = [a.text() for a in sub.actions()]
    assert labels[0].startswith("Model's own") and "Grad-CAM" in labels and "Attention" in labels
    assert win.method_actions["own"].isChecked()
    with qtbot.waitSignal(win.ai_finished, timeout=10000):
        win.method_actions["cam"].trigger()  # not computed yet: scored again for it
    assert win.ai_panel.method.currentData() == "cam" and view.view_state.method == "cam"
    assert win.method_actions["cam"].isChecked() and not win.method_actions["own"].isChecked()
    assert not view.overlay.isVisible()  # the fake lesion model has no CAM: no overlay, and says so
    assert "cam saliency unavailable" in win.ai_panel.scores.text()
    win.method_actions["attention"].trigger()  # the panel's box follows the menu, and the reverse
    assert win.ai_panel.method.currentData() == "attention"
    win.ai_panel.method.setCurrentIndex(win.ai_panel.method.findData("own"))
    assert win.method_actions["own"].isChecked()
