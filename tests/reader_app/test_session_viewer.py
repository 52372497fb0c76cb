"""The reading session is the workstation's viewer with study restrictions, driven by keys and mouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from engine.study.demo import write_demo_definition
from engine.study.design import load_design
from engine.study.session import StudyRun
from gui_helpers import drag, image_point
from studies import build_study


@pytest.fixture()
def definition(tmp_path: Path) -> Path:
    cases = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    truth = {"P001": 1, "M001": 0, "U001": 0}
    return write_demo_definition(tmp_path / "rs", cases, ai_truth=truth, washout_days=0, n_readers=1)


def _window(qtbot, definition: Path, **kw):
    from reader_app.study.qt_session import ReadingSessionWindow

    run = StudyRun(load_design(definition))
    win = ReadingSessionWindow(run, **kw)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    win.sign_in("R1")
    qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
    qtbot.wait(30)  # the deferred fit of the new views
    return win, run


def _next_loaded(qtbot, win) -> None:
    qtbot.waitUntil(lambda: win.current is None or (bool(win.views) and
                                                   win.views[0].slot.image_id in
                                                   {ci.image_id for ci in win.current.case.images}),
                    timeout=15000)


def test_keys_never_change_a_rating_and_enter_submits(qtbot, definition: Path) -> None:
    win, run = _window(qtbot, definition)
    try:
        first = win.current.case.case_id
        qtbot.keyClick(win, Qt.Key.Key_5)
        assert win.reading.score == 5 and win.rating_label.text() == "5"
        # the slider has no keyboard focus: Down/Up scroll slices or do nothing, never rate
        for _ in range(2):
            qtbot.keyClick(win, Qt.Key.Key_Down)
        assert win.reading.score == 5
        qtbot.keyClick(win, Qt.Key.Key_C)
        qtbot.keyClick(win, Qt.Key.Key_2)
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        assert win.current.case.case_id != first
        _next_loaded(qtbot, win)
        for _ in range(2):
            qtbot.keyClick(win, Qt.Key.Key_Down)
        assert win.reading.score is None  # the new case is not rated by arrow keys
        stored = {r.case_id: r.score for r in run.store.ratings() if r.reader_id == "R1"}
        assert stored[first] == 5.0
        assert not win.submit_button.isEnabled()
        qtbot.keyClick(win, Qt.Key.Key_Return)  # Enter without a rating: refused with the reason
        assert "rate the case first" in win.status.text()
    finally:
        win.close()
        run.close()


def test_mr_case_scrolls_slices_by_keys_and_wl_by_right_drag(qtbot, definition: Path) -> None:
    win, run = _window(qtbot, definition)
    try:
        for _ in range(3):
            if win.current.case.case_id == "M001":
                break
            win.set_rating(3, "2")
            with qtbot.waitSignal(win.submitted, timeout=5000):
                qtbot.keyClick(win, Qt.Key.Key_Return)
            _next_loaded(qtbot, win)
        assert win.current.case.case_id == "M001"
        v = win.active_view()
        assert v.n_frames == 6
        f0 = v.view_state.frame
        qtbot.keyClick(win, Qt.Key.Key_Down)
        qtbot.keyClick(win, Qt.Key.Key_Down)
        assert v.view_state.frame == min(f0 + 2, 5) and win.reading.score is None
        qtbot.keyClick(win, Qt.Key.Key_Up)
        assert v.view_state.frame == min(f0 + 2, 5) - 1
        w0 = v.view_state.window
        vp = v.gv.viewport()
        c = vp.rect().center()
        drag(vp, c, c + (c * 0) + type(c)(60, -40), Qt.MouseButton.RightButton)
        assert v.view_state.window != w0  # right-drag is window/level, as in the workstation
        assert v.wl_label.text().startswith("W ")
        assert f"W {v.view_state.window[1]:.0f}" in v.wl_label.text()
        qtbot.keyClick(win, Qt.Key.Key_F3)  # preset "Full range"
        assert v.view_state.window == v._presets[1][1]
        bg = win.palette().color(win.backgroundRole())
        assert bg.lightness() < 80  # the workstation's dark theme
    finally:
        win.close()
        run.close()


def test_birads_sequence_box_mark_with_confidence_persisted(qtbot, definition: Path) -> None:
    win, run = _window(qtbot, definition)
    try:
        cid = win.current.case.case_id
        qtbot.keyClick(win, Qt.Key.Key_C)
        qtbot.keyClick(win, Qt.Key.Key_4)
        assert win.reading.birads is None and "4" in win.target_label.text()
        qtbot.keyClick(win, Qt.Key.Key_B)  # after C 4, B completes 4B (not the box tool)
        assert win.reading.birads == "4B" and win.birads_box.currentData() == "4B"
        qtbot.keyClick(win, Qt.Key.Key_C)
        qtbot.keyClick(win, Qt.Key.Key_3)
        assert win.reading.birads == "3"
        qtbot.keyClick(win, Qt.Key.Key_B)  # now the box-mark tool
        assert win.tool == "box"
        v = win.active_view()
        w, h = v.image_size()
        drag(v.gv.viewport(), image_point(v, 0.3 * w, 0.3 * h), image_point(v, 0.6 * w, 0.6 * h))
        assert len(win.reading.marks) == 1 and win.reading.target == "M1"
        qtbot.keyClick(win, Qt.Key.Key_7)  # confidence of the mark just drawn
        assert win.reading.marks[0].confidence == 7 and win.reading.score is None
        qtbot.keyClick(win, Qt.Key.Key_6)  # then the case
        assert win.reading.score == 6
        assert "M1 box" in win.marks_list.item(0).text() and "confidence 7" in win.marks_list.item(0).text()
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        rec = json.loads(definition.with_suffix(".marks.json").read_text())["R1"]
        arm = next(iter(rec))
        saved = rec[arm][cid]
        assert saved["score"] == 6 and saved["birads"] == "3"
        m = saved["marks"][0]
        assert m["kind"] == "box" and m["confidence"] == 7
        (x0, y0), (x1, y1) = m["points"]
        assert abs(x0 - 0.3 * w) < 0.05 * w and abs(y1 - 0.6 * h) < 0.05 * h
        stored = {r.case_id: r for r in run.store.ratings() if r.reader_id == "R1"}
        assert stored[cid].birads == "3"
    finally:
        win.close()
        run.close()


def _to_aided(qtbot, win) -> None:
    while win.current is not None and win.current.arm.arm_id != "aided":
        win.set_rating(2, "2")
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        _next_loaded(qtbot, win)


def test_ai_hidden_until_rated_and_on_demand(qtbot, definition: Path) -> None:
    import numpy as np

    calls: list[str] = []

    def provider(case, ci):
        calls.append(case.case_id)
        return np.ones((16, 16), np.float32)

    win, run = _window(qtbot, definition, overlay_provider=provider)
    try:
        assert win.current.arm.arm_id == "unaided"
        qtbot.keyClick(win, Qt.Key.Key_A)
        assert not win.ai_panel.isVisible() and calls == []  # never AI in the unaided arm
        _to_aided(qtbot, win)
        assert win.current.arm.arm_id == "aided"
        assert "hidden until you have rated" in win.ai_panel.text()
        qtbot.keyClick(win, Qt.Key.Key_A)  # asking early does not reveal it in this mode
        assert not win.reading.ai_revealed and calls == []
        qtbot.keyClick(win, Qt.Key.Key_8)
        assert win.reading.ai_revealed and win.reading.initial_score == 8
        txt = win.ai_panel.text()
        assert "probability" in txt and "Calibration" in txt and "/10" not in txt
        qtbot.waitUntil(lambda: any(win.overlay_shown(i) for i in win.image_widgets), timeout=10000)
    finally:
        win.close()
        run.close()
    win2, run2 = _window(qtbot, definition, overlay_provider=provider, ai_mode="on_demand")
    try:
        _to_aided(qtbot, win2)
        assert "press <b>A</b>" in win2.ai_panel.text()
        qtbot.keyClick(win2, Qt.Key.Key_A)
        assert win2.reading.ai_revealed and win2.reading.score is None
    finally:
        win2.close()
        run2.close()
