"""The MRI reading window: hanging protocol, linked slices, phases, MIP, kinetics panel.

    python -m reader_app.qt_mri FOLDER [--screenshot PNG]

Opens every MR series under FOLDER (e.g. ``mimbcd-dev/mri/mimbcd-p11``) in the default hanging
(subtraction | pre | T2 | DWI, see :mod:`engine.mri.hanging`). All state is in
:class:`reader_app.mri_state.MriSession`; this module only draws it. Loading and subtraction run
on a worker thread.

Keys: Up/Down or wheel = slice (linked viewports follow), click = put the linking cursor,
``.``/``]`` and ``,``/``[`` = next / previous post-contrast phase, M = MIP of the subtraction,
K = kinetic colour map, B / C = box / contour tool for kinetics (drag on a DCE/subtraction
viewport; V or Esc = navigate),
L = linking on/off, E = export kinetics, Ctrl+wheel = zoom, right-drag = window/level.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGraphicsRectItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.mri.hanging import window_for
from engine.mri.kinetics import MAP_COLOURS, kinetic_rgba
from reader_app.mri_state import MRI_AI_WARNING, MriSession
from reader_app.qt_workers import Worker, start

#: Credit shown when the study comes from mimbcd-dev (CC BY-SA 4.0).
MIMBCD_CREDIT = ("Images: MIMBCD-UI / BreastScreening (Calisto F.M. et al., Instituto Superior Técnico), "
                 "CC BY-SA 4.0 — adapted (slab subset) by breast-reader; share-alike applies.")

STYLE = """
QWidget { background:#202124; color:#e8eaed; }
QLabel#mriTitle { font-weight:bold; }
QLabel#mriEdge { color:#fbbc04; font-weight:bold; font-size:13px; }
QLabel#mriFooter { color:#9aa0a6; font-family:monospace; font-size:11px; }
QLabel#mriWarn { color:#ffb4a9; background:#3c1f1c; padding:4px; }
QLabel#mriCredit { color:#9aa0a6; font-size:11px; }
QPushButton { background:#3c4043; border:1px solid #555; padding:3px 8px; }
"""


class _Box(pg.ViewBox):  # type: ignore[misc]  # pyqtgraph ships no type information: ViewBox is Any
    """Wheel = slices (Ctrl+wheel zoom), left click = linking cursor, left drag with the box
    tool = kinetics box, right drag = window/level."""

    def __init__(self, owner: MriViewport) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.owner = owner
        self._start: QPointF | None = None
        self._trace: list[list[float]] = []

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph API
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self.owner.scrolled.emit(self.owner.index, -1 if ev.delta() > 0 else 1)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 - pyqtgraph API
        ev.accept()
        if ev.button() == Qt.MouseButton.LeftButton:
            p = self.mapSceneToView(ev.scenePos())
            self.owner.clicked.emit(self.owner.index, float(p.y()), float(p.x()))

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph API
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.owner.window_drag(ev)
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.owner.tool == "box":
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            if ev.isStart():
                self._start = p
            if self._start is not None:
                self.owner.show_draft(self._start, p)
                if ev.isFinish():
                    a, b = self._start, p
                    self._start = None
                    self.owner.boxed.emit(self.owner.index, "box", [[a.x(), a.y()], [b.x(), b.y()]])
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.owner.tool == "contour":
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            if ev.isStart():
                self._trace = []
            self._trace.append([float(p.x()), float(p.y())])
            self.owner.show_contour(self._trace)
            if ev.isFinish() and len(self._trace) >= 3:
                self.owner.boxed.emit(self.owner.index, "freehand", list(self._trace))
            return
        super().mouseDragEvent(ev, axis)


class MriViewport(QWidget):
    """One viewport: title, the slice with orientation letters on its edges, a footer."""

    scrolled = Signal(int, int)
    clicked = Signal(int, float, float)
    boxed = Signal(int, str, object)
    series_chosen = Signal(int, str)

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.tool = "navigate"  # "navigate", "box" or "contour" (freehand) for kinetics
        self.window_level: tuple[float, float] | None = None
        self._window_key = ""
        self.title = QLabel()
        self.title.setObjectName("mriTitle")
        self.series = QComboBox()  # any series of the study in this viewport
        self.series.setToolTip("Show another series in this viewport")
        self.series.activated.connect(lambda k: self.series_chosen.emit(self.index, str(self.series.itemData(k))))
        self.footer = QLabel()
        self.footer.setObjectName("mriFooter")
        self.edges = {k: QLabel() for k in ("top", "bottom", "left", "right")}
        for lab in self.edges.values():
            lab.setObjectName("mriEdge")
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.gv = pg.GraphicsView()
        self.vb = _Box(self)
        self.gv.setCentralItem(self.vb)
        self.img = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.img)
        self.vb.addItem(self.overlay)
        self.cross = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("#00e5ff", width=2), brush=None)
        self.vb.addItem(self.cross)
        self.roi_item = QGraphicsRectItem()
        self.roi_item.setPen(QPen(pg.mkColor("#00e5ff"), 0))
        self.roi_item.setVisible(False)
        self.vb.addItem(self.roi_item)
        self.contour_item = pg.PlotCurveItem(pen=pg.mkPen("#00e5ff", width=2))
        self.vb.addItem(self.contour_item)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        grid.addWidget(self.edges["top"], 0, 1)
        grid.addWidget(self.edges["left"], 1, 0)
        grid.addWidget(self.gv, 1, 1)
        grid.addWidget(self.edges["right"], 1, 2)
        grid.addWidget(self.edges["bottom"], 2, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.series)
        lay.addLayout(head)
        lay.addLayout(grid, 1)
        lay.addWidget(self.footer)
        self._shape: tuple[int, ...] = ()

    def show_slice(self, title: str, plane: np.ndarray, key: str, volume: np.ndarray, footer: str,
                   labels: dict[str, str]) -> None:
        """Draw a slice (window from its whole volume, kept while the same volume is shown)."""
        self.title.setText(title)
        self.footer.setText(footer)
        for k, lab in self.edges.items():
            lab.setText(labels.get(k, ""))
        if key != self._window_key or self.window_level is None:
            self.window_level = window_for(volume)
            self._window_key = key
        c, w = self.window_level
        self.img.setImage(np.asarray(plane, np.float32), levels=(c - w / 2, c + w / 2), autoLevels=False)
        if plane.shape != self._shape:
            self._shape = plane.shape
            self.vb.setRange(QRectF(0, 0, plane.shape[1], plane.shape[0]), padding=0)

    def set_choices(self, choices: list[tuple[str, str]], current: str) -> None:
        """Fill the series chooser (keeps it quiet while filling)."""
        self.series.blockSignals(True)
        if self.series.count() != len(choices):
            self.series.clear()
            for key, label in choices:
                self.series.addItem(label, key)
        idx = self.series.findData(current)
        if idx >= 0:
            self.series.setCurrentIndex(idx)
        self.series.blockSignals(False)

    def set_overlay(self, codes: np.ndarray | None) -> None:
        """Kinetic class colours over the slice (None hides them)."""
        if codes is None:
            self.overlay.setVisible(False)
            return
        self.overlay.setImage(kinetic_rgba(codes), autoLevels=False, levels=(0, 255))
        self.overlay.setVisible(True)

    def set_cross(self, point: tuple[float, float] | None) -> None:
        """The linking cursor at (row, col), or none."""
        self.cross.setData([] if point is None else [{"pos": (point[1], point[0])}])

    def show_draft(self, a: QPointF, b: QPointF) -> None:
        """The box being drawn."""
        self.roi_item.setRect(QRectF(a, b).normalized())
        self.roi_item.setVisible(True)

    def show_contour(self, points: list[list[float]], closed: bool = False) -> None:
        """A contour (being drawn, or measured when ``closed``)."""
        pts = points + points[:1] if closed and points else points
        self.contour_item.setData([p[0] for p in pts], [p[1] for p in pts])
        self.contour_item.setVisible(bool(points))

    def set_roi(self, points: list[list[float]] | None, kind: str = "box") -> None:
        """The measured kinetics box or contour (None hides it)."""
        if not points:
            self.roi_item.setVisible(False)
            self.contour_item.setVisible(False)
            return
        if kind != "box":
            self.roi_item.setVisible(False)
            self.show_contour(points, closed=True)
            return
        self.contour_item.setVisible(False)
        (x0, y0), (x1, y1) = points[0], points[-1]
        self.roi_item.setRect(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        self.roi_item.setVisible(True)

    def window_drag(self, ev: Any) -> None:
        """Right drag: horizontal = width, vertical = centre."""
        if self.window_level is None:
            return
        d = ev.pos() - ev.lastPos()
        c, w = self.window_level
        self.window_level = (c - d.y() * w / 200, max(1.0, w + d.x() * w / 200))
        c, w = self.window_level
        self.img.setLevels((c - w / 2, c + w / 2))


class KineticsPanel(QWidget):
    """Curve (percent enhancement per phase), its BI-RADS classes and the map legend."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = pg.PlotWidget()
        self.plot.setLabel("left", "enhancement", units="%")
        self.plot.setLabel("bottom", "phase")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setMinimumHeight(200)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#00e5ff", width=2), symbol="o", symbolBrush="#00e5ff")
        self.result = QLabel("Draw a box (B) or a contour (C) on the subtraction or a DCE viewport.")
        self.result.setWordWrap(True)
        legend = " ".join(f"<span style='color:rgb{MAP_COLOURS[c]}'>■</span> {n}"
                          for c, n in ((1, "persistent"), (2, "plateau"), (3, "washout")))
        self.legend = QLabel(f"Kinetic map (K): {legend}; voxels with initial enhancement ≥ 50 %")
        self.legend.setWordWrap(True)
        self.source = QLabel("Classes: ACR BI-RADS Atlas 5th ed. MRI lexicon. Initial: &lt;50 % slow, 50–100 % "
                             "medium, &gt;100 % fast; delayed: ±10 % of the initial signal plateau, above "
                             "persistent, below washout (Kuhl et al., Radiology 1999).")
        self.source.setWordWrap(True)
        self.source.setObjectName("mriCredit")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        title = QLabel("<b>Kinetics</b>")
        lay.addWidget(title)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.result)
        lay.addWidget(self.legend)
        lay.addWidget(self.source)

    def show_curve(self, session: MriSession) -> None:
        """Draw the session's kinetics measurement (or the hint)."""
        m = session.kinetics
        if m is None:
            self.curve.setData([], [])
            return
        c = m.curve
        self.curve.setData(list(c.x), list(c.enhancement_pct))
        self.plot.setLabel("bottom", "seconds after pre-contrast" if c.x_unit == "s" else "phase (0 = pre; times unknown)")
        delayed = f"{c.delayed} ({c.delayed_pct:+.0f} % vs initial)" if c.delayed else "— (needs a later phase)"
        self.result.setText(f"<b>{c.initial} / {c.delayed or '—'}</b><br>initial {c.initial_pct:.0f} % → "
                            f"{c.initial}; delayed {delayed}<br>{c.n_voxels} px on slice {m.slice + 1} "
                            f"({m.slice_position_mm:+.1f} mm), phases {', '.join(m.series)}")


class MriWindow(QWidget):
    """The MRI reading window (see module docstring).

    Signals:
        loaded(): the study is open and drawn (or failed: see ``error``).
    """

    loaded = Signal()

    def __init__(self, paths: Any, *, source_note: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("breast-reader — MRI")
        self.setStyleSheet(STYLE)
        self.resize(1600, 950)
        self.session: MriSession | None = None
        self.case_id: str | None = None
        self._menus_freed = False
        self.error = ""
        self.views: list[MriViewport] = []
        self.status = QLabel("Loading MR series…")
        self.status.setObjectName("mriFooter")
        self.grid = QGridLayout()
        self.kin = KineticsPanel()
        self.warn = QLabel("AI: " + MRI_AI_WARNING)
        self.warn.setObjectName("mriWarn")
        self.warn.setWordWrap(True)
        self.credit = QLabel(MIMBCD_CREDIT if "mimbcd" in (source_note + str(paths)).lower() or "CC BY-SA" in source_note
                             else source_note)
        self.credit.setObjectName("mriCredit")
        self.credit.setWordWrap(True)
        self.link_box = QCheckBox("Link slices (L)")
        self.link_box.setChecked(True)
        self.link_box.toggled.connect(lambda on: self.session and self.session.set_linked(on))
        buttons = QHBoxLayout()
        for text, slot in (("◀ phase (,)", lambda: self._do("step_phase", -1)),
                           ("phase ▶ (.)", lambda: self._do("step_phase", 1)),
                           ("MIP (M)", lambda: self._do("toggle_mip")),
                           ("Kinetic map (K)", lambda: self._do("toggle_map")),
                           ("Box tool (B)", lambda: self.set_tool("box")),
                           ("Contour tool (C)", lambda: self.set_tool("contour")),
                           ("Export kinetics (E)", self.export_kinetics)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addWidget(self.link_box)
        buttons.addStretch(1)
        side = QVBoxLayout()
        side.addWidget(self.kin, 1)
        side.addWidget(self.warn)
        side.addWidget(self.credit)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(380)
        centre = QVBoxLayout()
        centre.addLayout(buttons)
        centre.addLayout(self.grid, 1)
        centre.addWidget(self.status)
        lay = QHBoxLayout(self)
        lay.addLayout(centre, 1)
        lay.addWidget(side_w)
        for keys, fn in (([QKeySequence(Qt.Key.Key_Down)], lambda: self._scroll(1)),
                         ([QKeySequence(Qt.Key.Key_Up)], lambda: self._scroll(-1)),
                         ([QKeySequence("."), QKeySequence("]")], lambda: self._do("step_phase", 1)),
                         ([QKeySequence(","), QKeySequence("[")], lambda: self._do("step_phase", -1)),
                         ([QKeySequence("M")], lambda: self._do("toggle_mip")),
                         ([QKeySequence("K")], lambda: self._do("toggle_map")),
                         ([QKeySequence("B")], lambda: self.set_tool("box")),
                         ([QKeySequence("C")], lambda: self.set_tool("contour")),
                         ([QKeySequence("V"), QKeySequence(Qt.Key.Key_Escape)], lambda: self.set_tool("navigate")),
                         ([QKeySequence("L")], lambda: self.link_box.toggle()),
                         ([QKeySequence("E")], self.export_kinetics)):
            a = QAction(self)
            a.setShortcuts(keys)
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(fn)
            self.addAction(a)
        self._worker = Worker(MriSession.open, paths, source_note=source_note, name="mri-open")
        self._worker.signals.progress.connect(lambda d, t, m: self.status.setText(f"{m} ({d}/{t})"))
        self._worker.signals.result.connect(self._on_open)
        self._worker.signals.errored.connect(self._on_error)
        start(self._worker)

    # ------------------------------------------------------------------ loading
    def _on_scrolled(self, index: int, step: int) -> None:
        if self.session is not None:
            self.session.scroll(index, step)

    def _on_clicked(self, index: int, row: float, col: float) -> None:
        if self.session is not None:
            self.session.set_point(index, row, col)

    def _on_series_loaded(self, index: int, key: str) -> None:
        if self.session is not None:
            self.session.set_volume(index, key)

    def _on_error(self, msg: str) -> None:
        self.error = msg
        self.status.setText(f"Could not open the MR study: {msg}")
        self.loaded.emit()

    def _on_open(self, session: MriSession) -> None:
        self.session = session
        session.changed.connect(self.refresh)
        n = len(session.viewports)
        cols = 2 if n > 1 else 1
        for i in range(n):
            v = MriViewport(i)
            v.scrolled.connect(self._on_scrolled)
            v.clicked.connect(self._on_clicked)
            v.boxed.connect(self.measure)
            v.series_chosen.connect(self.choose_series)
            v.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            self.grid.addWidget(v, i // cols, i % cols)
            self.views.append(v)
        self.refresh()
        skipped = f" · {len(session.study.skipped)} non-MR/unreadable file(s) skipped" if session.study.skipped else ""
        if session.problems:
            skipped += " · not shown: " + "; ".join(session.problems.values())
        self.status.setText(f"{len(session.study.volumes)} MR volume(s) in {len(set(v.series_uid for v in session.study.volumes))} "
                            f"series{skipped}")
        self.loaded.emit()

    def closeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        self._worker.cancel()
        if not self._menus_freed:
            # pyqtgraph gives every ViewBox / PlotItem a parentless QMenu: free them with the window
            self._menus_freed = True
            pi = self.kin.plot.getPlotItem()
            menus = [getattr(pi, "ctrlMenu", None), getattr(pi.vb, "menu", None)]
            menus += [getattr(v.vb, "menu", None) for v in self.views]
            for m in menus:
                if m is not None:
                    m.deleteLater()
        super().closeEvent(ev)

    # ------------------------------------------------------------------ actions
    def _do(self, name: str, *args: Any) -> None:
        if self.session is not None:
            try:
                getattr(self.session, name)(*args)
            except Exception as exc:  # noqa: BLE001 - a message, never a crash of the reading window
                self.status.setText(str(exc))

    def _scroll(self, step: int) -> None:
        if self.session is not None:
            self.session.scroll(self.session.active, step)

    def set_tool(self, tool: str) -> None:
        """Kinetics drawing tool: "box", "contour" (pressing the active one again) or "navigate"."""
        if self.views and self.views[0].tool == tool:
            tool = "navigate"
        for v in self.views:
            v.tool = tool
        self.status.setText({"box": "Box tool: drag a box on a DCE/subtraction viewport",
                             "contour": "Contour tool: trace the lesion outline on a DCE/subtraction viewport"}
                            .get(tool, "Navigate"))

    def measure(self, i: int, kind: str, points: list[list[float]]) -> None:
        """Kinetics of a box or contour drawn on viewport ``i``."""
        if self.session is None:
            return
        try:
            self.session.measure(i, kind, points)
            self.status.setText(f"Kinetics: {self.session.kinetics.curve.label}")  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - shown, the reading goes on
            self.status.setText(str(exc))
            self.views[i].set_roi(None)

    def choose_series(self, i: int, key: str) -> None:
        """Show another series in viewport ``i``: decoded on a worker, then shown."""
        if self.session is None or not key:
            return
        s = self.session

        def load(progress: Any = None, cancel: Any = None) -> str:
            s.volume(key).load(cancel=cancel)
            return key

        w = Worker(load, name="mri-series")
        w.signals.result.connect(lambda k: self._on_series_loaded(i, k))
        w.signals.errored.connect(lambda msg: self.status.setText(msg))
        self._series_workers = [x for x in getattr(self, "_series_workers", []) if x is not w] + [w]
        start(w)

    def export_kinetics(self, folder: str | Path | None = None) -> list[Path]:
        """Write kinetics.json / kinetics.csv (asks for a folder when none is given)."""
        if self.session is None:
            return []
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Export kinetics to folder")
            if not folder:
                return []
        try:
            out = self.session.export_kinetics(folder)
        except Exception as exc:  # noqa: BLE001
            self.status.setText(str(exc))
            return []
        self.status.setText(f"Kinetics written to {out[0].parent}")
        return out

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Redraw every viewport from the session."""
        s = self.session
        if s is None:
            return
        for i, v in enumerate(self.views):
            vp = s.viewports[i]
            vol = s.shown(i)
            title = vol.description if s.show_mip and vp.role == "subtraction" else vp.title
            if vol.plane == "sagittal":
                title += " · sagittal"
            v.show_slice(title, s.image(i), s.shown_key(i), vol.load(), s.slice_text(i), s.labels(i))
            v.set_choices(s.choices(), vp.key)
            try:
                v.set_overlay(s.map_overlay(i))
            except Exception as exc:  # noqa: BLE001
                v.set_overlay(None)
                self.status.setText(str(exc))
            link = vp.link if i != s.active else None
            v.set_cross(s.point if i == s.active and s.point else (link.row, link.col) if link and s.point else None)
            m = s.kinetics
            shown = m is not None and m.viewport == i and m.slice == vp.slice
            v.set_roi(m.points if m is not None and shown else None, m.kind if m is not None else "box")
        self.kin.show_curve(s)


def mr_root(paths: list[Path]) -> Path:
    """The folder to scan for a case's MR series: the common parent of its MR image folders
    (``mr/`` for ``mr/dce_pre``, ``mr/sub_post1``...), or the one series folder itself."""
    import os

    if len(paths) == 1:
        p = paths[0]
        return p if p.is_dir() else p.parent
    return Path(os.path.commonpath([str(p) for p in paths]))


def open_for_case(case: Any, study: Any = None, parent: QWidget | None = None) -> MriWindow:
    """Open a case's MR images (all series under their common folder) in a new MRI window."""
    note = " ".join(x for x in [case.description or ""] + list(getattr(study, "citations", []) or []) if x)
    win = MriWindow(mr_root([ci.path for ci in case.images_of("MR")]), source_note=note, parent=parent)
    win.case_id = case.case_id  # the main window's case export adds this window's kinetics
    win.show()
    return win


def wait_loaded(win: MriWindow, timeout_s: float = 120.0) -> None:
    """Process events until the window's study is open (or failed)."""
    import time

    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    end = time.monotonic() + timeout_s
    while win.session is None and not win.error and time.monotonic() < end:
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    QCoreApplication.processEvents()


def _save_png(win: QWidget, path: Path) -> None:
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(path), "PNG", 0)
    if path.stat().st_size > 390_000:  # docs budget, as reader_app.screenshots: 256 colours
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {path.stat().st_size // 1024} KB")


def screenshots(out: Path, dynamic: Path, single: Path | None = None,
                box: tuple[int, list[list[float]]] | None = None) -> list[Path]:
    """Documentation screenshots of the real window (run under ``xvfb-run``).

    Args:
        out: Folder for the PNGs.
        dynamic: A study with a dynamic series (the demo's p11 ``mr`` folder).
        single: A single-phase study (the demo's p14), optional.
        box: (slice, [[x0, y0], [x1, y1]]) for the kinetics measurement.
    """
    made = []
    win = MriWindow(dynamic, source_note="mimbcd-dev CC BY-SA 4.0")
    win.show()
    wait_loaded(win)
    s = win.session
    if s is None:
        raise RuntimeError(win.error)
    k, pts = box if box is not None else (s.viewports[0].slice, [[100.0, 100.0], [110.0, 110.0]])
    s.viewports[0].slice = k
    s.set_point(0, (pts[0][1] + pts[1][1]) / 2, (pts[0][0] + pts[1][0]) / 2)
    made.append(out / "mri_hanging_p11.png")
    _save_png(win, made[-1])
    s.measure(0, "box", pts)
    s.step_phase(2)
    s.toggle_map()
    made.append(out / "mri_kinetics_p11.png")
    _save_png(win, made[-1])
    s.toggle_map()
    s.toggle_mip()
    made.append(out / "mri_mip_p11.png")
    _save_png(win, made[-1])
    win.close()
    if single is not None:
        w2 = MriWindow(single, source_note="mimbcd-dev CC BY-SA 4.0")
        w2.show()
        wait_loaded(w2)
        made.append(out / "mri_single_phase_sagittal_p14.png")
        _save_png(w2, made[-1])
        w2.close()
    return made


def main(argv: list[str] | None = None) -> int:
    """``python -m reader_app.qt_mri FOLDER [--screenshot PNG]``."""
    p = argparse.ArgumentParser(description="Open an MR study folder in the MRI reading window.")
    p.add_argument("folder", type=Path)
    p.add_argument("--screenshot", type=Path, default=None)
    a = p.parse_args(argv)
    from reader_app.qt_app import ensure_app

    app = ensure_app()
    win = MriWindow(a.folder)
    win.show()
    if a.screenshot is not None:
        wait_loaded(win)
        win.grab().save(str(a.screenshot))
        print(a.screenshot)
        return 0 if not win.error else 1
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
