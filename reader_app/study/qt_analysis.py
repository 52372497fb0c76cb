"""Study menu dialogs: FROC analysis of exported marks, and study sizing (power) for a planned design.

The statistics run in a worker (``reader_app.qt_workers``) on the Qt-free jobs of
:mod:`engine.study.planning`; the dialogs only collect inputs and show the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

__all__ = ["FrocAnalysisDialog", "PowerDialog"]

DESIGNS = [("Random readers, random cases (RRRC)", "rrrc"), ("Fixed readers (FRRC)", "frrc"),
           ("Fixed cases (RRFC)", "rrfc")]


def _path_row(parent: QWidget, edit: QLineEdit, folder: bool, title: str) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    b = QPushButton("Browse…")

    def pick() -> None:
        if folder:
            p = QFileDialog.getExistingDirectory(parent, title)
        else:
            p, _ = QFileDialog.getOpenFileName(parent, title, "", "Ratings (*.csv *.imrmc *.txt);;All files (*)")
        if p:
            edit.setText(p)

    b.clicked.connect(pick)
    row.addWidget(b)
    return row


class FrocAnalysisDialog(QDialog):
    """Pick a folder with MARKS/LESIONS/CASES (a study export or its froc/ folder), run ORH, show curves."""

    def __init__(self, parent: QWidget | None = None, folder: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FROC analysis (wAFROC / AFROC, jackknife ORH)")
        self.worker: Any = None
        self.last: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.folder = QLineEdit(str(folder or ""))
        self.folder.setPlaceholderText("folder with MARKS.csv, LESIONS.csv, CASES.csv (or a study export)")
        form.addRow("Marks folder", _path_row(self, self.folder, True, "FROC files folder"))
        self.fom = QComboBox()
        for label, key in (("wAFROC (lesion-weighted, primary)", "wafroc"), ("AFROC", "afroc"),
                           ("Inferred ROC AUC (highest rating per case)", "roc")):
            self.fom.addItem(label, key)
        form.addRow("Figure of merit", self.fom)
        self.design = QComboBox()
        for label, key in DESIGNS:
            self.design.addItem(label, key)
        form.addRow("Generalisation", self.design)
        lay.addLayout(form)
        self.run_btn = QPushButton("Analyse")
        self.run_btn.clicked.connect(self.run_analysis)
        lay.addWidget(self.run_btn)
        self.status = QLabel("")
        lay.addWidget(self.status)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMinimumHeight(170)
        lay.addWidget(self.text)
        self.figure = QLabel()
        self.figure.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.figure, 1)
        self.resize(1100, 780)

    def run_analysis(self) -> Any:
        """Start the analysis in a worker; returns the worker."""
        from engine.study.planning import froc_folder_job
        from reader_app.qt_workers import Worker, start

        self.status.setText("Analysing…")
        self.run_btn.setEnabled(False)
        self.worker = Worker(froc_folder_job, self.folder.text().strip(), self.fom.currentData(),
                             self.design.currentData(), name="FROC analysis")
        self.worker.signals.result.connect(self._on_result)
        self.worker.signals.errored.connect(self._on_error)
        self.worker.signals.finished.connect(lambda: self.run_btn.setEnabled(True))
        return start(self.worker)

    def _on_result(self, out: dict[str, Any]) -> None:
        self.last = out
        self.status.setText(f"{out['cases']} cases, {out['lesions']} lesions")
        self.text.setPlainText(out["text"])
        pm = QPixmap(out["figure"])
        self.figure.setPixmap(pm.scaledToWidth(1060, Qt.TransformationMode.SmoothTransformation))

    def _on_error(self, msg: str) -> None:
        self.status.setText(f"Not analysed: {msg}")


class PowerDialog(QDialog):
    """Power of a planned design (readers x cases) from a pilot's OR variance components.

    Opened from the study menu; with a study definition its planned readers and cases fill in.
    """

    def __init__(self, parent: QWidget | None = None, definition: str | Path | None = None,
                 pilot: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Study sizing: power of the planned design (Hillis-Obuchowski OR)")
        self.worker: Any = None
        self.last: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.pilot = QLineEdit(str(pilot or ""))
        self.pilot.setPlaceholderText("pilot ratings CSV/iMRMC, or a folder with the FROC files")
        form.addRow("Pilot data", _path_row(self, self.pilot, False, "Pilot ratings file"))
        self.readers = QSpinBox()
        self.readers.setRange(2, 500)
        self.readers.setValue(5)
        self.cases = QSpinBox()
        self.cases.setRange(4, 100_000)
        self.cases.setValue(200)
        self.effect = QDoubleSpinBox()
        self.effect.setDecimals(4)
        self.effect.setRange(-1.0, 1.0)
        self.effect.setSingleStep(0.01)
        self.effect.setValue(0.05)
        self.target = QDoubleSpinBox()
        self.target.setRange(0.5, 0.99)
        self.target.setSingleStep(0.05)
        self.target.setValue(0.8)
        self.design = QComboBox()
        for label, key in DESIGNS:
            self.design.addItem(label, key)
        self.plan_label = QLabel("")
        if definition:
            from engine.study.planning import planned_design

            try:
                plan = planned_design(definition)
            except Exception as exc:  # noqa: BLE001 - shown, the dialog still works without it
                self.plan_label.setText(f"Study definition not read: {exc}")
            else:
                self.readers.setValue(max(2, plan["readers"]))
                if plan["cases"]:
                    self.cases.setValue(plan["cases"])
                self.plan_label.setText(f"Planned design of '{plan['name']}': {plan['readers']} readers, "
                                        f"{plan['cases'] or 'all'} cases, arms {', '.join(plan['arms'])}")
        form.addRow("Readers (J)", self.readers)
        form.addRow("Cases (K)", self.cases)
        form.addRow("Effect size (difference of FOMs)", self.effect)
        form.addRow("Target power", self.target)
        form.addRow("Generalisation", self.design)
        lay.addWidget(self.plan_label)
        lay.addLayout(form)
        self.run_btn = QPushButton("Compute power")
        self.run_btn.clicked.connect(self.compute)
        lay.addWidget(self.run_btn)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.result_label, 1)
        self.resize(640, 420)

    def compute(self) -> Any:
        """Start the computation in a worker; returns the worker."""
        from engine.study.planning import plan_power
        from reader_app.qt_workers import Worker, start

        self.result_label.setText("Computing…")
        self.worker = Worker(plan_power, self.pilot.text().strip(), self.readers.value(), self.cases.value(),
                             self.target.value(), self.effect.value(), self.design.currentData(),
                             name="study sizing")
        self.worker.signals.result.connect(self._on_result)
        self.worker.signals.errored.connect(lambda m: self.result_label.setText(f"Not computed: {m}"))
        return start(self.worker)

    def _on_result(self, out: dict[str, Any]) -> None:
        self.last = out
        p, pw, ss = out["pilot"], out["power"], out["sample_size"]
        df2 = "∞" if pw["df2"] is None else f"{pw['df2']:.1f}"
        lines = [
            f"<b>Power {100 * pw['power']:.1f}%</b> for {pw['readers']} readers × {pw['cases']} cases "
            f"({pw['design'].upper()}), effect {pw['effect_size']:+.4f} "
            f"(non-centrality {pw['ncp']:.2f}, df₂ {df2}, α {pw['alpha']}).",
            f"Cases needed for {100 * self.target.value():.0f}% power with {ss['readers']} readers: "
            f"<b>{ss['cases']}</b> (power {100 * ss['power']:.1f}%)." if ss else out.get("sample_size_error", ""),
            f"Pilot: {p['readers']} readers, {p['cases']} cases, FOM {p['fom']}, observed effect "
            f"{p['observed_effect']:+.4f}; var_TR {p['var_TR']:.3g}, Var {p['var_error']:.3g}, Cov1 {p['cov1']:.3g}, "
            f"Cov2 {p['cov2']:.3g}, Cov3 {p['cov3']:.3g} (jackknife).",
            "<i>" + out["method"] + ". Power is a planning estimate: it inherits the pilot's uncertainty.</i>",
        ]
        self.result_label.setText("<br>".join(x for x in lines if x))
