"""Annotations in the workstation: drawing tools, edits, selection, undo/redo, export and rating keys."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from reader_app.imaging import export_case
from reader_app.qt_main_base import WorkstationBase


class AnnotationsMixin(WorkstationBase):
    """The reader's regions (drawn in the views, stored in the case state) and the number-key rating."""

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
