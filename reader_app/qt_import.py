"""File > Import: choose a folder of DICOM / images or a manifest CSV, see how it will be grouped
into cases (and what is wrong, one actionable line per file), then import in a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.errors import BreastReaderError
from reader_app.importing import ImportPreview, preview, run_import
from reader_app.qt_style import STYLE
from reader_app.qt_workers import Worker, start


class ImportDialog(QDialog):
    """Preview then import. Signals: imported(study folder)."""

    imported = Signal(str)

    def __init__(self, parent: QWidget | None = None, source: str | Path | None = None,
                 out: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import exams")
        self.setStyleSheet(STYLE)
        self.resize(900, 640)
        self.pv: ImportPreview | None = None
        self.worker: Worker | None = None
        self.source = QLineEdit(str(source or ""))
        self.source.setPlaceholderText("Folder of DICOM files, folder of images, or a manifest CSV")
        b1 = QPushButton("Folder…")
        b2 = QPushButton("Manifest CSV…")
        b1.clicked.connect(self._on_browse_folder_clicked)
        b2.clicked.connect(self._on_browse_csv_clicked)
        self.modality = QComboBox()
        for m in ("US", "MG", "MR"):
            self.modality.addItem(f"images without a hint are {m}", m)
        self.modality.currentIndexChanged.connect(lambda _i: self.refresh())
        self.out = QLineEdit(str(out or ""))
        self.out.setPlaceholderText("New study folder")
        b3 = QPushButton("Study folder…")
        b3.clicked.connect(self._on_browse_out_clicked)
        self.summary = QLabel("Choose what to import.")
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Case / image", "Modality", "View", "Laterality", "from"])
        self.tree.setColumnWidth(0, 380)
        self.problems = QListWidget()
        self.problems.setWordWrap(True)
        self.problems.setMaximumHeight(140)
        self.import_button = QPushButton("Import")
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self._on_import_clicked)
        cancel = QPushButton("Close")
        cancel.clicked.connect(self.reject)
        r1 = QHBoxLayout()
        r1.addWidget(QLabel("Import"))
        r1.addWidget(self.source, 1)
        r1.addWidget(b1)
        r1.addWidget(b2)
        r2 = QHBoxLayout()
        r2.addWidget(QLabel("into"))
        r2.addWidget(self.out, 1)
        r2.addWidget(b3)
        r2.addWidget(self.modality)
        r3 = QHBoxLayout()
        r3.addStretch(1)
        r3.addWidget(cancel)
        r3.addWidget(self.import_button)
        lay = QVBoxLayout(self)
        lay.addLayout(r1)
        lay.addLayout(r2)
        lay.addWidget(self.summary)
        lay.addWidget(self.tree, 1)
        lay.addWidget(QLabel("Problems (each file is skipped; the rest imports):"))
        lay.addWidget(self.problems)
        lay.addLayout(r3)
        self.source.editingFinished.connect(self.refresh)
        self.out.textChanged.connect(lambda _t: self._update_button())
        if source:
            self.refresh()

    def _on_browse_folder_clicked(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder to import")
        if d:
            self.source.setText(d)
            self.refresh()

    def _on_browse_csv_clicked(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Manifest CSV", "", "Manifest (*.csv)")
        if f:
            self.source.setText(f)
            self.refresh()

    def _on_browse_out_clicked(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "New study folder")
        if d:
            self.out.setText(d)

    def refresh(self) -> None:
        """Re-read the source and show the grouping (headers only; nothing is copied)."""
        self.tree.clear()
        self.problems.clear()
        self.pv = None
        src = self.source.text().strip()
        if not src:
            self._update_button()
            return
        try:
            self.pv = preview(src, self.modality.currentData())
        except BreastReaderError as exc:
            self.summary.setText(f"<span style='color:#ff6b6b'>{exc}</span>")
            self._update_button()
            return
        self.summary.setText(self.pv.summary())
        for c in self.pv.cases:
            top = QTreeWidgetItem([f"{c.label}  ({len(c.images)} image(s), breast {c.breasts})", "", "", "", ""])
            for im in c.images:
                top.addChild(QTreeWidgetItem([im.name, im.modality, im.view or "", im.laterality or "?",
                                              im.laterality_from or "unknown"]))
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        for p in self.pv.problems:
            self.problems.addItem(p)
        if not self.out.text().strip():
            s = Path(src)
            self.out.setText(str((s.parent if s.is_file() else s.parent) / f"{s.stem}-study"))
        self._update_button()

    def _update_button(self) -> None:
        ok = self.pv is not None and bool(self.pv.cases) and bool(self.out.text().strip())
        self.import_button.setEnabled(ok and (self.worker is None or getattr(self.worker, "ended", False)))

    def _on_worker_finished(self, w: Worker) -> None:
        w.ended = True
        self._update_button()

    def _on_import_clicked(self) -> None:
        w = Worker(run_import, self.source.text().strip(), self.out.text().strip(),
                   default_modality=self.modality.currentData(), name="import")
        w.signals.result.connect(self._on_imported)
        w.signals.errored.connect(lambda msg: self.summary.setText(f"<span style='color:#ff6b6b'>Import failed: {msg}</span>"))
        w.signals.progress.connect(lambda d, t, m: self.summary.setText(f"Importing… {d}/{t} {m}"))
        w.signals.finished.connect(lambda: self._on_worker_finished(w))
        self.worker = w
        self.import_button.setEnabled(False)
        start(w)

    def _on_imported(self, res: Any) -> None:
        n = len(res.study.cases)
        self.summary.setText(f"Imported {n} case(s) into {res.study.folder}"
                             + (f"; {len(res.problems)} file(s) skipped" if res.problems else ""))
        for p in res.problems:
            self.problems.addItem(str(p))
        self.imported.emit(str(res.study.folder))
