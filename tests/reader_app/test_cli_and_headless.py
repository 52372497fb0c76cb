"""The breast-reader command, the Qt-free state modules, drag-and-drop, recent studies, big images."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication


def test_state_modules_never_import_qt():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph'):
                    raise ImportError('blocked ' + name)
        sys.meta_path.insert(0, Block())
        import reader_app.state, reader_app.ai, reader_app.imaging
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_demo_screenshot_command(study_dir, data_dir, tmp_path, qapp, capsys):
    from reader_app.main import main

    png = tmp_path / "shot.png"
    assert main(["demo", "--study", str(study_dir), "--screenshot", str(png)]) == 0
    img = QImage(str(png))
    assert img.width() >= 1280 and img.height() >= 800
    out = capsys.readouterr().out
    assert "case P001" in out and "no model installed" in out  # no weights in the test env: no fake score
    left = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not left


def test_cli_errors_are_one_line(tmp_path, capsys):
    from reader_app.main import main

    assert main(["demo", "--study", str(tmp_path / "nowhere"), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("breast-reader: error: demo study not found") and err.count("\n") == 1
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_study_subcommands_are_wired(capsys):
    from reader_app.main import main

    pytest.importorskip("reader_app.study.cli")
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    assert "status" in capsys.readouterr().out


def test_drag_and_drop_folder_and_recent_studies(win, study_dir, qtbot):
    from reader_app import paths

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(study_dir))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    win.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(win.case_loaded, timeout=10000):
        win.dropEvent(drop)
    assert win.state.study.name == "gui-test"
    assert paths.recent_studies()[0] == str(study_dir.resolve())
    assert [a.text() for a in win.recent_menu.actions()] == [str(study_dir.resolve())]


def test_large_mammogram_is_shown_without_copies(win, qtbot):
    """4096x3328 uint16: zoomed out a cached reduced level is drawn, at 1:1 the decoded array
    itself; W/L and pan never rebuild the displayed array."""
    import time

    from engine.io.types import ImageMeta, LoadedImage
    from reader_app.imaging import Slot
    from reader_app.qt_view import ImageView
    from reader_app.state import ViewState

    px = (np.random.default_rng(0).random((4096, 3328)) * 4095).astype(np.uint16)
    img = LoadedImage(px, ImageMeta(path="big.dcm", modality="MG", pixel_spacing=(0.07, 0.07)))
    v = ImageView(Slot("mg", "R CC MG", "MG", flip=True), img, ViewState())
    qtbot.addWidget(v)
    v.resize(800, 900)
    v.show()
    qtbot.wait(50)
    v.vb.setRange(QRectF(0, 0, 3328, 4096), padding=0)  # whole film (noise has no breast to crop to)
    shown = v.img_item.image
    assert v._factor >= 4 and shown.size <= px.size // 16  # area-averaged level, not the full array
    assert v.img_item.mapRectToScene(v.img_item.boundingRect()) == v.group.mapRectToScene(QRectF(0, 0, 3328, 4096))
    t = time.perf_counter()
    for i in range(10):
        v.view_state.set("window", (2000 + 10 * i, 3000.0))
        v.vb.translateBy(x=50, y=30)
        v.gv.viewport().repaint()
    per_frame_ms = (time.perf_counter() - t) * 100
    assert v.img_item.image is shown  # W/L and pan re-used the same array
    v.vb.setRange(QRectF(1000, 1000, 400, 400), padding=0)  # zoom in past 1:1
    assert v._factor == 1 and np.shares_memory(v.img_item.image, px)
    v._on_mouse_moved(v.group.mapToScene(QPointF(1100.5, 1200.5)))
    assert v.footer.text().startswith(f"x 1100  y 1200  value {px[1200, 1100]}")
    sal = np.zeros((4096, 3328), np.float32)
    sal[2000:2100, 1000:1100] = 1.0
    v.set_overlay_map(sal)
    drawn = v.overlay.image
    assert max(drawn.shape) <= 1024 and v.overlay.isVisible()
    assert v.overlay.mapRectToScene(v.overlay.boundingRect()) == v.img_item.mapRectToScene(v.img_item.boundingRect())
    v.view_state.set("opacity", 0.8)
    v.view_state.set("colormap", "viridis")
    assert v.overlay.image is drawn and v.overlay.opacity() == pytest.approx(0.8)  # no recomputation
    print(f"\n[reader_app] 4096x3328 mammogram, W/L change + pan + repaint: {per_frame_ms:.1f} ms per frame")
    assert per_frame_ms < 200
    v.dispose()


def test_demo_is_read_from_a_user_copy(study_dir, data_dir, monkeypatch):
    from reader_app.main import demo_working_copy

    monkeypatch.setenv("BREAST_READER_DEMO", str(study_dir))
    dst = demo_working_copy()
    assert dst.is_relative_to(data_dir) and (dst / "cases" / "P001" / "case.json").exists()
    mine = dst / "cases" / "P001" / "annotations.json"
    mine.write_text('{"annotations": [], "reader": "me"}')
    assert demo_working_copy() == dst and "me" in mine.read_text()  # the reader's work is kept
    assert "me" not in (study_dir / "cases" / "P001" / "annotations.json").read_text()
    (study_dir / "study.json").write_text((study_dir / "study.json").read_text().replace("gui-test", "v2"))
    demo_working_copy()
    assert "v2" in (dst / "study.json").read_text()  # refreshed when the bundled demo changes


def test_unexpected_errors_become_one_message(win, data_dir, monkeypatch):
    from reader_app.main import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(win)
    try:
        raise KeyError("boom")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    assert win.last_error.startswith("unexpected error (KeyError") and "\n" not in win.last_error
    assert "Traceback" in (data_dir / "errors.log").read_text()
    for w in QApplication.topLevelWidgets():
        if type(w).__name__ == "QMessageBox":
            w.close()
