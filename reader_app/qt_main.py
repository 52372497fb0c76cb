"""The main window: worklist, hanging of views, AI panel, rating, annotations, problems.

The window is wiring only, put together from one part per concern: menus and dialogs
(``qt_main_menus``), study and case loading (``qt_main_loading``), AI (``qt_main_ai``) and
annotations (``qt_main_annotations``); the views, their grid and the view commands are here.
"""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from reader_app import paths
from reader_app.ai import AIService
from reader_app.imaging import ImageCache, Slot, grid_shape
from reader_app.qt_grid import ViewGrid
from reader_app.qt_main_ai import AIMixin
from reader_app.qt_main_annotations import AnnotationsMixin
from reader_app.qt_main_loading import CaseLoadingMixin
from reader_app.qt_main_menus import MenusMixin
from reader_app.qt_panels import AIPanel, AnnotationPanel, ProblemsPanel, RatingPanel, WorklistPanel
from reader_app.qt_style import STYLE  # one dark theme for every window
from reader_app.qt_view import ImageView
from reader_app.state import AppState, CaseState, JsonRatingStore, ViewState
from reader_app.study.reading_state import AI_DISPLAY_LABELS, AI_DISPLAY_MODES

#: How often a failed rating save is retried (ms) while the reader goes on reading.
SAVE_RETRY_MS = 5000


class MainWindow(MenusMixin, CaseLoadingMixin, AIMixin, AnnotationsMixin):
    """The reading workstation. All state lives in :class:`AppState`; this class only wires it.

    Signals:
        case_loaded(case_id): the images of the current case are shown (full resolution).
        preview_shown(case_id): reduced-resolution first views are shown (JPEG 2000), before case_loaded.
        ai_finished(case_id): AI scoring of the current case ended (result, error or cancel).
        study_opened(folder): a study read by :meth:`open_study` is shown ('' on failure).
        ai_ready(): the models loaded in the background by :meth:`start_ai_warmup` are ready.
    """

    #: How long closing waits for cancelled workers; the app sets 0, it exits right after.
    close_wait_ms = 200

    def __init__(self, state: AppState | None = None, ai: AIService | None = None,
                 cache: ImageCache | None = None, auto_score: bool = False,
                 ai_display: str = "after_rating") -> None:
        super().__init__()
        self.state = state or AppState(rating_sink=JsonRatingStore(paths.user_data_dir()))
        self.ai = ai or AIService()
        self.cache = cache or ImageCache()
        self.auto_score = auto_score
        self.images = {}
        self.displays = {}
        self.image_errors = {}
        self.slots = []
        self.views = []
        self.view_states = {}
        self.active_index = 0
        self.selected_ann = None
        self.ai_result = None
        self._load_worker = None
        self._ai_worker = None
        self._warmup_worker = None
        self._study_worker = None
        self._workers = set()
        self._digit_at = 0.0
        self._last_digit = -1
        self.last_error = ""
        self.pool = QThreadPool.globalInstance()
        self.ai_display = ai_display if ai_display in AI_DISPLAY_MODES else "after_rating"
        self._ai_requested = False  # on-demand mode: the reader asked (A) for this case
        self.show_truth = False
        self.hanging_step = 0
        self.showing_preview = False  # the views show JPEG 2000 first views; full resolution follows
        self._building = False
        self._build_gen = 0
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
        self.grid_host = ViewGrid(lambda: self.views)
        self.grid = self.grid_host.grid
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

    # ------------------------------------------------------------------ menus (the actions are in qt_main_menus)
    def _build_actions(self) -> None:
        self.shortcut_table = []
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

    # ------------------------------------------------------------------ views

    def _clear_views(self) -> None:
        self._clear_views_only()
        self.slots = []

    def _build_views(self) -> None:
        """Build the slots' views one per event-loop turn, the first at once.

        A view costs tens of ms on the GUI thread (widgets, its first show); built together,
        a 4-view case held the event loop 250-350 ms. The display values (presets, breast box,
        pyramid levels) come ready from the load worker. ``case_loaded`` / ``preview_shown``
        follow when the last view is built.
        """
        self._clear_views_only()
        self.active_index = 0
        self._building = True
        self._build_next(self._build_gen)

    def _build_next(self, gen: int) -> None:
        cs = self.state.current
        if gen != self._build_gen or cs is None:
            return  # the views were cleared (case left, or rebuilt) meanwhile
        if len(self.views) < len(self.slots):
            v = self._make_view(cs, self.slots[len(self.views)])
            if gen != self._build_gen:  # the case changed while this view was made
                v.dispose()
                v.deleteLater()
                return
            self.views.append(v)
            self._relayout()
            # a real (1 ms) timer, not a 0 ms one: Qt runs those as posted events back to back,
            # before any timer, so the whole build would still be one stall for other timers
            QTimer.singleShot(1, self, lambda: self._build_next(gen))
            return
        self._building = False
        self._on_views_built()

    def _make_view(self, cs: CaseState, slot: Slot) -> ImageView:
        key = (cs.case.case_id, slot.image_id)
        vs = self.view_states.get(key)
        if vs is None:
            vs = ViewState(method=self.ai_panel.method.currentData(), colormap=self.ai_panel.colormap.currentData(),
                           opacity=self.ai_panel.opacity.value() / 100.0, overlay_on=self.ai_panel.overlay_on.isChecked())
            self.view_states[key] = vs
        v = ImageView(slot, self.images.get(slot.image_id), vs, error=self.image_errors.get(slot.image_id),
                      display=self.displays.get(slot.image_id))
        v.activated.connect(self._on_view_activated)
        v.drawn.connect(self._on_drawn)
        v.edited.connect(self._on_edited)
        v.selected.connect(self._on_annotation_selected)
        v.range_changed.connect(self._on_view_range_changed)
        v.readout.connect(self.readout.setText)
        v.set_tool(self.state.tool)
        v.show_truth = self.show_truth
        v.set_annotations(cs.case.annotations)
        return v

    def _clear_views_only(self) -> None:
        self._build_gen += 1  # a pending build step of these views stops
        self._building = False
        for v in self.views:
            v.dispose()
            self.grid.removeWidget(v)
            v.setParent(None)
            v.deleteLater()
        self.views = []

    def visible_views(self) -> list[ImageView]:
        """Views shown in the current layout page."""
        return self.grid_host.visible_views()

    def _relayout(self) -> None:
        rows, cols = self.grid_shape()
        self.grid_host.show_page(rows, cols, self.active_index)
        for v in self.views:
            v.set_active(v is self.active_view())

    def fit_all(self) -> None:
        """Fit every shown view."""
        self.grid_host.fit_all()

    def grid_shape(self) -> tuple[int, int]:
        """Rows and columns of the layout, shrunk when the case has fewer views (one MR series
        fills the whole area instead of leaving empty cells)."""
        return grid_shape(self.state.layout, len(self.slots) or len(self.views))  # the cells stay put while views build

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
            v = self._view_under_mouse() or self._shown_active_view()
            if v is not None:
                v.set_magnifier(True)
            ev.accept()
            return
        super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        if ev.key() == Qt.Key.Key_G and not ev.isAutoRepeat():
            for v in [*self.views, *self._prior_views()]:
                v.set_magnifier(False)
            ev.accept()
            return
        super().keyReleaseEvent(ev)

    def _prior_views(self) -> list[ImageView]:
        """The current | prior comparison's two views while it is shown (it replaces the grid)."""
        pc = getattr(self, "prior_compare", None)
        return list(pc.views) if pc is not None and pc.isVisible() else []

    def _shown_views(self) -> list[ImageView]:
        return self._prior_views() or self.views

    def _shown_active_view(self) -> ImageView | None:
        """The view keys act on among those on screen: in the comparison, its current side."""
        prior = self._prior_views()
        return prior[0] if prior else self.active_view()

    def _view_under_mouse(self) -> ImageView | None:
        from PySide6.QtGui import QCursor

        pos = QCursor.pos()
        for v in self._shown_views():
            if v.isVisible() and v.rect().contains(v.mapFromGlobal(pos)):
                return v
        return None

    # ------------------------------------------------------------------ shutdown
    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.state.leave_case()
        if not self.state.retry_saves():  # last try; the message names the journal, if any
            print(f"breast-reader: {self.state.save_error}", file=sys.stderr)
        self._save_retry.stop()
        self._build_gen += 1  # no view is built after the window closed
        for w in list(self._workers):
            w.cancel()
        # a model forward pass cannot be interrupted: do not wait for it (the process exits
        # right after the event loop, see main.run_gui); ratings/annotations are saved already
        self.pool.waitForDone(self.close_wait_ms)
        self.ai.shutdown()  # the model process ends with the window (a later request restarts it)
        self._timer.stop()
        for v in self.views:
            v.dispose()
        super().closeEvent(ev)
