"""The items drawn over an image view: saliency overlay, reader annotations (editable ROIs),
drafts of shapes being drawn, the ruler, dataset truth, reading-session marks and the AI's
suggested box. All in image pixel coordinates, children of the view's mirrored group.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QWidget

from engine.cases import Annotation
from engine.io.types import LoadedImage
from reader_app.annotation_style import SUGGESTION_COLOUR, SUGGESTION_LABEL, TRUTH_COLOUR, is_truth, lesion_colour, simplify
from reader_app.imaging import Slot
from reader_app.state import ViewState


class ViewItemsMixin(QWidget):
    """Overlay and annotation items of :class:`reader_app.qt_view.ImageView` (its attributes,
    set in ``ImageView.__init__``, are declared here)."""

    drawn = Signal(str, str, object, object)
    edited = Signal(str, object)
    selected = Signal(str)

    slot: Slot
    image: LoadedImage | None
    view_state: ViewState
    tool: str
    selected_id: str | None
    _rois: dict[str, pg.ROI]
    _labels: list[pg.TextItem]
    _draft: list[list[float]]
    _overlay_map: np.ndarray | None
    _overlay_frame: int | None
    _overlay_key: tuple[int, int] | None
    _annotations: list[Annotation]
    _truth_shapes: list[dict[str, Any]]
    ruler_mm: float | None
    ruler_px: float | None
    show_truth: bool
    _static_items: list[Any]
    _static_shapes: list[dict[str, Any]]
    gv: pg.GraphicsView
    vb: pg.ViewBox
    group: pg.ItemGroup
    overlay: pg.ImageItem
    draft_item: QGraphicsPathItem
    ruler_item: QGraphicsPathItem
    ruler_text: pg.TextItem
    suggestion_box: tuple[float, float, float, float] | None
    suggestion_item: QGraphicsPathItem | None
    suggestion_label: pg.TextItem | None

    if TYPE_CHECKING:  # defined by ImageView
        @property
        def n_frames(self) -> int: ...
        def image_size(self) -> tuple[int, int]: ...
        def to_image(self, scene_pos: QPointF) -> tuple[float, float]: ...
        def _update_slice_label(self) -> None: ...
        def _on_view_state_changed(self, name: str, value: Any) -> None: ...

    # ------------------------------------------------------------------ overlay
    OVERLAY_MAX_SIDE = 1024  # saliency is smooth: a 1024-px map looks the same and draws fast

    def set_overlay_map(self, m: np.ndarray | None, frame: int | None = None) -> None:
        """Set the saliency map (any resolution; stretched onto the image's pixel rectangle).

        For a stack, a 2-D map belongs to slice ``frame`` and is shown on that slice only.
        """
        self._overlay_map = m
        self._overlay_frame = frame
        self._overlay_key = None
        self._refresh_overlay()

    @staticmethod
    def _normalised(m: np.ndarray, max_side: int) -> np.ndarray:
        """[0, 1] float32 map, area-reduced so its longer side is at most ``max_side``."""
        import cv2

        m = np.asarray(m, dtype=np.float32)
        f = max(m.shape) / max_side
        if f > 1:
            m = cv2.resize(m, (max(1, round(m.shape[1] / f)), max(1, round(m.shape[0] / f))),
                           interpolation=cv2.INTER_AREA)
        lo, hi = float(m.min()), float(m.max())
        return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)

    def _overlay_lut(self) -> np.ndarray:
        name = self.view_state.colormap
        cmap = pg.colormap.get(name) if name in pg.colormap.listMaps() else pg.colormap.get("turbo")
        lut: np.ndarray = cmap.getLookupTable(0.0, 1.0, 256, alpha=True)
        lut[:, 3] = np.clip(np.linspace(0, 1, 256) * 2.0, 0, 1) * 255  # low saliency stays transparent
        return lut

    def _refresh_overlay(self, what: str = "all") -> None:
        """Redraw the overlay; opacity and colour map changes never touch the map itself."""
        m = self._overlay_map
        vs = self.view_state
        if m is None or self.image is None or not vs.overlay_on:
            self.overlay.setVisible(False)
            return
        if self.n_frames > 1 and m.ndim == 2 and self._overlay_frame not in (None, vs.frame):
            self.overlay.setVisible(False)
            self._update_slice_label()
            return
        key = (id(m), vs.frame if m.ndim == 3 else -1)
        if key != self._overlay_key:
            plane = m[min(vs.frame, m.shape[0] - 1)] if m.ndim == 3 else m
            self.overlay.setImage(self._normalised(plane, self.OVERLAY_MAX_SIDE), levels=(0.0, 1.0),
                                  lut=self._overlay_lut(), autoLevels=False)
            w, h = self.image_size()
            self.overlay.setRect(QRectF(0, 0, w, h))
            self._overlay_key = key
        elif what in ("colormap", "all"):
            self.overlay.setLookupTable(self._overlay_lut())
        self.overlay.setOpacity(vs.opacity)
        self.overlay.setVisible(True)
        self._update_slice_label()

    # ------------------------------------------------------------------ annotations
    def set_tool(self, tool: str) -> None:
        """Select the mouse tool; cancels a drawing in progress."""
        self.tool = tool
        self.cancel_draft()
        movable = tool == "navigate"
        for aid, roi in self._rois.items():
            self._set_roi_editable(roi, aid == self.selected_id)
        self.gv.setCursor(Qt.CursorShape.ArrowCursor if movable else Qt.CursorShape.CrossCursor)

    def cancel_draft(self) -> None:
        """Forget a region being drawn."""
        self._draft = []
        self.draft_item.setPath(QPainterPath())

    def _update_draft(self, pts: list[list[float]], closed: bool) -> None:
        path = QPainterPath()
        if pts:
            path.moveTo(*pts[0])
            for x, y in pts[1:]:
                path.lineTo(x, y)
            if closed:
                path.closeSubpath()
        if self.tool == "polygon" and self._draft:  # mark the placed vertices (~3 screen px)
            px = self.vb.viewPixelSize()
            r = 3.0 * max(px[0], px[1]) if px else 1.0
            for x, y in self._draft:
                path.addRect(x - r, y - r, 2 * r, 2 * r)
        self.draft_item.setPath(path)

    def _frame(self) -> int | None:
        return self.view_state.frame if self.n_frames > 1 else None

    def _clamp(self, x: float, y: float) -> list[float]:
        w, h = self.image_size()
        return [min(max(x, 0.0), float(w)), min(max(y, 0.0), float(h))]

    def _on_draw_drag(self, ev: Any) -> None:
        if self.image is None:
            return
        x, y = self._clamp(*self.to_image(ev.scenePos()))
        if ev.isStart():
            x0, y0 = self._clamp(*self.to_image(self.vb.mapToScene(ev.buttonDownPos())))
            self._draft = [[x0, y0]]
        if not self._draft:
            return
        if self.tool == "box":
            (x0, y0) = self._draft[0]
            self._draft = [[x0, y0], [x, y]]
            self._update_draft([[x0, y0], [x, y0], [x, y], [x0, y]], closed=True)
        elif self.tool == "freehand":
            last = self._draft[-1]
            if abs(last[0] - x) + abs(last[1] - y) >= 1.0:
                self._draft.append([x, y])
            self._update_draft(self._draft, closed=False)
        elif self.tool == "ruler":
            self._draft = [self._draft[0], [x, y]]
            self._set_ruler(self._draft[0], [x, y])
        if ev.isFinish():
            pts = self._draft
            self.cancel_draft()
            self.finish_shape(self.tool, pts)

    def finish_shape(self, kind: str, pts: list[list[float]]) -> None:
        """Validate a drawn shape (image pixel coordinates) and emit ``drawn``."""
        if kind == "ruler":
            return
        if kind == "box":
            (x0, y0), (x1, y1) = pts[0], pts[-1]
            if abs(x1 - x0) < 2 or abs(y1 - y0) < 2:
                return
            pts = [[min(x0, x1), min(y0, y1)], [max(x0, x1), max(y0, y1)]]
        else:
            if kind == "freehand":
                pts = simplify(pts)
            if len(pts) < 3:
                return
        self.drawn.emit(self.slot.image_id, kind, pts, self._frame())

    def _on_polygon_click(self, ev: Any) -> None:
        if self.image is None:
            return
        x, y = self._clamp(*self.to_image(ev.scenePos()))
        if ev.double() and len(self._draft) >= 3:
            self.close_polygon()
            return
        self._draft.append([x, y])
        self._update_draft(self._draft, closed=False)

    def _on_point_click(self, ev: Any) -> None:
        if self.image is None:
            return
        x, y = self._clamp(*self.to_image(ev.scenePos()))
        self.drawn.emit(self.slot.image_id, "point", [[x, y]], self._frame())

    def close_polygon(self) -> None:
        """Finish the polygon being drawn (Enter or double-click)."""
        pts = self._draft
        self.cancel_draft()
        # a double-click also delivers a single click at the same place
        dedup: list[list[float]] = []
        for p in pts:
            if not dedup or abs(dedup[-1][0] - p[0]) + abs(dedup[-1][1] - p[1]) > 0.5:
                dedup.append(p)
        if len(dedup) >= 3:
            self.finish_shape("polygon", dedup)

    def _set_ruler(self, a: list[float], b: list[float]) -> None:
        path = QPainterPath()
        path.moveTo(*a)
        path.lineTo(*b)
        self.ruler_item.setPath(path)
        dx, dy = b[0] - a[0], b[1] - a[1]
        self.ruler_px = math.hypot(dx, dy)
        sp = self.image.meta.pixel_spacing if self.image else None
        if sp:
            self.ruler_mm = math.hypot(dx * sp[1], dy * sp[0])
            txt = f"{self.ruler_mm:.1f} mm"
        else:
            self.ruler_mm = None
            txt = f"{self.ruler_px:.1f} px (no pixel spacing)"
        self.ruler_text.setText(txt)
        self.ruler_text.setPos(*b)
        self.ruler_text.setVisible(True)

    def clear_ruler(self) -> None:
        """Remove the measurement."""
        self.ruler_item.setPath(QPainterPath())
        self.ruler_text.setVisible(False)
        self.ruler_mm = self.ruler_px = None

    def set_annotations(self, anns: list[Annotation]) -> None:
        """Show the annotations of this image (and of the current slice of a stack)."""
        self._annotations = list(anns)
        for roi in self._rois.values():
            self._dispose_roi(roi)
        for t in self._labels:
            if t.scene() is not None:
                t.scene().removeItem(t)
        self._rois.clear()
        self._labels.clear()
        frame = self._frame()
        truth_shapes = []
        for a in anns:
            if a.image_id != self.slot.image_id or (frame is not None and a.frame not in (None, frame)):
                continue
            if is_truth(a):
                if self.show_truth:
                    truth_shapes.append({"kind": a.kind, "points": a.points, "frame": a.frame,
                                         "colour": TRUTH_COLOUR, "dashed": True,
                                         "label": f"truth · {a.author or 'dataset'}"})
                continue
            self._add_roi(a)
        if self.selected_id not in self._rois:
            self.selected_id = None
        self._truth_shapes = truth_shapes
        self._draw_static()

    def set_show_truth(self, on: bool) -> None:
        """Draw dataset/generator truth (dashed grey, labelled 'truth'); never editable."""
        if on != self.show_truth:
            self.show_truth = on
            self.set_annotations(self._annotations)

    def truth_count(self) -> int:
        """Truth annotations on this image (shown or not)."""
        return sum(1 for a in self._annotations if a.image_id == self.slot.image_id and is_truth(a))

    def set_suggestion(self, box: tuple[float, float, float, float] | None) -> None:
        """Show (or with None remove) the AI's proposed lesion box: dashed, labelled "AI suggestion".

        Only a suggestion: the reader accepts it with Enter (it becomes the reader's box) or draws
        a box of their own, which replaces it.
        """
        for it in (self.suggestion_item, self.suggestion_label):
            if it is not None:
                it.setParentItem(None)  # type: ignore[arg-type]  # PySide6's stub omits None (Qt: detach)
                if it.scene() is not None:
                    it.scene().removeItem(it)
        self.suggestion_item = self.suggestion_label = None
        self.suggestion_box = None if box is None else tuple(float(v) for v in box)  # type: ignore[assignment]
        if self.suggestion_box is None:
            return
        x0, y0, x1, y1 = self.suggestion_box
        path = QPainterPath()
        path.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        item = QGraphicsPathItem(path)
        pen = QPen(QColor(SUGGESTION_COLOUR))
        pen.setCosmetic(True)
        pen.setWidthF(2.0)
        pen.setStyle(Qt.PenStyle.DashLine)
        item.setPen(pen)
        item.setParentItem(self.group)
        item.setZValue(11)
        label = pg.TextItem(SUGGESTION_LABEL, color=SUGGESTION_COLOUR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
        label.setParentItem(self.group)
        label.setPos(x0, y0)
        label.setZValue(11)
        self.suggestion_item, self.suggestion_label = item, label

    def set_static_shapes(self, shapes: list[dict[str, Any]]) -> None:
        """Non-editable shapes (reading-session marks): dicts of kind, points, frame, colour, label."""
        self._static_shapes = list(shapes)
        self._draw_static()

    def _draw_static(self) -> None:
        for it in self._static_items:
            if it.scene() is not None:
                it.scene().removeItem(it)
        self._static_items = []
        frame = self._frame()
        for sh in list(getattr(self, "_truth_shapes", [])) + self._static_shapes:
            if frame is not None and sh.get("frame") not in (None, frame):
                continue
            pts = sh["points"]
            path = QPainterPath()
            if sh["kind"] == "point":
                x, y = pts[0]
                px = self.vb.viewPixelSize()
                r = 9.0 * max(px) if px else 6.0
                path.moveTo(x - r, y)
                path.lineTo(x + r, y)
                path.moveTo(x, y - r)
                path.lineTo(x, y + r)
                path.addEllipse(QPointF(x, y), r * 0.6, r * 0.6)
            elif sh["kind"] == "box":
                (x0, y0), (x1, y1) = pts[0], pts[-1]
                path.addRect(QRectF(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)))
            else:
                path.moveTo(*pts[0])
                for x, y in pts[1:]:
                    path.lineTo(x, y)
                path.closeSubpath()
            item = QGraphicsPathItem(path)
            pen = QPen(QColor(sh.get("colour", "#ffd400")))
            pen.setCosmetic(True)
            pen.setWidthF(2.0)
            if sh.get("dashed"):
                pen.setStyle(Qt.PenStyle.DashLine)
            item.setPen(pen)
            item.setParentItem(self.group)
            item.setZValue(9)
            self._static_items.append(item)
            if sh.get("label"):
                xs = [p[0] for p in pts]
                ys = [p[1] for p in pts]
                t = pg.TextItem(sh["label"], color=sh.get("colour", "#ffd400"), anchor=(0, 1))
                t.setParentItem(self.group)
                t.setPos(min(xs), min(ys))
                t.setZValue(9)
                self._static_items.append(t)

    @staticmethod
    def _dispose_roi(roi: pg.ROI) -> None:
        # pyqtgraph gives every handle a parentless QMenu; free them now, not at some later GC
        for h in roi.getHandles():
            menu = getattr(h, "menu", None)
            if menu is not None:
                menu.deleteLater()
                h.menu = None
        roi.setParentItem(None)
        if roi.scene() is not None:
            roi.scene().removeItem(roi)

    def dispose(self) -> None:
        """Release annotation items before the widget is deleted."""
        for roi in self._rois.values():
            self._dispose_roi(roi)
        self._rois.clear()
        try:
            self.view_state.changed.disconnect(self._on_view_state_changed)
        except ValueError:
            pass

    def _pen(self, a: Annotation, selected: bool) -> QPen:
        pen: QPen = pg.mkPen(lesion_colour(a.lesion_id), width=3 if selected else 2)
        if selected:
            pen.setStyle(Qt.PenStyle.DashLine)
        return pen

    def _add_roi(self, a: Annotation) -> None:
        selected = a.ann_id == self.selected_id
        pen = self._pen(a, selected)
        hover = pg.mkPen("#ffffff", width=2)
        if a.kind == "box":
            x0, y0, x1, y1 = a.bbox()
            roi: pg.ROI = pg.RectROI([x0, y0], [x1 - x0, y1 - y0], pen=pen, hoverPen=hover, movable=True,
                                     rotatable=False, sideScalers=True)
            roi.addScaleHandle([0, 0], [1, 1])
        else:
            roi = pg.PolyLineROI([tuple(p) for p in a.points], closed=True, pen=pen, hoverPen=hover, movable=True)
        roi.setParentItem(self.group)
        roi.setZValue(10)
        # pyqtgraph shows the handles of any ROI a drag starts on; here only selection does
        roi.setSelected = lambda _s, r=roi: None
        self._set_roi_editable(roi, selected)
        roi.sigClicked.connect(lambda _r, _ev, aid=a.ann_id: self.select_annotation(aid))
        roi.sigRegionChangeFinished.connect(lambda r, aid=a.ann_id: self._on_roi_changed(aid, r))
        self._rois[a.ann_id] = roi
        x0, y0, _, _ = a.bbox()
        label = pg.TextItem(a.lesion_id + ("" if a.kind == "box" else f" {a.kind}"), color=lesion_colour(a.lesion_id),
                            anchor=(0, 1))
        label.setParentItem(self.group)
        label.setPos(x0, y0)
        label.setZValue(11)
        self._labels.append(label)

    def _set_roi_editable(self, roi: pg.ROI, selected: bool) -> None:
        """Handles and dragging only for the selected annotation with the navigate tool (an
        explicit edit); with a drawing tool the ROI takes no clicks, so polygon vertices and
        boxes can be placed inside an existing region."""
        navigate = self.tool == "navigate"
        editable = navigate and selected
        roi.translatable = editable
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if navigate else Qt.MouseButton.NoButton)
        for h in roi.getHandles():
            h.setVisible(editable)
            h.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if editable else Qt.MouseButton.NoButton)

    @staticmethod
    def roi_points(kind: str, roi: pg.ROI) -> list[list[float]]:
        """Current points of an ROI in image pixel coordinates."""
        if kind == "box":
            pos, size = roi.pos(), roi.size()
            x0, y0 = float(pos.x()), float(pos.y())
            x1, y1 = x0 + float(size.x()), y0 + float(size.y())
            return [[min(x0, x1), min(y0, y1)], [max(x0, x1), max(y0, y1)]]
        return [[float(p.x()), float(p.y())] for p in
                (roi.mapToParent(h[1]) for h in roi.getLocalHandlePositions())]

    def _on_roi_changed(self, ann_id: str, roi: pg.ROI) -> None:
        kind = next((a.kind for a in self._annotations if a.ann_id == ann_id), "polygon")
        pts = self.roi_points(kind, roi)
        # edits rebuild the ROIs, which must not happen inside this ROI's own signal
        QTimer.singleShot(0, self, lambda: self.edited.emit(ann_id, pts))  # dropped if the view is gone

    def select_annotation(self, ann_id: str | None) -> None:
        """Highlight one annotation (None = none) and emit ``selected``."""
        if ann_id == self.selected_id:
            return
        self.selected_id = ann_id
        for aid, roi in self._rois.items():
            a = next((x for x in self._annotations if x.ann_id == aid), None)
            if a is not None:
                roi.setPen(self._pen(a, aid == ann_id))
            self._set_roi_editable(roi, aid == ann_id)
        self.selected.emit(ann_id or "")
