"""QApplication set-up done once at start-up (pyqtgraph options, names)."""

from __future__ import annotations

import sys

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from reader_app.paths import APP, ORG

_configured = False


def configure_pyqtgraph() -> None:
    """``imageAxisOrder='row-major'`` (numpy [row, col]) once for the whole program."""
    global _configured
    if not _configured:
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="k", foreground="#ddd")
        _configured = True


def _set_identity(app: QApplication) -> None:
    """Window icon and desktop-file name (taskbar grouping, the .desktop entry's icon)."""
    from PySide6.QtGui import QGuiApplication, QIcon

    from engine.resources import resource

    icon = resource("icons", "breast-reader.svg")
    if icon.exists() and app.windowIcon().isNull():
        app.setWindowIcon(QIcon(str(icon)))
    QGuiApplication.setDesktopFileName("breast-reader")


def ensure_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created if needed) with pyqtgraph configured."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    elif not isinstance(app, QApplication):  # a QCoreApplication cannot show widgets
        raise RuntimeError(f"a {type(app).__name__} already runs; the reader's windows need a QApplication")
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    _set_identity(app)
    configure_pyqtgraph()
    # Workers that run Python code (pre/post-processing) hand the GIL back to the GUI thread
    # every 2 ms instead of 5 ms, keeping event-loop stalls short while a case is scored.
    sys.setswitchinterval(0.002)
    return app
