"""Opening a study and loading a case's images off the GUI thread (worker jobs + their results)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer

from engine.cases import load_study
from engine.errors import BreastReaderError
from reader_app import paths
from reader_app.display import LoadedCase, prepare_case
from reader_app.imaging import ImageCache, load_case_images, preview_case_images
from reader_app.qt_main_base import WorkstationBase
from reader_app.qt_panels import short
from reader_app.qt_workers import Worker, start
from reader_app.redact import reading_safe
from reader_app.state import AppState, CaseState


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
                   ) -> LoadedCase:
    """Worker job: the case's images, hanging and display values, tagged with the case id so
    late results can be dropped.

    With ``on_preview``, JPEG 2000 images first give ``on_preview(LoadedCase)`` their
    reduced-resolution first views, then the full decode is returned.
    """
    if on_preview is not None:
        first = preview_case_images(case, cache, cancel=cancel)
        if first is not None:
            on_preview(prepare_case(case, *first, cancel=cancel))
    images, errors = load_case_images(case, cache, progress=progress, cancel=cancel)
    return prepare_case(case, images, errors, cancel=cancel)


class CaseLoadingMixin(WorkstationBase):
    """Study open (read in a worker, problems listed) and case change (images decoded in a worker)."""

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

    def _on_preview_loaded(self, out: LoadedCase) -> None:
        cs = self.state.current
        if cs is None or out.case_id != cs.case.case_id or self.views or self._building:
            return
        self.showing_preview = True
        self._show_images(out._replace(errors={}))  # failures are reported once, with the full load

    def _on_images_loaded(self, out: LoadedCase) -> None:
        cs = self.state.current
        if cs is None or out.case_id != cs.case.case_id or ((self.views or self._building) and not self.showing_preview):
            return  # a late load of a case the reader already left (or already shown)
        if self.showing_preview and [(s.image_id, s.flip) for s in out.slots] == [(s.image_id, s.flip) for s in self.slots]:
            # the full decode replaces the first views in place: same widgets, window/level and zoom
            self.showing_preview = False
            self._take_images(out)
            for v in self.views:
                iid = v.slot.image_id
                v.set_image(self.images.get(iid), self.displays.get(iid), self.image_errors.get(iid))
            if not self._building:  # else the views still to build get the full images
                self._on_views_built()
            return
        self.showing_preview = False
        self._show_images(out)

    def _on_views_built(self) -> None:
        """Every view of the case is on screen: say so (first views or full resolution), then the AI."""
        cs = self.state.current
        if cs is None:
            return
        case = cs.case
        if self.showing_preview:
            self.statusBar().showMessage("First view (reduced resolution); full resolution is decoding…")
            self.preview_shown.emit(case.case_id)
            return
        self.case_loaded.emit(case.case_id)
        hit = self.ai.cached(case)
        if hit is not None and self.ai_allowed_now():
            self._apply_ai_result(hit)
        elif (self.auto_score or self._score_after_full) and self.ai_allowed_now():
            self.score_case()
        elif self.ai_result is not None:
            self._apply_overlays()  # a result that came while the views were built
        self._score_after_full = False

    def _take_images(self, out: LoadedCase) -> None:
        """The load's images, their problems (listed once) and display values."""
        cs = self.state.current
        assert cs is not None
        self.images, self.image_errors, self.displays = out.images, out.errors, out.displays
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

    def _show_images(self, out: LoadedCase) -> None:
        self._take_images(out)
        self.slots = list(out.slots)
        self._build_views()

    def _study_root(self) -> Path | None:
        return Path(self.state.study.folder) if self.state.study else None
