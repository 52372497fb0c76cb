"""The grid of image views a window shows: one page of cells, portrait cells for mammograms.

The workstation (``reader_app.qt_main``) and the reading session
(``reader_app.study.qt_session``) hang their views in the same :class:`ViewGrid`, so paging,
the portrait-cell margins that follow the window size and the fit after a relayout are one code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGridLayout, QWidget

from reader_app.imaging import portrait_side_margin
from reader_app.qt_view import ImageView


class ViewGrid(QWidget):
    """Shows a page of ``rows x cols`` of the owner's views, the page holding the active view.

    Args:
        views: the owner's current views (asked on every call: owners replace their list).
        parent: the parent widget.
    """

    def __init__(self, views: Callable[[], Sequence[ImageView]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._views = views
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(3)
        self.shape = (1, 1)

    def show_page(self, rows: int, cols: int, active_index: int) -> None:
        """Lay out the ``rows x cols`` page holding view ``active_index``; the others are hidden."""
        views = self._views()
        if not views:
            return
        self.shape = (rows, cols)
        n = rows * cols
        first = (active_index // n) * n
        page = list(views[first : first + n])
        for v in views:  # views that stay in their cell are left alone (no hide/show, no re-layout)
            if v not in page:
                self.grid.removeWidget(v)
                v.setVisible(False)
        for i, v in enumerate(page):
            at = self.grid.indexOf(v)
            pos: Any = self.grid.getItemPosition(at) if at >= 0 else None  # (row, column, row span, column span)
            if pos is None or tuple(pos[:2]) != (i // cols, i % cols):
                self.grid.removeWidget(v)
                self.grid.addWidget(v, i // cols, i % cols)
            v.setVisible(True)
        for r in range(max(2, self.grid.rowCount())):
            self.grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(max(2, self.grid.columnCount())):
            self.grid.setColumnStretch(c, 1 if c < cols else 0)
        self.fit_cells()
        QTimer.singleShot(0, self, self.fit_all)

    def visible_views(self) -> list[ImageView]:
        """Views shown on the current page."""
        return [v for v in self._views() if v.isVisibleTo(self)]

    def fit_cells(self) -> None:
        """Portrait cells for mammograms: side margins so each column is at most
        ``imaging.MG_CELL_ASPECT`` x the row height (a landscape cell would shrink the breast)."""
        page = self.visible_views()
        if not page or any(v.slot.modality != "MG" for v in page):
            self.grid.setContentsMargins(0, 0, 0, 0)
            return
        rows, cols = self.shape
        side = portrait_side_margin(self.width(), self.height(), rows, cols)
        self.grid.setContentsMargins(side, 0, side, 0)

    def fit_all(self) -> None:
        """Fit every shown view (mammograms cropped to the breast)."""
        for v in self._views():
            if not v.isHidden():
                v.fit()

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802 - Qt API
        self.fit_cells()  # the portrait cells follow the window size
        super().resizeEvent(ev)


__all__ = ["ViewGrid"]
