"""The workstation's menus, keyboard shortcuts and the dialogs they open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout

from engine.errors import BreastReaderError
from reader_app import paths
from reader_app.qt_main_base import WorkstationBase


class MenusMixin(WorkstationBase):
    """Menus with their shortcuts (listed in Help > Keyboard shortcuts), and the dialogs they open."""

    def _act(self, menu: Any, text: str, keys: str | list[str] | QKeySequence.StandardKey | None, slot: Any,
             checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if isinstance(keys, list):
            a.setShortcuts([QKeySequence(k) for k in keys])
        elif isinstance(keys, QKeySequence.StandardKey):
            a.setShortcut(QKeySequence(keys))
        elif keys:
            a.setShortcut(QKeySequence(keys))
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        if menu is not None:
            menu.addAction(a)
        self.addAction(a)
        self.shortcut_table.append((menu.title().replace("&", "") if menu is not None else "Rating", text,
                                    ", ".join(s.toString() for s in a.shortcuts())))
        return a

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = paths.recent_studies()
        for p in items:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _=False, path=p: self.open_study(path))
        self.recent_menu.setEnabled(bool(items))

    # ------------------------------------------------------------------ dialogs
    def _ask_study_definition(self, title: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, "", "Reader study definition (*.toml)")
        return path

    def start_reading_session(self, definition: str | Path | None = None) -> Any:
        """Open the blinded reading-session window (reader_app.study) on a study definition."""
        from reader_app.study import open_reading_session

        definition = definition or self._ask_study_definition("Open reader study definition")
        if not definition:
            return None
        try:
            window = open_reading_session(definition, self)
        except BreastReaderError as exc:
            self.show_error(f"Cannot start the reading session: {exc}")
            return None
        self._session_windows = [w for w in getattr(self, "_session_windows", []) if w.isVisible()]
        self._session_windows.append(window)
        return window

    def export_reader_study(self, definition: str | Path | None = None, out_dir: str | Path | None = None) -> Any:
        """Export a reader study (ratings, iMRMC, AUCs, MRMC, ROC figures, PDF) in a worker."""
        from reader_app.study.qt_session import export_study_dialog

        definition = definition or self._ask_study_definition("Reader study to export")
        if not definition:
            return None
        return export_study_dialog(self, definition, out_dir)

    def froc_analysis_dialog(self, folder: str | Path | None = None) -> Any:
        """FROC / AFROC / wAFROC ORH analysis of a study export's marks (reader_app.study.qt_analysis)."""
        from reader_app.study.qt_analysis import FrocAnalysisDialog

        dlg = FrocAnalysisDialog(self, folder)
        dlg.show()
        return dlg

    def power_dialog(self, definition: str | Path | None = None, pilot: str | Path | None = None) -> Any:
        """Power of a planned reader study from a pilot (reader_app.study.qt_analysis)."""
        from reader_app.study.qt_analysis import PowerDialog

        dlg = PowerDialog(self, definition, pilot)
        dlg.show()
        return dlg

    def open_report(self) -> Any:
        """The structured BI-RADS report form of the current case (stored with the case)."""
        from reader_app.qt_report import ReportForm

        cs = self.state.current
        if cs is None:
            return None
        dlg = ReportForm(cs.case, dict(self.images), self, author=self.state.author)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def _on_saved(path: str) -> None:
            self.statusBar().showMessage(f"Report saved to {path}", 6000)
            if dlg.report.final_category and dlg.report.final_category != cs.rating.birads:
                self.state.rate(birads=dlg.report.final_category)  # the rating's BI-RADS follows the report

        dlg.saved.connect(_on_saved)
        dlg.show()
        self._report_dialog = dlg
        return dlg

    def import_dialog(self, source: str | Path | None = None) -> Any:
        """File > Import: preview the grouping, then import in a worker and open the study."""
        from reader_app.qt_import import ImportDialog

        dlg = ImportDialog(self, source)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.imported.connect(self._on_imported)
        dlg.show()
        self._import_dialog = dlg
        return dlg

    def _on_imported(self, folder: str) -> None:
        self.open_study(folder)

    def open_study_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open study folder")
        if folder:
            self.open_study(folder)

    # ------------------------------------------------------------------ saliency method menu
    def _build_method_menu(self, view_menu: Any) -> None:
        """View > Saliency method: the same choice as the AI panel's Method box, kept in step."""
        from PySide6.QtGui import QActionGroup

        menu = view_menu.addMenu("Saliency method")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.method_actions: dict[str, QAction] = {}
        combo = self.ai_panel.method
        for i in range(combo.count()):
            m = combo.itemData(i)
            a = QAction(combo.itemText(i), self)
            a.setCheckable(True)
            a.setChecked(m == combo.currentData())
            a.triggered.connect(lambda _=False, k=i: combo.setCurrentIndex(k))
            group.addAction(a)
            menu.addAction(a)
            self.method_actions[m] = a
        combo.currentIndexChanged.connect(self._on_method_combo_changed)

    def _on_method_combo_changed(self, _i: int) -> None:
        cur = self.ai_panel.method.currentData()
        for m, a in self.method_actions.items():
            a.setChecked(m == cur)

    # ------------------------------------------------------------------ help
    def show_shortcuts(self) -> QDialog:
        """A non-modal table of every keyboard shortcut."""
        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        rows = [r for r in self.shortcut_table if r[2]]
        t = QTableWidget(len(rows), 3, dlg)
        t.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                t.setItem(i, j, QTableWidgetItem(text))
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.verticalHeader().setVisible(False)
        lay = QVBoxLayout(dlg)
        lay.addWidget(t)
        dlg.resize(560, 620)
        dlg.show()
        self._shortcuts_dialog = dlg
        return dlg

    # ------------------------------------------------------------------ MRI window
    def open_mri_window(self) -> Any:
        """Open the current case's MR series in the MRI reading window (reader_app.qt_mri)."""
        from reader_app.qt_mri import open_for_case

        cs = self.state.current
        if cs is None or not cs.case.images_of("MR"):
            self.statusBar().showMessage("The current case has no MR images.", 5000)
            return None
        self.mri_window = open_for_case(cs.case, self.state.study, parent=self)
        return self.mri_window
