"""Make the documentation screenshots of the real window (run under Xvfb or on a desktop).

    xvfb-run -a python -m reader_app.screenshots docs/screenshots [--study FOLDER]

Writes ``paired_mg_us_overlay.png`` (first MG+US case scored, saliency shown),
``mri_stack.png`` (first MR case, mid-stack, a box on one slice), ``annotation.png`` (a
polygon being drawn on an ultrasound view next to finished regions), the CBIS-DDSM 4-view
hanging and magnifier, the BI-RADS form, the import preview, ``prior_comparison.png`` (a test
construction: the demo has no real prior) and the reading-session shots (``reading_session_prior.png``:
the blinded session's current | prior, the same construction). Uses the installed models; where
none is installed the AI panel says so (no score is invented). ``--only session-prior`` (or
``session``) makes just those shots.
"""

from __future__ import annotations

import argparse
import sys
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QPointF

from engine.errors import BreastReaderError
from reader_app.main import _wait, demo_study_dir, first_paired_case

if TYPE_CHECKING:
    from reader_app.state import CaseState


def _settle(ms: int = 300) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    QCoreApplication.processEvents()


def _save(win: object, path: Path) -> None:
    pix = win.grab()  # type: ignore[attr-defined]
    pix.save(str(path), "PNG", 0)  # quality 0 = strongest PNG compression (lossless)
    if path.stat().st_size > 390_000:  # docs budget: quantise to 256 colours (overlays stay legible)
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {pix.width()}x{pix.height()} {path.stat().st_size // 1024} KB")


def _select(win: object, case_id: str) -> CaseState:
    """Select ``case_id`` and wait until it is shown; its state (a clear error if it never loads)."""
    if win.state.current is None or win.state.current.case.case_id != case_id:  # type: ignore[attr-defined]
        win.state.select_case(case_id)  # type: ignore[attr-defined]
    _wait(win.case_loaded, 60, lambda: bool(win.views) and win.state.current.case.case_id == case_id)  # type: ignore[attr-defined]
    current: CaseState | None = win.state.current  # type: ignore[attr-defined]
    if current is None or current.case.case_id != case_id:
        raise BreastReaderError(f"case {case_id} did not load in time")
    return current


def _score(win: object) -> None:
    w = win.score_case()  # type: ignore[attr-defined]
    if w is not None:
        _wait(win.ai_finished, 300, lambda: bool(getattr(win._ai_worker, "ended", False)))  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--study", type=Path, default=None)
    p.add_argument("--size", default="1600x1000")
    p.add_argument("--only", choices=("all", "session", "session-prior"), default="all")
    a = p.parse_args(argv)
    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    import os
    import tempfile

    # work on a copy: the screenshots draw annotations and ratings, which must not touch the
    # bundled study or the user's own ratings
    tmp = Path(tempfile.mkdtemp(prefix="br-shots-"))
    src = a.study or demo_study_dir()
    shutil.copytree(src, tmp / "study")
    os.environ["BREAST_READER_DATA"] = str(tmp / "userdata")
    ensure_app()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.only != "all":
        cbis_id = next((c.name for c in sorted((tmp / "study" / "cases").iterdir()) if c.name.endswith("-cbis")), None)
        if a.only == "session":
            session_shots(tmp, a.out)
        if cbis_id is not None:
            session_prior_shot(tmp, cbis_id, a.out)
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    w, h = (int(v) for v in a.size.split("x"))
    win = MainWindow(ai_display="always")  # these shots show the AI panel; reading defaults to after-rating
    win.resize(w, h)
    win.show()
    # where a modality has installed weights but no default yet, show the installed model
    for box in win.ai_panel.model_boxes.values():
        if box.currentData() is None and "(none)" in box.currentText() and box.count() > 1:
            box.setCurrentIndex(1)
    if not win.open_study(tmp / "study", wait=True):
        print(win.last_error, file=sys.stderr)
        return 2
    study = win.state.study
    # 1. paired MG+US with overlay, a lesion box on the CC view and on one US view
    cid = first_paired_case(study) if study is not None else None
    if study is None or cid is None:
        print(f"{src}: the study has no case to show", file=sys.stderr)
        return 2
    case = _select(win, cid).case
    if all(x.is_truth for x in case.annotations):  # the reader's own boxes (truth is never the AI's box)
        for v in win.views[:3:2]:
            iw, ih = v.image_size()
            if iw:
                win.state.new_annotation(v.slot.image_id, "box", [[0.35 * iw, 0.35 * ih], [0.6 * iw, 0.6 * ih]])
    _score(win)
    win.state.rate(score=7, birads="4B")
    _settle()
    _save(win, a.out / "paired_mg_us_overlay.png")
    # 2. annotation in progress: polygon being drawn on the first US view (2x2 kept)
    win.state.set_tool("polygon")
    us = next((v for v in win.views if v.slot.modality == "US" and v.image is not None), win.views[0])
    win.set_active(win.views.index(us))
    iw, ih = us.image_size()
    pts = [[0.3 * iw, 0.3 * ih], [0.55 * iw, 0.25 * ih], [0.7 * iw, 0.45 * ih], [0.6 * iw, 0.7 * ih]]
    us._draft = [list(p) for p in pts]
    us._update_draft(us._draft + [[0.35 * iw, 0.68 * ih]], closed=False)
    us._set_ruler([0.1 * iw, 0.9 * ih], [0.45 * iw, 0.9 * ih])
    win.ai_panel.overlay_on.setChecked(False)
    _settle()
    _save(win, a.out / "annotation.png")
    us.cancel_draft()
    win.ai_panel.overlay_on.setChecked(True)
    win.state.set_tool("navigate")
    # 3. MRI stack
    mr = next((c.case_id for c in study.cases if "MR" in c.modalities), None)
    if mr is not None:
        mr_state = _select(win, mr)
        v = next((x for x in win.views if x.n_frames > 1), win.views[0])  # the MR stack, not its US
        win.state.set_layout("1x2")
        win.set_active(win.views.index(v))
        if all(x.is_truth for x in mr_state.case.annotations) and v.image is not None:
            iw, ih = v.image_size()
            win.state.new_annotation(v.slot.image_id, "box", [[0.3 * iw, 0.3 * ih], [0.5 * iw, 0.5 * ih]],
                                     frame=v.view_state.frame)
        _score(win)
        res = win.ai_result
        if res is not None and res.frames.get(v.slot.image_id) is not None:
            v.view_state.set("frame", res.frames[v.slot.image_id])  # show the slice the AI scored
        v._on_mouse_moved(v.group.mapToScene(QPointF(v.image_size()[0] * 0.4, v.image_size()[1] * 0.4)))
        _settle()
        _save(win, a.out / "mri_stack.png")
    # 4. 4-view hanging of a real CBIS-DDSM exam, then the magnifier on it
    cbis = next((c.case_id for c in study.cases if c.case_id.endswith("-cbis")), None)
    if cbis is not None:
        win.state.set_layout("2x2")
        _select(win, cbis)
        win.worklist_dock.setVisible(False)
        _settle(500)
        win.fit_all()
        _settle()
        _save(win, a.out / "mg_4view_cbis.png")
        from engine.imaging.breast import breast_view_box

        win.state.set_layout("1x1")  # one view full screen (a hanging step), the glass over its tissue
        win.set_active(2)
        _settle()
        win.fit_all()
        _settle()
        v = win.views[2]  # R MLO: glass over the breast tissue, wholly inside the cell
        plane = v.plane()
        if plane is None:
            raise BreastReaderError(f"case {cbis}: the R MLO view shows no image")
        bx0, by0, bx1, by1 = breast_view_box(plane)
        scene = v.group.mapToScene(QPointF(bx0 + 0.5 * (bx1 - bx0), by0 + 0.62 * (by1 - by0)))
        vp = v.gv.viewport()
        at = v.gv.mapFromScene(scene)
        half = v.MAG_SIDE // 2 + 4
        at.setX(min(max(at.x(), half), vp.width() - half))
        v._on_mouse_moved(v.gv.mapToScene(at))
        v.set_magnifier(True)
        _settle()
        _save(win, a.out / "magnifier.png")
        v.set_magnifier(False)
        win.state.set_layout("2x2")
        win.worklist_dock.setVisible(True)
    # 5. the structured BI-RADS form on the paired case
    _select(win, cid)
    dlg = win.open_report()
    if dlg is not None:
        f = dlg.current()
        dlg.finding.setCurrentIndex(max(0, dlg.finding.findData("mass")))
        for name, val in (("shape", "irregular"), ("margin", "spiculated"), ("density", "high density")):
            if name in dlg.desc_boxes:
                dlg.desc_boxes[name].setCurrentIndex(dlg.desc_boxes[name].findData(val))
        dlg.clock.setCurrentIndex(dlg.clock.findData("10 o'clock"))
        dlg.distance.setValue(4.0)
        dlg.depth_box.setCurrentIndex(dlg.depth_box.findData("middle"))
        dlg.assess.setCurrentIndex(dlg.assess.findData("4B"))
        dlg.density["R"].setCurrentIndex(dlg.density["R"].findData("C"))
        dlg.density["L"].setCurrentIndex(dlg.density["L"].findData("C"))
        _settle()
        _save(dlg, a.out / "birads_form.png")
        dlg.close()
    # 6. the import preview of a DICOM exam folder (the CBIS exam's files + one stray file)
    if cbis is not None:
        src = tmp / "exam-to-import"
        src.mkdir()
        for f in sorted((tmp / "study" / "cases" / cbis).glob("*.dcm")):
            shutil.copy(f, src / f.stem)
        (src / "readme.txt").write_text("not an image")
        imp = win.import_dialog(src)
        _settle()
        _save(imp, a.out / "import_preview.png")
        imp.close()
    # 7. current | prior comparison on a TEST CONSTRUCTION (the demo has no real prior exam)
    if cbis is not None:
        prior_shot(win, tmp, cbis, a.out)
    win.close()
    # 8. the reading session: MR with W/L changed and scrolled; then AI hidden until rated
    session_shots(tmp, a.out)
    if cbis is not None:
        session_prior_shot(tmp, cbis, a.out)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def prior_shot(win: object, tmp: Path, cbis: str, out: Path) -> None:
    """``prior_comparison.png``: current | prior of the R CC view. TEST CONSTRUCTION: the demo
    has no earlier exam of any patient, so the "prior" is the same CBIS-DDSM exam copied with
    an earlier exam date; the case header and this docstring say so."""
    root = tmp / "prior-study"
    _prior_construction(tmp, cbis, root)
    if not win.open_study(root, wait=True):  # type: ignore[attr-defined]  # wait: the demo has the same case id
        return
    _select(win, cbis)
    win.worklist_dock.setVisible(False)  # type: ignore[attr-defined]
    win.set_active(0)  # type: ignore[attr-defined]
    win.toggle_prior()  # type: ignore[attr-defined]
    _wait(win.prior_shown, 60, lambda: bool(getattr(win, "prior_compare", None)) and win.prior_compare.isVisible())  # type: ignore[attr-defined]
    _settle(500)
    win.prior_compare.fit_all()  # type: ignore[attr-defined]
    _settle()
    _save(win, out / "prior_comparison.png")
    win.toggle_prior()  # type: ignore[attr-defined]
    win.worklist_dock.setVisible(True)  # type: ignore[attr-defined]


def _prior_construction(tmp: Path, cbis: str, root: Path) -> None:
    """TEST CONSTRUCTION: the CBIS-DDSM exam ``cbis`` and a copy of it dated two years earlier,
    linked as one patient's two exams (the demo has no real prior exam)."""
    from engine.cases import create_study
    from engine.cases.store import load_case, save_case

    note = ("TEST CONSTRUCTION: no real prior exists in the demo; the 'prior' is the same CBIS-DDSM exam "
            "copied with an earlier date")
    create_study(root, "prior comparison (test construction)")
    for cid, date in ((cbis, "2025-03-04"), (f"{cbis}-as-prior", "2023-03-01")):
        shutil.copytree(tmp / "study" / "cases" / cbis, root / "cases" / cid)
        c = load_case(root / "cases" / cid)
        c.case_id, c.exam_date, c.patient_ref, c.description = cid, date, "TEST-CONSTRUCTION", note
        save_case(c)


def session_prior_shot(tmp: Path, cbis: str, out: Path) -> None:
    """``reading_session_prior.png``: the blinded session's Shift+P on the same TEST CONSTRUCTION
    as ``prior_comparison.png`` (no dates, names or truth of the prior are shown)."""
    from engine.study.demo import write_demo_definition
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    root = tmp / "prior-session-study"
    _prior_construction(tmp, cbis, root)
    d = write_demo_definition(tmp / "rs-prior", root, case_ids=[cbis], washout_days=0, n_readers=1)
    run = StudyRun(load_design(d))
    win = ReadingSessionWindow(run)
    win.resize(1600, 1000)
    win.show()
    win.sign_in("R1")
    _wait(win.case_loaded, 60, lambda: bool(win.views))
    win.set_active(0)
    win.toggle_prior()
    _wait(win.prior_shown, 60, lambda: win.prior_compare is not None and win.prior_compare.isVisible())
    _settle(500)
    win.prior_compare.fit_all()
    _settle()
    _save(win, out / "reading_session_prior.png")
    win.close()
    run.close()


def session_shots(tmp: Path, out: Path) -> None:
    """Reading-session window on the demo: an MR case scrolled with W/L changed, and the aided
    arm before the reader's rating (AI hidden)."""
    from engine.study.demo import write_demo_definition
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    from engine.cases import Truth, load_study, save_case

    study = load_study(tmp / "study")
    for c in study.cases:
        if "MR" in c.modalities and c.truth is None:
            # the real demo MRIs have no pathology, and a session refuses cases without truth:
            # in this throw-away copy only, a placeholder the session never shows
            c.truth = Truth("benign", source="placeholder for the screenshot session (no pathology known)")
            save_case(c)
    ids = [c.case_id for c in study.cases if c.truth is not None and ("MR" in c.modalities or c.case_id.endswith("cbis"))]
    truth = {c.case_id: int(c.truth.malignant) for c in study.cases if c.case_id in ids and c.truth is not None}
    d = write_demo_definition(tmp / "rs", tmp / "study", case_ids=ids, ai_truth=truth, washout_days=0, n_readers=1)
    run = StudyRun(load_design(d))
    win = ReadingSessionWindow(run)
    win.resize(1600, 1000)
    win.show()
    win.sign_in("R1")
    _wait(win.case_loaded, 60, lambda: bool(win.views))
    shot_4view = False
    for _ in range(len(ids) * 2):
        if win.current is None or "MR" in win.current.case.modalities:
            break
        if not shot_4view and len(win.views) == 4:  # a CBIS-DDSM 4-view exam, as the workstation hangs it
            _settle(500)
            win.fit_all()
            _settle()
            _save(win, out / "reading_session_4view_cbis.png")
            shot_4view = True
        win.set_rating(3, "2")
        win._on_submit_clicked()
        _wait(win.case_loaded, 60, lambda: bool(win.views))
    if win.current is not None:
        v = next((x for x in win.views if x.n_frames > 1), win.views[0])  # the MR stack, not its US
        win.set_active(win.views.index(v))
        v.view_state.scroll(2)
        c, w = v.view_state.window
        v.view_state.set("window", (c * 0.8, w * 0.6))
        v._on_mouse_moved(v.group.mapToScene(QPointF(v.image_size()[0] * 0.5, v.image_size()[1] * 0.5)))
        _settle()
        _save(win, out / "reading_session_wl_mr.png")
    while win.current is not None and win.current.arm.arm_id != "aided":
        win.set_rating(3, "2")
        win._on_submit_clicked()
        _wait(win.case_loaded, 60, lambda: bool(win.views))
    if win.current is not None:
        _settle()
        _save(win, out / "session_ai_hidden_until_rated.png")
        win.set_rating(6, "4A")
        _settle()
        _save(win, out / "session_ai_after_rating.png")
    win.close()
    run.close()


if __name__ == "__main__":
    sys.exit(main())
