"""The reading-session window driven like a reader (pytest-qt), and the study CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.study.demo import make_tiny_case_study, write_demo_definition
from engine.study.session import StudyRun
from engine.study.design import load_design

N = 3


@pytest.fixture()
def definition(tmp_path: Path) -> Path:
    cases = make_tiny_case_study(tmp_path / "cases", N, N, size=32)
    truth = {f"T{k + 1:03d}": int(k >= N) for k in range(2 * N)}
    return write_demo_definition(tmp_path / "rs", cases, ai_truth=truth, washout_days=0)


def test_reader_session_end_to_end(qtbot, definition: Path, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt

    from reader_app.study.qt_session import ReadingSessionWindow

    import numpy as np

    calls: list[str] = []

    def fake_saliency(case, ci):  # a stand-in for the AI service's Grad-CAM
        calls.append(case.case_id)
        return np.ones((32, 32), dtype=np.float32) * 0.5

    run = StudyRun(load_design(definition))
    win = ReadingSessionWindow(run, overlay_provider=fake_saliency)
    qtbot.addWidget(win)
    win.resize(900, 650)
    win.show()
    assert win.stack.currentWidget() is win.sign_in_page
    win.reader_box.setCurrentIndex(win.reader_box.findData("R1"))
    qtbot.mouseClick(win.sign_in_button, Qt.MouseButton.LeftButton)
    assert win.stack.currentWidget() is win.reading_page
    assert win.current is not None and win.current.arm.arm_id == "unaided"
    assert not win.ai_panel.isVisible()  # AI hidden in the unaided arm
    qtbot.waitUntil(lambda: bool(win.views), timeout=10000)
    assert calls == [] and not any(win.overlay_shown(i) for i in win.image_widgets)
    assert not win.submit_button.isEnabled()  # nothing rated yet
    seen_unaided = []
    for k in range(N):  # rate half of the unaided arm, then "close the app"
        item = win.current
        seen_unaided.append(item.case.case_id)
        assert "malignant" not in win.header.text() and "benign" not in win.header.text()
        win.set_rating(8 if k % 2 else 2, "3")
        assert win.submit_button.isEnabled()
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.mouseClick(win.submit_button, Qt.MouseButton.LeftButton)
    (tmp_path / "screens").mkdir()
    win.grab().save(str(tmp_path / "screens" / "session.png"))
    win.close()
    run.close()

    # reopen: resumes at the next unrated case of the same arm
    run2 = StudyRun(load_design(definition))
    win2 = ReadingSessionWindow(run2, overlay_provider=fake_saliency)
    qtbot.addWidget(win2)
    win2.show()
    win2.sign_in("R1")
    order = run2.store.order("R1", "unaided")
    assert order[:N] == seen_unaided and win2.current.case.case_id == order[N]
    arms_seen = set()
    while win2.current is not None:
        arms_seen.add(win2.current.arm.arm_id)
        qtbot.waitUntil(lambda: bool(win2.views), timeout=10000)
        if win2.current.arm.arm_id == "aided":
            assert win2.ai_panel.isVisibleTo(win2) and "hidden until you have rated" in win2.ai_panel.text()
            cid = win2.current.case.case_id
            assert cid not in calls  # nothing computed before the reader's own rating
            win2.set_rating(5, "4A")
            assert "probability" in win2.ai_panel.text()
            qtbot.waitUntil(lambda: all(win2.overlay_shown(i) for i in win2.image_widgets), timeout=10000)
            assert cid in calls
        else:
            assert not any(win2.overlay_shown(i) for i in win2.image_widgets)
        win2.set_rating(5, "4A")
        with qtbot.waitSignal(win2.submitted, timeout=5000):
            qtbot.mouseClick(win2.submit_button, Qt.MouseButton.LeftButton)
    assert arms_seen == {"unaided", "aided"}
    assert win2.stack.currentWidget() is win2.message_page and "Thank you" in win2.message.text()
    assert len([r for r in run2.store.ratings() if r.reader_id == "R1"]) == 4 * N
    win2.close()
    run2.close()


def test_study_cli_export_and_status(tmp_path: Path, definition: Path, capsys) -> None:
    from engine.study.demo import run_scripted_readers
    from reader_app.main import main

    run_scripted_readers(definition).close()
    assert main(["study", "status", str(definition.parent)]) == 0
    assert "R3: unaided" in capsys.readouterr().out
    assert main(["study", "export", str(definition), "--out", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "ex" / "report.pdf").exists() and (tmp_path / "ex" / "ratings.imrmc").exists()
    assert main(["study", "export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ex2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no reader-study definition" in err[0]


def test_export_from_gui_runs_in_a_worker(qtbot, definition: Path, tmp_path: Path) -> None:
    from engine.study.demo import run_scripted_readers
    from reader_app.study.qt_session import export_study_dialog

    run_scripted_readers(definition).close()
    worker = export_study_dialog(None, definition.parent, tmp_path / "gui-export")
    assert worker is not None
    # the export runs on the pool thread; wait for it without racing the result signal
    qtbot.waitUntil(_pool_idle, timeout=60000)
    out = tmp_path / "gui-export"
    assert (out / "report.pdf").exists() and (out / "mrmc_results.json").exists()


def _pool_idle() -> bool:
    from PySide6.QtCore import QThreadPool

    return QThreadPool.globalInstance().activeThreadCount() == 0


def test_study_demo_command_end_to_end(tmp_path: Path, capsys) -> None:
    import json

    from reader_app.main import main

    cases = make_tiny_case_study(tmp_path / "cases", 4, 4, size=24)
    assert main(["study", "demo", "--out", str(tmp_path / "demo"), "--cases", str(cases)]) == 0
    out = json.loads((tmp_path / "demo" / "export" / "mrmc_results.json").read_text())
    assert out["complete"] and out["ratings_stored"] == 3 * 2 * 8
    assert out["design"]["readers"] == ["R1", "R2", "R3"] and len(out["design"]["arms"]) == 2
    assert "SCRIPTED" in out["note"]
    assert (tmp_path / "demo" / "export" / "report.pdf").stat().st_size > 10_000
