"""The main window: worklist, hanging of views, AI panel, rating, annotations, problems."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.cases import load_study
from engine.errors import BreastReaderError
from engine.io.types import LoadedImage
from reader_app import paths
from reader_app.ai import AIResult, AIService
from reader_app.imaging import ImageCache, Slot, export_case, hanging_protocol, load_case_images, preview_case_images
from reader_app.qt_panels import AIPanel, AnnotationPanel, ProblemsPanel, RatingPanel, WorklistPanel, short
from reader_app.qt_view import ImageView
from reader_app.qt_workers import Worker, start
from reader_app.state import AppState, CaseState, JsonRatingStore, ViewState
from reader_app.study.reading_state import AI_DISPLAY_LABELS, AI_DISPLAY_MODES
from reader_app.redact import reading_safe

GRID = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
#: How often a failed rating save is retried (ms) while the reader goes on reading.
SAVE_RETRY_MS = 5000

from reader_app.qt_style import STYLE  # noqa: E402  (one dark theme for every window)


def _read_study(folder: Path, state: AppState, *, progress: Any = None, cancel: Any = None) -> tuple[Any, Any]:
    """Worker job: the study and its per-case states (ratings loaded), off the GUI thread.

    Reading allocates hundreds of thousands of objects; a full garbage collection over them
    holds the GIL (the GUI thread too) for 0.1-0.4 s on a 5 000-case study. None runs while
    reading, and what was read is frozen (never scanned again: it lives as long as the study).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        study = load_study(folder, progress=progress, cancel=cancel)
        return study, state.prepare_study(study)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _load_for_case(case: Any, cache: ImageCache, *, on_preview: Any = None, progress: Any = None, cancel: Any = None
                   ) -> tuple[str, dict[str, LoadedImage], dict[str, str]]:
    """Worker job: the case's images, tagged with the case id so late results can be dropped.

    With ``on_preview``, JPEG 2000 images first give ``on_preview((case_id, images, errors))``
    their reduced-resolution first views, then the full decode is returned.
    """
    if on_preview is not None:
        first = preview_case_images(case, cache, cancel=cancel)
        if first is not None:
            on_preview((case.case_id, *first))
    images, errors = load_case_images(case, cache, progress=progress, cancel=cancel)
    return case.case_id, images, errors


class MainWindow(QMainWindow):
    """The reading workstation. All state lives in :class:`AppState`; this class only wires it.

    Signals:
        case_loaded(case_id): the images of the current case are shown (full resolution).
        preview_shown(case_id): reduced-resolution first views are shown (JPEG 2000), before case_loaded.
        ai_finished(case_id): AI scoring of the current case ended (result, error or cancel).
        study_opened(folder): a study read by :meth:`open_study` is shown ('' on failure).
        ai_ready(): the models loaded in the background by :meth:`start_ai_warmup` are ready.
    """

    case_loaded = Signal(str)
    preview_shown = Signal(str)
    ai_finished = Signal(str)
    _preview_ready = Signal(object)  # emitted by the load worker's thread, delivered queued
    ai_ready = Signal()  # the background model load (start_ai_warmup) ended
    study_opened = Signal(str)  # folder ('' when it could not be read)
    #: How long closing waits for cancelled workers; the app sets 0, it exits right after.
    close_wait_ms = 200
    prior_shown = Signal(str)  # current | prior comparison on screen (prior case id)

    def __init__(self, state: AppState | None = None, ai: AIService | None = None,
                 cache: ImageCache | None = None, auto_score: bool = False,
                 ai_display: str = "after_rating") -> None:
        super().__init__()
        self.state = state or AppState(rating_sink=JsonRatingStore(paths.user_data_dir()))
        self.ai = ai or AIService()
        self.cache = cache or ImageCache()
        self.auto_score = auto_score
        self.images: dict[str, LoadedImage] = {}
        self.image_errors: dict[str, str] = {}
        self.slots: list[Slot] = []
        self.views: list[ImageView] = []
        self.view_states: dict[tuple[str, str], ViewState] = {}
        self.active_index = 0
        self.selected_ann: str | None = None
        self.ai_result: AIResult | None = None
        self._load_worker: Worker | None = None
        self._ai_worker: Worker | None = None
        self._warmup_worker: Worker | None = None
        self._study_worker: Worker | None = None
        self._workers: set[Worker] = set()
        self._digit_at = 0.0
        self._last_digit = -1
        self.last_error = ""
        self.pool = QThreadPool.globalInstance()
        self.ai_display = ai_display if ai_display in AI_DISPLAY_MODES else "after_rating"
        self._ai_requested = False  # on-demand mode: the reader asked (A) for this case
        self.show_truth = False
        self.hanging_step = 0
        self.showing_preview = False  # the views show JPEG 2000 first views; full resolution follows
        self._score_after_full = False
        self._preview_ready.connect(self._on_preview_loaded)

        self.setWindowTitle("breast-reader")
        self.setStyleSheet(STYLE)
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self._build_ui()
        self._build_actions()
        s = self.state
        s.case_changed.connect(self._on_case_changed)
        s.layout_changed.connect(lambda _l: self._relayout())
        s.tool_changed.connect(self._on_tool_changed)
        s.ai_visible_changed.connect(self._on_ai_visible_changed)
        s.study_changed.connect(self._on_study_changed)
        s.save_failed.connect(self._on_save_failed)
        s.save_recovered.connect(self._on_save_recovered)
        self._save_retry = QTimer(self)  # runs only while a rating is unsaved
        self._save_retry.setInterval(SAVE_RETRY_MS)
        self._save_retry.timeout.connect(self.state.retry_saves)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.rating_panel.tick)
        self._timer.start(1000)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        self.case_header = QLabel("Open a study: File → Open (Ctrl+O), or drop a study folder here.")
        self.case_header.setObjectName("caseHeader")
        # long case descriptions must never widen the window: clip, full text in the tooltip
        self.case_header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.synthetic_badge = QLabel("SYNTHETIC")
        self.synthetic_badge.setStyleSheet("color:#000;background:#ff6b6b;font-weight:bold;padding:2px 8px")
        self.synthetic_badge.setVisible(False)
        head = QHBoxLayout()
        head.addWidget(self.case_header, 1)
        head.addWidget(self.synthetic_badge)
        self.grid_host = QWidget()
        self.grid_host.installEventFilter(self)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(3)
        central = QWidget()
        central.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(head)
        lay.addWidget(self.grid_host, 1)
        self.setCentralWidget(central)

        self.worklist = WorklistPanel(self.state)
        self.worklist_dock = self._dock("Worklist", self.worklist, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.worklist_dock.setMinimumWidth(270)

        self.ai_panel = AIPanel()
        self.rating_panel = RatingPanel(self.state)
        self.ann_panel = AnnotationPanel(self.state)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(4, 0, 4, 4)
        sl.addWidget(self.ai_panel)
        sl.addWidget(self.rating_panel)
        sl.addWidget(self.ann_panel)
        sl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(side)
        scroll.setMinimumWidth(320)
        self.side_dock = self._dock("AI · Rating · Annotations", scroll, Qt.DockWidgetArea.RightDockWidgetArea)

        self.problems = ProblemsPanel()
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.problems_dock.setVisible(False)
        self.problems.setMaximumHeight(160)

        self.readout = QLabel("")
        self.statusBar().addPermanentWidget(self.readout)
        self.save_banner = QLabel("")  # stays while a rating is not on disk
        self.save_banner.setStyleSheet("color:#000;background:#ff6b6b;font-weight:bold;padding:1px 8px")
        self.save_banner.setVisible(False)
        self.statusBar().addPermanentWidget(self.save_banner)

        self.ai_panel.run_requested.connect(self.score_case)
        self.ai_panel.cancel_requested.connect(self.cancel_ai)
        self.ai_panel.overlay_changed.connect(self._on_overlay_setting_changed)
        self.ai_panel.model_changed.connect(self._on_model_changed)
        self._fill_models()
        self.ann_panel.delete_requested.connect(self._on_delete_requested)
        self.ann_panel.export_requested.connect(self.export_annotations)
        self.ann_panel.lesion_edit_requested.connect(self._on_lesion_edit_requested)
        self.ann_panel.select_requested.connect(self._on_annotation_selected)

    def _dock(self, title: str, w: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(title)
        d.setWidget(w)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _act(self, menu: Any, text: str, keys: str | list[str] | QKeySequence.StandardKey | None, slot: Any,
             checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if isinstance(keys, list):
            a.setShortcuts([QKeySequence(k) for k in keys])
        elif isinstance(keys, QKeySequence.StandardKey):
            a.setShortcut(QKeySequence(keys))
        elif keys:
            a.setShortcut(QKeySequence(keys))
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        if menu is not None:
            menu.addAction(a)
        self.addAction(a)
        self.shortcut_table.append((menu.title().replace("&", "") if menu is not None else "Rating", text,
                                    ", ".join(s.toString() for s in a.shortcuts())))
        return a

    def _build_actions(self) -> None:
        self.shortcut_table: list[tuple[str, str, str]] = []
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._act(f, "Open study…", QKeySequence.StandardKey.Open, self.open_study_dialog)
        self._act(f, "Import exams (DICOM folder, image folder, manifest CSV)…", "Ctrl+I", self.import_dialog)
        self.recent_menu = f.addMenu("Recent studies")
        self._fill_recent()
        self._act(f, "Export annotations (masks + COCO)…", "Ctrl+E", self.export_annotations)
        from reader_app.qt_pacs import add_pacs_actions  # issue-15: Open from PACS / Send results

        add_pacs_actions(self, f)
        self._act(f, "Quit", "Ctrl+Q", self.close)
        v = mb.addMenu("&View")
        self._act(v, "Layout 1×1", "Ctrl+1", lambda: self.state.set_layout("1x1"))
        self._act(v, "Layout 1×2", "Ctrl+2", lambda: self.state.set_layout("1x2"))
        self._act(v, "Layout 2×2", "Ctrl+3", lambda: self.state.set_layout("2x2"))
        self._act(v, "Cycle layout", "L", self.state.cycle_layout)
        self._act(v, "Next view", "Tab", lambda: self.set_active(self.active_index + 1))
        self._act(v, "Previous view", "Shift+Tab", lambda: self.set_active(self.active_index - 1))
        self._act(v, "Reset view (window, zoom)", "R", self.reset_view)
        self._act(v, "Fit all views", "Z", self.fit_all)
        self._act(v, "Invert", "I", self._on_invert_changed)
        self._act(v, "Saliency overlay on/off", "S", self.toggle_overlay)
        self._build_method_menu(v)
        self._act(v, "Next slice (MR; nothing on 2-D images)", ["Down", "Right"], lambda: self.scroll_slices(1))
        self._act(v, "Previous slice (MR; nothing on 2-D images)", ["Up", "Left"], lambda: self.scroll_slices(-1))
        self._act(v, "True size 1:1", "O", self._on_one_to_one)
        self._act(v, "Next hanging step (4-view, CC pair, MLO pair, single views)", "H", self.next_hanging_step)
        for k in range(5):
            self._act(v, f"Window preset {k + 1}", f"F{k + 2}", lambda _=False, i=k: self._on_preset_key(i))
        self.truth_action = self._act(v, "Show dataset truth (dashed, grey)", "T", self._on_show_truth_changed,
                                      checkable=True)
        self.shortcut_table.append(("View", "Magnifier glass", "hold G"))
        self._act(v, "Compare with prior exam (current | prior, same view)", "Shift+P", self.toggle_prior)
        # MRI reading (issue 13): hanging, linked series, phases, subtraction, MIP, kinetics.
        self._act(v, "MRI reading window (series, subtraction, kinetics)…", "Ctrl+Shift+M", self.open_mri_window)
        t = mb.addMenu("&Tools")
        for name, key in (("navigate", "V"), ("box", "B"), ("polygon", "P"), ("freehand", "F"), ("ruler", "M")):
            self._act(t, f"{name.capitalize()} tool", key, lambda _=False, n=name: self.state.set_tool(n))
        self._act(t, "Close polygon / accept the AI box suggestion", ["Return", "Enter"], self._on_close_polygon)
        self._act(t, "Cancel drawing / measurement", "Esc", self._on_escape)
        c = mb.addMenu("&Case")
        self._act(c, "Next case", ["PgDown", "]"], lambda: self.state.step_case(1))
        self._act(c, "Previous case", ["PgUp", "["], lambda: self.state.step_case(-1))
        self._act(c, "Score case with AI", "A", self.score_case)
        self.auto_action = self._act(c, "Score each case automatically", None, self._on_auto_score_changed,
                                     checkable=True)
        self.auto_action.setChecked(self.auto_score)
        aim = c.addMenu("AI display")
        self.ai_display_actions = {}
        for mode in AI_DISPLAY_MODES:
            a = QAction(AI_DISPLAY_LABELS[mode], self)
            a.setCheckable(True)
            a.setChecked(mode == self.ai_display)
            a.triggered.connect(lambda _=False, m=mode: self.set_ai_display(m))
            aim.addAction(a)
            self.ai_display_actions[mode] = a
        self._act(c, "New lesion id", "N", self.state.new_lesion)
        self._act(c, "Structured report (BI-RADS)…", "Ctrl+B", self.open_report)
        self._act(c, "Delete selected annotation", ["Del", "Backspace"], lambda: self._on_delete_requested(self.selected_ann or ""))
        self._act(c, "Undo", QKeySequence.StandardKey.Undo, self.undo)
        self._act(c, "Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.redo)
        self._act(c, "Search worklist", "Ctrl+F", lambda: self.worklist.search.setFocus())
        for d in range(10):
            a = QAction(f"Rate {d}", self)
            a.setShortcut(QKeySequence(str(d)))
            a.triggered.connect(lambda _=False, n=d: self.rate_key(n))
            self.addAction(a)
        self.shortcut_table.append(("Rating", "Rate 0–9 (1 then 0 quickly = 10)", "0 … 9"))
        st = mb.addMenu("&Study")
        self._act(st, "Start blinded reading session…", "Ctrl+Shift+R", self.start_reading_session)
        # Coordinator only: an export reveals truth and every reader's answers.
        self._act(st, "Export reader study (coordinator)…", None, self.export_reader_study)
        self._act(st, "FROC analysis of exported marks…", None, self.froc_analysis_dialog)
        self._act(st, "Study sizing (power of a planned design)…", None, self.power_dialog)
        h = mb.addMenu("&Help")
        self._act(h, "Keyboard shortcuts", ["F1", "?"], self.show_shortcuts)
        self.shortcut_table.append(("Mouse", "Window/level", "right-drag"))
        self.shortcut_table.append(("Mouse", "Zoom / slices (MR) / zoom on MR", "wheel / wheel / Ctrl+wheel"))
        self.shortcut_table.append(("Mouse", "Pan (navigate tool)", "left-drag"))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = paths.recent_studies()
        for p in items:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, path=p: self.open_study(path))
        self.recent_menu.setEnabled(bool(items))

    # ------------------------------------------------------------------ study
    def _ask_study_definition(self, title: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, "", "Reader study definition (*.toml)")
        return path

    def start_reading_session(self, definition: str | Path | None = None) -> Any:
        """Open the blinded reading-session window (reader_app.study) on a study definition."""
        from reader_app.study import open_reading_session

        definition = definition or self._ask_study_definition("Open reader study definition")
        if not definition:
            return None
        try:
            window = open_reading_session(definition, self)
        except BreastReaderError as exc:
            self.show_error(f"Cannot start the reading session: {exc}")
            return None
        self._session_windows = [w for w in getattr(self, "_session_windows", []) if w.isVisible()]
        self._session_windows.append(window)
        return window

    def export_reader_study(self, definition: str | Path | None = None, out_dir: str | Path | None = None) -> Any:
        """Export a reader study (ratings, iMRMC, AUCs, MRMC, ROC figures, PDF) in a worker."""
        from reader_app.study.qt_session import export_study_dialog

        definition = definition or self._ask_study_definition("Reader study to export")
        if not definition:
            return None
        return export_study_dialog(self, definition, out_dir)

    def froc_analysis_dialog(self, folder: str | Path | None = None) -> Any:
        """FROC / AFROC / wAFROC ORH analysis of a study export's marks (reader_app.study.qt_analysis)."""
        from reader_app.study.qt_analysis import FrocAnalysisDialog

        dlg = FrocAnalysisDialog(self, folder)
        dlg.show()
        return dlg

    def power_dialog(self, definition: str | Path | None = None, pilot: str | Path | None = None) -> Any:
        """Power of a planned reader study from a pilot (reader_app.study.qt_analysis)."""
        from reader_app.study.qt_analysis import PowerDialog

        dlg = PowerDialog(self, definition, pilot)
        dlg.show()
        return dlg

    def open_report(self) -> Any:
        """The structured BI-RADS report form of the current case (stored with the case)."""
        from reader_app.qt_report import ReportForm

        cs = self.state.current
        if cs is None:
            return None
        dlg = ReportForm(cs.case, dict(self.images), self, author=self.state.author)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def _on_saved(path: str) -> None:
            self.statusBar().showMessage(f"Report saved to {path}", 6000)
            if dlg.report.final_category and dlg.report.final_category != cs.rating.birads:
                self.state.rate(birads=dlg.report.final_category)  # the rating's BI-RADS follows the report

        dlg.saved.connect(_on_saved)
        dlg.show()
        self._report_dialog = dlg
        return dlg

    def import_dialog(self, source: str | Path | None = None) -> Any:
        """File > Import: preview the grouping, then import in a worker and open the study."""
        from reader_app.qt_import import ImportDialog

        dlg = ImportDialog(self, source)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.imported.connect(self._on_imported)
        dlg.show()
        self._import_dialog = dlg
        return dlg

    def _on_imported(self, folder: str) -> None:
        self.open_study(folder)

    def open_study_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open study folder")
        if folder:
            self.open_study(folder)

    def open_study(self, folder: str | Path, *, wait: bool = False) -> bool:
        """Open a study folder: read in a worker (progress in the worklist), then shown.

        Problems are listed, the rest opens. A folder that is not a study is refused at once
        (one message). ``study_opened(folder)`` is emitted when the study is shown ('' when
        it could not be read); ``wait=True`` (scripts) returns only then, the event loop
        running meanwhile.

        Returns:
            False when the folder is not a study (or, with ``wait``, could not be read).
        """
        folder = Path(folder)
        if not (folder / "study.json").is_file():
            try:
                load_study(folder)  # raises at once: not a folder / no study.json
            except BreastReaderError as exc:
                self.show_error(f"Cannot open study: {exc}")
                return False
        if self._study_worker is not None and not getattr(self._study_worker, "ended", False):
            self._study_worker.cancel()
        w = Worker(_read_study, folder, self.state, name="study")
        w.folder = folder  # type: ignore[attr-defined]
        w.signals.progress.connect(self.worklist.show_progress)
        w.signals.result.connect(lambda study, w=w: self._on_study_read(w, study))
        w.signals.errored.connect(lambda msg, w=w: self._on_study_failed(w, msg))
        w.signals.cancelled.connect(lambda w=w: self._on_study_cancelled(w))
        w.signals.finished.connect(lambda w=w: setattr(w, "ended", True))
        self._study_worker = w
        self._track(w)
        self.worklist.show_progress(0, 0, f"Reading study {folder.name}…")
        start(w, self.pool)
        if not wait:
            return True
        from PySide6.QtCore import QEventLoop

        loop = QEventLoop()
        ok = {"v": False}

        def _done(f: str) -> None:
            ok["v"] = bool(f)
            loop.quit()

        self.study_opened.connect(_done)
        loop.exec()
        self.study_opened.disconnect(_done)
        return ok["v"]

    def _on_study_cancelled(self, w: Worker) -> None:
        if w is self._study_worker:
            self.study_opened.emit("")

    def _on_study_failed(self, w: Worker, msg: str) -> None:
        if w is self._study_worker:
            self.worklist.show_progress(0, 0, "")
            self.show_error(f"Cannot open study: {msg}")
            self.study_opened.emit("")

    def _on_study_read(self, w: Worker, out: tuple[Any, Any]) -> None:
        if w is not self._study_worker:
            return  # a later open_study superseded this one
        folder = w.folder  # type: ignore[attr-defined]
        study, prepared = out
        self.worklist.show_progress(0, 0, "")
        self.state.set_study(study, prepared)
        try:
            paths.add_recent_study(folder)
            self._fill_recent()
        except OSError:
            pass
        probs = {short(p.path, study.folder) + (f" (row {p.row})" if p.row else ""): p.reason for p in study.problems}
        self.problems.set_problems(probs)
        self.problems_dock.setVisible(bool(probs))
        n = len(study.cases)
        msg = f"Opened {study.name}: {n} case{'s' if n != 1 else ''}"
        if probs:
            msg += f", {len(probs)} problem{'s' if len(probs) != 1 else ''} (see Problems)"
        self.statusBar().showMessage(msg, 8000)
        ids = self.state.visible_case_ids()
        if ids:
            self.state.select_case(ids[0])
        self.study_opened.emit(str(folder))

    def show_error(self, text: str) -> None:
        """One clear message (status bar + non-modal dialog), never a traceback."""
        self.last_error = text
        self.statusBar().showMessage(text, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "breast-reader", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _on_save_failed(self, text: str) -> None:
        """A rating could not be stored: say so at once (it stays on screen) and keep retrying."""
        self.save_banner.setText("Rating NOT saved, retrying")
        self.save_banner.setToolTip(text)
        self.save_banner.setVisible(True)
        if self._save_retry.isActive():  # one dialog per failure, not one per keystroke or retry
            self.last_error = text
            self.statusBar().showMessage(text, 15000)
        else:
            self.show_error(text)
            self._save_retry.start()

    def _on_save_recovered(self) -> None:
        self._save_retry.stop()
        self.save_banner.setVisible(False)
        self.statusBar().showMessage("Ratings saved: every answer that could not be stored is on disk now", 8000)

    def _on_study_changed(self) -> None:
        st = self.state.study
        if st is not None:
            self.setWindowTitle(f"breast-reader — {st.name}")
            if st.synthetic_note:
                self.worklist.setToolTip(st.synthetic_note)
        # the rows follow from AppState.worklist_changed, emitted right after (one model reset)

    # drag and drop ---------------------------------------------------------
    def dragEnterEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        urls = ev.mimeData().urls() if ev.mimeData().hasUrls() else []
        if urls and Path(urls[0].toLocalFile()).is_dir():
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dropEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        urls = ev.mimeData().urls()
        if urls:
            folder = Path(urls[0].toLocalFile())
            if (folder / "study.json").exists():
                self.open_study(folder)
            else:  # a folder of exams: preview and import it
                self.import_dialog(folder)
            ev.acceptProposedAction()

    # ------------------------------------------------------------------ case
    def _on_case_changed(self, cs: CaseState | None) -> None:
        from reader_app.qt_prior import close_prior

        close_prior(self)
        self.cancel_ai()
        self.ai_result = None
        self.selected_ann = None
        self._clear_views()
        self.images, self.image_errors = {}, {}
        if cs is None:
            self.case_header.setText("No case selected.")
            self.synthetic_badge.setVisible(False)
            return
        case = cs.case
        self._ai_requested = False
        cs.annotations_changed.connect(self._on_annotations_changed)
        cs.rating_changed.connect(self._on_case_rated)
        # descriptions of dataset cases name the files, and the files name the truth
        desc = f" · {reading_safe(case.description)}" if case.description else ""
        self.case_header.setText(f"<b>Case {reading_safe(case.case_id)}</b> · {'+'.join(case.modalities)}{desc}")
        self.case_header.setToolTip("\n".join(reading_safe(x) for x in (case.description, case.paired_note) if x))
        self.synthetic_badge.setVisible(case.synthetic)
        self.synthetic_badge.setText("SYNTHETIC CASE" if case.synthetic else "SYNTHETIC")
        self.ai_panel.clear(case.synthetic, self._ai_waiting_message())
        self.ann_panel.refresh()
        self.statusBar().showMessage(f"Loading case {case.case_id}…")
        self.showing_preview = self._score_after_full = False
        w = Worker(_load_for_case, case, self.cache, on_preview=self._preview_ready.emit, name="load")
        w.case_id = case.case_id  # type: ignore[attr-defined]
        w.signals.result.connect(self._on_images_loaded)
        w.signals.errored.connect(self._on_worker_error)
        self._track(w)
        self._load_worker = w
        start(w, self.pool)

    def _track(self, w: Worker) -> None:
        self._workers.add(w)
        w.signals.finished.connect(self._on_worker_finished)

    def _on_worker_finished(self) -> None:
        sender = self.sender()
        done = [w for w in self._workers if w.signals is sender]
        # keep the Python object alive a little longer: its run() may still be returning
        QTimer.singleShot(1000, lambda: self._workers.difference_update(done))

    def _on_worker_error(self, msg: str) -> None:
        self.show_error(msg)

    def _on_preview_loaded(self, out: tuple[str, dict[str, LoadedImage], dict[str, str]]) -> None:
        cs = self.state.current
        if cs is None or out[0] != cs.case.case_id or self.views:
            return
        self.showing_preview = True
        self._show_images((out[0], out[1], {}))  # failures are reported once, with the full load
        self.statusBar().showMessage("First view (reduced resolution); full resolution is decoding…")
        self.preview_shown.emit(cs.case.case_id)

    def _on_images_loaded(self, out: tuple[str, dict[str, LoadedImage], dict[str, str]]) -> None:
        cs = self.state.current
        if cs is None or out[0] != cs.case.case_id or (self.views and not self.showing_preview):
            return  # a late load of a case the reader already left (or already shown)
        self.showing_preview = False
        self._show_images(out)
        case = cs.case
        self.case_loaded.emit(case.case_id)
        hit = self.ai.cached(case)
        if hit is not None and self.ai_allowed_now():
            self._apply_ai_result(hit)
        elif (self.auto_score or self._score_after_full) and self.ai_allowed_now():
            self.score_case()
        self._score_after_full = False

    def _show_images(self, out: tuple[str, dict[str, LoadedImage], dict[str, str]]) -> None:
        cs = self.state.current
        assert cs is not None
        _, self.images, self.image_errors = out
        case = cs.case
        for image_id, why in self.image_errors.items():
            self.problems.add(short(case.image(image_id).path, self._study_root()), why)
            self.state.image_problems[f"{case.case_id}/{image_id}"] = why
        if self.image_errors:
            self.problems_dock.setVisible(True)
            self.statusBar().showMessage(
                f"{len(self.image_errors)} image(s) of case {case.case_id} could not be opened (see Problems)", 10000)
        else:
            self.statusBar().clearMessage()
        self.slots = hanging_protocol(case, self.images)
        for ci in case.images:  # images that failed still get a slot with the reason
            if ci.image_id in self.image_errors and all(s.image_id != ci.image_id for s in self.slots):
                self.slots.append(Slot(ci.image_id, f"{ci.modality} {ci.view or ''}", ci.modality))
        self._build_views()

    def _study_root(self) -> Path | None:
        return Path(self.state.study.folder) if self.state.study else None

    def _clear_views(self) -> None:
        self._clear_views_only()
        self.slots = []

    def _build_views(self) -> None:
        self._clear_views_only()
        cs = self.state.current
        assert cs is not None
        for slot in self.slots:
            key = (cs.case.case_id, slot.image_id)
            vs = self.view_states.get(key)
            if vs is None:
                vs = ViewState(method=self.ai_panel.method.currentData(), colormap=self.ai_panel.colormap.currentData(),
                               opacity=self.ai_panel.opacity.value() / 100.0, overlay_on=self.ai_panel.overlay_on.isChecked())
                self.view_states[key] = vs
            v = ImageView(slot, self.images.get(slot.image_id), vs, error=self.image_errors.get(slot.image_id))
            v.activated.connect(self._on_view_activated)
            v.drawn.connect(self._on_drawn)
            v.edited.connect(self._on_edited)
            v.selected.connect(self._on_annotation_selected)
            v.range_changed.connect(self._on_view_range_changed)
            v.readout.connect(self.readout.setText)
            v.set_tool(self.state.tool)
            v.show_truth = self.show_truth
            v.set_annotations(cs.case.annotations)
            self.views.append(v)
        self.active_index = 0
        self._relayout()

    def _clear_views_only(self) -> None:
        for v in self.views:
            v.dispose()
            self.grid.removeWidget(v)
            v.setParent(None)
            v.deleteLater()
        self.views = []

    def visible_views(self) -> list[ImageView]:
        """Views shown in the current layout page."""
        return [v for v in self.views if v.isVisibleTo(self.grid_host)]

    def _relayout(self) -> None:
        for v in self.views:
            self.grid.removeWidget(v)
            v.setVisible(False)
        if not self.views:
            return
        rows, cols = self.grid_shape()
        n = rows * cols
        first = (self.active_index // n) * n
        page = self.views[first : first + n]
        for i, v in enumerate(page):
            self.grid.addWidget(v, i // cols, i % cols)
            v.setVisible(True)
        for r in range(2):
            self.grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(2):
            self.grid.setColumnStretch(c, 1 if c < cols else 0)
        for v in self.views:
            v.set_active(v is self.active_view())
        self._fit_cells()
        QTimer.singleShot(0, self, self.fit_all)

    MG_CELL_ASPECT = 0.82  # width / height of a mammography cell (a film is about 8 x 10 in)

    def _fit_cells(self) -> None:
        """Portrait cells for mammograms: side margins so each column is at most
        MG_CELL_ASPECT x the row height (a landscape cell would shrink the breast)."""
        page = [v for v in self.views if v.isVisibleTo(self.grid_host)] if self.views else []
        if not page or any(v.slot.modality != "MG" for v in page):
            self.grid.setContentsMargins(0, 0, 0, 0)
            return
        rows, cols = self.grid_shape()
        H = max(1, self.grid_host.height())
        W = max(1, self.grid_host.width())
        want = int(cols * self.MG_CELL_ASPECT * H / rows)
        side = max(0, (W - want) // 2)
        self.grid.setContentsMargins(side, 0, side, 0)

    def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 - Qt API
        from PySide6.QtCore import QEvent

        if obj is getattr(self, "grid_host", None) and ev.type() == QEvent.Type.Resize:
            self._fit_cells()
        return super().eventFilter(obj, ev)

    def fit_all(self) -> None:
        """Fit every shown view."""
        for v in self.views:
            if not v.isHidden():
                v.fit()

    def grid_shape(self) -> tuple[int, int]:
        """Rows and columns of the layout, shrunk when the case has fewer views (one MR series
        fills the whole area instead of leaving empty cells)."""
        rows, cols = GRID[self.state.layout]
        n = len(self.views)
        if 0 < n < rows * cols:
            if n == 1:
                return 1, 1
            if n == 2:
                return 1, 2
        return rows, cols

    def active_view(self) -> ImageView | None:
        return self.views[self.active_index] if 0 <= self.active_index < len(self.views) else None

    def set_active(self, index: int) -> None:
        """Make view ``index`` (wrapping) the one keyboard commands act on."""
        if not self.views:
            return
        index %= len(self.views)
        rows, cols = self.grid_shape()
        n = rows * cols
        page_changed = index // n != self.active_index // n
        self.active_index = index
        if page_changed:
            self._relayout()
        for v in self.views:
            v.set_active(v is self.active_view())
        av = self.active_view()
        if av is not None and not self.ai_panel.all_views.isChecked():
            self.ai_panel.show_view_settings(av.view_state)
        from reader_app.qt_prior import refresh_prior

        refresh_prior(self)  # Tab steps the compared view too

    def _on_view_activated(self, view: ImageView) -> None:
        if view in self.views and self.views.index(view) != self.active_index:
            self.set_active(self.views.index(view))

    def _on_view_range_changed(self, view: ImageView) -> None:
        group = view.slot.sync_group
        if not group:
            return
        r = view.normalized_range()
        for v in self.views:
            if v is not view and v.slot.sync_group == group:
                lats = {view.slot.laterality, v.slot.laterality}
                if lats == {"L", "R"}:  # mirrored pair: the chest-wall side stays the chest-wall side
                    v.set_normalized_range((1.0 - r[0] - r[2], r[1], r[2], r[3]))
                else:
                    v.set_normalized_range(r)

    # ------------------------------------------------------------------ view commands
    def reset_view(self) -> None:
        v = self.active_view()
        if v:
            v.reset()
            v.clear_ruler()

    def _on_invert_changed(self) -> None:
        v = self.active_view()
        if v:
            v.view_state.set("invert", not v.view_state.invert)

    def toggle_overlay(self) -> None:
        """'S': saliency overlay on/off in every view."""
        self.ai_panel.overlay_on.setChecked(not self.ai_panel.overlay_on.isChecked())

    def scroll_slices(self, step: int) -> None:
        """Arrow keys: slices of an MR stack; on a 2-D image nothing (never the next case: that
        is PgDown / ])."""
        v = self.active_view()
        if v is not None and v.n_frames > 1:
            v.view_state.scroll(step)

    def _on_one_to_one(self) -> None:
        v = self.active_view()
        if v is not None:
            v.zoom_1to1()

    def _on_preset_key(self, index: int) -> None:
        v = self.active_view()
        if v is not None and not v.apply_preset(index):
            self.statusBar().showMessage(f"This image has no window preset {index + 1}", 3000)

    def _on_show_truth_changed(self, on: bool) -> None:
        self.show_truth = bool(on)
        for v in self.views:
            v.set_show_truth(self.show_truth)
        n = sum(v.truth_count() for v in self.views)
        self.statusBar().showMessage(
            f"Dataset truth {'shown (dashed grey)' if on else 'hidden'}: {n} region(s) on this case", 4000)

    def next_hanging_step(self) -> None:
        """Mammography hanging steps: 4-view, CC pair, MLO pair, then each view alone."""
        n = len(self.views)
        if not n:
            return
        from reader_app.imaging import hanging_steps

        steps = hanging_steps(n)  # the reading session steps the same way
        self.hanging_step = (self.hanging_step + 1) % len(steps)
        layout, index = steps[self.hanging_step]
        self.state.set_layout(layout)
        self.set_active(index)
        self._relayout()
        self.statusBar().showMessage(f"Hanging: {layout} from {self.views[index].slot.title}", 3000)

    def toggle_prior(self) -> bool:
        """Shift+P: current | prior of the active view (reader_app.qt_prior), or back."""
        from reader_app.qt_prior import toggle_prior

        return toggle_prior(self)

    # magnifier: held key, so key press/release rather than a shortcut
    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        if ev.key() == Qt.Key.Key_G and not ev.isAutoRepeat():
            v = self._view_under_mouse() or self.active_view()
            if v is not None:
                v.set_magnifier(True)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        if ev.key() == Qt.Key.Key_G and not ev.isAutoRepeat():
            for v in self.views:
                v.set_magnifier(False)
            ev.accept()
            return
        super().keyReleaseEvent(ev)

    def _view_under_mouse(self) -> ImageView | None:
        from PySide6.QtGui import QCursor

        pos = QCursor.pos()
        for v in self.views:
            if v.isVisible() and v.rect().contains(v.mapFromGlobal(pos)):
                return v
        return None

    def _on_tool_changed(self, tool: str) -> None:
        for v in self.views:
            v.set_tool(tool)
        self.statusBar().showMessage(f"Tool: {tool}", 3000)

    def _on_close_polygon(self) -> None:
        """Enter: close the polygon being drawn, else accept the AI's suggested lesion box."""
        v = self.active_view()
        for w in self.views:
            if w._draft and self.state.tool == "polygon":
                w.close_polygon()
                return
        if v is not None and not v._draft and self.accept_suggestion(v):
            return
        if v:
            v.close_polygon()

    # ------------------------------------------------------------------ AI box suggestion (issue 12)
    def _build_method_menu(self, view_menu: Any) -> None:
        """View > Saliency method: the same choice as the AI panel's Method box, kept in step."""
        from PySide6.QtGui import QActionGroup

        menu = view_menu.addMenu("Saliency method")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.method_actions: dict[str, QAction] = {}
        combo = self.ai_panel.method
        for i in range(combo.count()):
            m = combo.itemData(i)
            a = QAction(combo.itemText(i), self)
            a.setCheckable(True)
            a.setChecked(m == combo.currentData())
            a.triggered.connect(lambda _=False, k=i: combo.setCurrentIndex(k))
            group.addAction(a)
            menu.addAction(a)
            self.method_actions[m] = a
        combo.currentIndexChanged.connect(self._on_method_combo_changed)

    def _on_method_combo_changed(self, _i: int) -> None:
        cur = self.ai_panel.method.currentData()
        for m, a in self.method_actions.items():
            a.setChecked(m == cur)

    def _apply_suggestions(self) -> None:
        """Show the lesion finder's box as a suggestion on every image the reader has drawn none on."""
        res, cs = self.ai_result, self.state.current
        allowed = res is not None and cs is not None and self.ai_allowed_now()
        for v in self.views:
            box = None
            if allowed:
                a = (getattr(res, "lesion", None) or {}).get(v.slot.image_id)
                if a is not None and a.box_source == "finder" and cs.case.lesion_box(v.slot.image_id) is None:  # type: ignore[union-attr]
                    box = tuple(float(x) for x in a.box)
            if box is not None and v.suggestion_box is None:
                self.statusBar().showMessage(f"AI suggests a lesion box on {v.slot.image_id} (dashed): Enter accepts "
                                             "it as your box, or draw your own", 8000)
            v.set_suggestion(box)  # type: ignore[arg-type]

    def accept_suggestion(self, view: ImageView) -> bool:
        """Make the view's AI-suggested box the reader's box (then re-score with it); False if none."""
        box = view.suggestion_box
        if box is None:
            return False
        x0, y0, x1, y1 = box
        ann = self.state.new_annotation(view.slot.image_id, "box", [[x0, y0], [x1, y1]], view._frame())
        if ann is None:
            return False
        self.statusBar().showMessage(f"AI suggestion accepted as box {ann.lesion_id} on {view.slot.image_id} (saved)", 4000)
        if self.ai_result is not None:
            self._ai_worker = None
            self.score_case()
        return True

    def _on_escape(self) -> None:
        busy = any(v._draft for v in self.views) or any(v.ruler_px is not None for v in self.views)
        for v in self.views:
            v.cancel_draft()
            v.clear_ruler()
        if not busy:
            self.state.set_tool("navigate")

    # ------------------------------------------------------------------ annotations
    def _on_drawn(self, image_id: str, kind: str, points: list[list[float]], frame: int | None) -> None:
        ann = self.state.new_annotation(image_id, kind, points, frame)
        if ann is not None:
            self.statusBar().showMessage(f"{kind} {ann.lesion_id} added on {image_id} (saved)", 4000)

    def _on_edited(self, ann_id: str, points: list[list[float]]) -> None:
        cs = self.state.current
        if cs is not None and any(a.ann_id == ann_id for a in cs.case.annotations):
            cs.edit_annotation(ann_id, points=points)

    def _on_annotation_selected(self, ann_id: str) -> None:
        self.selected_ann = ann_id or None
        for v in self.views:
            if ann_id in v._rois or not ann_id:
                v.select_annotation(ann_id or None)
        self.ann_panel.select(ann_id)

    def _on_delete_requested(self, ann_id: str) -> None:
        cs = self.state.current
        if cs is not None and ann_id:
            cs.remove_annotation(ann_id)
            self.selected_ann = None

    def _on_lesion_edit_requested(self, ann_id: str, lesion_id: str) -> None:
        cs = self.state.current
        if cs is not None:
            cs.edit_annotation(ann_id, lesion_id=lesion_id)

    def _on_annotations_changed(self) -> None:
        cs = self.state.current
        if cs is None:
            return
        for v in self.views:
            v.set_annotations(cs.case.annotations)
        self._apply_suggestions()  # a box of the reader's own replaces the AI's suggestion
        self.ann_panel.refresh()
        if cs.save_error is not None:
            self.statusBar().showMessage(f"Annotations NOT saved: {cs.save_error}", 15000)

    def undo(self) -> None:
        if self.state.current is not None and not self.state.current.undo():
            self.statusBar().showMessage("Nothing to undo", 2000)

    def redo(self) -> None:
        if self.state.current is not None and not self.state.current.redo():
            self.statusBar().showMessage("Nothing to redo", 2000)

    def export_annotations(self, out_dir: str | Path | None = None) -> list[Path]:
        """Write PNG masks and COCO JSON of the current case (asks for a folder if none given)."""
        cs = self.state.current
        if cs is None:
            return []
        if not out_dir:
            out_dir = QFileDialog.getExistingDirectory(self, "Export annotations to folder")
            if not out_dir:
                return []
        try:
            masks, jpath = export_case(cs.case, self.images, Path(out_dir))
        except OSError as exc:
            self.show_error(f"Export failed: {exc}")
            return []
        extra = self._export_mri_kinetics(cs.case.case_id, Path(out_dir))
        self.statusBar().showMessage(f"Exported {len(masks)} mask(s) and {jpath.name} to {out_dir}", 8000)
        return [*masks, jpath, *extra]

    def _export_mri_kinetics(self, case_id: str, out_dir: Path) -> list[Path]:
        """Issue 13: the case export includes the MRI window's kinetics curve and class, if measured."""
        mri = getattr(self, "mri_window", None)
        session = getattr(mri, "session", None)
        if session is None or getattr(mri, "case_id", None) != case_id or session.kinetics is None:
            return []
        return list(session.export_kinetics(out_dir))

    # ------------------------------------------------------------------ rating keys
    def rate_key(self, digit: int) -> None:
        """Number keys rate 0-9; '1' followed quickly by '0' rates 10."""
        now = time.monotonic()
        score = 10 if (digit == 0 and self._last_digit == 1 and now - self._digit_at < 0.8) else digit
        self._last_digit, self._digit_at = digit, now
        if self.state.current is not None:
            self.state.rate(score=score)
            if self.state.save_error is None:  # else the failure stays in the status bar
                self.statusBar().showMessage(f"Rated {score}/10 (saved)", 3000)

    # ------------------------------------------------------------------ AI
    def _on_ai_visible_changed(self, visible: bool) -> None:
        self.ai_panel.setVisible(visible)
        if not visible:
            self.cancel_ai()
            for v in self.views:
                v.set_overlay_map(None)
        elif self.ai_result is not None:
            self._apply_ai_result(self.ai_result)

    # AI after the reader's own read -------------------------------------------------
    def ai_allowed_now(self) -> bool:
        """Whether AI output may be shown for the current case under the AI display setting."""
        cs = self.state.current
        if cs is None or not self.state.ai_visible:
            return False
        if self.ai_display == "always":
            return True
        if self.ai_display == "on_demand":
            return self._ai_requested
        return cs.rating.score is not None  # after_rating

    def _ai_waiting_message(self) -> str:
        if self.ai_display == "after_rating":
            return "AI hidden until you have rated this case (your read first; then it is shown)."
        if self.ai_display == "on_demand":
            return "AI available on demand: press A or “Score case”."
        return "Not scored yet — press A or “Score case”."

    def set_ai_display(self, mode: str) -> None:
        """AI display setting: hidden until rated, on demand, or always shown."""
        if mode not in AI_DISPLAY_MODES:
            raise ValueError(f"unknown AI display mode {mode!r}")
        self.ai_display = mode
        for m, a in self.ai_display_actions.items():
            a.setChecked(m == mode)
        try:
            paths.settings().setValue("ai_display", mode)
        except OSError:
            pass
        if not self.ai_allowed_now():
            self.ai_result = None
            self._apply_overlays()
            cs = self.state.current
            self.ai_panel.clear(bool(cs and cs.case.synthetic), self._ai_waiting_message())
        elif self.views:
            hit = self.ai.cached(self.state.current.case) if self.state.current else None
            if hit is not None:
                self._apply_ai_result(hit)
            elif self.auto_score:
                self.score_case()

    def _on_case_rated(self, _rating: Any) -> None:
        cs = self.state.current
        if cs is not None and self.ai_display == "after_rating" and self.ai_result is None and self.ai_allowed_now() and self.views:
            hit = self.ai.cached(cs.case)
            if hit is not None:
                self._apply_ai_result(hit)
            elif self.auto_score:
                self.score_case()
            else:
                self.ai_panel.scores.setText("You have rated the case: press A or “Score case” for the AI.")

    def score_case(self) -> Worker | None:
        """Score the current case (and saliency for the selected method) in a worker.

        Refused (with the reason in the AI panel) while the AI display setting hides the AI:
        in "after rating" mode until the reader has rated the case.
        """
        cs = self.state.current
        if cs is None or not self.state.ai_visible or not self.images:
            return None
        if self.showing_preview:  # never score a reduced first view: score the full decode
            self._score_after_full = True
            self.statusBar().showMessage("AI scoring starts when full resolution is loaded", 4000)
            return None
        if self.ai_display == "on_demand":
            self._ai_requested = True
        if not self.ai_allowed_now():
            self.ai_panel.scores.setText(self._ai_waiting_message())
            self.statusBar().showMessage("Rate the case first: the AI is shown after your own read", 4000)
            return None
        if self._ai_worker is not None and getattr(self._ai_worker, "case_id", None) == cs.case.case_id \
                and not getattr(self._ai_worker, "ended", False):
            return self._ai_worker
        self.cancel_ai()
        methods = tuple(sorted({self.ai_panel.method.currentData()} | {v.view_state.method for v in self.views}))
        w = Worker(self.ai.score_case, cs.case, dict(self.images), methods, name="ai")
        w.case_id = cs.case.case_id  # type: ignore[attr-defined]
        w.signals.progress.connect(self._on_ai_progress)
        w.signals.result.connect(self._on_ai_result)
        w.signals.errored.connect(self._on_ai_error)
        w.signals.cancelled.connect(self._on_ai_cancelled)
        w.signals.finished.connect(self._on_ai_worker_finished)
        self._ai_worker = w
        self._track(w)
        self.ai_panel.set_busy(True)
        self.statusBar().showMessage("Scoring case…")
        start(w, self.pool)
        return w

    def start_ai_warmup(self) -> Worker | None:
        """Load torch and the study's models in a worker; the AI panel says "loading model…".

        Called once the first image is on screen (reader_app.main), so start-up to the first
        image never pays for the model stack (issue 17). A scoring asked for meanwhile waits
        for it in its own worker, never on the GUI thread.
        """
        if self._warmup_worker is not None:
            return self._warmup_worker
        st = self.state.study
        mods = tuple(dict.fromkeys(m for c in (st.cases if st else []) for m in c.modalities))
        w = Worker(self.ai.warm_up, mods, name="ai-warmup")
        w.signals.result.connect(self._on_ai_warm)
        w.signals.errored.connect(lambda msg: self.ai_panel.set_model_state(f"AI unavailable: {msg}"))
        w.signals.finished.connect(self.ai_ready.emit)
        self._warmup_worker = w
        self._track(w)
        self.ai_panel.set_model_state("loading model…")
        start(w, self.pool)
        return w

    def _on_ai_warm(self, _problems: list[str]) -> None:
        self.ai_panel.set_model_state("")  # a missing model is reported per case when it is scored

    def _on_auto_score_changed(self, on: bool) -> None:
        self.auto_score = bool(on)
        try:
            paths.settings().setValue("auto_score", self.auto_score)
        except OSError:
            pass
        if self.auto_score and self.ai_result is None and self.views:
            self.score_case()

    def cancel_ai(self) -> None:
        if self._ai_worker is not None and not getattr(self._ai_worker, "ended", False):
            self._ai_worker.cancel()

    def _is_current_ai(self) -> bool:
        w, cs = self._ai_worker, self.state.current
        return w is not None and cs is not None and getattr(w, "case_id", None) == cs.case.case_id

    def _on_ai_progress(self, done: int, total: int, msg: str) -> None:
        if self._is_current_ai():
            self.ai_panel.set_progress(done, total, msg)

    def _on_ai_result(self, res: AIResult) -> None:
        cs = self.state.current
        if cs is not None and res.case_id == cs.case.case_id and self.ai_allowed_now():
            self._apply_ai_result(res)
            self.statusBar().showMessage("AI scoring done", 4000)

    def _on_ai_error(self, msg: str) -> None:
        self.ai_panel.scores.setText(f"<span style='color:#ff6b6b'>AI failed: {msg}</span>")
        self.show_error(f"AI failed: {msg}")

    def _on_ai_cancelled(self) -> None:
        self.statusBar().showMessage("AI scoring cancelled", 3000)
        if self.ai_result is None:
            self.ai_panel.progress.setFormat("cancelled")

    def _on_ai_worker_finished(self) -> None:
        w = self._ai_worker
        if w is not None and w.signals is self.sender():
            w.ended = True
            self.ai_panel.set_busy(False)
            self.ai_finished.emit(getattr(w, "case_id", ""))

    def _apply_ai_result(self, res: AIResult) -> None:
        self.ai_result = res
        cs = self.state.current
        self.ai_panel.show_result(res, bool(cs and cs.case.synthetic), cs.case if cs else None)
        self._apply_overlays()

    def _apply_overlays(self) -> None:
        res = self.ai_result
        for v in self.views:
            m = res.saliency.get((v.slot.image_id, v.view_state.method)) if res and self.ai_allowed_now() else None
            v.set_overlay_map(m, res.frames.get(v.slot.image_id) if res else None)
        self._apply_suggestions()

    def _fill_models(self) -> None:
        from reader_app.ai import installed_models

        try:
            from engine.model_catalog import default_weights  # torch-free: start-up never waits for it

            defaults = {m: default_weights(m) for m in ("US", "MG", "MR")}
        except ImportError:
            defaults = {}
        self.ai_panel.set_models(installed_models(), defaults)

    def _on_model_changed(self, modality: str, name: str | None) -> None:
        self.ai.model_choice[modality] = name
        cs = self.state.current
        had = self.ai_result is not None
        self.ai_result = None
        if cs is not None:
            self.ai_panel.clear(cs.case.synthetic)
            self._apply_overlays()
            hit = self.ai.cached(cs.case)
            if hit is not None:
                self._apply_ai_result(hit)
            elif had:
                self._ai_worker = None
                self.score_case()

    def overlay_targets(self) -> list[ImageView]:
        """Views the overlay controls act on: all, or only the active one."""
        if self.ai_panel.all_views.isChecked():
            return list(self.views)
        v = self.active_view()
        return [v] if v is not None else []

    def _on_overlay_setting_changed(self, name: str, value: Any) -> None:
        targets = self.overlay_targets()
        for v in targets:
            v.view_state.set(name, value)
        if name == "method":
            self._apply_overlays()
            res = self.ai_result
            if res is not None and any((v.slot.image_id, value) not in res.saliency
                                       and (v.slot.image_id, value) not in res.failed for v in targets
                                       if v.image is not None):
                self._ai_worker = None
                self.score_case()

    # ------------------------------------------------------------------ help
    def show_shortcuts(self) -> QDialog:
        """A non-modal table of every keyboard shortcut."""
        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        rows = [r for r in self.shortcut_table if r[2]]
        t = QTableWidget(len(rows), 3, dlg)
        t.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                t.setItem(i, j, QTableWidgetItem(text))
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.verticalHeader().setVisible(False)
        lay = QVBoxLayout(dlg)
        lay.addWidget(t)
        dlg.resize(560, 620)
        dlg.show()
        self._shortcuts_dialog = dlg
        return dlg

    # ------------------------------------------------------------------ shutdown
    def open_mri_window(self) -> Any:
        """Open the current case's MR series in the MRI reading window (reader_app.qt_mri)."""
        from reader_app.qt_mri import open_for_case

        cs = self.state.current
        if cs is None or not cs.case.images_of("MR"):
            self.statusBar().showMessage("The current case has no MR images.", 5000)
            return None
        self.mri_window = open_for_case(cs.case, self.state.study, parent=self)
        return self.mri_window

    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.state.leave_case()
        if not self.state.retry_saves():  # last try; the message names the journal, if any
            print(f"breast-reader: {self.state.save_error}", file=sys.stderr)
        self._save_retry.stop()
        for w in list(self._workers):
            w.cancel()
        # a model forward pass cannot be interrupted: do not wait for it (the process exits
        # right after the event loop, see main.run_gui); ratings/annotations are saved already
        self.pool.waitForDone(self.close_wait_ms)
        self._timer.stop()
        for v in self.views:
            v.dispose()
        super().closeEvent(ev)
