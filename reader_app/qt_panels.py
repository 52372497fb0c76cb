"""Side panels: worklist, AI (scores + saliency controls), rating, annotations, problems."""

from __future__ import annotations

from html import escape as html_escape
import time

from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHeaderView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from reader_app.ai import AIResult
from reader_app.redact import reading_safe
from reader_app.state import BIRADS, COLORMAPS, SALIENCY_LABELS, SALIENCY_METHODS, STATUSES, AppState, Rating

STATUS_COLOURS = {"unread": "#bbbbbb", "annotated": "#00e5ff", "rated": "#7CFC00"}


class WorklistModel(QAbstractTableModel):
    """The worklist rows as a Qt model over :class:`AppState` (case, images, status).

    Rows are the state's visible case ids; cells are computed when the view paints them, so a
    5 000-case study costs the same per keystroke as a 10-case one (issue 17: the list used to be
    rebuilt as widgets on every keystroke).
    """

    HEADERS = ("Case", "Images", "Status")

    def __init__(self, state: AppState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.ids: list[str] = []
        self._row: dict[str, int] = {}

    def reload(self) -> None:
        """Re-read the visible case ids from the state (one model reset, no widgets made)."""
        self.beginResetModel()
        self.ids = self.state.visible_case_ids()
        self._row = {cid: r for r, cid in enumerate(self.ids)}
        self.endResetModel()

    def row_of(self, case_id: str | None) -> int:
        """Row of a case id, or -1 when it is filtered out."""
        return self._row.get(case_id, -1) if case_id else -1

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.ids)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.ids):
            return None
        cid = self.ids[index.row()]
        cs = self.state.cases.get(cid)
        if cs is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return cid
            if col == 1:
                return f"{'+'.join(cs.case.modalities)} ({len(cs.case.images)})"
            return cs.status
        if role == Qt.ItemDataRole.UserRole:
            return cid
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == 2:
                return QColor(STATUS_COLOURS[cs.status])
            if col == 0 and cs.case.synthetic:
                return QColor("#ff8a80")  # synthetic cases stand out in the list
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = ("SYNTHETIC case. " if cs.case.synthetic else "") + reading_safe(cs.case.description)
            return tip or None
        return None


class WorklistPanel(QWidget):
    """Cases of the study with status; search text (debounced) and status filter."""

    #: Typing pauses shorter than this filter once, after the last key.
    SEARCH_DEBOUNCE_MS = 150

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search cases (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.status_filter = QComboBox()
        self.status_filter.addItem("All", "")
        for s in STATUSES:
            self.status_filter.addItem(s.capitalize(), s)
        self.model = WorklistModel(state, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setWordWrap(False)
        # fixed widths from the font, never measured over the rows (5 000 rows: 0.2 s a time)
        head = self.table.horizontalHeader()
        head.setStretchLastSection(False)
        fm = self.fontMetrics()
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col, sample in ((1, "MG+US (10)"), (2, "annotated")):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(col, fm.horizontalAdvance(sample) + 12)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # case ids differ at their ends
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.count = QLabel("")
        self.progress = QProgressBar()  # reading a study (in a worker)
        self.progress.setMaximumHeight(14)
        self.progress.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        row.addWidget(self.status_filter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.count)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(self.SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(self._on_search_changed)
        self.search.returnPressed.connect(self.flush_search)
        self.status_filter.currentIndexChanged.connect(self._on_status_filter_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        state.worklist_changed.connect(self.refresh)
        state.case_changed.connect(lambda _cs: self._select_current())
        self._updating = False
        self._progress_at = 0.0

    # test / caller helpers -------------------------------------------------
    def row_count(self) -> int:
        """Rows shown (cases passing the filter)."""
        return self.model.rowCount()

    def cell(self, row: int, col: int) -> str:
        """Text of one cell."""
        return str(self.model.data(self.model.index(row, col)) or "")

    def refresh(self) -> None:
        """Re-read the rows from the state (filter applied)."""
        self._updating = True
        self.model.reload()
        total = len(self.state.cases)
        done = sum(1 for c in self.state.cases.values() if c.status == "rated")
        self.count.setText(f"{len(self.model.ids)} of {total} cases shown · {done} rated")
        self._updating = False
        self._select_current()

    def show_progress(self, done: int, total: int, message: str) -> None:
        """Progress of reading a study; an empty message hides the bar (redrawn at most 10 times a second)."""
        now = time.monotonic()
        if message and self.progress.isVisible() and now - self._progress_at < 0.1 and done < total:
            return
        self._progress_at = now
        self.progress.setVisible(bool(message))
        self.progress.setMaximum(max(total, 0))  # 0: busy indicator until the count is known
        self.progress.setValue(done)
        self.progress.setFormat(f"{message} %v/%m" if total else message)

    def _select_current(self) -> None:
        cur = self.state.current.case.case_id if self.state.current else None
        self._updating = True
        r = self.model.row_of(cur)
        if r >= 0:
            self.table.selectRow(r)
            self.table.scrollTo(self.model.index(r, 0))
        else:
            self.table.clearSelection()
        self._updating = False

    def _on_search_changed(self, _text: str) -> None:
        self._search_timer.start()  # restarts: one filter after the last key of a burst

    def _apply_search(self) -> None:
        self.state.set_filter(text=self.search.text())

    def flush_search(self) -> None:
        """Apply a pending search now (Enter in the box, tests)."""
        if self._search_timer.isActive():
            self._search_timer.stop()
            self._apply_search()

    def _on_status_filter_changed(self, _i: int) -> None:
        self.state.set_filter(status=self.status_filter.currentData())

    def _on_selection_changed(self, *_a: Any) -> None:
        if self._updating:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.state.select_case(self.model.ids[rows[0].row()])


class AIPanel(QGroupBox):
    """AI scores and saliency controls. Never shows a score no model produced."""

    run_requested = Signal()
    cancel_requested = Signal()
    overlay_changed = Signal(str, object)  # (ViewState attribute, value)
    model_changed = Signal(str, object)  # (modality, weights name or None = default)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("AI — decision support", parent)
        self.disclaimer = QLabel("Decision support — not a diagnosis")
        self.disclaimer.setStyleSheet("color:#ffb347;font-weight:bold")
        self.synthetic = QLabel("SYNTHETIC")
        self.synthetic.setStyleSheet("color:#000;background:#ff6b6b;font-weight:bold;padding:2px 6px")
        self.synthetic.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.synthetic.setVisible(False)
        # "loading model…" while the model stack loads in the background (issue 17)
        self.model_state = QLabel("")
        self.model_state.setStyleSheet("color:#ffd166")
        self.model_state.setVisible(False)
        self.scores = QLabel("Not scored yet — press A or “Score case”.")
        self.scores.setWordWrap(True)
        self.scores.setTextFormat(Qt.TextFormat.RichText)
        self.models = QLabel("")
        self.models.setWordWrap(True)
        self.models.setTextFormat(Qt.TextFormat.RichText)
        self.models.setOpenExternalLinks(False)
        self.models.linkActivated.connect(self._on_card_link_changed)
        self.advice = QLabel("")
        self.advice.setWordWrap(True)
        self.advice.setStyleSheet("color:#00e5ff")
        self.run_btn = QPushButton("Score case (A)")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setMaximumHeight(16)
        self.method = QComboBox()
        for m in SALIENCY_METHODS:
            self.method.addItem(SALIENCY_LABELS[m], m)
        self.method.setItemData(0, "Each model's own overlay: the US lesion model's mask-supervised attention, "
                                   "Grad-CAM for the whole-image models", Qt.ItemDataRole.ToolTipRole)
        self.colormap = QComboBox()
        for c in COLORMAPS:
            self.colormap.addItem(c, c)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.overlay_on = QCheckBox("Show saliency (S)")
        self.all_views = QCheckBox("Apply to all views")
        self.all_views.setChecked(True)
        self.all_views.setToolTip("Unticked: method, colour map, opacity and on/off change the active view only")
        self.overlay_on.setChecked(True)
        for w in (self.method, self.colormap, self.opacity, self.overlay_on, self.all_views, self.run_btn,
                  self.cancel_btn):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        btns = QHBoxLayout()
        btns.addWidget(self.run_btn)
        btns.addWidget(self.cancel_btn)
        form = QFormLayout()
        self.model_boxes: dict[str, QComboBox] = {}
        self.model_form = form
        form.addRow("Method", self.method)
        form.addRow("Colour map", self.colormap)
        form.addRow("Opacity", self.opacity)
        onoff = QHBoxLayout()
        onoff.addWidget(self.overlay_on)
        onoff.addWidget(self.all_views)
        form.addRow(onoff)
        lay = QVBoxLayout(self)
        lay.addWidget(self.disclaimer)
        lay.addWidget(self.synthetic)
        lay.addWidget(self.model_state)
        lay.addWidget(self.scores)
        lay.addWidget(self.advice)
        lay.addWidget(self.models)
        lay.addLayout(btns)
        lay.addWidget(self.progress)
        lay.addLayout(form)
        self.run_btn.clicked.connect(self.run_requested.emit)
        self.cancel_btn.clicked.connect(self.cancel_requested.emit)
        self.method.currentIndexChanged.connect(lambda _i: self.overlay_changed.emit("method", self.method.currentData()))
        self.colormap.currentIndexChanged.connect(
            lambda _i: self.overlay_changed.emit("colormap", self.colormap.currentData()))
        self.opacity.valueChanged.connect(lambda v: self.overlay_changed.emit("opacity", v / 100.0))
        self.overlay_on.toggled.connect(lambda on: self.overlay_changed.emit("overlay_on", bool(on)))
        self.result: AIResult | None = None

    def set_models(self, installed: dict[str, list[str]], defaults: dict[str, str | None]) -> None:
        """One model selector per modality that has installed weights."""
        for mod in ("US", "MG", "MR"):
            names = installed.get(mod, [])
            if not names or mod in self.model_boxes:
                continue
            box = QComboBox()
            box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(14)
            box.addItem(f"default ({defaults.get(mod) or 'none'})", None)
            for n in names:
                if n != defaults.get(mod):
                    box.addItem(n, n)
            box.currentIndexChanged.connect(lambda _i, m=mod, b=box: self.model_changed.emit(m, b.currentData()))
            self.model_boxes[mod] = box
            self.model_form.insertRow(len(self.model_boxes) - 1, f"{mod} model", box)

    def show_view_settings(self, vs: Any) -> None:
        """Reflect one view's overlay settings in the controls (without re-emitting them)."""
        for w in (self.method, self.colormap, self.opacity, self.overlay_on):
            w.blockSignals(True)
        self.method.setCurrentIndex(max(0, self.method.findData(vs.method)))
        self.colormap.setCurrentIndex(max(0, self.colormap.findData(vs.colormap)))
        self.opacity.setValue(int(round(vs.opacity * 100)))
        self.overlay_on.setChecked(vs.overlay_on)
        for w in (self.method, self.colormap, self.opacity, self.overlay_on):
            w.blockSignals(False)

    def _on_card_link_changed(self, link: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(link) if not link.startswith("http") else QUrl(link))

    def set_model_state(self, text: str) -> None:
        """A line about the models ("loading model…"); empty hides it."""
        self.model_state.setText(text)
        self.model_state.setVisible(bool(text))

    def set_busy(self, busy: bool) -> None:
        """Toggle the run/cancel buttons while a worker scores the case."""
        self.run_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)
        if busy:
            self.progress.setValue(0)

    def set_progress(self, done: int, total: int, msg: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{msg} %p%")

    def clear(self, case_synthetic: bool = False, message: str = "Not scored yet — press A or “Score case”.") -> None:
        """Forget the shown result (new case)."""
        self.result = None
        self.scores.setText(message)
        self.models.setText("")
        self.advice.setText("")
        self.synthetic.setVisible(case_synthetic)
        self.synthetic.setText("SYNTHETIC CASE" if case_synthetic else "SYNTHETIC")
        self.progress.setValue(0)
        self.progress.setFormat("%p%")

    def show_result(self, res: AIResult, case_synthetic: bool = False, case: Any = None) -> None:
        """Render probabilities (not the reader's 0-10 scale) with each model's operating point
        and calibration, training-data overlap, fusion only for one patient, models, advice."""
        from reader_app.ai_display import model_facts, same_patient, training_overlap

        self.result = res
        rows = []
        notes = []
        for mod in ("MG", "US", "MR"):
            info = res.models.get(mod)
            if info is None:
                continue
            facts = model_facts(info.name)
            if mod in res.per_modality:
                p = res.per_modality[mod]
                thr = f"&nbsp;<small>(operating point {facts.threshold:.2f})</small>" if facts and facts.threshold is not None else ""
                rows.append(f"<tr><td><b>{mod}</b></td><td>&nbsp;{_score_cell(p, res, case, mod)}{thr}</td></tr>")
                if facts is not None:
                    notes.append(f"<small>{mod} calibration: {html_escape(facts.calibration)}</small>")
                inside = training_overlap(case, mod, facts) if case is not None else []
                if inside and facts is not None:
                    notes.append(f"<small style='color:#ff6b6b'><b>{mod}: in training data</b> - "
                                 f"{', '.join(inside)} come(s) from {', '.join(facts.train_sources)}, which "
                                 f"{info.name} was developed on: its score here is optimistic.</small>")
            else:
                rows.append(f"<tr><td><b>{mod}</b></td><td>&nbsp;<i>{info.error or 'no score'}</i></td></tr>")
        if res.fused is not None:
            if case is not None and not same_patient(case):
                rows.append("<tr><td><b>Fused</b></td><td>&nbsp;<i>not offered: the MG and US images come "
                            "from different patients</i></td></tr>")
            else:
                rows.append(
                    f"<tr><td><b>Fused</b></td><td>&nbsp;p = <b>{res.fused:.2f}</b></td></tr>"
                    f"<tr><td></td><td><small>{res.fused_source}</small></td></tr>"
                )
        html = "<table>" + "".join(rows) + "</table>" if rows else "<i>No image could be scored.</i>"
        self.scores.setToolTip("\n".join(f"{m}: {i.detail}" for m, i in res.models.items() if i.detail))
        html = "<small>AI malignancy probability (model output 0-1; not your 0-10 scale)</small>" + html
        if notes:
            html += "<br>" + "<br>".join(notes)
        for image_id, a in (getattr(res, "lesion", None) or {}).items():  # lesion-centred US and MG models
            where = "finder's suggested box" if a.box_source == "finder" else "your box"
            html += (f"<br><small>{html_escape(str(image_id))}: calibrated {a.score:.2f} "
                     f"(raw {a.raw_score:.2f}) · lesion: {where} {tuple(int(v) for v in a.box)}</small>")
            if a.ood_flag:
                html += (f"<br><small style='color:#ffb347'>⚠ {html_escape(str(image_id))} looks unlike the "
                         f"training images (OOD {a.ood:.1f} &gt; {a.ood_threshold:.1f}): read the score "
                         "with extra caution</small>")
        if res.errors:
            html += "<br><small style='color:#ff6b6b'>" + "<br>".join(res.errors[:4]) + "</small>"
        self.scores.setText(html)
        mlines = []
        for mod, info in res.models.items():
            if info.name:
                name = f"<a href='{info.card}' style='color:#8ab4f8'>{info.name}</a>" if info.card else info.name
                tag = " <b style='color:#ff6b6b'>SYNTHETIC</b>" if info.synthetic else ""
                mlines.append(f"{mod}: {name} · {info.device}{tag}")
                if info.saliency_note:
                    mlines.append(f"<span style='color:#ffb347'>{mod} saliency: {html_escape(info.saliency_note)}</span>")
        self.models.setText("<small>" + "<br>".join(mlines) + "</small>")
        self.advice.setText(res.advice or "")  # set only when a Qi cascade model scored the case
        syn = res.synthetic or case_synthetic
        self.synthetic.setVisible(syn)
        self.synthetic.setText("SYNTHETIC " + ("CASE" if case_synthetic else "") + (" / MODEL" if res.synthetic else ""))


def _score_cell(p: float, res: AIResult, case: Any, modality: str) -> str:
    """The score, and for lesion-centred models "calibrated" + the OOD warning right beside it.

    The warning never replaces or hides the number (issue 12): it is appended to the same cell.
    """
    lesion = getattr(res, "lesion", None) or {}
    ids = {ci.image_id for ci in case.images if str(ci.modality) == modality} if case is not None else set(lesion)
    mine = [a for i, a in lesion.items() if i in ids]
    if not mine:
        return f"p = <b>{p:.2f}</b>"
    cell = f"calibrated p = <b>{p:.2f}</b>"
    flagged = [a for a in mine if a.ood_flag]
    if flagged:
        worst = max(flagged, key=lambda a: a.ood)
        cell += (f" <span style='color:#ffb347'><b>⚠ OOD</b> {worst.ood:.1f} &gt; {worst.ood_threshold:.1f}: "
                 "unlike the training images</span>")
    else:
        cell += f" <small style='color:#8fd18f'>in distribution (OOD {max(a.ood for a in mine):.1f})</small>"
    return cell


class RatingPanel(QGroupBox):
    """0-10 malignancy rating (slider + number keys), BI-RADS, comment, time spent."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__("Your reading", parent)
        self.state = state
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 10)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.value = QLabel("–")
        self.value.setMinimumWidth(60)
        self.value.setStyleSheet("font-size:18px;font-weight:bold")
        self.birads = QComboBox()
        for b in BIRADS:
            self.birads.addItem(b or "—", b)
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("Comment (saved as you type)")
        self.comment.setMaximumHeight(70)
        self.time = QLabel("")
        for w in (self.slider, self.birads):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row = QHBoxLayout()
        row.addWidget(QLabel("benign 0"))
        row.addWidget(self.slider, 1)
        row.addWidget(QLabel("10 malignant"))
        row.addWidget(self.value)
        form = QFormLayout()
        form.addRow("BI-RADS", self.birads)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Malignancy rating (keys 0–9, 1 then 0 = 10)"))
        lay.addLayout(row)
        lay.addLayout(form)
        lay.addWidget(self.comment)
        lay.addWidget(self.time)
        self._loading = False
        self.slider.valueChanged.connect(self._on_score_changed)
        self.slider.sliderPressed.connect(lambda: self._on_score_changed(self.slider.value()))
        self.birads.currentIndexChanged.connect(self._on_birads_changed)
        self.comment.textChanged.connect(self._on_comment_changed)
        state.case_changed.connect(self._on_case_changed)
        self._on_case_changed(state.current)

    def _on_case_changed(self, cs: Any) -> None:
        self._loading = True
        self.setEnabled(cs is not None)
        r: Rating = cs.rating if cs is not None else Rating()
        self.slider.setValue(r.score if r.score is not None else 0)
        self.value.setText(f"{r.score}/10" if r.score is not None else "–")
        self.birads.setCurrentIndex(max(0, self.birads.findData(r.birads)))
        self.comment.setPlainText(r.comment)
        self._loading = False
        if cs is not None:
            cs.rating_changed.connect(self._on_rating_changed)

    def _on_rating_changed(self, r: Rating) -> None:
        self._loading = True
        if r.score is not None:
            self.slider.setValue(r.score)
            self.value.setText(f"{r.score}/10")
        self._loading = False

    def _on_score_changed(self, v: int) -> None:
        if not self._loading:
            self.state.rate(score=int(v))

    def _on_birads_changed(self, _i: int) -> None:
        if not self._loading:
            self.state.rate(birads=self.birads.currentData())

    def _on_comment_changed(self) -> None:
        if not self._loading:
            self.state.rate(comment=self.comment.toPlainText())

    def tick(self) -> None:
        """Refresh the time-spent label."""
        cs = self.state.current
        if cs is not None:
            s = int(cs.elapsed())
            self.time.setText(f"Time on case: {s // 60}:{s % 60:02d}")


class AnnotationPanel(QGroupBox):
    """Current lesion id, list of the case's annotations, delete, export."""

    delete_requested = Signal(str)
    export_requested = Signal()
    lesion_edit_requested = Signal(str, str)  # ann_id, lesion_id
    select_requested = Signal(str)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__("Annotations", parent)
        self.state = state
        self.lesion = QComboBox()
        self.lesion.setEditable(True)
        self.lesion.setToolTip("Lesion id of new regions; the same id links a lesion across MG and US views")
        self.new_btn = QPushButton("New lesion (N)")
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.del_btn = QPushButton("Delete (Del)")
        self.assign_btn = QPushButton("Set lesion id")
        self.export_btn = QPushButton("Export masks + COCO…")
        self.tool = QLabel("")
        for w in (self.lesion, self.new_btn, self.list, self.del_btn, self.assign_btn, self.export_btn):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus if w is not self.lesion else Qt.FocusPolicy.ClickFocus)
        top = QHBoxLayout()
        top.addWidget(QLabel("Lesion"))
        top.addWidget(self.lesion, 1)
        top.addWidget(self.new_btn)
        btns = QHBoxLayout()
        btns.addWidget(self.del_btn)
        btns.addWidget(self.assign_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tool)
        lay.addLayout(top)
        lay.addWidget(self.list)
        lay.addLayout(btns)
        lay.addWidget(self.export_btn)
        self.new_btn.clicked.connect(lambda: state.new_lesion())
        self.lesion.currentTextChanged.connect(self._on_lesion_changed)
        self.del_btn.clicked.connect(self._on_delete_clicked)
        self.assign_btn.clicked.connect(self._on_assign_clicked)
        self.export_btn.clicked.connect(self.export_requested.emit)
        self.list.currentItemChanged.connect(self._on_list_selection_changed)
        state.lesion_changed.connect(self._on_state_lesion_changed)
        state.tool_changed.connect(self._on_tool_changed)
        self._on_tool_changed(state.tool)
        self._busy = False

    def _on_tool_changed(self, tool: str) -> None:
        keys = {"navigate": "V", "box": "B", "polygon": "P", "freehand": "F", "ruler": "M"}
        self.tool.setText(f"Tool: <b>{tool}</b> ({keys[tool]})")

    def _on_lesion_changed(self, text: str) -> None:
        if not self._busy and text.strip():
            self.state.set_lesion(text)

    def _on_state_lesion_changed(self, lid: str) -> None:
        self._busy = True
        if self.lesion.findText(lid) < 0:
            self.lesion.addItem(lid)
        self.lesion.setCurrentText(lid)
        self._busy = False

    def refresh(self) -> None:
        """Rebuild the annotation list from the current case."""
        self._busy = True
        cur = self.list.currentItem().data(Qt.ItemDataRole.UserRole) if self.list.currentItem() else None
        self.list.clear()
        self.lesion.clear()
        cs = self.state.current
        ids = cs.lesion_ids() if cs else []
        for lid in ids + ([self.state.lesion_id] if self.state.lesion_id not in ids else []):
            self.lesion.addItem(lid)
        self.lesion.setCurrentText(self.state.lesion_id)
        if cs:
            for a in cs.case.annotations:
                fr = f" slice {a.frame + 1}" if a.frame is not None else ""
                it = QListWidgetItem(f"{a.lesion_id} · {a.kind} on {a.image_id}{fr}")
                it.setData(Qt.ItemDataRole.UserRole, a.ann_id)
                self.list.addItem(it)
                if a.ann_id == cur:
                    self.list.setCurrentItem(it)
        self._busy = False

    def select(self, ann_id: str) -> None:
        self._busy = True
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == ann_id:
                self.list.setCurrentRow(i)
                break
        else:
            self.list.setCurrentRow(-1)
        self._busy = False

    def _on_list_selection_changed(self, cur: QListWidgetItem | None, _prev: Any) -> None:
        if not self._busy and cur is not None:
            self.select_requested.emit(cur.data(Qt.ItemDataRole.UserRole))

    def selected_id(self) -> str | None:
        it = self.list.currentItem()
        return it.data(Qt.ItemDataRole.UserRole) if it else None

    def _on_delete_clicked(self) -> None:
        aid = self.selected_id()
        if aid:
            self.delete_requested.emit(aid)

    def _on_assign_clicked(self) -> None:
        aid = self.selected_id()
        if aid:
            self.lesion_edit_requested.emit(aid, self.lesion.currentText().strip() or "L1")


class ProblemsPanel(QWidget):
    """Files of the study that could not be opened: which file and why."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setStyleSheet("color:#ff6b6b;font-weight:bold")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.header)
        lay.addWidget(self.list)
        self._items: dict[str, str] = {}

    def set_problems(self, problems: dict[str, str]) -> None:
        """Replace the list: key (file or case/image) -> reason."""
        self._items = dict(problems)
        self.list.clear()
        for where, why in self._items.items():
            self.list.addItem(f"{where}\n    {why}")
        n = len(self._items)
        self.header.setText(
            f"{n} file{'s' if n != 1 else ''} of this study could not be opened; the rest of the study is usable."
            if n else "No problems."
        )

    def add(self, where: str, why: str) -> None:
        if self._items.get(where) != why:
            self._items[where] = why
            self.set_problems(self._items)

    def count(self) -> int:
        return len(self._items)


def hline() -> QFrame:
    f = QFrame()
    f.setFrameShape(QFrame.Shape.HLine)
    return f


def short(path: str | Path, study_root: Path | None) -> str:
    """A path relative to the study folder for messages."""
    p = Path(path)
    if study_root is not None:
        try:
            return p.resolve().relative_to(study_root.resolve()).as_posix()
        except ValueError:
            pass
    return p.name
