"""Fixtures for the reader_app tests: a small study, a fake AI, a main window that must not leak."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from studies import build_study, fake_loader  # noqa: E402

# The workstation imports torch in a worker after its first image (issue 17); in the GUI tests
# the fakes and the engine share one model stack, imported here once on the main thread so that
# no test's stall measurement includes torch's import. Start-up itself is tested in a subprocess
# (test_startup_exit.py).
from engine.inference import load_stack  # noqa: E402

load_stack()


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_study(tmp_path_factory.mktemp("tpl") / "study")


@pytest.fixture
def study_dir(study_template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "study"
    shutil.copytree(study_template, dst)
    return dst


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "userdata"
    monkeypatch.setenv("BREAST_READER_DATA", str(d))
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("BREAST_READER_MODELS", str(empty))  # never load real weights in GUI tests
    return d


@pytest.fixture
def loader():
    return fake_loader()


def _ptr(w) -> int:
    import shiboken6

    return shiboken6.getCppPointer(w)[0]


def _top_level_ids():
    from PySide6.QtWidgets import QApplication

    return {_ptr(w) for w in QApplication.topLevelWidgets()}


@pytest.fixture
def make_window(qtbot, data_dir, loader):
    """Factory for main windows; fails the test if any top-level widget is left behind."""
    from PySide6.QtWidgets import QApplication

    from reader_app.ai import AIService
    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    ensure_app()
    before = _top_level_ids()
    made = []

    def make(ld=None, **kw):
        kw.setdefault("ai_display", "always")  # scoring-mechanics tests; the reading default is tested apart
        w = MainWindow(ai=AIService(loader=ld or loader), **kw)
        w.resize(1280, 800)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
        w.deleteLater()
    qtbot.wait(20)

    def no_leak() -> bool:
        return not [x for x in QApplication.topLevelWidgets() if _ptr(x) not in before]

    try:
        qtbot.waitUntil(no_leak, timeout=2000)
    except Exception:  # noqa: BLE001 - re-raised with the names of the leaked widgets
        leaked = [type(x).__name__ + ":" + x.objectName() for x in QApplication.topLevelWidgets()
                  if _ptr(x) not in before]
        pytest.fail(f"leaked top-level widgets: {leaked}")


@pytest.fixture
def win(make_window):
    return make_window()


@pytest.fixture
def opened(win, study_dir, qtbot):
    """Main window with the test study open and the paired case P001 loaded."""
    with qtbot.waitSignal(win.case_loaded, timeout=10000):
        assert win.open_study(study_dir)
    if win.state.current.case.case_id != "P001":
        with qtbot.waitSignal(win.case_loaded, timeout=10000):
            win.state.select_case("P001")
    return win
