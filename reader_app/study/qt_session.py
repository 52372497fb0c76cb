"""Blinded reading-session window: sign in, one case at a time, rate, submit, resume.

All state is in :class:`engine.study.session.StudyRun` (SQLite): this window only shows
what :meth:`ReadingSession.next_case` returns (no truth, no other readers, AI only in aided
arms, by default only after the reader's own rating) and calls ``submit``. The images are
shown in the workstation's own :class:`reader_app.qt_view.ImageView` with its hanging
protocol, so a study is never read in a weaker viewer than the workstation. Closing the window or a crash loses nothing submitted; signing in
again resumes at the next unrated case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from html import escape as html_escape

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.cases import Case, CaseImage
from engine.errors import BreastReaderError
from engine.study.design import BIRADS_CATEGORIES
from engine.study.session import CaseToRead, PriorToRead, ReadingSession, StudyRun, WashoutError
from reader_app.qt_view import ImageView  # at import, not at the first case: pyqtgraph costs 0.2 s cold
from reader_app.redact import reading_safe
from reader_app.study.reading_state import CaseReading

OverlayProvider = Callable[[Case, CaseImage], "np.ndarray | None"]


def _definition_path(definition: str | Path) -> Path:
    p = Path(definition)
    if p.is_dir():
        p = p / "reader_study.toml"
    return p


def _read_pixels(ci: CaseImage) -> np.ndarray:
    """Decode an image (kept for callers that want bare pixels)."""
    from reader_app.imaging import read_case_image

    return np.asarray(read_case_image(ci).pixels)


MARK_COLOUR = "#ffd400"
# The workstation's keys (reader_app/qt_main.py, Help > Keyboard shortcuts) with study-mode
# restrictions: no case navigation (PgUp/PgDn, [ ]), no truth (T), no lesion ids (N); X adds
# a point mark (localisation), C starts a BI-RADS category, Enter submits (or closes a polygon).
TOOL_KEYS = {Qt.Key.Key_V: "navigate", Qt.Key.Key_B: "box", Qt.Key.Key_P: "polygon",
             Qt.Key.Key_F: "freehand", Qt.Key.Key_M: "ruler", Qt.Key.Key_X: "point"}
PRESET_KEYS = {Qt.Key.Key_F2: 0, Qt.Key.Key_F3: 1, Qt.Key.Key_F4: 2, Qt.Key.Key_F5: 3, Qt.Key.Key_F6: 4}
DIGIT_KEYS = {getattr(Qt.Key, f"Key_{d}"): d for d in range(10)}
SLICE_KEYS = {Qt.Key.Key_Down: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Left: -1}
MARK_KINDS = ("box", "point", "polygon", "freehand")

SESSION_KEYS = [
    ("Rate the case (or the mark just placed)", "0-9 (1 then 0 = 10)"),
    ("BI-RADS category", "C then 0/1/2/3/5, or C 4 A/B/C"),
    ("Submit and go to the next case", "Enter"),
    ("Slices of an MR stack (nothing on 2-D)", "Down/Right, Up/Left, wheel"),
    ("Window/level", "right-drag; presets F2-F6"),
    ("Box / polygon / freehand / point mark", "B / P / F / X"),
    ("Navigate / ruler", "V / M"),
    ("Close a polygon", "Enter or double-click"),
    ("Hanging step / cycle layout / next view", "H / L / Tab"),
    ("Compare with the prior exam (current | prior, same view)", "Shift+P"),
    ("Fit (crop to breast) / 1:1 / reset / invert", "Z / O / R / I"),
    ("Magnifier", "hold G"),
    ("Show AI (aided arm, on-demand studies) / saliency on-off", "A / S"),
    ("Delete the selected mark / cancel", "Del / Esc"),
]


class ReadingSessionWindow(QWidget):
    """The reading-session window: the workstation's image view with study restrictions.

    Same view, hanging, window/level, slice scrolling, magnifier and keys as the workstation;
    no truth, no case list, AI only in aided arms (and, by default, only after the reader's
    own rating). Every key is handled here: no control keeps focus, so a key never changes a
    rating unless the rating is its explicit target.

    Signals:
        submitted(reader_id, arm_id, case_id): a rating was stored (durably).
        finished(reader_id): the reader has no case left.
        case_loaded(case_id): the images of the current case are on screen.
        prior_shown(case_id): the current | prior comparison of the case is on screen.
    """

    submitted = Signal(str, str, str)
    finished = Signal(str)
    case_loaded = Signal(str)
    prior_shown = Signal(str)

    def __init__(self, run: StudyRun, parent: QWidget | None = None,
                 overlay_provider: OverlayProvider | None = None, ai_mode: str | None = None) -> None:
        super().__init__(parent)
        from reader_app.imaging import ImageCache
        from reader_app.qt_style import STYLE
        from reader_app.study.reading_state import (
            JsonMarksStore,
            ai_calibration_note,
            ai_display_mode,
        )

        self.setWindowTitle(f"Reading session - {run.design.name}")
        self.setStyleSheet(STYLE)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.run = run
        self.session: ReadingSession | None = None
        self.current: CaseToRead | None = None
        self.reading: CaseReading | None = None
        self.overlay_provider = overlay_provider
        self.ai_mode = ai_mode or ai_display_mode(run.design.path)
        self.ai_calibration = ai_calibration_note(run.design.path)
        self.marks_store = JsonMarksStore(run.design.path.with_suffix(".marks.json"))
        self.cache = ImageCache(max_items=8)
        self.views: list[Any] = []
        self.image_widgets: dict[str, Any] = {}
        self.active_index = 0
        self.layout_name = "2x2"
        self.hanging_step = 0
        # a study that asks for lesion marks starts with the box tool: the first mark needs no
        # tool key (1.6 s of the cold first image, bench_gui); the wheel zooms, middle-drag pans
        self.tool = "box" if run.design.paradigm == "froc" else "navigate"
        self._shown_at = 0.0
        self._closed = False
        self._workers: list[Any] = []
        self.prior_compare: Any = None  # reader_app.qt_prior.PriorComparison, made on first Shift+P
        self._prior_label = "PRIOR"
        self.stack = QStackedWidget()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.stack)
        self._build_sign_in()
        self._build_reading()
        self._build_message()
        self.stack.setCurrentWidget(self.sign_in_page)
        self.reader_box.currentIndexChanged.connect(self._on_reader_changed)
        QTimer.singleShot(0, self, self._prefetch_first)

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
        from reader_app.qt_grid import ViewGrid

        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 0, 0, 0)
        self.header = QLabel("")
        self.header.setObjectName("sessionHeader")
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        v.addWidget(self.header)
        if self.run.design.note:
            note = QLabel(self.run.design.note)
            note.setStyleSheet("color: #ff8a80;")
            note.setWordWrap(True)
            v.addWidget(note)
        body = QHBoxLayout()
        self.images = ViewGrid(lambda: self.views)  # the workstation's grid: portrait MG cells, paging
        self.images_layout = self.images.grid
        body.addWidget(self.images, 1)
        self._body = body
        side = QVBoxLayout()
        self.ai_panel = QLabel("")
        self.ai_panel.setFrameShape(QFrame.Shape.StyledPanel)
        self.ai_panel.setObjectName("aiPanel")
        self.ai_panel.setWordWrap(True)
        self.ai_panel.setTextFormat(Qt.TextFormat.RichText)
        self.ai_panel.setMinimumWidth(280)
        self.ai_panel.setMaximumWidth(340)
        side.addWidget(self.ai_panel)
        marks_title = QLabel("<b>Lesion marks</b> (B box, P polygon, F freehand, X point; then 0-9 = confidence)")
        marks_title.setWordWrap(True)
        marks_title.setMaximumWidth(340)
        side.addWidget(marks_title)
        self.marks_list = QListWidget()
        self.marks_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.marks_list.setMaximumWidth(340)
        self.marks_list.itemClicked.connect(self._on_mark_clicked)
        side.addWidget(self.marks_list, 1)
        self.keys_help = QLabel("<small>" + "<br>".join(f"<b>{k}</b>: {t}" for t, k in SESSION_KEYS) + "</small>")
        self.keys_help.setWordWrap(True)
        self.keys_help.setMaximumWidth(340)
        side.addWidget(self.keys_help)
        body.addLayout(side)
        v.addLayout(body, 1)
        controls = QHBoxLayout()
        scale = self.run.design
        self.scale_label = QLabel(f"Suspicion of malignancy ({scale.rating_min} = certainly benign, "
                                  f"{scale.rating_max} = certainly malignant):")
        controls.addWidget(self.scale_label)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(scale.rating_min, scale.rating_max)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.slider.setMinimumWidth(200)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # mouse only: keys never move it
        self.slider.valueChanged.connect(self._on_slider_changed)
        self.rating_label = QLabel("-")
        self.rating_label.setMinimumWidth(36)
        self.rating_label.setStyleSheet("font-size:18px;font-weight:bold")
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.rating_label)
        self.birads_box = QComboBox()
        self.birads_box.addItem("BI-RADS...", None)
        for c in BIRADS_CATEGORIES:
            self.birads_box.addItem(c, c)
        self.birads_box.setVisible(scale.birads)
        self.birads_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.birads_box.currentIndexChanged.connect(self._on_birads_changed)
        controls.addWidget(self.birads_box)
        self.target_label = QLabel("")
        self.target_label.setObjectName("targetLabel")
        controls.addWidget(self.target_label)
        self.submit_button = QPushButton("Submit (Enter)")
        self.submit_button.setEnabled(False)
        self.submit_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.submit_button.clicked.connect(self._on_submit_clicked)
        controls.addWidget(self.submit_button)
        v.addLayout(controls)
        self.status = QLabel("")
        self.status.setStyleSheet("color:#9aa0a6")
        v.addWidget(self.status)
        self.reading_page = page
        self.stack.addWidget(page)

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
            self._clear_views()
            self.message.setText(f"<h3>Washout period</h3><p>{exc}</p><p>Your ratings so far are saved.</p>")
            self.stack.setCurrentWidget(self.message_page)
            return
        if item is None:
            self.current = None
            self._clear_views()
            self.message.setText("<h3>Thank you</h3><p>You have read every case in every arm.</p>")
            self.stack.setCurrentWidget(self.message_page)
            self.finished.emit(self.session.reader_id)
            return
        self.current = item
        self._show_case(item)
        self.stack.setCurrentWidget(self.reading_page)
        self.setFocus()

    def _clear_views(self) -> None:
        self.close_prior()
        for v in self.views:
            v.dispose()
            self.images_layout.removeWidget(v)
            v.hide()
            v.setParent(None)
            v.deleteLater()
        while self.images_layout.count():
            li = self.images_layout.takeAt(0)
            w = li.widget() if li is not None else None
            if w is not None:
                w.hide()
                w.deleteLater()
        self.views = []
        self.image_widgets = {}

    def _show_case(self, item: CaseToRead) -> None:
        from reader_app.study.reading_state import CaseReading

        self._clear_views()
        d = self.run.design
        self.reading = CaseReading(d.rating_min, d.rating_max, self.ai_mode, ai_allowed=item.show_ai)
        self.reading.changed.connect(self._on_reading_changed)
        self._overlays: dict[str, np.ndarray] = {}
        self._overlay_requested = False
        progress = self.session.status() if self.session else None
        done = sum(progress.done.values()) if progress else 0
        total = (progress.total * len(progress.done)) if progress else 0
        self.header.setText(f"<b>Reader {self.session.reader_id if self.session else ''}</b> - arm "
                            f"<b>{item.arm.arm_id}</b> - {item.label} - {done} of {total} ratings done")
        self.slider.blockSignals(True)
        self.slider.setValue((d.rating_min + d.rating_max) // 2)
        self.slider.blockSignals(False)
        self.birads_box.blockSignals(True)
        self.birads_box.setCurrentIndex(0)
        self.birads_box.blockSignals(False)
        self.rating_label.setText("-")
        self.status.setText("Loading images...")
        self._refresh_ai()
        self._refresh_marks()
        self._update_submit()
        self._shown_at = time.monotonic()
        self._start_load(item)

    def _start_load(self, item: CaseToRead) -> None:
        """Decode the case's images off the GUI thread; late results of a left case are dropped."""
        from reader_app.imaging import load_case_images
        from reader_app.qt_workers import Worker, start

        cache = self.cache

        def job(*, progress: Any = None, cancel: Any = None) -> tuple[str, Any, Any]:
            from reader_app.imaging import warm_analyses

            images, errors = load_case_images(item.case, cache, progress=progress, cancel=cancel)
            warm_analyses(item.case, images)  # off the GUI thread (memoised: free after a prefetch)
            return item.case.case_id, images, errors

        w = Worker(job, name="session load")
        w.signals.result.connect(self._on_images_loaded)
        w.signals.errored.connect(lambda msg: self.status.setText(f"Cannot load the case: {msg}"))
        self._workers = [x for x in self._workers if not getattr(x, "ended", False)] + [w]
        w.signals.finished.connect(lambda w=w: setattr(w, "ended", True))
        start(w)

    def _on_images_loaded(self, out: tuple[str, dict[str, Any], dict[str, str]]) -> None:
        from reader_app.imaging import Slot, hanging_protocol
        from reader_app.state import ViewState

        case_id, images, errors = out
        if self._closed or self.current is None or self.current.case.case_id != case_id or self.views:
            return  # a late load: the reader moved on, or the window (and its study store) closed
        case = self.current.case
        slots = hanging_protocol(case, images)
        for ci in case.images:
            if ci.image_id in errors and all(s.image_id != ci.image_id for s in slots):
                slots.append(Slot(ci.image_id, f"{ci.modality} {ci.view or ''}".strip(), ci.modality))
        for slot in slots:
            view = ImageView(slot, images.get(slot.image_id), ViewState(),
                             error=reading_safe(errors.get(slot.image_id)) or None)
            view.set_tool(self.tool)
            view.set_annotations([])  # never the case's stored annotations: they may be truth
            view.drawn.connect(self._on_drawn)
            view.activated.connect(self._on_view_activated)
            self.views.append(view)
            self.image_widgets[slot.image_id] = view
        self.active_index = 0
        self.layout_name = "2x2"
        self.hanging_step = 0
        self._relayout()
        self.status.setText(reading_safe("; ".join(errors.values())) if errors else "")
        self._refresh_marks()
        if self.reading is not None and self.reading.ai_revealed:
            self._start_overlays()
        self.case_loaded.emit(case_id)
        self._prefetch_next(self.current)

    def _prefetch_next(self, item: CaseToRead | None) -> None:
        """Decode the next case of the reader's recorded order into the cache while this one is
        read, so Enter shows it at once. Nothing is displayed: the images only wait in the cache."""
        if item is None or self.session is None:
            return
        order = self.run.store.order(self.session.reader_id, item.arm.arm_id)
        done = self.run.store.rated_cases(self.session.reader_id, item.arm.arm_id)
        later = [c for c in order if c not in done and c != item.case.case_id]
        self._prefetch(self.run.cases.get(later[0]) if later else None)

    def _on_reader_changed(self, _index: int) -> None:
        self._prefetch_first()

    def _prefetch_first(self) -> None:
        """On the sign-in page: decode the selected reader's first unread case (and import the
        decoders) while the reader signs in, so a cold session's first case opens at once."""
        if self.session is not None or self._closed:
            return
        reader = self.reader_box.currentData()
        store = self.run.store
        for arm in self.run.design.arms_for(str(reader)) if reader is not None else []:
            done = store.rated_cases(str(reader), arm.arm_id)
            todo = [c for c in store.order(str(reader), arm.arm_id) if c not in done]
            if todo:
                self._prefetch(self.run.cases.get(todo[0]))
                return

    def _prefetch(self, case: Case | None) -> None:
        from reader_app.qt_workers import Worker, start

        if case is None:
            return
        cache = self.cache

        def job(*, progress: Any = None, cancel: Any = None) -> int:
            from reader_app.imaging import warm_analyses

            images = {}
            for ci in case.images:
                try:
                    images[ci.image_id] = cache.get(ci)
                except BreastReaderError:
                    pass  # the case's own load reports it when it is shown
            warm_analyses(case, images)  # hanging and fit of the case then cost the GUI thread nothing
            return len(images)

        w = Worker(job, name="session prefetch")
        self._workers = [x for x in self._workers if not getattr(x, "ended", False)] + [w]
        w.signals.finished.connect(lambda w=w: setattr(w, "ended", True))
        start(w)

    # ----------------------------------------------------------------- views
    def active_view(self) -> Any:
        return self.views[self.active_index] if 0 <= self.active_index < len(self.views) else None

    def _mark_active(self) -> None:
        for v in self.views:
            v.set_active(v is self.active_view())

    def _relayout(self) -> None:
        """The workstation's grid: ``layout`` cells, paged so the active view is shown, portrait
        cells for mammograms (:class:`reader_app.qt_grid.ViewGrid`)."""
        from reader_app.imaging import grid_shape

        rows, cols = grid_shape(self.layout_name, len(self.views))
        self.images.show_page(rows, cols, self.active_index)
        self._mark_active()

    def visible_views(self) -> list[Any]:
        """Views shown on the current layout page."""
        return self.images.visible_views()

    def fit_all(self) -> None:
        """Fit every shown view (mammograms cropped to the breast)."""
        self.images.fit_all()

    def set_active(self, index: int) -> None:
        """Make view ``index`` (wrapping) the one keys act on, turning the layout page if needed."""
        from reader_app.imaging import grid_shape

        if not self.views:
            return
        index %= len(self.views)
        rows, cols = grid_shape(self.layout_name, len(self.views))
        page_changed = index // (rows * cols) != self.active_index // (rows * cols)
        self.active_index = index
        if page_changed:
            self._relayout()
        self._mark_active()

    def set_layout(self, layout: str) -> None:
        """1x1, 1x2 or 2x2 (the workstation's layouts)."""
        from reader_app.imaging import GRID

        if layout in GRID:
            self.layout_name = layout
            self._relayout()

    def cycle_layout(self) -> None:
        """L: the next layout, as in the workstation."""
        from reader_app.imaging import LAYOUT_ORDER

        self.set_layout(LAYOUT_ORDER[(LAYOUT_ORDER.index(self.layout_name) + 1) % len(LAYOUT_ORDER)])

    def next_hanging_step(self) -> None:
        """H: 4-view, CC pair, MLO pair, then each view alone (as in the workstation)."""
        from reader_app.imaging import hanging_steps

        steps = hanging_steps(len(self.views))
        if not steps:
            return
        self.hanging_step = (self.hanging_step + 1) % len(steps)
        layout, index = steps[self.hanging_step]
        self.layout_name = layout
        self.active_index = index
        self._relayout()
        self.status.setText(f"Hanging: {layout} from {self.views[index].slot.title}")

    def _on_view_activated(self, view: Any) -> None:
        if view in self.views:
            self.set_active(self.views.index(view))
        self.setFocus()

    def set_tool(self, tool: str) -> None:
        """navigate / box / polygon / freehand (lesion marks) / point (point mark) / ruler."""
        self.tool = tool
        for v in self.views:
            v.set_tool(tool)
        self.status.setText(f"Tool: {tool}")

    def _on_drawn(self, image_id: str, kind: str, points: list[list[float]], frame: int | None) -> None:
        if self.reading is None or kind not in MARK_KINDS:
            return
        m = self.reading.add_mark(image_id, kind, points, frame)
        self.status.setText(f"Mark {m.mark_id} placed: press 0-9 for your confidence that it is a malignant lesion")

    def _refresh_marks(self) -> None:
        self.marks_list.clear()
        r = self.reading
        if r is None:
            return
        for m in r.marks:
            conf = "-" if m.confidence is None else str(m.confidence)
            fr = f" slice {m.frame + 1}" if m.frame is not None else ""
            it = QListWidgetItem(f"{m.mark_id} {m.kind} on {self._view_title(m.image_id)}{fr} - confidence {conf}")
            it.setData(Qt.ItemDataRole.UserRole, m.mark_id)
            self.marks_list.addItem(it)
            if m.mark_id == r.target:
                it.setSelected(True)
        for v in self.views:
            v.set_static_shapes([
                {"kind": m.kind, "points": m.points, "frame": m.frame, "colour": MARK_COLOUR,
                 "label": f"{m.mark_id}" + (f" ({m.confidence})" if m.confidence is not None else "")}
                for m in r.marks if m.image_id == v.slot.image_id
            ])

    def _view_title(self, image_id: str) -> str:
        v = self.image_widgets.get(image_id)
        return v.slot.title if v is not None else image_id

    def _on_mark_clicked(self, item: QListWidgetItem) -> None:
        if self.reading is not None:
            self.reading.set_target(item.data(Qt.ItemDataRole.UserRole))
        self.setFocus()

    # ----------------------------------------------------------------- AI
    def _refresh_ai(self) -> None:
        item, r = self.current, self.reading
        if item is None or r is None or not item.show_ai:
            self.ai_panel.setText("")
            self.ai_panel.setVisible(False)
            return
        self.ai_panel.setVisible(True)
        if not r.ai_revealed:
            if self.ai_mode == "after_rating":
                txt = ("<b>AI</b> - hidden until you have rated this case.<br><small>Your own read comes "
                       "first; the AI (decision support) is shown once you give a rating.</small>")
            else:
                txt = "<b>AI</b> - available: press <b>A</b> to show it."
            self.ai_panel.setText(txt)
            return
        thr = self.run.design.ai_threshold
        if item.ai_score is None:
            score = "<i>no AI score for this case</i>"
        else:
            p = float(item.ai_score)
            side = "above" if p >= thr else "below"
            score = (f"malignancy probability <b>{p:.2f}</b> ({side} the model's operating point {thr:.2f})")
        self.ai_panel.setText(
            f"<b>AI</b> (standalone model output; decision support, not a diagnosis)<br>{score}"
            f"<br><small>Calibration: {html_escape(self.ai_calibration)}</small>"
        )
        if not self._overlay_requested and self.views:
            self._start_overlays()

    def _start_overlays(self) -> None:
        """Saliency only once the AI is shown (never computed for a hidden or unaided AI)."""
        from reader_app.qt_workers import Worker, start

        item = self.current
        provider = self.overlay_provider
        if item is None or provider is None or not item.show_ai or self._overlay_requested:
            return
        self._overlay_requested = True

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
        cur, r = self.current, self.reading
        if cur is None or cur.case.case_id != case_id or not cur.show_ai or r is None or not r.ai_revealed:
            return  # the reader moved on; never show AI outside an aided arm or before the read
        self._overlays = maps
        for image_id, m in maps.items():
            view = self.image_widgets.get(image_id)
            if view is not None:
                view.set_overlay_map(m)

    def toggle_overlay(self) -> None:
        """S: saliency on/off, only once the AI is shown (never in the unaided arm or before the read)."""
        r = self.reading
        if r is None or not r.ai_revealed or not self._overlays:
            self.status.setText("No AI overlay to show" if r is None or r.ai_revealed
                                else "The AI is shown after you have rated the case")
            return
        for w in self.views:
            w.view_state.set("overlay_on", not w.view_state.overlay_on)

    def overlay_shown(self, image_id: str) -> bool:
        """Whether a saliency overlay is drawn on the image (for tests)."""
        v = self.image_widgets.get(image_id)
        return bool(v is not None and v.overlay.isVisible())

    # ----------------------------------------------------------------- prior exam
    def toggle_prior(self) -> bool:
        """Shift+P (the workstation's key): the active view beside the same view of the patient's
        prior exam, or back to the hanging. The prior is blinded like the case (no truth, no
        annotations, no dates or names: "PRIOR, 24 months earlier"), never scored or overlaid.

        Returns:
            Whether a comparison is being shown (or loaded) after the call.
        """
        from reader_app.imaging import load_case_images
        from reader_app.qt_workers import Worker, start

        if self.prior_compare is not None and self.prior_compare.isVisible():
            self.close_prior()
            return False
        item = self.current
        if item is None or self.session is None or not self.views:
            return False
        prior = self.session.prior_of(item.case.case_id)
        if prior is None:
            self.status.setText("No prior to compare: no earlier exam of this patient in this study")
            return False
        cache = self.cache

        def job(*, progress: Any = None, cancel: Any = None) -> tuple[str, Any, Any]:
            images, errors = load_case_images(prior.case, cache, progress=progress, cancel=cancel)
            return item.case.case_id, images, errors

        w = Worker(job, name="session prior")
        w.signals.result.connect(lambda out: self._on_prior_loaded(prior, out))
        w.signals.errored.connect(lambda msg: self.status.setText(f"Cannot load the prior exam: {reading_safe(msg)}"))
        self._workers = [x for x in self._workers if not getattr(x, "ended", False)] + [w]
        w.signals.finished.connect(lambda w=w: setattr(w, "ended", True))
        start(w)
        self.status.setText("Loading the prior exam...")
        return True

    def _on_prior_loaded(self, prior: PriorToRead, out: tuple[str, dict[str, Any], dict[str, str]]) -> None:
        from reader_app.qt_prior import PriorComparison

        case_id, images, errors = out
        cur = self.current
        if self._closed or cur is None or cur.case.case_id != case_id or not self.views:
            return  # the reader moved on
        if self.prior_compare is None:
            self.prior_compare = PriorComparison()
            self._body.insertWidget(1, self.prior_compare, 1)
        self._prior_label = prior.label
        self.prior_compare.set_prior(prior.case, images, {k: reading_safe(v) for k, v in errors.items()})
        self.images.setVisible(False)
        self.prior_compare.setVisible(True)
        self._refresh_prior()
        self.status.setText(f"Comparing with the prior exam ({prior.label.split(', ', 1)[-1]}): "
                            "Shift+P returns, Tab steps the view")
        self.prior_shown.emit(case_id)

    def _refresh_prior(self) -> None:
        pc, v, item = self.prior_compare, self.active_view(), self.current
        if pc is None or not pc.isVisible() or v is None or item is None:
            return
        if not pc.show_pair(item.case, v.slot, v.image, v.view_state, labels=("CURRENT", self._prior_label)):
            self.status.setText(f"The prior exam has no view matching {v.slot.title}")
        self.setFocus()  # the replaced views may have held the focus: keys keep working

    def close_prior(self) -> None:
        """Back to the hanging (also on every case change)."""
        pc = self.prior_compare
        if pc is not None:
            pc.clear()
            pc.setVisible(False)
        self.images.setVisible(True)

    # ----------------------------------------------------------------- rating state
    def _on_reading_changed(self, what: str) -> None:
        r = self.reading
        if r is None:
            return
        if what == "score" and r.score is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(r.score)
            self.slider.blockSignals(False)
            self.rating_label.setText(str(r.score))
        elif what == "birads":
            self.birads_box.blockSignals(True)
            self.birads_box.setCurrentIndex(max(0, self.birads_box.findData(r.birads)))
            self.birads_box.blockSignals(False)
        elif what in ("marks", "target"):
            self._refresh_marks()
        elif what == "ai":
            self._refresh_ai()
        pending = r.birads_pending
        if pending is not None:
            self.target_label.setText(f"BI-RADS: {pending or '?'}_")
        elif r.target != "case":
            self.target_label.setText(f"digits rate mark {r.target}")
        else:
            self.target_label.setText("digits rate the case")
        self._update_submit()

    def _update_submit(self) -> None:
        r = self.reading
        why = r.ready(self.run.design.birads, BIRADS_CATEGORIES) if r is not None else "no case"
        self.submit_button.setEnabled(bool(why is None and self.current is not None))
        self.submit_button.setToolTip(why or "Submit and go to the next case (Enter)")

    def _on_sign_in_clicked(self) -> None:
        self.sign_in(str(self.reader_box.currentData()))

    def _on_slider_changed(self, value: int) -> None:
        if self.reading is not None:
            self.reading.set_score(int(value))
        self.setFocus()

    def _on_birads_changed(self, _index: int) -> None:
        if self.reading is not None:
            self.reading.set_birads(self.birads_box.currentData())
        self.setFocus()

    def set_rating(self, value: int, birads: str | None = None) -> None:
        """Set the answers as a reader would (used by tests/scripts)."""
        if self.reading is None:
            return
        self.reading.set_score(value)
        if birads is not None:
            self.reading.set_birads(birads)

    def _on_submit_clicked(self) -> None:
        if self.session is None or self.current is None or self.reading is None:
            return
        why = self.reading.ready(self.run.design.birads, BIRADS_CATEGORIES)
        if why is not None:
            self.status.setText(f"Not submitted: {why}")
            return
        case_id = self.current.case.case_id
        arm_id = self.current.arm.arm_id
        r = self.reading
        try:
            import inspect

            if "marks" in inspect.signature(self.session.submit).parameters:  # the study store keeps marks
                self.session.submit(case_id, float(r.score or 0), r.birads, marks=list(r.marks))
            else:
                self.session.submit(case_id, float(r.score or 0), r.birads)
        except BreastReaderError as exc:  # the answer stays on screen; SaveFailedError says it is journalled
            self.status.setText(f"Rating NOT saved: {exc}")
            QMessageBox.warning(self, "Rating not saved", str(exc))
            return
        record = r.to_record()
        record["seconds"] = round(time.monotonic() - self._shown_at, 2)
        try:
            self.marks_store.save(self.session.reader_id, arm_id, case_id, record)
        except OSError as exc:
            QMessageBox.warning(self, "Marks not saved", f"{self.marks_store.path}: {exc}")
        self.submitted.emit(self.session.reader_id, arm_id, case_id)
        self.show_next()

    # ----------------------------------------------------------------- keys
    def event(self, ev: Any) -> bool:  # noqa: D102 - Qt API: Tab cycles views, not focus
        if ev.type() == QEvent.Type.KeyPress and ev.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
            self.keyPressEvent(ev)
            return True
        return super().event(ev)

    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        if self.stack.currentWidget() is not self.reading_page or self.reading is None:
            if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.stack.currentWidget() is self.sign_in_page:
                self._on_sign_in_clicked()
                return
            super().keyPressEvent(ev)
            return
        key = ev.key()
        r = self.reading
        v = self.active_view()
        text = ev.text().upper()
        if r.birads_pending == "4" and text in ("A", "B", "C"):
            r.letter(text)
        elif key in DIGIT_KEYS:
            r.digit(DIGIT_KEYS[key])
        elif key == Qt.Key.Key_C:
            r.start_birads()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            drafting = [w for w in self.views if w.tool == "polygon" and w._draft]
            if drafting:  # as in the workstation: Enter closes the polygon being drawn
                for w in drafting:
                    w.close_polygon()
            else:
                self._on_submit_clicked()
        elif key in SLICE_KEYS:
            if v is not None and v.n_frames > 1:  # 2-D: nothing (never the rating, never the case)
                v.view_state.scroll(SLICE_KEYS[key])
        elif key in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight):
            pass  # the workstation's case keys: a reader study has no case navigation
        elif key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab) and self.views:
            self.set_active(self.active_index + (-1 if key == Qt.Key.Key_Backtab else 1))
            self._refresh_prior()  # Tab steps the compared view too
        elif key == Qt.Key.Key_P and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.toggle_prior()
        elif key == Qt.Key.Key_H:
            self.next_hanging_step()
        elif key == Qt.Key.Key_L:
            self.cycle_layout()
        elif key == Qt.Key.Key_S:
            self.toggle_overlay()
        elif key in TOOL_KEYS:
            self.set_tool(TOOL_KEYS[key])
        elif key in PRESET_KEYS and v is not None:
            v.apply_preset(PRESET_KEYS[key])
        elif key == Qt.Key.Key_R and v is not None:
            v.reset()
            v.clear_ruler()
        elif key == Qt.Key.Key_Z:
            self.fit_all()
        elif key == Qt.Key.Key_O and v is not None:
            v.zoom_1to1()
        elif key == Qt.Key.Key_I and v is not None:
            v.view_state.set("invert", not v.view_state.invert)
        elif key == Qt.Key.Key_G and not ev.isAutoRepeat():
            target = self._view_under_mouse() or v
            if target is not None:
                target.set_magnifier(True)
        elif key == Qt.Key.Key_A:
            if r.ai_allowed and not r.reveal_ai() and not r.ai_revealed:
                self.status.setText("The AI is shown after you have rated the case")
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            if r.target != "case":
                r.remove_mark(r.target)
        elif key == Qt.Key.Key_Escape:
            if not r.cancel_sequence():
                for w in self.views:
                    w.cancel_draft()
                if r.target != "case":
                    r.set_target("case")
                elif self.tool != "navigate":
                    self.set_tool("navigate")
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def keyReleaseEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        if ev.key() == Qt.Key.Key_G and not ev.isAutoRepeat():
            for w in self.views:
                w.set_magnifier(False)
            ev.accept()
            return
        super().keyReleaseEvent(ev)

    def _view_under_mouse(self) -> Any:
        from PySide6.QtGui import QCursor

        pos = QCursor.pos()
        for w in self.views:
            if w.isVisible() and w.rect().contains(w.mapFromGlobal(pos)):
                return w
        return None

    def closeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        self._closed = True
        self.close_prior()
        for v in self.views:
            v.dispose()
        super().closeEvent(ev)


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
    win.resize(1600, 1000)
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

    def _on_result(res: Any) -> None:
        text = export_report(res)
        worker.report = text  # type: ignore[attr-defined]
        if parent is not None and hasattr(parent, "statusBar"):
            parent.statusBar().showMessage(text.splitlines()[0], 15000)
        box = QMessageBox(QMessageBox.Icon.Information, "Reader study exported", text,
                          QMessageBox.StandardButton.Ok, parent)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        worker.report_box = box  # type: ignore[attr-defined]

    worker.signals.errored.connect(_on_errored)
    worker.signals.result.connect(_on_result)
    return start(worker)


def export_report(res: Any) -> str:
    """Where an export went: the folder first, then each file (for the dialog and the status bar)."""
    out = Path(getattr(res, "out_dir", "") or "")
    files = getattr(res, "files", {}) or {}
    lines = [f"Exported {len(files)} file(s) to {out}"]
    for name, path in sorted(files.items()):
        lines.append(f"  {name}: {Path(path).name}")
    if getattr(res, "complete", True) is False:
        lines.append("Some ratings are still missing: the analysis covers what has been read.")
    return "\n".join(lines)


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

        # each model's own method (the lesion-centred US default has attention, not Grad-CAM)
        res = service.score_case(case, {ci.image_id: read_case_image(ci)}, ("own",))
        return res.saliency.get((ci.image_id, "own"))

    return provider
