"""One image view: pyqtgraph ImageItem with W/L, zoom/pan, overlay, annotations, ruler, slices.

The overlay and the annotation, drawing, ruler and suggestion items are in
:mod:`reader_app.qt_view_items`; this module has the widget, the image, W/L, fit and magnifier.

Performance on a 4096x3328 mammogram: at 1:1 zoom or closer the ImageItem shows the decoded
array itself (no copy); zoomed out it shows an area-averaged level of a small per-view pyramid
(factor 2, 4, 8..., built once per level with ``cv2.resize(INTER_AREA)`` and cached), so a
repaint never re-reduces 13.6 M pixels. Window/level is ``setLevels`` and invert a lookup
table; panning only moves the view - the array is never recomputed. Mirroring for the
hanging protocol is an item transform on a group holding image, overlay and annotations, so
annotation coordinates stay in image pixels (x = column, y = row) and nothing is copied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen, QTransform
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.cases import Annotation
from engine.io.types import LoadedImage
from reader_app.display import DisplayPrep, area_level, display_plane, is_stack
from reader_app.imaging import Slot, memo_breast_box, window_presets
from reader_app.qt_view_items import ViewItemsMixin
from reader_app.state import ViewState

class ReaderViewBox(pg.ViewBox):  # type: ignore[misc]  # pyqtgraph ships no type information: ViewBox is Any
    """ViewBox with reading-room mouse bindings.

    Left drag: pan (navigate tool) or draw (box/freehand/ruler); left clicks add polygon
    vertices, double-click closes. Right drag: window/level. Wheel: zoom, or slices of an MR
    stack (Ctrl+wheel zooms there).
    """

    def __init__(self, owner: ImageView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.owner = owner

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph API
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.owner._on_wl_drag(ev)
            return
        if ev.button() == Qt.MouseButton.LeftButton and self.owner.tool in ("box", "freehand", "ruler"):
            ev.accept()
            self.owner._on_draw_drag(ev)
            return
        super().mouseDragEvent(ev, axis)
        self.owner.activated.emit(self.owner)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 - pyqtgraph API
        self.owner.activated.emit(self.owner)
        if ev.button() == Qt.MouseButton.LeftButton:
            if self.owner.tool == "polygon":
                ev.accept()
                self.owner._on_polygon_click(ev)
                return
            if self.owner.tool == "point":
                ev.accept()
                self.owner._on_point_click(ev)
                return
            self.owner.select_annotation(None)
        ev.accept()

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph API
        if self.owner.n_frames > 1 and not (ev.modifiers() & Qt.KeyboardModifier.ControlModifier):
            ev.accept()
            self.owner.view_state.scroll(-1 if ev.delta() > 0 else 1)
            return
        super().wheelEvent(ev, axis)


class ImageView(ViewItemsMixin):
    """A titled view of one case image with its overlay and annotations.

    Signals:
        activated(view): the user interacted with this view.
        drawn(image_id, kind, points, frame): a new region was drawn (image pixel coordinates).
        edited(ann_id, points): an annotation was moved or reshaped.
        selected(ann_id or ""): the selection changed.
        range_changed(view): the user zoomed/panned (for synchronised zoom).
        readout(text): pixel position/value under the mouse.
    """

    activated = Signal(object)
    range_changed = Signal(object)
    readout = Signal(str)

    def __init__(self, slot: Slot, image: LoadedImage | None, view_state: ViewState,
                 error: str | None = None, parent: QWidget | None = None,
                 display: DisplayPrep | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.image = image
        self._display = display  # presets, breast box, pyramid levels made off the GUI thread
        self._breast_box: tuple[int, int, int, int] | None = None
        self.view_state = view_state
        self.tool = "navigate"
        self.active = False
        self.selected_id: str | None = None
        self._rois: dict[str, pg.ROI] = {}
        self._labels: list[pg.TextItem] = []
        self._draft: list[list[float]] = []
        self._wl_start: tuple[float, float] | None = None
        self._syncing = False
        self._overlay_map: np.ndarray | None = None
        self._overlay_frame: int | None = None
        self._overlay_key: tuple[int, int] | None = None
        self._annotations: list[Annotation] = []
        self.ruler_mm: float | None = None
        self.ruler_px: float | None = None
        self.show_truth = False  # dataset truth: hidden unless the reader asks (T)
        self._static_items: list[Any] = []
        self._static_shapes: list[dict[str, Any]] = []
        self._magnifier: QLabel | None = None
        self._mouse_scene: QPointF | None = None
        self.mag_zoom = 3.0

        self.title = QLabel(slot.title)
        self.title.setObjectName("viewTitle")
        self.slice_label = QLabel("")
        self.wl_label = QLabel("")
        self.wl_label.setObjectName("wlReadout")
        self.wl_label.setToolTip("Window width / level (centre) in stored pixel values; F2-F6 presets, right-drag adjusts")
        self.presets = QComboBox()
        self.presets.setToolTip("Window/level presets (right-drag on the image to adjust)")
        self.presets.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.presets.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.footer = QLabel(" ")
        self.footer.setObjectName("viewFooter")
        self.footer.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        head = QHBoxLayout()
        head.setContentsMargins(4, 2, 4, 2)
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.slice_label)
        head.addWidget(self.wl_label)
        head.addWidget(self.presets)

        self.gv = pg.GraphicsView()
        self.gv.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.vb = ReaderViewBox(self)
        self.gv.setCentralItem(self.vb)
        self.group = pg.ItemGroup()
        self.vb.addItem(self.group)
        self.img_item = pg.ImageItem()
        self._factor = 1
        self._pyramid: dict[tuple[int, int], np.ndarray] = {}
        self.img_item.setParentItem(self.group)
        self.overlay = pg.ImageItem(autoDownsample=True)
        self.overlay.setParentItem(self.group)
        self.overlay.setZValue(5)
        self.overlay.setVisible(False)
        self.draft_item = QGraphicsPathItem()
        self.draft_item.setParentItem(self.group)
        self.draft_item.setZValue(20)
        pen = QPen(QColor("#00ff88"))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.draft_item.setPen(pen)
        self.ruler_item = QGraphicsPathItem()
        self.ruler_item.setParentItem(self.group)
        self.ruler_item.setZValue(21)
        rpen = QPen(QColor("#ffffff"))
        rpen.setCosmetic(True)
        rpen.setWidthF(1.5)
        self.ruler_item.setPen(rpen)
        self.ruler_text = pg.TextItem("", color="w", anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 160))
        self.ruler_text.setParentItem(self.group)
        self.ruler_text.setZValue(22)
        self.ruler_text.setVisible(False)
        # the lesion finder's proposed box (issue 12): dashed, labelled, never an annotation itself;
        # its items exist only while shown (hidden children would still widen the auto-range)
        self.suggestion_box: tuple[float, float, float, float] | None = None
        self.suggestion_item: QGraphicsPathItem | None = None
        self.suggestion_label: pg.TextItem | None = None
        self.message = pg.TextItem("", color="#ff6b6b", anchor=(0.5, 0.5))
        self.vb.addItem(self.message, ignoreBounds=True)
        self.scale_bar: pg.ScaleBar | None = None

        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(0)
        lay.addLayout(head)
        lay.addWidget(self.gv, 1)
        lay.addWidget(self.footer)
        self.setMinimumSize(220, 200)

        self.vb.sigRangeChangedManually.connect(self._on_range_changed)
        self.vb.sigRangeChanged.connect(self._on_view_scale_changed)
        self.gv.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.presets.activated.connect(self._on_preset_changed)
        self.view_state.changed.connect(self._on_view_state_changed)
        self._set_image(error)
        self.set_active(False)

    # ------------------------------------------------------------------ image
    @property
    def n_frames(self) -> int:
        return self.view_state.n_frames

    @property
    def is_stack(self) -> bool:
        return self.image is not None and is_stack(self.image)

    def plane(self) -> np.ndarray | None:
        """The 2-D (or RGB) array currently displayed (a view into the decoded image, no copy)."""
        if self.image is None:
            return None
        return display_plane(self.image, self.view_state.frame)

    def image_size(self) -> tuple[int, int]:
        """(width, height) of one displayed plane in pixels."""
        p = self.plane()
        if p is None:
            return (0, 0)
        return int(p.shape[1]), int(p.shape[0])

    def _set_image(self, error: str | None) -> None:
        if self.image is None:
            self.message.setText(f"Cannot display this image:\n{error or 'not loaded'}")
            self.message.setPos(0, 0)
            self.vb.setRange(QRectF(-100, -50, 200, 100))
            self.presets.setEnabled(False)
            return
        if self.is_stack:
            fresh = self.view_state.n_frames == 1
            self.view_state.n_frames = int(self.image.pixels.shape[0])
            if fresh or self.view_state.frame >= self.view_state.n_frames:
                self.view_state.frame = self.view_state.n_frames // 2  # start mid-stack
        w, h = self.image_size()
        if self.slot.flip:
            self.group.setTransform(QTransform(-1, 0, 0, 1, w, 0))
        self._use_display()
        self.presets.clear()
        for name, _ in self._presets:
            self.presets.addItem(name)
        if self.image.meta.windows:
            self.presets.setCurrentIndex(len(self._presets) - len(self.image.meta.windows))
        if self.view_state.window is None:
            self.view_state.window = self._presets[self.presets.currentIndex()][1]
        self._show_plane()
        self.img_item.setLevels(self._levels())
        self._apply_lut()
        self._update_slice_label()
        self._update_wl_label()
        self._add_scale_bar()
        self.fit()

    def _use_display(self) -> None:
        """Presets, breast box and pyramid levels: the prepared ones, else computed here."""
        d = self._display
        self._presets = d.presets if d is not None else window_presets(self.image)  # type: ignore[arg-type]
        self._breast_box = d.breast_box if d is not None else None
        self._pyramid = {} if d is None or self.is_stack else {(0, f): a for f, a in d.levels.items()}

    def set_image(self, image: LoadedImage | None, display: DisplayPrep | None = None, error: str | None = None) -> None:
        """Show ``image`` in place of the current one (the full decode replacing its reduced first
        view): same widget, window/level, zoom, overlay and annotations; only the pixels change."""
        same_geometry = image is not None and self.image is not None and (
            image.pixels.shape == self.image.pixels.shape)
        self.image, self._display = image, display
        if not same_geometry or image is None:
            self.message.setText("")
            self._factor = 1
            self._set_image(error)
            return
        self._use_display()
        names = [name for name, _ in self._presets]
        if names != [self.presets.itemText(i) for i in range(self.presets.count())]:
            index = self.presets.currentIndex()
            self.presets.clear()
            self.presets.addItems(names)
            self.presets.setCurrentIndex(min(max(index, 0), len(names) - 1))
        self.presets.setEnabled(True)
        self._show_plane()
        self._apply_lut()
        if self.scale_bar is None:
            self._add_scale_bar()
        if self.magnifier_visible():
            self._update_magnifier()

    def breast_box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the breast in a 2-D mammogram (prepared, else computed once), else None."""
        p = self.plane()
        if self.slot.modality != "MG" or p is None or p.ndim != 2:
            return None
        if self._breast_box is None:
            self._breast_box = memo_breast_box(p)  # a session's load worker has computed it
        return self._breast_box

    def _show_plane(self) -> None:
        p = self.plane()
        if p is None:
            return
        arr = self._level_array(p, self._factor)
        self.img_item.setImage(arr, autoLevels=False, levels=self._levels())
        h, w = p.shape[:2]
        self.img_item.setRect(QRectF(0, 0, w, h))  # item spans full-resolution pixel coordinates

    def _level_array(self, p: np.ndarray, f: int) -> np.ndarray:
        """The plane reduced by ``f`` (area average), cached; ``p`` itself when ``f`` is 1."""
        if f <= 1:
            return p
        key = (self.view_state.frame if self.n_frames > 1 else 0, f)
        arr = self._pyramid.get(key)
        if arr is None:
            arr = area_level(p, f)
            if self.n_frames > 1:  # keep only the current slice's levels
                self._pyramid = {k: v for k, v in self._pyramid.items() if k[0] == key[0]}
            self._pyramid[key] = arr
        return arr

    def _wanted_factor(self) -> int:
        """Largest power of two not above the image-pixels-per-screen-pixel ratio."""
        w, h = self.image_size()
        vw = max(1, self.gv.viewport().width())
        vh = max(1, self.gv.viewport().height())
        (x0, x1), (y0, y1) = self.vb.viewRange()
        ratio = min((x1 - x0) / vw, (y1 - y0) / vh)
        f = 1
        while f * 2 <= ratio and min(w, h) // (f * 2) >= 64:
            f *= 2
        return f

    def _on_view_scale_changed(self, *_: Any) -> None:
        if self.image is None:
            return
        self._update_scale_bar()
        f = self._wanted_factor()
        if f != self._factor:
            self._factor = f
            self._show_plane()

    def _levels(self) -> tuple[float, float]:
        c, w = self.view_state.window or (127.5, 255.0)
        return (c - w / 2, c + w / 2)

    def _apply_lut(self) -> None:
        p = self.plane()
        if p is None or p.ndim == 3:
            return
        if self.view_state.invert:
            self.img_item.setLookupTable(np.arange(255, -1, -1, dtype=np.uint8))
        else:
            self.img_item.setLookupTable(None)

    SCALE_BAR_SCREEN_PX = 110  # target on-screen length: readable at any zoom

    def _add_scale_bar(self) -> None:
        sp = self.image.meta.pixel_spacing if self.image else None
        if not sp or sp[1] <= 0:
            return
        self.scale_bar = pg.ScaleBar(size=10.0, width=4, suffix="", offset=(-15, -15))
        self.scale_bar.setParentItem(self.vb)
        self._update_scale_bar()

    def _update_scale_bar(self) -> None:
        """A round length of about SCALE_BAR_SCREEN_PX on screen, recomputed on every zoom."""
        sb = self.scale_bar
        sp = self.image.meta.pixel_spacing if self.image else None
        if sb is None or not sp:
            return
        px = self.vb.viewPixelSize()
        if not px or px[0] <= 0:
            return
        mm_per_screen_px = px[0] * float(sp[1])
        target = self.SCALE_BAR_SCREEN_PX * mm_per_screen_px
        mm = 500.0
        for v in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200):
            if v >= target * 0.6:
                mm = float(v)
                break
        sb.size = mm / float(sp[1])
        sb.text.setText(f"{mm:g} mm")
        sb.updateBar()

    def _update_wl_label(self) -> None:
        c, w = self.view_state.window or (127.5, 255.0)
        self.wl_label.setText(f"W {w:.0f}  L {c:.0f}  ")

    def _update_slice_label(self) -> None:
        if self.n_frames > 1:
            f = self._overlay_frame
            ai = f"  (AI: slice {f + 1})" if self._overlay_map is not None and f is not None else ""
            self.slice_label.setText(f"slice {self.view_state.frame + 1}/{self.n_frames}{ai}  ")
        else:
            self.slice_label.setText("")

    def fit(self) -> None:
        """Fit the image in the view; a mammogram is cropped to the breast (its tissue bounding
        box, so the empty film beside it does not waste the portrait cell)."""
        w, h = self.image_size()
        if not (w and h):
            return
        rect = QRectF(0, 0, w, h)
        box = self.breast_box()
        if box is not None:
            x0, y0, x1, y1 = box
            if self.slot.flip:
                x0, x1 = w - x1, w - x0
            rect = QRectF(x0, y0, x1 - x0, y1 - y0)
            anchored = self._chest_wall_anchored(rect, w)
            if anchored is not None:
                self.vb.setRange(anchored, padding=0)
                return
        self.vb.setRange(rect, padding=0.02)

    def _chest_wall_anchored(self, box: QRectF, width: int) -> QRectF | None:
        """The view rectangle for a breast box narrower than the cell: the chest wall kept on
        the cell's edge (R views face L views back to back) and the spare width on the nipple
        side, instead of centring the breast with empty space behind the chest wall."""
        vw = max(1, self.gv.viewport().width())
        vh = max(1, self.gv.viewport().height())
        pad = 0.02 * box.height()
        top, height = box.top() - pad, box.height() + 2 * pad
        want_w = height * vw / vh
        if want_w <= box.width():
            return None  # the box is the wider one: fitting its width leaves nothing to anchor
        # the hanging mirrors R to the chest wall on the right, L on the left; films padded
        # beside the chest wall (mini-MIAS) have a box that does not reach the image edge
        side = {"R": "right", "L": "left"}.get(self.slot.laterality or "")
        if side is None:
            edge = 0.02 * width
            side = "right" if box.right() >= width - edge else "left" if box.left() <= edge else None
        if side == "right":
            return QRectF(box.right() - want_w, top, want_w, height)
        if side == "left":
            return QRectF(box.left(), top, want_w, height)
        return None

    def zoom_1to1(self) -> None:
        """True pixel zoom: one image pixel per screen pixel, centred where the view is now."""
        if self.image is None:
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        vw = max(1, self.gv.viewport().width())
        vh = max(1, self.gv.viewport().height())
        self.vb.setRange(QRectF(cx - vw / 2, cy - vh / 2, vw, vh), padding=0)
        self._on_range_changed()

    def apply_preset(self, index: int) -> bool:
        """Window/level preset ``index`` (0 = automatic); False if there is no such preset."""
        presets = getattr(self, "_presets", [])
        if not 0 <= index < len(presets):
            return False
        self.presets.setCurrentIndex(index)
        self.view_state.set("window", presets[index][1])
        return True

    # ------------------------------------------------------------------ magnifier
    MAG_SIDE = 260  # screen pixels of the magnifier glass

    def set_magnifier(self, on: bool) -> None:
        """Show (while a key is held) a glass that magnifies the full-resolution pixels under the mouse."""
        if not on:
            if self._magnifier is not None:
                self._magnifier.hide()
            return
        if self._magnifier is None:
            self._magnifier = QLabel(self.gv)
            self._magnifier.setObjectName("magnifier")
            self._magnifier.setStyleSheet("border:2px solid #ffd400; background:#000")
            self._magnifier.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._update_magnifier()
        self._magnifier.show()
        self._magnifier.raise_()

    def magnifier_visible(self) -> bool:
        return self._magnifier is not None and self._magnifier.isVisible()

    def _magnifier_pixels(self, x: float, y: float) -> np.ndarray | None:
        """The windowed uint8 patch (MAG_SIDE square) around image point (x, y)."""
        import cv2

        p = self.plane()
        if p is None:
            return None
        px = self.vb.viewPixelSize()
        img_px_per_screen = max(px[0], 1e-6) if px else 1.0
        side = max(8, int(round(self.MAG_SIDE * img_px_per_screen / self.mag_zoom)))
        h, w = p.shape[:2]
        x0 = int(round(x - side / 2))
        y0 = int(round(y - side / 2))
        patch = np.zeros((side, side) + p.shape[2:], dtype=np.float32)
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = p[sy0:sy1, sx0:sx1]
        lo, hi = self._levels()
        u8 = np.clip((patch - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
        if self.view_state.invert and u8.ndim == 2:
            u8 = 255 - u8
        if self.slot.flip:
            u8 = u8[:, ::-1]
        interp = cv2.INTER_NEAREST if side <= self.MAG_SIDE else cv2.INTER_AREA
        return np.ascontiguousarray(cv2.resize(np.ascontiguousarray(u8), (self.MAG_SIDE, self.MAG_SIDE),
                                               interpolation=interp))

    def _update_magnifier(self) -> None:
        from PySide6.QtGui import QImage, QPixmap

        mag = self._magnifier
        if mag is None or self._mouse_scene is None:
            return
        x, y = self.to_image(self._mouse_scene)
        arr = self._magnifier_pixels(x, y)
        if arr is None:
            return
        if arr.ndim == 2:
            qimg = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_Grayscale8)
        else:
            qimg = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGB888)
        mag.setPixmap(QPixmap.fromImage(qimg.copy()))
        mag.resize(self.MAG_SIDE, self.MAG_SIDE)
        vp = self.gv.mapFromScene(self._mouse_scene)
        mag.move(int(vp.x() - self.MAG_SIDE / 2), int(vp.y() - self.MAG_SIDE / 2))

    def set_active(self, active: bool) -> None:
        """Highlight the view that keyboard commands act on."""
        self.active = active
        self.title.setStyleSheet("color:#ffd400;font-weight:bold" if active else "color:#ddd")

    # ------------------------------------------------------------------ state
    def _on_view_state_changed(self, name: str, value: Any) -> None:
        if name == "window":
            self.img_item.setLevels(self._levels())
            self._update_wl_label()
        elif name == "invert":
            self._apply_lut()
        elif name == "frame":
            self._show_plane()
            self._update_slice_label()
            self._refresh_overlay()
            self.set_annotations(self._annotations)
        elif name in ("overlay_on", "opacity", "colormap", "method"):
            self._refresh_overlay(name)

    def _on_preset_changed(self, index: int) -> None:
        if 0 <= index < len(getattr(self, "_presets", [])):
            self.view_state.set("window", self._presets[index][1])

    def reset(self) -> None:
        """Default window, no invert, fitted."""
        if self.image is not None:
            self.presets.setCurrentIndex(0)
            self.view_state.set("window", self._presets[0][1])
        self.view_state.set("invert", False)
        self.fit()

    def _on_wl_drag(self, ev: Any) -> None:
        if self.image is None:
            return
        if ev.isStart() or self._wl_start is None:
            self._wl_start = self.view_state.window or (127.5, 255.0)
        full = self._presets[1][1][1] if len(self._presets) > 1 else 255.0
        d = ev.screenPos() - ev.buttonDownScreenPos()
        k = full / 400.0
        c0, w0 = self._wl_start
        self.view_state.set("window", (c0 - d.y() * k, max(1.0, w0 + d.x() * k)))
        if ev.isFinish():
            self._wl_start = None

    # ------------------------------------------------------------------ zoom sync
    def normalized_range(self) -> tuple[float, float, float, float]:
        """Visible view rectangle as fractions of the image size (for synchronised zoom)."""
        w, h = self.image_size()
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return (x0 / max(w, 1), y0 / max(h, 1), (x1 - x0) / max(w, 1), (y1 - y0) / max(h, 1))

    def set_normalized_range(self, r: tuple[float, float, float, float]) -> None:
        """Show the same fraction of this image as another view shows of its own."""
        w, h = self.image_size()
        if not w:
            return
        self._syncing = True
        try:
            self.vb.setRange(QRectF(r[0] * w, r[1] * h, r[2] * w, r[3] * h), padding=0)
        finally:
            self._syncing = False

    def _on_range_changed(self, *_: Any) -> None:
        if not self._syncing:
            self.range_changed.emit(self)

    # ------------------------------------------------------------------ readout
    def to_image(self, scene_pos: QPointF) -> tuple[float, float]:
        """Scene position -> image pixel coordinates (x = column, y = row)."""
        p = self.group.mapFromScene(scene_pos)
        return float(p.x()), float(p.y())

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        self._mouse_scene = QPointF(scene_pos)
        p = self.plane()
        if p is None:
            return
        if self.magnifier_visible():
            self._update_magnifier()
        x, y = self.to_image(scene_pos)
        if self.tool == "polygon" and self._draft:
            self._update_draft(self._draft + [[x, y]], closed=False)
        col, row = int(math.floor(x)), int(math.floor(y))
        if 0 <= row < p.shape[0] and 0 <= col < p.shape[1]:
            v = p[row, col]
            val = ", ".join(f"{float(c):g}" for c in v) if np.ndim(v) else f"{float(v):g}"
            txt = f"x {col}  y {row}  value {val}"
            sp = self.image.meta.pixel_spacing if self.image else None
            if sp:
                txt += f"   ({col * sp[1]:.1f}, {row * sp[0]:.1f}) mm"
            if self.n_frames > 1:
                txt += f"   slice {self.view_state.frame + 1}"
        else:
            txt = " "
        self.footer.setText(txt)
        self.readout.emit(txt)
