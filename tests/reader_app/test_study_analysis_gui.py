"""Study menu: FROC analysis dialog and the power dialog of a planned design (results from the engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.stats.froc import simulate_froc
from engine.study.froc_files import write_froc

VANDYKE = Path(__file__).resolve().parents[1] / "data" / "mrmc" / "vandyke.csv"


def _menu_texts(win) -> list[str]:  # type: ignore[no-untyped-def]
    menu = next(a.menu() for a in win.menuBar().actions() if a.text().replace("&", "") == "Study")
    return [a.text() for a in menu.actions()]


def test_froc_dialog_runs_the_analysis(win, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert any("FROC analysis" in t for t in _menu_texts(win))
    d = simulate_froc(np.random.default_rng(3), treatments=2, readers=4, normal=40, abnormal=40, effect=0.5)
    write_froc(d, tmp_path / "export" / "froc")
    dlg = win.froc_analysis_dialog(tmp_path / "export")
    worker = dlg.run_analysis()
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    qtbot.waitUntil(lambda: dlg.last is not None, timeout=10000)
    assert "FOM wafroc" in dlg.text.toPlainText() and "global test" in dlg.text.toPlainText()
    assert not dlg.figure.pixmap().isNull()
    from engine.stats.froc import froc_analysis

    assert dlg.last["result"]["global_test"]["F"] == pytest.approx(froc_analysis(d, "wafroc").global_test["F"])
    dlg.grab().save(str(tmp_path / "froc_dialog.png"))


def test_power_dialog_matches_rjafroc(win, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    assert any("Study sizing" in t for t in _menu_texts(win))
    dlg = win.power_dialog(pilot=VANDYKE)
    dlg.readers.setValue(10)
    dlg.cases.setValue(165)
    dlg.effect.setValue(-0.0438)
    worker = dlg.compute()
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    qtbot.waitUntil(lambda: dlg.last is not None, timeout=10000)
    assert dlg.last["power"]["power"] == pytest.approx(0.805, abs=0.003)  # RJafroc 0.8054 at -0.043800322
    assert "Power 80." in dlg.result_label.text() and "Cases needed" in dlg.result_label.text()
    dlg.readers.setValue(2)
    dlg.compute()
    qtbot.waitUntil(lambda: "Not computed" in dlg.result_label.text() or dlg.last["power"]["readers"] == 2, timeout=20000)


def test_froc_round_trip_session_export_analysis_from_the_gui(win, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Scripted (SIMULATED) readers mark lesions in sessions; Study > Export; Study > FROC analysis."""
    from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition

    cases = make_tiny_case_study(tmp_path / "cases", 6, 6, size=40)
    toml = write_demo_definition(tmp_path / "rs", cases, washout_days=0, paradigm="froc")
    run_scripted_readers(toml, FakeClock()).close()
    worker = win.export_reader_study(toml, tmp_path / "export")
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    assert (tmp_path / "export" / "froc" / "MARKS.csv").is_file()
    dlg = win.froc_analysis_dialog(tmp_path / "export")
    w2 = dlg.run_analysis()
    with qtbot.waitSignal(w2.signals.finished, timeout=60000):
        pass
    qtbot.waitUntil(lambda: dlg.last is not None, timeout=10000)
    assert dlg.last["lesions"] == 6 and set(dlg.last["result"]["treatments"]) == {"unaided", "aided"}


def test_power_dialog_fills_in_the_planned_design(win, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.study.demo import make_tiny_case_study, write_demo_definition

    cases = make_tiny_case_study(tmp_path / "cases", 5, 6, size=32)
    toml = write_demo_definition(tmp_path / "rs", cases, n_readers=4)
    dlg = win.power_dialog(definition=toml, pilot=VANDYKE)
    assert dlg.readers.value() == 4 and dlg.cases.value() == 11
    assert "Planned design" in dlg.plan_label.text()
