"""The structured BI-RADS report form (Ctrl+B): per lesion lexicon descriptors for its modality,
location and size from the annotation; per breast density and assessment; final category.

Keyboard-fast: every field is a combo box that takes the first letters typed, Tab moves on,
Ctrl+Up/Down picks the previous/next lesion, Ctrl+S saves, Ctrl+Enter saves and closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.report import (
    CATEGORIES,
    CLOCK,
    DENSITY,
    DENSITY_TEXT,
    DEPTH,
    LEXICON,
    Report,
    lesion_size_mm,
    load_report,
    reports_csv,
    save_report,
)
from reader_app.qt_style import STYLE


def _combo(items: tuple[str, ...] | list[str], blank: str = "—") -> QComboBox:
    c = QComboBox()
    c.addItem(blank, "")
    for it in items:
        c.addItem(it, it)
    return c


def _set(c: QComboBox, value: str) -> None:
    c.setCurrentIndex(max(0, c.findData(value)))


class ReportForm(QDialog):
    """Edit the report of the current case. Signals: saved(path)."""

    saved = Signal(str)

    def __init__(self, case: Any, images: dict[str, Any] | None = None, parent: QWidget | None = None,
                 author: str = "") -> None:
        super().__init__(parent)
        from reader_app.annotation_style import is_truth

        self.case = case
        self.images = images or {}
        self.setWindowTitle(f"Structured report (BI-RADS) - case {case.case_id}")
        self.setStyleSheet(STYLE)
        self.resize(880, 640)
        self.report: Report = load_report(Path(case.folder), case.case_id)
        self.report.author = self.report.author or author
        self.last_error = ""
        own = [a for a in case.annotations if not is_truth(a)]
        for a in own:  # every lesion the reader drew gets a finding, with location and size
            ci = case.image(a.image_id)
            f = self.report.finding(a.lesion_id, ci.modality)
            if not f.breast and ci.laterality in ("L", "R"):
                f.breast = ci.laterality
            img = self.images.get(a.image_id)
            sp = img.meta.pixel_spacing if img is not None else None
            size = lesion_size_mm(a.points, sp)
            if size is not None:
                f.size_mm = max(size, f.size_mm or 0.0)
        if not self.report.findings:
            mod = case.modalities[0] if case.modalities else "MG"
            self.report.finding("L1", mod)
        self._loading = False
        self._build()
        self.lesions.setCurrentRow(0)

    # ----------------------------------------------------------------- UI
    def _build(self) -> None:
        top = QGroupBox("Per breast")
        g = QGridLayout(top)
        g.addWidget(QLabel("Density (A-D)"), 0, 1)
        g.addWidget(QLabel("Assessment"), 0, 2)
        self.density: dict[str, QComboBox] = {}
        self.breast_cat: dict[str, QComboBox] = {}
        for row, side in enumerate(("R", "L"), start=1):
            g.addWidget(QLabel("Right" if side == "R" else "Left"), row, 0)
            d = _combo([f"{k}" for k in DENSITY])
            for i, k in enumerate(DENSITY, start=1):
                d.setItemText(i, f"{k} - {DENSITY_TEXT[k]}")
            _set(d, self.report.breasts[side].density)
            d.currentIndexChanged.connect(lambda _i, s=side, c=d: self._on_breast_changed(s, "density", c))
            a = _combo(CATEGORIES)
            _set(a, self.report.breasts[side].assessment)
            a.currentIndexChanged.connect(lambda _i, s=side, c=a: self._on_breast_changed(s, "assessment", c))
            self.density[side], self.breast_cat[side] = d, a
            g.addWidget(d, row, 1)
            g.addWidget(a, row, 2)
        self.lesions = QListWidget()
        self.lesions.setMaximumWidth(170)
        for f in self.report.findings:
            self.lesions.addItem(f.lesion_id)
        self.lesions.currentRowChanged.connect(self._on_lesion_changed)
        self.lesion_box = QGroupBox("Lesion")
        self.form = QFormLayout(self.lesion_box)
        self.modality = _combo(tuple(LEXICON))
        self.finding = QComboBox()
        self.breast = _combo(("R", "L"))
        self.clock = _combo(CLOCK)
        self.distance = QDoubleSpinBox()
        self.distance.setRange(0, 30)
        self.distance.setSingleStep(0.5)
        self.distance.setSuffix(" cm from nipple")
        self.distance.setSpecialValueText("— cm from nipple")
        self.depth_box = _combo(DEPTH)
        self.size_label = QLabel("")
        self.assess = _combo(CATEGORIES)
        self.desc_boxes: dict[str, QComboBox] = {}  # rows of self.form after "Finding" (one label column)
        self.form.addRow("Modality", self.modality)
        self.form.addRow("Finding", self.finding)
        self.form.addRow("Breast", self.breast)
        self.form.addRow("Clock face", self.clock)
        self.form.addRow("Distance", self.distance)
        self.form.addRow("Depth", self.depth_box)
        self.form.addRow("Size (from annotation)", self.size_label)
        self.form.addRow("Assessment", self.assess)
        self.modality.currentIndexChanged.connect(self._on_modality_changed)
        self.finding.currentIndexChanged.connect(self._on_finding_changed)
        for w in (self.breast, self.clock, self.depth_box, self.assess):
            w.currentIndexChanged.connect(lambda _i: self._store())
        self.distance.valueChanged.connect(lambda _v: self._store())
        self.final = _combo(CATEGORIES)
        _set(self.final, self.report.final_category)
        self.final.currentIndexChanged.connect(self._on_final_changed)
        self.suggest = QLabel("")
        self.problems = QLabel("")
        self.problems.setStyleSheet("color:#ff6b6b")
        self.problems.setWordWrap(True)
        save = QPushButton("Save (Ctrl+S)")
        save.clicked.connect(self.save)
        ej = QPushButton("Export JSON…")
        ej.clicked.connect(lambda: self.export("json"))
        ec = QPushButton("Export CSV…")
        ec.clicked.connect(lambda: self.export("csv"))
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        mid = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("Lesions (Ctrl+Up/Down)"))
        left.addWidget(self.lesions, 1)
        mid.addLayout(left)
        mid.addWidget(self.lesion_box, 1)
        fin = QHBoxLayout()
        fin.addWidget(QLabel("<b>Final assessment category</b>"))
        fin.addWidget(self.final)
        fin.addWidget(self.suggest, 1)
        btns = QHBoxLayout()
        btns.addStretch(1)
        for b in (save, ej, ec, close):
            b.setAutoDefault(False)
            btns.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(top)
        lay.addLayout(mid, 1)
        lay.addLayout(fin)
        lay.addWidget(self.problems)
        lay.addLayout(btns)
        QShortcut(QKeySequence("Ctrl+S"), self, self.save)
        QShortcut(QKeySequence("Ctrl+Return"), self, lambda: (self.save(), self.close()))
        QShortcut(QKeySequence("Ctrl+Down"), self, lambda: self.lesions.setCurrentRow(
            min(self.lesions.currentRow() + 1, self.lesions.count() - 1)))
        QShortcut(QKeySequence("Ctrl+Up"), self, lambda: self.lesions.setCurrentRow(max(self.lesions.currentRow() - 1, 0)))
        self._update_suggest()

    # ----------------------------------------------------------------- editing
    def current(self) -> Any:
        row = self.lesions.currentRow()
        return self.report.findings[row] if 0 <= row < len(self.report.findings) else None

    def _on_lesion_changed(self, _row: int) -> None:
        f = self.current()
        if f is None:
            return
        self._loading = True
        self.lesion_box.setTitle(f"Lesion {f.lesion_id}")
        _set(self.modality, f.modality)
        self._fill_findings(f.modality, f.finding)
        self._fill_descriptors(f)
        _set(self.breast, f.breast)
        _set(self.clock, f.clock)
        self.distance.setValue(f.distance_from_nipple_cm or 0.0)
        _set(self.depth_box, f.depth)
        _set(self.assess, f.assessment)
        self.size_label.setText(f"{f.size_mm:.1f} mm" if f.size_mm is not None else "— (draw a region on an image "
                          "with pixel spacing)")
        self._loading = False

    def _fill_findings(self, modality: str, value: str) -> None:
        self.finding.blockSignals(True)
        self.finding.clear()
        self.finding.addItem("—", "")
        for k in LEXICON.get(modality, {}):
            self.finding.addItem(k, k)
        _set(self.finding, value)
        self.finding.blockSignals(False)

    def _fill_descriptors(self, f: Any) -> None:
        for c in self.desc_boxes.values():
            self.form.removeRow(c)
        self.desc_boxes = {}
        for i, (name, values) in enumerate(LEXICON.get(f.modality, {}).get(f.finding, {}).items()):
            c = _combo(values)
            _set(c, f.descriptors.get(name, ""))
            c.currentIndexChanged.connect(lambda _i: self._store())
            self.desc_boxes[name] = c
            self.form.insertRow(2 + i, name.capitalize(), c)  # below Finding, aligned with every other row
        # keep the tab order field by field, top to bottom
        chain: list[QWidget] = [self.modality, self.finding, *self.desc_boxes.values(), self.breast, self.clock, self.distance,
                 self.depth_box, self.assess, self.final]
        for a, b in zip(chain, chain[1:]):
            QWidget.setTabOrder(a, b)

    def _on_modality_changed(self, _i: int) -> None:
        f = self.current()
        if f is None or self._loading:
            return
        f.modality = self.modality.currentData() or f.modality
        f.finding, f.descriptors = "", {}
        self._fill_findings(f.modality, "")
        self._fill_descriptors(f)

    def _on_finding_changed(self, _i: int) -> None:
        f = self.current()
        if f is None or self._loading:
            return
        f.finding = self.finding.currentData() or ""
        f.descriptors = {}
        self._fill_descriptors(f)
        self._update_suggest()

    def _store(self) -> None:
        f = self.current()
        if f is None or self._loading:
            return
        f.descriptors = {k: c.currentData() for k, c in self.desc_boxes.items() if c.currentData()}
        f.breast = self.breast.currentData() or ""
        f.clock = self.clock.currentData() or ""
        f.distance_from_nipple_cm = self.distance.value() or None
        f.depth = self.depth_box.currentData() or ""
        f.assessment = self.assess.currentData() or ""
        self._update_suggest()

    def _on_breast_changed(self, side: str, what: str, c: QComboBox) -> None:
        setattr(self.report.breasts[side], what, c.currentData() or "")
        self._update_suggest()

    def _on_final_changed(self, _i: int) -> None:
        self.report.final_category = self.final.currentData() or ""

    def _update_suggest(self) -> None:
        s = self.report.suggested_final()
        self.suggest.setText(f"suggested from the findings: {s}" if s else "")
        if s and not self.report.final_category:
            self.final.blockSignals(True)
            _set(self.final, s)
            self.final.blockSignals(False)
            self.report.final_category = s
        probs = self.report.problems()
        self.problems.setText("; ".join(probs))

    # ----------------------------------------------------------------- save / export
    def save(self) -> Path | None:
        """Store the report with the case; a read-only case folder is said, not hidden."""
        try:
            p = save_report(Path(self.case.folder), self.report)
        except OSError as exc:
            self.last_error = f"Report NOT saved: {exc}"
            self.problems.setText(self.last_error)
            return None
        self.saved.emit(str(p))
        return p

    def export(self, kind: str, path: str | Path | None = None) -> Path | None:
        """Write the report as JSON or CSV (asks for a file unless ``path`` is given)."""
        import json

        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export report as {kind.upper()}",
                                                  f"{self.case.case_id}_birads.{kind}", f"{kind.upper()} (*.{kind})")
            if not path:
                return None
        p = Path(path)
        text = json.dumps(self.report.to_json(), indent=1) if kind == "json" else reports_csv([self.report])
        try:
            p.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.problems.setText(f"Export failed: {exc}")
            return None
        self.problems.setText(f"Exported to {p}")
        return p
