"""Current | prior comparison: one view of the current exam beside the same view of the
patient's earlier exam, in the workstation's own :class:`ImageView` (W/L, zoom, magnifier).

The main window only toggles it (Shift+P) and tells it which view is active; the lookup is
:mod:`reader_app.priors` (same patient_ref, earlier exam_date).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.cases import Case
from engine.io.types import LoadedImage
from reader_app.imaging import Slot, hanging_protocol
from reader_app.priors import matching_image, view_key
from reader_app.qt_view import ImageView
from reader_app.state import ViewState


class PriorComparison(QWidget):
    """Two views side by side: CURRENT (left) and PRIOR (right) of the same breast and view.

    Both are fitted to the breast and zoom/pan together (same laterality: same orientation).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("priorComparison")
        self.views: list[ImageView] = []
        self.caption = QLabel("")
        self.caption.setObjectName("priorCaption")
        self.caption.setWordWrap(True)
        self.row = QHBoxLayout()
        self.row.setSpacing(3)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.caption)
        lay.addLayout(self.row, 1)
        self.prior: Case | None = None
        self.prior_images: dict[str, LoadedImage] = {}
        self.prior_errors: dict[str, str] = {}
        self._prior_slots: list[Slot] = []

    def set_prior(self, prior: Case, images: dict[str, LoadedImage], errors: dict[str, str]) -> None:
        """The prior exam and its decoded images."""
        self.prior, self.prior_images, self.prior_errors = prior, images, errors
        self._prior_slots = hanging_protocol(prior, images)

    def show_pair(self, case: Case, slot: Slot, image: LoadedImage | None, view_state: ViewState,
                  labels: tuple[str, str] | None = None) -> bool:
        """Show ``slot`` of the current case beside the prior's same view; False when the prior
        has no such view (the prior side then says so).

        ``labels``: (current, prior) captions instead of the exam dates (the blinded reading
        session shows no dates, only the interval).
        """
        self.clear()
        if self.prior is None:
            return False
        lats = {s.image_id: s.laterality for s in self._prior_slots}
        key = view_key(case, slot.image_id, slot.laterality)
        pid = matching_image(self.prior, key, lats)
        now_label, prior_label = labels or (f"CURRENT {case.exam_date or 'date unknown'}",
                                            f"PRIOR {self.prior.exam_date}")
        cur = ImageView(Slot(slot.image_id, f"{now_label} · {slot.title}", slot.modality, slot.flip,
                             None, slot.laterality, slot.laterality_source), image, view_state)
        self._add(cur)
        found = pid is not None
        if pid is not None:
            ps = next(s for s in self._prior_slots if s.image_id == pid)
            prior_view = ImageView(Slot(pid, f"{prior_label} · {ps.title}", ps.modality, ps.flip,
                                        None, ps.laterality, ps.laterality_source),
                                   self.prior_images.get(pid), ViewState(), error=self.prior_errors.get(pid))
        else:
            what = " ".join(x for x in key[1:] if x) or "this view"
            prior_view = ImageView(Slot("", prior_label, slot.modality), None, ViewState(),
                                   error=f"the prior exam has no {key[0]} {what}")
        self._add(prior_view)
        cur.range_changed.connect(lambda v: self._sync(v))
        prior_view.range_changed.connect(lambda v: self._sync(v))
        self.caption.setText(f"<b>Comparison with prior</b> · {now_label.lower()} | {prior_label.lower()}"
                             f" · Shift+P returns to the hanging, Tab steps the view")
        QTimer.singleShot(0, self, self.fit_all)
        return found

    def _add(self, v: ImageView) -> None:
        v.set_annotations([])
        self.views.append(v)
        self.row.addWidget(v, 1)

    def fit_all(self) -> None:
        for v in self.views:
            v.fit()

    def _sync(self, src: ImageView) -> None:
        r = src.normalized_range()
        for v in self.views:
            if v is not src:
                v.set_normalized_range(r)

    def clear(self) -> None:
        for v in self.views:
            v.dispose()
            self.row.removeWidget(v)
            v.setParent(None)
            v.deleteLater()
        self.views = []


def toggle_prior(win: Any) -> bool:
    """Shift+P in the main window: show current | prior of the active view, or go back.

    Returns:
        Whether the comparison is shown after the call.
    """
    from reader_app.priors import find_prior
    from reader_app.qt_workers import Worker, start

    pc: PriorComparison | None = getattr(win, "prior_compare", None)
    if pc is not None and pc.isVisible():
        close_prior(win)
        return False
    cs = win.state.current
    if cs is None or win.state.study is None or not win.views:
        return False
    prior = find_prior(win.state.study.cases, cs.case)
    if prior is None:
        why = ("this case has no exam date or patient reference" if not (cs.case.patient_ref and cs.case.exam_date)
               else "no earlier exam of this patient in this study")
        win.statusBar().showMessage(f"No prior to compare: {why}", 5000)
        return False
    if pc is None:
        pc = PriorComparison()
        win.prior_compare = pc
        win.centralWidget().layout().addWidget(pc, 1)
    pc.setVisible(False)
    case_id = cs.case.case_id
    from reader_app.imaging import load_case_images

    def job(*, progress: Any = None, cancel: Any = None) -> tuple[str, Any, Any]:
        images, errors = load_case_images(prior, win.cache, progress=progress, cancel=cancel)
        return case_id, images, errors

    def on_loaded(out: tuple[str, dict[str, LoadedImage], dict[str, str]]) -> None:
        cur = win.state.current
        if cur is None or cur.case.case_id != out[0] or not win.views:
            return  # the reader moved on
        pc.set_prior(prior, out[1], out[2])
        win.statusBar().clearMessage()
        win.grid_host.setVisible(False)
        pc.setVisible(True)
        refresh_prior(win)
        win.prior_shown.emit(prior.case_id)

    w = Worker(job, name="load prior")
    w.signals.result.connect(on_loaded)
    w.signals.errored.connect(win.show_error)
    win._track(w)
    start(w, win.pool)
    win.statusBar().showMessage(f"Loading the prior exam of {prior.exam_date}…", 3000)
    return True


def refresh_prior(win: Any) -> None:
    """Show the active view's pair (after Tab, or when the comparison opens)."""
    pc: PriorComparison | None = getattr(win, "prior_compare", None)
    v = win.active_view()
    if pc is None or not pc.isVisible() or v is None or win.state.current is None:
        return
    if not pc.show_pair(win.state.current.case, v.slot, v.image, v.view_state):
        win.statusBar().showMessage(f"The prior exam has no view matching {v.slot.title}", 4000)
    win.centralWidget().setFocus()  # the replaced views may have held the focus: keys keep working


def close_prior(win: Any) -> None:
    """Back to the hanging (also on every case change)."""
    pc: PriorComparison | None = getattr(win, "prior_compare", None)
    if pc is not None:
        focus = QApplication.focusWidget()
        had_focus = pc.isAncestorOf(focus) if focus is not None else False
        pc.clear()
        pc.setVisible(False)
        if had_focus:
            win.centralWidget().setFocus()  # never leave the keyboard focus on a deleted view
    win.grid_host.setVisible(True)


__all__ = ["PriorComparison", "close_prior", "refresh_prior", "toggle_prior"]
