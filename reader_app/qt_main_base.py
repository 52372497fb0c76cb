"""What every part of the workstation window shares: its state attributes, declared once.

:class:`reader_app.qt_main.MainWindow` is put together from parts, one concern per module
(menus and dialogs, study and case loading, AI, annotations; the views stay in ``qt_main``).
Each part is a :class:`WorkstationBase`, so the attributes set in ``MainWindow.__init__`` and
the methods one part calls on another are typed here, in one place; nothing here runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QGridLayout, QLabel, QMainWindow, QMenu

from engine.io.types import LoadedImage
from reader_app.ai import AIResult, AIService
from reader_app.display import DisplayPrep
from reader_app.imaging import ImageCache, Slot
from reader_app.qt_grid import ViewGrid
from reader_app.qt_panels import AIPanel, AnnotationPanel, ProblemsPanel, RatingPanel, WorklistPanel
from reader_app.qt_view import ImageView
from reader_app.qt_workers import Worker
from reader_app.state import AppState, ViewState


class WorkstationBase(QMainWindow):
    """The workstation window's signals (documented on ``MainWindow``) and shared state (set in
    ``MainWindow.__init__`` / ``_build_ui``).

    The signals are defined here, in the one class every part derives from: PySide6 builds one
    meta-object along a single chain, and a signal defined on one of several sibling parts is
    not delivered.
    """

    case_loaded = Signal(str)
    preview_shown = Signal(str)
    ai_finished = Signal(str)
    _preview_ready = Signal(object)  # emitted by the load worker's thread, delivered queued
    ai_ready = Signal()  # the background model load (start_ai_warmup) ended
    study_opened = Signal(str)  # folder ('' when it could not be read)
    prior_shown = Signal(str)  # current | prior comparison on screen (prior case id)

    state: AppState
    ai: AIService
    cache: ImageCache
    pool: QThreadPool
    auto_score: bool
    # the current case on screen
    images: dict[str, LoadedImage]
    image_errors: dict[str, str]
    slots: list[Slot]
    views: list[ImageView]
    view_states: dict[tuple[str, str], ViewState]
    active_index: int
    selected_ann: str | None
    displays: dict[str, DisplayPrep]  # per image id: made by the load worker
    show_truth: bool
    hanging_step: int
    showing_preview: bool
    _building: bool  # views are being built, one per event-loop turn
    _build_gen: int  # bumped when the views are cleared: a pending build step of older views stops
    # workers
    _load_worker: Worker | None
    _ai_worker: Worker | None
    _warmup_worker: Worker | None
    _study_worker: Worker | None
    _workers: set[Worker]
    # AI after the reader's own read
    ai_result: AIResult | None
    ai_display: str
    _ai_requested: bool
    _score_after_full: bool
    # rating keys
    _digit_at: float
    _last_digit: int
    last_error: str
    # widgets
    case_header: QLabel
    synthetic_badge: QLabel
    grid_host: ViewGrid
    grid: QGridLayout
    worklist: WorklistPanel
    worklist_dock: QDockWidget
    ai_panel: AIPanel
    rating_panel: RatingPanel
    ann_panel: AnnotationPanel
    side_dock: QDockWidget
    problems: ProblemsPanel
    problems_dock: QDockWidget
    readout: QLabel
    save_banner: QLabel
    recent_menu: QMenu
    shortcut_table: list[tuple[str, str, str]]  # (menu, command, keys) for Help > Keyboard shortcuts
    ai_display_actions: dict[str, QAction]
    _save_retry: QTimer
    _timer: QTimer

    if TYPE_CHECKING:  # defined by one part, called by another
        def show_error(self, text: str) -> None: ...
        def active_view(self) -> ImageView | None: ...
        def open_study(self, folder: Any, *, wait: bool = False) -> bool: ...
        def import_dialog(self, source: Any = None) -> Any: ...
        def score_case(self) -> Worker | None: ...
        def cancel_ai(self) -> None: ...
        def ai_allowed_now(self) -> bool: ...
        def _ai_waiting_message(self) -> str: ...
        def _apply_ai_result(self, res: AIResult) -> None: ...
        def _apply_suggestions(self) -> None: ...
        def accept_suggestion(self, view: ImageView) -> bool: ...
        def _on_case_rated(self, _rating: Any) -> None: ...
        def _on_annotations_changed(self) -> None: ...
        def _on_delete_requested(self, ann_id: str) -> None: ...
        def _fill_recent(self) -> None: ...
        def _track(self, w: Worker) -> None: ...
        def _clear_views(self) -> None: ...
        def _build_views(self) -> None: ...
        def _apply_overlays(self) -> None: ...
