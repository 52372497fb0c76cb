"""Priors in the blinded reading session (issue 17): Shift+P shows current | prior of the same
view, as in the workstation, with the study's restrictions: no truth, no AI, no dates and no
truth-bearing names of the prior exam.

TEST CONSTRUCTION: E2025 and E2023 are two synthetic exams of one synthetic patient
(``studies.add_prior_pair``); the prior is given truth, a truth box and truth-bearing file names
here only to check that none of it reaches the reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from engine.cases import Annotation, CaseImage, Truth, save_case
from engine.cases.store import load_case
from studies import add_prior_pair, build_study

SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture()
def prior_definition(tmp_path: Path) -> Path:
    from engine.study.demo import write_demo_definition

    root = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    add_prior_pair(root)
    now = load_case(root / "cases" / "E2025")
    now.truth = Truth("malignant", source="test construction")
    save_case(now)
    prior = load_case(root / "cases" / "E2023")
    prior.truth = Truth("malignant", source="test construction")
    rcc = prior.image("rcc")
    named = rcc.path.with_name("malignant_105.dcm")  # a dataset-style name that carries the truth
    rcc.path.rename(named)
    rcc.path = named
    prior.images.append(CaseImage("rmlo", prior.folder / "malignant_7.dcm", "MG", "MLO", "R"))  # unreadable
    prior.annotations.append(Annotation("rcc", "box", [[10, 10], [60, 60]], label="dataset mask", author="BUSI"))
    prior.description = "malignant mass, biopsy 2023"
    save_case(prior)
    from engine.cases import save_annotations

    save_annotations(prior)
    return write_demo_definition(tmp_path / "rs", root, case_ids=["E2025", "U001"], washout_days=0, n_readers=1)


def _texts(win) -> str:
    """What the reader can read about the case and its prior (the rating scale's own words aside)."""
    out = [win.header.text(), win.status.text(), win.target_label.text()]
    out += [w.text() for w in win.prior_compare.findChildren(QLabel) if w.isVisibleTo(win)]
    for v in win.prior_compare.views:
        out += [v.title.text(), v.message.toPlainText()]
    return "\n".join(out)


def test_shift_p_shows_the_blinded_prior_of_the_same_view(qtbot, prior_definition: Path) -> None:
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    run = StudyRun(load_design(prior_definition))
    win = ReadingSessionWindow(run)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    win.sign_in("R1")
    try:
        qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
        if win.current.case.case_id != "E2025":
            qtbot.keyClick(win, Qt.Key.Key_P, SHIFT)  # U001 has no prior: one line, no comparison
            assert "No prior to compare" in win.status.text() and win.prior_compare is None
            win.set_rating(3, "2")
            with qtbot.waitSignal(win.submitted, timeout=5000):
                qtbot.keyClick(win, Qt.Key.Key_Return)
            qtbot.waitUntil(lambda: bool(win.views) and win.views[0].slot.image_id == "rcc", timeout=15000)
        assert win.current.case.case_id == "E2025" and win.current.arm.arm_id == "unaided"
        qtbot.wait(50)
        assert win.active_view().slot.title == "R CC MG"
        with qtbot.waitSignal(win.prior_shown, timeout=15000):
            qtbot.keyClick(win, Qt.Key.Key_P, SHIFT)
        pc = win.prior_compare
        assert pc.isVisible() and not win.images.isVisible()
        cur, pri = pc.views
        assert cur.title.text() == "CURRENT · R CC MG"
        assert pri.title.text() == "PRIOR, 24 months earlier · R CC MG"  # 2023-03-01 -> 2025-03-04
        assert pri.image is not None and pri.slot.flip == cur.slot.flip
        assert not np.array_equal(pri.image.pixels, cur.image.pixels)
        assert cur.view_state is win.active_view().view_state  # W/L and zoom keys act on what is shown
        assert pri.truth_count() == 0 and not pri.overlay.isVisible() and not win.ai_panel.isVisible()
        text = _texts(win)
        for leak in ("malignant", "2023", "2025", "E2023", "biopsy", "BUSI"):
            assert leak not in text, leak
        qtbot.keyClick(win, Qt.Key.Key_F3)  # a W/L preset on the compared current view
        assert cur.view_state.window == cur._presets[1][1]
        qtbot.keyClick(win, Qt.Key.Key_Tab)  # next view: L CC, the prior's L CC beside it
        cur, pri = pc.views
        assert cur.title.text() == "CURRENT · L CC MG" and pri.slot.image_id == "lcc"
        qtbot.keyClick(win, Qt.Key.Key_Tab)  # R MLO: the prior's file is unreadable, and its name hidden
        cur, pri = pc.views
        assert pri.image is None and "[name hidden]" in pri.message.toPlainText()
        assert "malignant" not in _texts(win)
        qtbot.keyClick(win, Qt.Key.Key_7)  # rating keys work while comparing
        assert win.reading.score == 7
        qtbot.keyClick(win, Qt.Key.Key_P, SHIFT)  # back to the hanging
        assert not pc.isVisible() and win.images.isVisible() and win.reading.score == 7
        with qtbot.waitSignal(win.prior_shown, timeout=15000):
            qtbot.keyClick(win, Qt.Key.Key_P, SHIFT)
        win.set_rating(7, "4A")
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)  # Enter submits; the next case opens in its hanging
        assert not pc.isVisible() and not pc.views
        stored = {r.case_id: r.score for r in run.store.ratings() if r.reader_id == "R1"}
        assert stored["E2025"] == 7.0
    finally:
        win.close()
        run.close()


def test_session_error_lines_hide_truth_bearing_file_names(qtbot, tmp_path: Path) -> None:
    """The current case's unreadable image is reported without its truth-bearing file name."""
    from engine.study.demo import write_demo_definition
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    root = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    u = load_case(root / "cases" / "U001")
    u.images.append(CaseImage("us_9", u.folder / "malignant (12).png", "US", "lesion"))  # missing file
    save_case(u)
    d = write_demo_definition(tmp_path / "rs", root, case_ids=["U001"], washout_days=0, n_readers=1)
    run = StudyRun(load_design(d))
    win = ReadingSessionWindow(run)
    qtbot.addWidget(win)
    win.show()
    win.sign_in("R1")
    try:
        qtbot.waitUntil(lambda: "us_9" in win.image_widgets, timeout=15000)
        bad = win.image_widgets["us_9"]
        assert bad.image is None and "[name hidden]" in bad.message.toPlainText()
        assert "[name hidden]" in win.status.text()
        assert "malignant" not in win.status.text() + bad.message.toPlainText()
    finally:
        win.close()
        run.close()
