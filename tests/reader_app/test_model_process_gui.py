"""The workstation scoring through the model process (issue 17): a crash of the model process
is one clear line in the AI panel (no traceback, no hang), the next request restarts it and
scores; progress reaches the panel; closing the window stops the process."""

from __future__ import annotations

import time
from pathlib import Path

FAKES_DIR = Path(__file__).resolve().parents[1] / "engine"  # process_fakes.py, loaded in the child


def test_model_process_crash_is_one_message_then_restarts(qtbot, data_dir, study_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES_DIR))  # the child inherits this process's sys.path
    from PySide6.QtWidgets import QMessageBox

    from engine.inference.process import ProcessScorer
    from reader_app.ai import AIService
    from reader_app.qt_main import MainWindow

    scorer = ProcessScorer("process_fakes:load", nice=0)
    svc = AIService(scorer=scorer)
    assert not svc.in_process
    win = MainWindow(ai=svc, ai_display="always")
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.case_loaded, timeout=10000):
        assert win.open_study(study_dir)
    svc.model_choice.update({"MG": "crash", "US": "crash", "MR": "crash"})
    with qtbot.waitSignal(win.ai_finished, timeout=60000):
        assert win.score_case() is not None
    text = win.ai_panel.scores.text()
    assert "AI failed: the model process stopped (exit code 7" in text and "restarts on the next request" in text
    assert "Traceback" not in text and "Traceback" not in win.last_error
    assert win.ai_result is None and win.ai_panel.progress.format() == "failed"
    for box in win.findChildren(QMessageBox):
        box.close()

    svc.model_choice.update({"MG": None, "US": None, "MR": None})
    steps: list[str] = []
    win._ai_worker = None  # type: ignore[assignment]
    w = win.score_case()
    assert w is not None
    w.signals.progress.connect(lambda _d, _t, m: steps.append(m))
    with qtbot.waitSignal(win.ai_finished, timeout=60000):
        pass
    res = win.ai_result
    assert res is not None and res.per_image and all(m.name.startswith("fake-") for m in res.models.values())
    assert scorer.starts == 2 and "done" in steps
    proc = scorer._proc
    assert proc is not None and proc.poll() is None
    win.close()  # the window's AI service stops its model process
    t0 = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - t0 < 1.0:
        time.sleep(0.01)
    assert proc.poll() is not None, "the model process outlived the window by more than 1 s"
