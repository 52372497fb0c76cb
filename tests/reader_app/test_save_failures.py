"""Issue 16: a failed rating save in the workstation is never silent.

Disk full (ENOSPC on the rewrite), a read-only folder (EACCES), and the real thing as an
unprivileged user on a read-only copy: the reader sees one line naming the file and the reason
(status bar, dialog, banner), the rating stays on screen, it goes to the recovery journal, and the
automatic retry stores it once the disk has room again.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

import reader_app.qt_main as qt_main
import reader_app.state as state_mod
from engine.cases import load_study
from engine.study.journal import pending
from reader_app.state import AppState, JsonRatingStore, Rating, RatingSaveError


def _fail_with(code: int, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every ratings rewrite fails with ``code``, as the OS reports it; returns the paths tried."""
    tried: list[Path] = []

    def failing(path: Path, payload: dict) -> None:
        tried.append(path)
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(state_mod, "_write_json", failing)
    return tried


def _ratings_file(data_dir: Path) -> Path:
    files = list((data_dir / "ratings").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(qt_main, "SAVE_RETRY_MS", 50)
    monkeypatch.setenv("BREAST_READER_CONFIG", str(tmp_path / "config"))


def test_disk_full_rating_is_shown_kept_journalled_and_stored_by_the_retry(
        fast_retry, opened, qtbot, data_dir, monkeypatch):
    win = opened
    win.rate_key(4)  # a first rating that reached the disk
    path = _ratings_file(data_dir)
    assert json.loads(path.read_text())["ratings"]["P001"]["score"] == 4
    before = path.read_bytes()
    disk_full = monkeypatch.context()
    tried = _fail_with(errno.ENOSPC, disk_full.__enter__())

    win.rate_key(7)
    assert tried == [path]
    msg = win.last_error
    assert msg.startswith(f"Rating NOT saved to {path}: No space left on device") and "\n" not in msg
    assert "recovery journal" in msg and "Traceback" not in msg
    assert win.statusBar().currentMessage() == msg  # not overwritten by "Rated 7/10 (saved)"
    assert win.save_banner.isVisible() and "NOT saved" in win.save_banner.text()
    dialogs = [b for b in win.findChildren(QMessageBox) if b.text() == msg]
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    # the answer stays on screen and in the worklist
    assert win.state.current.rating.score == 7 and win.rating_panel.slider.value() == 7
    wl = win.worklist.model
    assert wl.data(wl.index(wl.row_of("P001"), 2)) == "rated"
    # the file on disk is the old complete one, and the answer is in the journal
    assert path.read_bytes() == before
    assert [(d["case_id"], d["rating"]["score"]) for d in pending(path, JsonRatingStore.JOURNAL_KEY)] == [("P001", 7)]
    # typing a comment while the disk is full: status bar only, no second dialog
    win.rating_panel.comment.setPlainText("spiculated margin")
    assert len([b for b in win.findChildren(QMessageBox) if b.text().startswith("Rating NOT saved")]) == 1

    disk_full.__exit__(None, None, None)  # space again: the automatic retry stores everything
    qtbot.waitUntil(lambda: not win.save_banner.isVisible(), timeout=5000)
    stored = json.loads(path.read_text())["ratings"]["P001"]
    assert stored["score"] == 7 and stored["comment"] == "spiculated margin"
    assert win.state.save_error is None and "saved" in win.statusBar().currentMessage()
    assert pending(path, JsonRatingStore.JOURNAL_KEY) == []
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".journal.jsonl"]


def test_read_only_folder_with_no_journal_either_says_kept_on_screen_only(
        fast_retry, opened, qtbot, data_dir, monkeypatch):
    win = opened
    import engine.study.journal as journal

    with monkeypatch.context() as m:
        _fail_with(errno.EACCES, m)
        m.setattr(journal, "journal_paths", lambda p: [Path("/proc/no-such-dir/j.jsonl")])
        win.rate_key(2)
        assert "Permission denied" in win.last_error and "kept on screen only" in win.last_error
        assert win.state.current.rating.score == 2 and win.rating_panel.slider.value() == 2
    qtbot.waitUntil(lambda: win.state.save_error is None, timeout=5000)
    assert json.loads(_ratings_file(data_dir).read_text())["ratings"]["P001"]["score"] == 2


def test_store_rewrite_is_atomic_and_a_later_session_replays_the_journal(study_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BREAST_READER_CONFIG", str(tmp_path / "config"))
    store = JsonRatingStore(tmp_path / "u")
    s = AppState(rating_sink=store)
    s.set_study(load_study(study_dir))
    s.select_case("P001")
    s.rate(score=3)
    path = store._path(s.study_key)
    good = path.read_bytes()
    import engine.io.atomic as atomic

    def full(fd: int) -> None:  # the real temp-file path, failing at fsync as a full disk does
        raise OSError(errno.ENOSPC, "No space left on device")

    failed: list[str] = []
    s.save_failed.connect(failed.append)
    with monkeypatch.context() as m:
        m.setattr(atomic.os, "fsync", full)
        s.rate(score=8)
    assert failed and "No space left on device" in failed[0] and s.current.rating.score == 8
    assert path.read_bytes() == good  # never a 0-byte or half file
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".journal.jsonl"]
    # the session ends before the disk comes back; the next one finds the answer in the journal
    s2 = AppState(rating_sink=JsonRatingStore(tmp_path / "u"))
    s2.set_study(load_study(study_dir))
    assert s2.cases["P001"].rating.score == 8
    assert json.loads(path.read_text())["ratings"]["P001"]["score"] == 8  # and stored it
    assert pending(path, JsonRatingStore.JOURNAL_KEY) == []
    # an older journal line never overwrites a newer stored rating
    s2.select_case("P001")
    s2.rate(score=9)
    assert JsonRatingStore(tmp_path / "u").load(s2.study_key, "P001").score == 9


def test_save_error_is_one_line_naming_the_file(tmp_path):
    err = RatingSaveError(tmp_path / "r.json", OSError(errno.EROFS, os.strerror(errno.EROFS)), None)
    assert str(err) == (f"Rating NOT saved to {tmp_path / 'r.json'}: Read-only file system; it is kept on "
                        "screen only (the recovery journal could not be written either); retrying")
    assert Rating.from_json({"score": 3, "junk": 1}).score == 3


_NOBODY_SCRIPT = r"""
import json, sys
from reader_app.qt_app import ensure_app
from reader_app.ai import AIService
from reader_app.qt_main import MainWindow
from PySide6.QtWidgets import QApplication
app = ensure_app()
study = sys.argv[1]
w = MainWindow(ai=AIService(), ai_display="always")
w.show()
from PySide6.QtCore import QEventLoop, QTimer
loop = QEventLoop()
w.case_loaded.connect(loop.quit)
QTimer.singleShot(60000, loop.quit)
assert w.open_study(study)
loop.exec()  # the case is on screen
cs = w.state.current
w.rate_key(6)
ann = w.state.new_annotation(cs.case.images[0].image_id, "box", [[5, 5], [20, 20]])
app.processEvents()
print(json.dumps({"case": cs.case.case_id, "rating_error": w.last_error, "banner": w.save_banner.isVisible(),
                  "score_on_screen": w.rating_panel.slider.value(), "score": cs.rating.score,
                  "annotation_error": str(cs.save_error), "status": w.statusBar().currentMessage(),
                  "annotations_on_screen": len(cs.case.annotations)}))
w.close()
w.pool.waitForDone(10000)
"""


def test_workstation_on_a_read_only_copy_as_an_unprivileged_user(study_template):
    """chmod does not stop root: drop to nobody with setpriv, as on a real read-only share."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only for this process")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        prefix = []
    root = Path(tempfile.mkdtemp(prefix="br-ro-gui-"))  # pytest's tmp_path is not enterable by nobody
    try:
        study = root / "study"
        shutil.copytree(study_template, study)
        data = root / "data"
        (data / "ratings").mkdir(parents=True)
        config = root / "config"
        config.mkdir()
        for p in [root, *root.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        config.chmod(0o777)  # the one writable place: the recovery journal goes there
        models = root / "no-models"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(root), "BREAST_READER_DATA": str(data),
               "BREAST_READER_CONFIG": str(config), "BREAST_READER_MODELS": str(models),
               "XDG_RUNTIME_DIR": str(config), "PYTHONPATH": str(Path(__file__).parents[2])}
        p = subprocess.run([*prefix, sys.executable, "-c", _NOBODY_SCRIPT, str(study)], capture_output=True,
                           text=True, timeout=120, cwd="/", env=env)
        journals = list((config / "journals").glob("*.jsonl")) if (config / "journals").is_dir() else []
        journal_lines = [json.loads(x) for j in journals for x in j.read_text().splitlines()]
    finally:
        for q in [root, *root.rglob("*")]:
            q.chmod(0o755 if q.is_dir() else 0o644)
        shutil.rmtree(root, ignore_errors=True)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rating_error"].startswith(f"Rating NOT saved to {data / 'ratings'}")
    assert "Permission denied" in res["rating_error"] and "recovery journal" in res["rating_error"]
    assert res["banner"] and res["score"] == 6 and res["score_on_screen"] == 6
    assert "Permission denied" in res["annotation_error"] and res["annotations_on_screen"] == 1
    assert res["status"].startswith("Annotations NOT saved") or res["status"].startswith("Rating NOT saved")
    assert journal_lines and {(d["case_id"], d["rating"]["score"]) for d in journal_lines} == {(res["case"], 6)}


def test_reading_window_disk_full_keeps_the_answer_and_submit_retries(qtbot, tmp_path, monkeypatch):
    """The blinded reading window over the SQLite store: SQLITE_FULL on Submit."""
    from PySide6.QtWidgets import QMessageBox as Box

    from engine.study.demo import make_tiny_case_study, write_demo_definition
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    monkeypatch.setenv("BREAST_READER_CONFIG", str(tmp_path / "config"))
    cases = make_tiny_case_study(tmp_path / "cases", 2, 2, size=32)
    run = StudyRun(load_design(write_demo_definition(tmp_path / "rs", cases, washout_days=0)))
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(Box, "warning", staticmethod(lambda _parent, title, text: warned.append((title, text))))
    win = ReadingSessionWindow(run, overlay_provider=None)
    qtbot.addWidget(win)
    win.show()
    win.sign_in("R1")
    qtbot.waitUntil(lambda: bool(win.views), timeout=10000)
    case_id = win.current.case.case_id
    real = run.store.conn

    class FullDisk:  # what SQLite raises on a full disk (the engine test fills a real file)
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *a):
            if sql.lstrip().upper().startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *a)

    run.store.conn = FullDisk()
    win.set_rating(7, "4A")
    win._on_submit_clicked()
    assert len(warned) == 1 and warned[0][0] == "Rating not saved"
    assert "full" in warned[0][1] and "recovery journal" in warned[0][1] and "press Submit to retry" in warned[0][1]
    assert win.status.text().startswith("Rating NOT saved") and "\n" not in win.status.text()
    assert win.current.case.case_id == case_id and win.reading.score == 7  # still on screen
    run.store.conn = real
    assert run.store.ratings() == []
    with qtbot.waitSignal(win.submitted, timeout=5000):
        win._on_submit_clicked()  # Submit again: stored once
    assert [(r.case_id, r.score) for r in run.store.ratings()] == [(case_id, 7.0)]
    win.close()
    run.close()


def test_annotation_export_on_a_full_disk_is_one_message_and_no_partial_file(opened, tmp_path, monkeypatch):
    import engine.io.atomic as atomic

    win = opened
    cs = win.state.current
    win.state.new_annotation(cs.case.images[0].image_id, "box", [[10, 10], [40, 50]])
    out = tmp_path / "export"
    out.mkdir()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(atomic.os, "fsync", full)  # cv2.imwrite used to report success here
        assert win.export_annotations(out) == []
    assert win.last_error.startswith("Export failed:") and "No space left on device" in win.last_error
    assert list(out.iterdir()) == []
    written = win.export_annotations(out)
    assert written and all(p.stat().st_size > 0 for p in written)
