"""AI in the workstation: when it may be shown (after the reader's own read), scoring in a
worker, saliency overlays and the lesion finder's box suggestion."""

from __future__ import annotations

from typing import Any

from reader_app import paths
from reader_app.ai import AIResult
from reader_app.qt_main_base import WorkstationBase
from reader_app.qt_view import ImageView
from reader_app.qt_workers import Worker, start
from reader_app.study.reading_state import AI_DISPLAY_MODES


class AIMixin(WorkstationBase):
    """AI display setting, scoring and warm-up workers, saliency overlays, model choice and box suggestions."""

    # ------------------------------------------------------------------ AI box suggestion (issue 12)
    def _apply_suggestions(self) -> None:
        """Show the lesion finder's box as a suggestion on every image the reader has drawn none on."""
        res, cs = self.ai_result, self.state.current
        allowed = res is not None and cs is not None and self.ai_allowed_now()
        for v in self.views:
            box = None
            if allowed:
                a = (getattr(res, "lesion", None) or {}).get(v.slot.image_id)
                if a is not None and a.box_source == "finder" and cs.case.reader_box(v.slot.image_id) is None:  # type: ignore[union-attr]
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
        self.ai_panel.progress.setFormat("failed")  # not a frozen "scoring …" bar
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
