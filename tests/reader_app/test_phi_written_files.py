"""Issue 16 deliverable 7: identifiers of PHI-laden DICOMs never reach what the app writes or shows.

Four patients' DICOMs carrying a name, an MRN, a birth date and an accession number (also in
their file names) are imported, read in the workstation, rated, annotated, reported, exported
(masks + COCO, BI-RADS report, reader-study exports, de-identified copy, DICOM SR/SEG of the
de-identified copy) and screenshotted, with HOME, TMPDIR and every XDG folder pointed into the
test folder. Then every file written anywhere under it (user data, settings, config, journals, caches,
case.json, annotations.json, exports, the screenshot and its PNG text chunks), every file name,
everything printed (logs), and every text the window shows (title, labels, tooltips, tables,
status bar) is searched for the identifiers. The only files allowed to hold them are the copies
of the original DICOMs, and the SR exported from the NOT de-identified study (which proves the
search finds identifiers where they are).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from engine.cases import load_study
from engine.cases.importers import import_dicom_folder
from engine.io.writer import write_dicom

PATIENTS = [
    {"name": "DOE^JANE", "id": "MRN7654321", "birth": "19610704", "accession": "ACC998877",
     "study_uid": "1.2.826.0.1.3680043.9.7777.10"},
    {"name": "ROE^MARY", "id": "MRN1234987", "birth": "19570223", "accession": "ACC445566",
     "study_uid": "1.2.826.0.1.3680043.9.7777.11"},
    {"name": "POE^ANNA", "id": "MRN5550192", "birth": "19700115", "accession": "ACC112233",
     "study_uid": "1.2.826.0.1.3680043.9.7777.12"},
    {"name": "LOW^EDNA", "id": "MRN8880317", "birth": "19490930", "accession": "ACC778899",
     "study_uid": "1.2.826.0.1.3680043.9.7777.13"},
]


def _tokens() -> list[str]:
    out = []
    for p in PATIENTS:
        last, first = p["name"].split("^")
        b = p["birth"]
        # every way a name is written (not the bare words: "MARY" is in "PRIMARY")
        out += [p["name"], f"{last}_{first}", f"{last} {first}", f"{first} {last}", f"{last}, {first}",
                f"{first.title()} {last.title()}", f"{last.title()}^{first.title()}", f"{last.title()}, {first.title()}",
                p["id"], p["id"][3:], b,
                f"{b[:4]}-{b[4:6]}-{b[6:]}", f"{b[6:]}.{b[4:6]}.{b[:4]}", p["accession"], p["study_uid"]]
    return out


TOKENS = _tokens()


def _leaks(text: str) -> list[str]:
    return [t for t in TOKENS if t in text]


def _write_dicoms(folder: Path) -> list[Path]:
    import numpy as np

    folder.mkdir(parents=True)
    px = (np.mgrid[0:96, 0:72][0] * 30 + np.mgrid[0:96, 0:72][1] * 7).astype(np.uint16)
    out = []
    for p in PATIENTS:
        for lat in ("L", "R"):
            f = folder / f"{p['id']}_{p['name'].replace('^', '_')}_{p['birth']}_{lat}CC.dcm"
            write_dicom(f, px, modality="MG", laterality=lat, view="CC", patient_id=p["id"],
                        patient_name=p["name"], accession=p["accession"], study_uid=p["study_uid"],
                        extra_tags={"PatientBirthDate": p["birth"]})
            out.append(f)
    return out


def _png_text_chunks(path: Path) -> str:
    """tEXt / zTXt / iTXt chunks of a PNG (where a screenshot's metadata would be)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, texts = 8, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if kind == b"tEXt":
            texts.append(body.decode("latin-1"))
        elif kind == b"zTXt":
            k, _, rest = body.partition(b"\0")
            texts.append(k.decode("latin-1") + zlib.decompress(rest[1:]).decode("latin-1"))
        elif kind == b"iTXt":
            texts.append(body.decode("utf-8", "replace"))
        i += 12 + n
    return "\n".join(texts)


def _visible_texts(win) -> list[str]:
    from PySide6.QtWidgets import (QAbstractButton, QComboBox, QDockWidget, QLabel, QLineEdit, QPlainTextEdit,
                                   QTableWidget, QTextEdit, QWidget)

    out = [win.windowTitle(), win.statusBar().currentMessage()]
    for w in win.findChildren(QWidget):
        out += [w.toolTip(), w.windowTitle(), w.statusTip(), w.accessibleName()]
        if isinstance(w, (QLabel, QAbstractButton, QLineEdit)):
            out.append(w.text())
        if isinstance(w, (QPlainTextEdit, QTextEdit)):
            out.append(w.toPlainText())
        if isinstance(w, QComboBox):
            out += [w.itemText(i) for i in range(w.count())]
        if isinstance(w, QDockWidget):
            out.append(w.windowTitle())
        if isinstance(w, QTableWidget):
            for r in range(w.rowCount()):
                for c in range(w.columnCount()):
                    it = w.item(r, c)
                    if it is not None:
                        out += [it.text(), it.toolTip()]
    for m in win.menuBar().findChildren(QWidget):
        out.append(getattr(m, "title", lambda: "")())
    return [t for t in out if t]


def test_no_identifier_in_any_written_file_shown_text_or_log(make_window, qtbot, tmp_path, monkeypatch, capfd):
    from engine.cases.deid import export_deidentified
    from engine.interop.export import export_case as export_dicom_objects
    from engine.study.demo import FakeClock, run_scripted_readers, write_demo_definition
    from engine.study.export import export_study
    from reader_app.report import Report, save_report
    from reader_app.screenshots import _save

    home = tmp_path / "home"
    for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(home / sub))
    import tempfile

    (home / "tmp").mkdir()  # temp files too (a scratch file left behind would be searched)
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(home / "tmp"))
    monkeypatch.delenv("BREAST_READER_CONFIG", raising=False)  # the real per-user config folder, under HOME
    monkeypatch.setenv("BREAST_READER_DATA", str(home / ".local/share/breast-reader"))
    originals = _write_dicoms(tmp_path / "pacs")
    original_bytes = {p.read_bytes() for p in originals}
    study = tmp_path / "study"
    res = import_dicom_folder(tmp_path / "pacs", study)
    assert len(res.study.cases) == 4
    for case, label in zip(sorted(res.study.cases, key=lambda c: c.case_id), ("benign", "malignant") * 2):
        cj = study / "cases" / case.case_id / "case.json"
        doc = json.loads(cj.read_text())
        doc["truth"] = {"label": label, "subtype": None, "source": "test"}
        cj.write_text(json.dumps(doc))

    # the workstation: open, read, rate, comment, annotate, report, export, screenshot
    win = make_window()
    with qtbot.waitSignal(win.case_loaded, timeout=20000):
        assert win.open_study(study)
    cs = win.state.current
    win.rate_key(7)
    win.rating_panel.comment.setPlainText("irregular mass")
    win.state.new_annotation(cs.case.images[0].image_id, "box", [[10, 10], [40, 50]])
    rep = Report(cs.case.case_id, final_category="4B", author="reader")
    save_report(study / "cases" / cs.case.case_id, rep)
    masks = win.export_annotations(tmp_path / "exports" / "annotations")
    assert any(p.suffix == ".png" for p in masks) and any(p.name.endswith("_coco.json") for p in masks)
    shot = tmp_path / "exports" / "screenshot.png"
    _save(win, shot)
    texts = _visible_texts(win)
    assert any(cs.case.case_id in t for t in texts)  # the texts are really collected
    assert not [t for t in texts if _leaks(t)], [(t, _leaks(t)) for t in texts if _leaks(t)]
    assert not _leaks(_png_text_chunks(shot))
    win.state.step_case(1)
    qtbot.waitUntil(lambda: win.state.current is not None and win.state.current.case.case_id != cs.case.case_id)
    texts = _visible_texts(win)
    assert not [t for t in texts if _leaks(t)], [(t, _leaks(t)) for t in texts if _leaks(t)]
    # the error log: an unexpected error while this case is open goes to errors.log (user data dir)
    import sys

    from reader_app.main import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(win)
    try:
        win._on_case_changed(win.state.current)  # the real handler, then a failure inside it
        raise RuntimeError(f"test failure while reading {win.state.current.case.images[0].path}")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert "errors.log" in win.last_error
    qtbot.waitUntil(lambda: win.state.current is not None)
    win.close()

    # reader-study exports (CSV, iMRMC, MRMC JSON, ROC figures, PDF)
    ids = sorted(c.case_id for c in load_study(study).cases)
    toml = write_demo_definition(tmp_path / "reader-study", study, case_ids=ids, washout_days=0)
    run = run_scripted_readers(toml, FakeClock())
    export_study(run, tmp_path / "exports" / "reader-study")
    run.close()
    # a de-identified copy for sharing, and DICOM SR/SEG of its annotated case
    export_deidentified(study, tmp_path / "exports" / "share")
    shared = next(c for c in load_study(tmp_path / "exports" / "share").cases if c.case_id == cs.case.case_id)
    assert shared.annotations
    sr = export_dicom_objects(shared, tmp_path / "exports" / "share-dicom", birads="4B", observer="reader")
    assert sr.sr is not None and sr.segs
    # the same SR from the identified study carries the patient module: the search finds it there
    plain = export_dicom_objects(load_study(study).cases[[c.case_id for c in load_study(study).cases]
                                                        .index(cs.case.case_id)], tmp_path / "pacs-return")
    assert plain.sr is not None and _leaks(plain.sr.read_bytes().decode("latin-1"))

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.is_relative_to(home) for p in written)  # settings / ratings / config really are under HOME
    checked = 0
    for p in written:
        if p.is_relative_to(tmp_path / "pacs") or p.is_relative_to(tmp_path / "pacs-return"):
            continue
        assert not _leaks(p.relative_to(tmp_path).as_posix()), p
        data = p.read_bytes()
        if data in original_bytes:
            continue  # the copy of an original DICOM inside the study
        text = data.decode("latin-1")
        if p.suffix == ".png":
            text += _png_text_chunks(p)
        assert not _leaks(text), (p, _leaks(text))
        checked += 1
    names = {p.name for p in written}
    for must in ("case.json", "annotations.json", "birads_report.json", "settings.ini", "pseudonym.key", "errors.log",
                 "ratings.csv", "screenshot.png"):
        assert must in names, (must, sorted(names))
    assert any(p.suffix == ".json" and p.parent.name == "ratings" for p in written)
    assert checked > 30
    out = capfd.readouterr()
    assert not _leaks(out.out + out.err), _leaks(out.out + out.err)
