"""File → Open from PACS… and File → Send results to PACS (DICOMweb, see engine.interop.dicomweb).

* Connection settings (DICOMweb URL, user, timeout, instance limit) live in the preferences
  (QSettings group ``pacs``). The password is kept in memory for the session only — never
  written to the settings file, a log line or a message.
* Search (QIDO-RS) and retrieve (WADO-RS → the engine's DICOM importer) run in workers; the
  retrieval shows progress and can be cancelled; a failed or cancelled retrieval leaves the
  local study untouched.
* Send results exports the current case as SR + SEG (+ saliency SEG, + Secondary Capture of
  raster images) and STOWs them.

The main window only calls :func:`add_pacs_actions` (one line in ``qt_main``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.interop.dicomweb import MODALITY_FILTERS, PacsClient, PacsSettings, StudyHit, retrieve_into_study
from reader_app import paths
from reader_app.qt_workers import Worker, start

_SESSION_PASSWORD: dict[str, str] = {}  # url -> password, this process only (never persisted)
DEFAULT_URL = "http://127.0.0.1:8042/dicom-web"


def load_settings() -> PacsSettings:
    """The PACS connection from the preferences (+ the session's password)."""
    s = paths.settings()
    url = str(s.value("pacs/url", DEFAULT_URL) or DEFAULT_URL)
    user = str(s.value("pacs/user", "") or "") or None
    try:
        # QSettings gives back what the INI file holds: a str (or the default), typed as object
        timeout = float(str(s.value("pacs/timeout_s", 30.0)))
        max_inst = int(str(s.value("pacs/max_instances", 5000)))
    except (TypeError, ValueError):
        timeout, max_inst = 30.0, 5000
    return PacsSettings(url=url, user=user, password=_SESSION_PASSWORD.get(url), timeout_s=timeout,
                        max_instances=max_inst)


def save_settings(ps: PacsSettings) -> None:
    """Store URL, user, timeout and limit (NOT the password) in the preferences."""
    s = paths.settings()
    s.setValue("pacs/url", ps.safe_url)
    s.setValue("pacs/user", ps.user or "")
    s.setValue("pacs/timeout_s", ps.timeout_s)
    s.setValue("pacs/max_instances", ps.max_instances)
    s.sync()
    if ps.password:
        _SESSION_PASSWORD[ps.safe_url] = ps.password


class PacsSettingsBox(QGroupBox):
    """Connection fields: DICOMweb URL, user, password (session only), timeout, instance limit."""

    def __init__(self, ps: PacsSettings, parent: QWidget | None = None) -> None:
        super().__init__("PACS connection (DICOMweb)", parent)
        form = QFormLayout(self)
        self.url = QLineEdit(ps.safe_url)
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.user = QLineEdit(ps.user or "")
        self.password = QLineEdit(ps.password or "")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("kept for this session only")
        self.timeout = QSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setValue(int(ps.timeout_s))
        self.timeout.setSuffix(" s")
        self.max_instances = QSpinBox()
        self.max_instances.setRange(1, 1_000_000)
        self.max_instances.setValue(ps.max_instances)
        form.addRow("URL", self.url)
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        form.addRow("Timeout", self.timeout)
        form.addRow("Max. instances per study", self.max_instances)

    def settings(self) -> PacsSettings:
        """The settings as entered."""
        return PacsSettings(url=self.url.text().strip(), user=self.user.text().strip() or None,
                            password=self.password.text() or None, timeout_s=float(self.timeout.value()),
                            max_instances=int(self.max_instances.value()))


def _search_job(ps: PacsSettings, patient: str, date_from: str, date_to: str, modality: str,
                progress: Any = None, cancel: Any = None) -> list[StudyHit]:
    return PacsClient(ps).search(patient, date_from=date_from or None, date_to=date_to or None, modality=modality)


def _retrieve_job(ps: PacsSettings, study_uid: str, dest: Path, progress: Any = None, cancel: Any = None) -> Any:
    return retrieve_into_study(PacsClient(ps), study_uid, dest, name=dest.name, progress=progress, cancel=cancel)


class PacsDialog(QDialog):
    """Search a PACS and retrieve a study into a local study folder.

    Signals:
        retrieved(str): the local study folder, after a complete retrieval + import.
        searched(int): number of studies found (also 0 after an error).
    """

    retrieved = Signal(str)
    searched = Signal(int)

    COLUMNS = ("Patient ID", "Patient name", "Date", "Modalities", "Description", "Series", "Instances")

    def __init__(self, parent: QWidget | None = None, dest: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from PACS")
        self.resize(980, 620)
        self.hits: list[StudyHit] = []
        self.worker: Worker | None = None
        self._alive: set[Worker] = set()  # every started worker stays referenced until it ends
        self.last_error = ""
        lay = QVBoxLayout(self)
        self.conn = PacsSettingsBox(load_settings())
        lay.addWidget(self.conn)
        row = QHBoxLayout()
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("Patient ID or name (* wildcard)")
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("from YYYY-MM-DD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("to YYYY-MM-DD")
        self.modality = QComboBox()
        self.modality.addItems([m or "any" for m in MODALITY_FILTERS])
        self.search_btn = QPushButton("Search")
        self.search_btn.setDefault(True)
        self.search_btn.clicked.connect(self.search)
        for w in (QLabel("Patient"), self.patient, self.date_from, self.date_to, QLabel("Modality"), self.modality,
                  self.search_btn):
            row.addWidget(w)
        lay.addLayout(row)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.retrieve())
        lay.addWidget(self.table, 1)
        dest_row = QHBoxLayout()
        self.dest = QLineEdit(str(dest or paths.user_data_dir() / "pacs-study"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        dest_row.addWidget(QLabel("Into local study"))
        dest_row.addWidget(self.dest, 1)
        dest_row.addWidget(browse)
        lay.addLayout(dest_row)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m  %p%")
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        buttons = QDialogButtonBox()
        self.retrieve_btn = buttons.addButton("Retrieve", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_btn = buttons.addButton("Cancel retrieval", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_btn = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.retrieve_btn.clicked.connect(self.retrieve)
        self.cancel_btn.clicked.connect(self.cancel)
        self.close_btn.clicked.connect(self.reject)
        self.cancel_btn.setEnabled(False)
        lay.addWidget(buttons)

    # ------------------------------------------------------------------ helpers
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Local study folder for retrieved studies")
        if folder:
            self.dest.setText(folder)

    def _settings(self) -> PacsSettings:
        ps = self.conn.settings()
        save_settings(ps)
        return ps

    def _busy(self, on: bool, what: str = "") -> None:
        self.search_btn.setEnabled(not on)
        self.retrieve_btn.setEnabled(not on)
        self.cancel_btn.setEnabled(on and what == "retrieve")
        self.progress.setVisible(on and what == "retrieve")

    def _error(self, msg: str) -> None:
        self.last_error = msg
        self.status.setText(f"<span style='color:#ff6b6b'>{msg}</span>")

    # ------------------------------------------------------------------ search
    def search(self) -> Worker:
        """Run the QIDO-RS search in a worker; fills the table."""
        mod = self.modality.currentText()
        w = Worker(_search_job, self._settings(), self.patient.text(), self.date_from.text(), self.date_to.text(),
                   "" if mod == "any" else mod, name="pacs-search")
        w.signals.result.connect(self._on_hits)
        w.signals.errored.connect(self._on_search_error)
        w.signals.finished.connect(lambda: self._busy(False))
        self.status.setText("Searching…")
        self._busy(True, "search")
        return self._start(w)

    def _start(self, w: Worker) -> Worker:
        self.worker = w
        self._alive.add(w)
        w.signals.finished.connect(lambda: QTimer.singleShot(1000, lambda: self._alive.discard(w)))
        return start(w)

    def _on_search_error(self, msg: str) -> None:
        self._error(msg)
        self.searched.emit(0)

    def _on_hits(self, hits: list[StudyHit]) -> None:
        self.hits = hits
        self.table.setRowCount(len(hits))
        for r, h in enumerate(hits):
            vals = (h.patient_id, h.patient_name.replace("^", " ").strip(), _date(h.study_date), " ".join(h.modalities),
                    h.description, "" if h.n_series is None else str(h.n_series),
                    "" if h.n_instances is None else str(h.n_instances))
            for c, v in enumerate(vals):
                self.table.setItem(r, c, QTableWidgetItem(v))
        if hits:
            self.table.selectRow(0)
        self.status.setText(f"{len(hits)} stud{'y' if len(hits) == 1 else 'ies'} found")
        self.searched.emit(len(hits))

    # ------------------------------------------------------------------ retrieve
    def retrieve(self) -> Worker | None:
        """Retrieve the selected study into the local study folder (worker, progress, cancel)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or not self.hits:
            self._error("Select a study first (search, then click a row).")
            return None
        hit = self.hits[rows[0].row()]
        dest = Path(self.dest.text().strip() or paths.user_data_dir() / "pacs-study")
        w = Worker(_retrieve_job, self._settings(), hit.study_uid, dest, name="pacs-retrieve")
        w.signals.progress.connect(self._on_progress)
        w.signals.result.connect(lambda res: self._on_retrieved(res, dest))
        w.signals.errored.connect(lambda m: self._error(f"Retrieval failed; the local study is unchanged. {m}"))
        w.signals.cancelled.connect(lambda: self._error("Retrieval cancelled; the local study is unchanged."))
        w.signals.finished.connect(lambda: self._busy(False))
        self.progress.setRange(0, 0)
        self.status.setText(f"Retrieving study of {hit.patient_id or 'unknown patient'}…")
        self._busy(True, "retrieve")
        return self._start(w)

    def cancel(self) -> None:
        """Cancel the running retrieval."""
        if self.worker is not None:
            self.worker.cancel()

    def _on_progress(self, done: int, total: int, msg: str) -> None:
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(min(done, total) if total else 0)
        self.status.setText(msg)

    def _on_retrieved(self, res: Any, dest: Path) -> None:
        n = len(res.study.cases)
        probs = [str(p) for p in res.problems]
        note = f"; {len(probs)} item(s) skipped (e.g. {probs[0]})" if probs else ""
        self.status.setText(f"Retrieved into {dest}: {n} case(s){note}")
        self.retrieved.emit(str(dest))

    def reject(self) -> None:  # noqa: D102 - closing cancels a running retrieval first
        self.cancel()
        super().reject()


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


# ---------------------------------------------------------------------- send results
def ai_scores(res: Any) -> list[Any]:
    """The workstation's AIResult as engine AIScore records (model version = weights digest)."""
    from engine.interop.sr import AIScore

    if res is None:
        return []
    out = []
    for image_id, p in res.per_image.items():
        mod = image_id.split("_", 1)[0].upper()
        info = res.models.get(mod) or next(iter(res.models.values()), None)
        name = str(getattr(info, "name", None) or "unknown model")
        sal = next((m for (iid, _method), m in res.saliency.items() if iid == image_id), None)
        out.append(AIScore(image_id, float(p), name, _model_version(name), saliency=sal,
                           frame=res.frames.get(image_id)))
    return out


def _model_version(name: str) -> str:
    try:
        from engine.models.weights import read_spec

        sha = read_spec(name).sha256
        return sha[:12] if sha else "unversioned"
    except Exception:  # noqa: BLE001 - a model without installed weights: no version to report
        return "unversioned"


def _send_job(ps: PacsSettings, case: Any, ai: list[Any], birads: str | None,
              progress: Any = None, cancel: Any = None) -> tuple[int, int, list[str]]:
    from engine.interop.export import export_case

    with tempfile.TemporaryDirectory(prefix="br-send-") as tmp:
        exp = export_case(case, Path(tmp), ai=ai, birads=birads or None)
        res = PacsClient(ps).store(exp.files, progress=progress, cancel=cancel)
    return len(res.stored), len(res.failed), exp.problems


def send_results(main: Any) -> Worker | None:
    """Export the current case (SR + SEG) and STOW it to the configured PACS, in a worker."""
    cs = main.state.current
    if cs is None:
        main.show_error("Send results: no case is open")
        return None
    ps = load_settings()
    birads = getattr(getattr(cs, "rating", None), "birads", None)
    w = Worker(_send_job, ps, cs.case, ai_scores(main.ai_result), birads, name="pacs-send")

    def done(out: tuple[int, int, list[str]]) -> None:
        ok, bad, probs = out
        msg = f"Sent {ok} object(s) to {ps.safe_url}" + (f", {bad} refused" if bad else "")
        if probs:
            msg += f"; not exported: {'; '.join(probs)}"
        main.statusBar().showMessage(msg, 10000)
        main.last_pacs_message = msg

    w.signals.result.connect(done)
    w.signals.errored.connect(lambda m: main.show_error(f"Send results failed (nothing changed locally): {m}"))
    if hasattr(main, "_track"):
        main._track(w)  # keeps the worker alive until it has finished
    main.statusBar().showMessage(f"Sending results to {ps.safe_url}…")
    return start(w)


def open_from_pacs(main: Any) -> PacsDialog:
    """Show the PACS dialog; a retrieved study opens in the main window."""
    study = getattr(main.state, "study", None)
    dlg = PacsDialog(main, dest=getattr(study, "folder", None))
    dlg.retrieved.connect(lambda folder: main.open_study(folder))
    dlg.show()
    main.pacs_dialog = dlg
    return dlg


def add_pacs_actions(main: Any, menu: Any) -> None:
    """Add File → Open from PACS… / Send results to PACS to ``menu`` of the main window."""
    main._act(menu, "Open from PACS…", "Ctrl+Shift+O", lambda: open_from_pacs(main))
    main._act(menu, "Send results to PACS (SR + SEG)", None, lambda: send_results(main))


__all__ = ["PacsDialog", "PacsSettingsBox", "add_pacs_actions", "ai_scores", "load_settings", "open_from_pacs",
           "save_settings", "send_results"]
