"""Blinded reading-session window: sign in, one case at a time, rate, submit, resume.

All state is in :class:`engine.study.session.StudyRun` (SQLite): this window only shows
what :meth:`ReadingSession.next_case` returns (no truth, no other readers, AI only in aided
arms) and calls ``submit``. Closing the window or a crash loses nothing submitted; signing in
again resumes at the next unrated case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.cases import Case, CaseImage
from engine.errors import BreastReaderError
from engine.study.design import BIRADS_CATEGORIES
from engine.study.session import CaseToRead, ReadingSession, StudyRun, WashoutError

OverlayProvider = Callable[[Case, CaseImage], "np.ndarray | None"]


def _definition_path(definition: str | Path) -> Path:
    p = Path(definition)
    if p.is_dir():
        p = p / "reader_study.toml"
    return p


def _read_pixels(ci: CaseImage) -> np.ndarray:
    """Decode an image for display (GUI engineer's reader bridge when present)."""
    try:
        from reader_app.imaging import read_case_image

        img = read_case_image(ci)
        return np.asarray(img.pixels)
    except ImportError:  # pragma: no cover - bridge always present in the app
        from engine.io.reader import read_image

        return np.asarray(read_image(ci.path, modality_hint=ci.modality).pixels)  # type: ignore[arg-type]


class _SimpleImage(QWidget):
    """Fallback viewer: a pyqtgraph ImageItem in a locked-aspect ViewBox."""

    def __init__(self, title: str, pixels: np.ndarray, overlay: np.ndarray | None) -> None:
        super().__init__()
        self.gv = pg.GraphicsView()
        vb = pg.ViewBox(lockAspect=True, invertY=True)
        self.gv.setCentralItem(vb)
        plane = pixels[pixels.shape[0] // 2] if pixels.ndim == 3 and pixels.shape[-1] != 3 else pixels
        item = pg.ImageItem(plane, axisOrder="row-major")
        vb.addItem(item)
        self.vb = vb
        self.overlay_item: pg.ImageItem | None = None
        if overlay is not None:
            self.set_overlay(overlay)
        vb.autoRange(padding=0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lab = QLabel(title)
        lab.setObjectName("viewTitle")
        lay.addWidget(lab)
        lay.addWidget(self.gv, 1)

    def set_overlay(self, overlay: np.ndarray) -> None:
        """Show a saliency heat map (image pixel coordinates) over the image."""
        if self.overlay_item is None:
            self.overlay_item = pg.ImageItem(axisOrder="row-major")
            # turbo colours with alpha rising with the value: low saliency stays transparent
            rgb = pg.colormap.get("turbo").getLookupTable(nPts=256, alpha=False)
            alpha = (np.clip(np.linspace(0, 1, 256) * 1.6 - 0.25, 0, 1) * 150).astype(np.uint8)
            self.overlay_item.setLookupTable(np.column_stack([rgb, alpha]))
            self.overlay_item.setZValue(5)
            self.vb.addItem(self.overlay_item)
        self.overlay_item.setImage(np.asarray(overlay, dtype=np.float32), levels=(0.0, 1.0))


class ReadingSessionWindow(QWidget):
    """The reading-session window.

    Signals:
        submitted(reader_id, arm_id, case_id): a rating was stored (durably).
        finished(reader_id): the reader has no case left.
    """

    submitted = Signal(str, str, str)
    finished = Signal(str)

    def __init__(self, run: StudyRun, parent: QWidget | None = None,
                 overlay_provider: OverlayProvider | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Reading session - {run.design.name}")
        self.run = run
        self.session: ReadingSession | None = None
        self.current: CaseToRead | None = None
        self.overlay_provider = overlay_provider
        self._shown_at = 0.0
        self.stack = QStackedWidget()
        lay = QVBoxLayout(self)
        lay.addWidget(self.stack)
        self._build_sign_in()
        self._build_reading()
        self._build_message()
        self.stack.setCurrentWidget(self.sign_in_page)

    # ----------------------------------------------------------------- pages
    def _build_sign_in(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        v.addStretch(1)
        title = QLabel(f"<h2>{self.run.design.name}</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(title)
        note = QLabel("Sign in with your reader id. You will see one case at a time; truth and other "
                      "readers' answers are hidden. Submitted ratings are final (changes need a reason).")
        note.setWordWrap(True)
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(note)
        row = QHBoxLayout()
        row.addStretch(1)
        self.reader_box = QComboBox()
        for r in self.run.design.readers:
            self.reader_box.addItem(f"{r.reader_id} - {r.name}", r.reader_id)
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.clicked.connect(self._on_sign_in_clicked)
        row.addWidget(QLabel("Reader:"))
        row.addWidget(self.reader_box)
        row.addWidget(self.sign_in_button)
        row.addStretch(1)
        v.addLayout(row)
        v.addStretch(2)
        self.sign_in_page = page
        self.stack.addWidget(page)

    def _build_reading(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        self.header = QLabel("")
        self.header.setObjectName("sessionHeader")
        v.addWidget(self.header)
        if self.run.design.note:
            note = QLabel(self.run.design.note)
            note.setStyleSheet("color: #b00020;")
            v.addWidget(note)
        self.images = QWidget()
        self.images_layout = QGridLayout(self.images)
        self.images_layout.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.images, 1)
        self.ai_panel = QLabel("")
        self.ai_panel.setFrameShape(QFrame.Shape.StyledPanel)
        self.ai_panel.setObjectName("aiPanel")
        v.addWidget(self.ai_panel)
        controls = QHBoxLayout()
        scale = self.run.design
        controls.addWidget(QLabel(f"Suspicion of malignancy ({scale.rating_min} = certainly benign, "
                                  f"{scale.rating_max} = certainly malignant):"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(scale.rating_min, scale.rating_max)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.slider.setMinimumWidth(240)
        self.slider.valueChanged.connect(self._on_rating_changed)
        self.rating_label = QLabel("-")
        self.rating_label.setMinimumWidth(28)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.rating_label)
        self.birads_box = QComboBox()
        self.birads_box.addItem("BI-RADS...", None)
        for c in BIRADS_CATEGORIES:
            self.birads_box.addItem(c, c)
        self.birads_box.setVisible(scale.birads)
        self.birads_box.currentIndexChanged.connect(self._on_birads_changed)
        controls.addWidget(self.birads_box)
        self.submit_button = QPushButton("Submit")
        self.submit_button.setEnabled(False)
        self.submit_button.clicked.connect(self._on_submit_clicked)
        controls.addWidget(self.submit_button)
        v.addLayout(controls)
        self.reading_page = page
        self.stack.addWidget(page)
        self._touched = False

    def _build_message(self) -> None:
        page = QWidget()
        v = QVBoxLayout(page)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.message, 1)
        self.message_page = page
        self.stack.addWidget(page)

    # ----------------------------------------------------------------- flow
    def sign_in(self, reader_id: str) -> None:
        """Sign in (also used by tests and scripts) and show the next case."""
        idx = self.reader_box.findData(reader_id)
        if idx >= 0:
            self.reader_box.setCurrentIndex(idx)
        self.session = self.run.sign_in(reader_id)
        self.show_next()

    def show_next(self) -> None:
        """Show the reader's next case, or the washout / finished message."""
        assert self.session is not None
        try:
            item = self.session.next_case()
        except WashoutError as exc:
            self.current = None
            self.message.setText(f"<h3>Washout period</h3><p>{exc}</p><p>Your ratings so far are saved.</p>")
            self.stack.setCurrentWidget(self.message_page)
            return
        if item is None:
            self.current = None
            self.message.setText("<h3>Thank you</h3><p>You have read every case in every arm.</p>")
            self.stack.setCurrentWidget(self.message_page)
            self.finished.emit(self.session.reader_id)
            return
        self.current = item
        self._show_case(item)
        self.stack.setCurrentWidget(self.reading_page)

    def _show_case(self, item: CaseToRead) -> None:
        while self.images_layout.count():
            li = self.images_layout.takeAt(0)
            old = li.widget() if li is not None else None
            if old is not None:
                old.hide()  # hidden now: deleteLater only runs at the next event-loop turn
                old.deleteLater()
        imgs = item.case.images
        cols = 2 if len(imgs) > 1 else 1
        self.image_widgets: dict[str, _SimpleImage] = {}
        for k, ci in enumerate(imgs):
            title = f"{ci.modality} {ci.view or ''}".strip()
            try:
                pixels = _read_pixels(ci)
                view = _SimpleImage(title, pixels, None)
                self.image_widgets[ci.image_id] = view
                w: QWidget = view
            except BreastReaderError as exc:
                w = QLabel(f"{title}: cannot display ({exc})")
            self.images_layout.addWidget(w, k // cols, k % cols)
        if item.show_ai and self.overlay_provider is not None:
            self._start_overlays(item)
        progress = self.session.status() if self.session else None
        done = sum(progress.done.values()) if progress else 0
        total = (progress.total * len(progress.done)) if progress else 0
        self.header.setText(f"<b>Reader {self.session.reader_id if self.session else ''}</b> - arm "
                            f"<b>{item.arm.arm_id}</b> - {item.label} - {done} of {total} ratings done")
        if item.show_ai:
            score = "not available" if item.ai_score is None else f"{item.ai_score:.2f}"
            self.ai_panel.setText(f"<b>AI</b> malignancy score: {score} (standalone model output; decision support, not a diagnosis)")
            self.ai_panel.setVisible(True)
        else:
            self.ai_panel.setText("")
            self.ai_panel.setVisible(False)
        self._touched = False
        self.slider.blockSignals(True)
        self.slider.setValue((self.run.design.rating_min + self.run.design.rating_max) // 2)
        self.slider.blockSignals(False)
        self.rating_label.setText("-")
        self.birads_box.setCurrentIndex(0)
        self._update_submit()
        self._shown_at = time.monotonic()

    def _start_overlays(self, item: CaseToRead) -> None:
        """Compute saliency off the GUI thread; apply it if the case is still on screen."""
        from reader_app.qt_workers import Worker, start

        provider = self.overlay_provider
        assert provider is not None

        def job(*, progress: Any = None, cancel: Any = None) -> tuple[str, dict[str, np.ndarray]]:
            maps = {}
            for ci in item.case.images:
                m = provider(item.case, ci)
                if m is not None:
                    maps[ci.image_id] = m
            return item.case.case_id, maps

        worker = Worker(job, name="saliency")
        worker.signals.result.connect(self._on_overlays_ready)
        self._overlay_worker = start(worker)  # keep a reference while it runs

    def _on_overlays_ready(self, result: tuple[str, dict[str, np.ndarray]]) -> None:
        case_id, maps = result
        if self.current is None or self.current.case.case_id != case_id or not self.current.show_ai:
            return  # the reader moved on; never show AI outside an aided arm
        for image_id, m in maps.items():
            view = self.image_widgets.get(image_id)
            if view is not None:
                view.set_overlay(m)

    def _update_submit(self) -> None:
        ok = self._touched and (not self.run.design.birads or self.birads_box.currentData() is not None)
        self.submit_button.setEnabled(bool(ok and self.current is not None))

    def _on_sign_in_clicked(self) -> None:
        self.sign_in(str(self.reader_box.currentData()))

    def _on_rating_changed(self, value: int) -> None:
        self._touched = True
        self.rating_label.setText(str(value))
        self._update_submit()

    def _on_birads_changed(self, _index: int) -> None:
        self._update_submit()

    def set_rating(self, value: int, birads: str | None = None) -> None:
        """Set the controls as a reader would (used by tests/scripts)."""
        self.slider.setValue(value)
        self._on_rating_changed(self.slider.value())
        if birads is not None:
            self.birads_box.setCurrentIndex(self.birads_box.findData(birads))

    def _on_submit_clicked(self) -> None:
        if self.session is None or self.current is None:
            return
        case_id = self.current.case.case_id
        arm_id = self.current.arm.arm_id
        try:
            self.session.submit(case_id, float(self.slider.value()), self.birads_box.currentData())
        except BreastReaderError as exc:
            QMessageBox.warning(self, "Rating not saved", str(exc))
            return
        self.submitted.emit(self.session.reader_id, arm_id, case_id)
        self.show_next()


def open_reading_session(
    definition: str | Path, parent: QWidget | None = None, *, reader: str | None = None,
    overlay_provider: OverlayProvider | None = None, show: bool = True,
) -> ReadingSessionWindow:
    """Open the reading window on a study definition (TOML, or a folder with reader_study.toml).

    Args:
        definition: Study definition.
        parent: Parent widget (the main window's menu action passes itself).
        reader: Sign this reader in directly.
        overlay_provider: Optional ``(case, image) -> heat map`` shown in AI arms (saliency).
        show: Show the window.

    Returns:
        The window (keep a reference).
    """
    from engine.study.session import open_study_run

    run = open_study_run(_definition_path(definition))
    win = ReadingSessionWindow(run, parent, overlay_provider)
    if parent is not None:
        win.setWindowFlag(Qt.WindowType.Window, True)
    win.resize(1100, 800)
    if reader:
        win.sign_in(reader)
    if show:
        win.show()
    return win




def export_study_dialog(
    parent: QWidget | None, definition: str | Path, out_dir: str | Path | None = None,
    include_identifiers: bool = False,
) -> Any:
    """Export a study in a background worker (for the coordinator's menu in the main window).

    Asks for a folder unless ``out_dir`` is given; errors are shown in a dialog. Readers should
    not be offered this (the export contains truth and everyone's results).

    Returns:
        The started worker (its ``signals.result`` carries the ExportResult), or None if cancelled.
    """
    from PySide6.QtWidgets import QFileDialog

    from engine.study.export import export_study_job
    from reader_app.qt_workers import Worker, start

    if out_dir is None:
        chosen = QFileDialog.getExistingDirectory(parent, "Export reader study to")
        if not chosen:
            return None
        out_dir = chosen
    worker = Worker(export_study_job, _definition_path(definition), Path(out_dir), include_identifiers,
                    name="export study")

    def _on_errored(msg: str) -> None:
        QMessageBox.warning(parent, "Export failed", msg)

    worker.signals.errored.connect(_on_errored)
    return start(worker)


def ai_service_overlay_provider() -> OverlayProvider | None:
    """A saliency provider backed by the workstation's AI service, or None if no model is installed."""
    try:
        from reader_app.ai import AIService, installed_models
    except ImportError:  # pragma: no cover
        return None
    if not any(installed_models().values()):
        return None
    service = AIService()

    def provider(case: Case, ci: CaseImage) -> np.ndarray | None:
        from reader_app.imaging import read_case_image

        res = service.score_case(case, {ci.image_id: read_case_image(ci)}, ("gradcam",))
        return res.saliency.get((ci.image_id, "gradcam"))

    return provider
