"""The main window's Study menu opens a blinded reading session and the coordinator export."""

from __future__ import annotations

from pathlib import Path

from engine.study.demo import make_tiny_case_study, write_demo_definition


def _definition(tmp_path: Path) -> Path:
    cases = make_tiny_case_study(tmp_path / "cases", 2, 2, size=32)
    truth = {f"T{k + 1:03d}": int(k >= 2) for k in range(4)}
    return write_demo_definition(tmp_path / "rs", cases, ai_truth=truth, washout_days=0)


def test_study_menu_has_session_and_export(win) -> None:
    titles = {a.text().replace("&", "") for a in win.menuBar().actions()}
    assert "Study" in titles
    study_menu = next(a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "Study")
    texts = [a.text() for a in study_menu.actions()]
    assert any("reading session" in t for t in texts)
    assert any("coordinator" in t for t in texts)


def test_start_reading_session_from_main_window(win, tmp_path: Path, qtbot) -> None:
    from reader_app.study.qt_session import ReadingSessionWindow

    session = win.start_reading_session(_definition(tmp_path))
    assert isinstance(session, ReadingSessionWindow)
    assert session.stack.currentWidget() is session.sign_in_page  # a reader must sign in first
    session.close()


def test_bad_definition_is_one_message_not_a_crash(win, tmp_path: Path, monkeypatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(win, "show_error", shown.append)
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    assert win.start_reading_session(bad) is None
    assert len(shown) == 1 and "bad.toml" in shown[0]


def test_export_from_main_window(win, tmp_path: Path, qtbot) -> None:
    definition = _definition(tmp_path)
    worker = win.export_reader_study(definition, tmp_path / "export")
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    header = (tmp_path / "export" / "ratings.csv").read_text().splitlines()[0]
    assert header.startswith("reader,treatment,case,truth,rating")
