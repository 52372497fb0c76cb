"""Mouse drags that pyqtgraph sees as real drags (QTest.mouseMove carries no buttons), and key
presses that reach the window's shortcuts."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget


def _send(w: QWidget, kind: QEvent.Type, pos: QPoint, button: Qt.MouseButton, buttons: Qt.MouseButton) -> None:
    local = QPointF(pos)
    glob = QPointF(w.mapToGlobal(pos))
    QApplication.sendEvent(w, QMouseEvent(kind, local, glob, button, buttons, Qt.KeyboardModifier.NoModifier))


def drag(w: QWidget, p0: QPoint, p1: QPoint, button: Qt.MouseButton = Qt.MouseButton.LeftButton, steps: int = 8) -> None:
    """Press at p0, move in steps to p1, release (widget coordinates of ``w``, a viewport)."""
    _send(w, QEvent.Type.MouseButtonPress, p0, button, button)
    for k in range(1, steps + 1):
        p = p0 + (p1 - p0) * (k / steps)
        _send(w, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
        QApplication.processEvents()
    _send(w, QEvent.Type.MouseButtonRelease, p1, button, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def click(w: QWidget, p: QPoint, button: Qt.MouseButton = Qt.MouseButton.LeftButton) -> None:
    _send(w, QEvent.Type.MouseButtonPress, p, button, button)
    _send(w, QEvent.Type.MouseButtonRelease, p, button, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def image_point(view, x: float, y: float) -> QPoint:
    """Viewport position of image pixel (x, y) of an ImageView."""
    scene = view.group.mapToScene(QPointF(x, y))
    return view.gv.mapFromScene(scene)


def key(qtbot, w: QWidget, k: Qt.Key, mod: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Press ``k`` on ``w`` once it is the active window: window-context shortcuts (rating keys,
    tools) fire only then, and offscreen a case change can leave no active window until asked."""
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    qtbot.keyClick(w, k, mod)
