"""Issue 17 viewer defects, each driven by keys and mouse: priors, crop-to-breast on real films,
the reading session's workstation keys, inferred laterality, training-set notes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.cases import Case, CaseImage, load_study, save_case
from engine.errors import CaseFormatError
from gui_helpers import click, drag, image_point, key
from studies import add_bilateral_case, add_prior_pair, build_study, mammogram

ROOT = Path(__file__).resolve().parents[2]
DEMO_CASES = ROOT / "resources" / "demo" / "cases"


def _open(make_window, folder: Path, qtbot, case_id: str):
    win = make_window()
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        assert win.open_study(folder)
    if win.state.current.case.case_id != case_id:
        with qtbot.waitSignal(win.case_loaded, timeout=15000):
            win.state.select_case(case_id)
    qtbot.wait(30)
    return win


# ----------------------------------------------------------------------------- priors
def test_find_prior_needs_same_patient_and_an_earlier_date(tmp_path: Path) -> None:
    from reader_app.priors import find_prior

    def case(cid: str, ref: str | None, date: str | None) -> Case:
        return Case(cid, tmp_path, images=[CaseImage("a", tmp_path / "a.png", "MG", "CC", "R")],
                    patient_ref=ref, exam_date=date)

    now = case("now", "P1", "2025-01-02")
    older, oldest = case("older", "P1", "2024-01-01"), case("oldest", "P1", "2020-01-01")
    other, later, undated = case("other", "P2", "2023-01-01"), case("later", "P1", "2026-01-01"), case("u", "P1", None)
    assert find_prior([now, oldest, older, other, later, undated], now) is older  # the latest earlier one
    assert find_prior([now, other, later, undated], now) is None  # other patient / later exam / no date
    assert find_prior([now, older], case("x", None, "2025-01-02")) is None  # no patient reference


def test_exam_date_stored_parsed_and_dropped_by_deidentification(tmp_path: Path) -> None:
    from engine.cases.store import load_case

    folder = tmp_path / "c1"
    folder.mkdir()
    c = Case("c1", folder, images=[CaseImage("a", folder / "a.png", "MG", "CC", "R")], exam_date="2024-05-06")
    save_case(c)
    assert load_case(folder).exam_date == "2024-05-06"
    raw = json.loads((folder / "case.json").read_text())
    raw["exam_date"] = "20230102"  # DICOM form
    (folder / "case.json").write_text(json.dumps(raw))
    assert load_case(folder).exam_date == "2023-01-02"
    raw["exam_date"] = "yesterday"
    (folder / "case.json").write_text(json.dumps(raw))
    with pytest.raises(CaseFormatError, match="exam_date"):
        load_case(folder)


def test_dicom_import_links_two_exams_of_one_patient_as_prior(tmp_path: Path) -> None:
    import pydicom

    from engine.cases.importers import import_dicom_folder
    from engine.io.writer import write_dicom
    from reader_app.priors import find_prior

    src = tmp_path / "src"
    src.mkdir()
    for k, (suid, date) in enumerate((("1.2.3.1", "20220301"), ("1.2.3.2", "20240305"))):
        for lat, side in (("R", "left"), ("L", "right")):
            f = src / f"e{k}{lat}.dcm"
            write_dicom(f, mammogram(side=side), modality="MG", laterality=lat, view="CC", patient_id="PAT9",
                        study_uid=suid)
            ds = pydicom.dcmread(f)
            ds.StudyDate = date
            ds.save_as(f)
    import_dicom_folder(src, tmp_path / "study")
    study = load_study(tmp_path / "study")
    assert len(study.cases) == 2 and {c.exam_date for c in study.cases} == {"2022-03-01", "2024-03-05"}
    now = next(c for c in study.cases if c.exam_date == "2024-03-05")
    prior = find_prior(study.cases, now)
    assert prior is not None and prior.exam_date == "2022-03-01"


@pytest.fixture
def prior_study(tmp_path: Path) -> Path:
    root = build_study(tmp_path / "study", bad_image=False, bad_case=False)
    add_prior_pair(root)
    return root


def test_prior_comparison_shows_the_same_view_side_by_side(make_window, prior_study: Path, qtbot) -> None:
    win = _open(make_window, prior_study, qtbot, "E2025")
    titles = [v.slot.title for v in win.views]
    assert titles[:2] == ["R CC MG", "L CC MG"]
    win.set_active(1)  # L CC
    with qtbot.waitSignal(win.prior_shown, timeout=15000):
        key(qtbot, win, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    pc = win.prior_compare
    assert pc.isVisible() and not win.grid_host.isVisible()
    cur, pri = pc.views
    assert cur.title.text() == "CURRENT 2025-03-04 · L CC MG"
    assert pri.title.text() == "PRIOR 2023-03-01 · L CC MG"
    assert pri.image is not None and pri.slot.image_id == "lcc"
    assert pri.slot.flip == cur.slot.flip  # same breast, same orientation
    assert not np.array_equal(pri.image.pixels, cur.image.pixels)
    # zoom one side: the other follows
    cur.vb.scaleBy((0.5, 0.5))
    cur._on_range_changed()
    assert pri.normalized_range() == pytest.approx(cur.normalized_range(), abs=0.02)
    key(qtbot, win, Qt.Key.Key_Tab)  # next view: R MLO; the prior has no MLO and says so
    cur, pri = pc.views
    assert cur.slot.title == "R MLO MG" or cur.title.text().endswith("R MLO MG")
    assert pri.image is None and "no MG R MLO" in pri.message.toPlainText()
    key(qtbot, win, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)  # back to the hanging
    assert not pc.isVisible() and win.grid_host.isVisible()
    # the prior itself has no earlier exam: one status line, no comparison
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        win.state.select_case("E2023")
    key(qtbot, win, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert "No prior to compare" in win.statusBar().currentMessage() and not pc.isVisible()


def test_magnifier_works_in_the_prior_comparison(make_window, prior_study: Path, qtbot) -> None:
    """Hold G over the PRIOR side: its glass shows the prior's own pixels; with the mouse
    elsewhere the CURRENT side (the active view on screen) gets it; release hides both."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QCursor

    win = _open(make_window, prior_study, qtbot, "E2025")
    win.set_active(0)  # R CC: the prior has it
    with qtbot.waitSignal(win.prior_shown, timeout=15000):
        key(qtbot, win, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    cur, pri = win.prior_compare.views
    qtbot.wait(50)
    w, h = pri.image_size()
    pri._on_mouse_moved(pri.group.mapToScene(QPointF(w * 0.4, h * 0.5)))
    QCursor.setPos(pri.mapToGlobal(pri.rect().center()))
    if not pri.rect().contains(pri.mapFromGlobal(QCursor.pos())):
        pytest.skip("this platform plugin cannot place the cursor")
    qtbot.keyPress(win, Qt.Key.Key_G)
    assert pri.magnifier_visible() and not cur.magnifier_visible()
    assert not pri._magnifier.pixmap().isNull() and pri._magnifier.pixmap().width() == pri.MAG_SIDE
    glass = pri._magnifier_pixels(w * 0.4, h * 0.5)
    assert glass.std() > 0 and not np.array_equal(glass, cur._magnifier_pixels(w * 0.4, h * 0.5))
    qtbot.keyRelease(win, Qt.Key.Key_G)
    assert not pri.magnifier_visible()
    QCursor.setPos(win.mapToGlobal(win.rect().topLeft()))  # over no view: the current side's glass
    cur._on_mouse_moved(cur.group.mapToScene(QPointF(w * 0.4, h * 0.5)))
    qtbot.keyPress(win, Qt.Key.Key_G)
    assert cur.magnifier_visible() and not pri.magnifier_visible()
    assert not any(v.magnifier_visible() for v in win.views)  # never the hidden hanging's views
    qtbot.keyRelease(win, Qt.Key.Key_G)
    assert not cur.magnifier_visible()


# ----------------------------------------------------------------------------- crop to breast
def test_fit_crops_real_cbis_films_to_the_breast(make_window, tmp_path: Path, qtbot) -> None:
    src = DEMO_CASES / "demo-11-cbis"
    if not (src / "RCC.dcm").exists():
        pytest.skip("the demo's CBIS-DDSM exam is not in this checkout")
    from engine.cases import create_study
    from engine.imaging.breast import breast_view_box

    create_study(tmp_path / "s", "cbis")
    shutil.copytree(src, tmp_path / "s" / "cases" / "demo-11-cbis")
    win = _open(make_window, tmp_path / "s", qtbot, "demo-11-cbis")
    assert [v.slot.title for v in win.views] == ["R CC MG", "L CC MG", "R MLO MG", "L MLO MG"]
    key(qtbot, win, Qt.Key.Key_Z)
    cropped = []
    for v in win.views:
        w, h = v.image_size()
        (x0, x1), (y0, y1) = v.vb.viewRange()
        bx0, by0, bx1, by1 = breast_view_box(v.plane())
        if v.slot.flip:
            bx0, bx1 = w - bx1, w - bx0
        # the whole breast box is in view and fills the cell in one direction (fit to the box,
        # not to the film, which is mostly empty)
        assert x0 <= bx0 + 2 and x1 >= bx1 - 2 and y0 <= by0 + 2 and y1 >= by1 - 2, v.slot.title
        assert max((bx1 - bx0) / (x1 - x0), (by1 - by0) / (y1 - y0)) > 0.9, v.slot.title
        vp = v.gv.viewport()
        zoom = vp.height() / (y1 - y0)  # screen px per image px
        film_fit = min(vp.width() / w, vp.height() / h)
        if zoom > 1.1 * film_fit:
            cropped.append(v.slot.title)
    assert "R CC MG" in cropped, "crop-to-breast shows the R CC film no larger than the whole film"
    # the chest walls face each other at the cells' edges: R views on the right edge of their
    # cells, L on the left (no empty band behind the chest wall)
    for v in win.views:
        (vx0, vx1), _ = v.vb.viewRange()
        w = v.image_size()[0]
        if v.slot.laterality == "R":
            assert abs(vx1 - w) <= 0.03 * w, (v.slot.title, vx0, vx1, w)
        else:
            assert abs(vx0) <= 0.03 * w, (v.slot.title, vx0, vx1, w)


# ----------------------------------------------------------------------------- laterality
def test_inferred_laterality_is_shown_as_inferred_and_dicom_wins(make_window, tmp_path: Path, qtbot) -> None:
    import cv2

    from engine.cases import create_study
    from engine.io.writer import write_dicom

    create_study(tmp_path / "s", "lat")
    c = tmp_path / "s" / "cases" / "LAT1"
    c.mkdir(parents=True)
    cv2.imwrite(str(c / "mlo.png"), (mammogram(side="right") >> 4).astype(np.uint8))
    write_dicom(c / "cc.dcm", mammogram(side="left"), modality="MG", laterality="R", view="CC")
    save_case(Case("LAT1", c, images=[CaseImage("mlo", c / "mlo.png", "MG", "MLO", None),
                                      CaseImage("cc", c / "cc.dcm", "MG", "CC", "L")]))  # case file says L
    win = _open(make_window, tmp_path / "s", qtbot, "LAT1")
    titles = {v.slot.image_id: v.slot.title for v in win.views}
    assert titles["mlo"].startswith("R? MLO") and "laterality inferred" in titles["mlo"]
    assert titles["cc"].startswith("R CC") and "DICOM says R" in titles["cc"]
    assert {v.slot.image_id: v.slot.laterality_source for v in win.views} == {"mlo": "inferred", "cc": "DICOM"}


# ----------------------------------------------------------------------------- training data
def test_ai_panel_marks_images_from_the_models_training_data(qtbot) -> None:
    from engine.inference.case import ModelInfo
    from reader_app.ai import AIResult
    from reader_app.qt_panels import AIPanel

    name = "us_effnet_lite0_busi"
    if not (ROOT / "resources" / "models" / name).exists():
        pytest.skip(f"model {name} is not shipped in this checkout")
    panel = AIPanel()
    qtbot.addWidget(panel)
    case = Case("c", Path("."), images=[CaseImage("us_1", Path("us.png"), "US", source="BUSI malignant_10")])
    res = AIResult(case_id="c", per_modality={"US": 0.97}, models={"US": ModelInfo("US", name=name)})
    panel.show_result(res, case=case)
    assert "in training data" in panel.scores.text() and "us_1" in panel.scores.text()
    clean = Case("d", Path("."), images=[CaseImage("us_1", Path("us.png"), "US", source="my clinic")])
    panel.show_result(AIResult(case_id="d", per_modality={"US": 0.4}, models={"US": ModelInfo("US", name=name)}), case=clean)
    assert "in training data" not in panel.scores.text()


# ----------------------------------------------------------------------------- reading session
@pytest.fixture
def mg_definition(tmp_path: Path) -> Path:
    from engine.cases import Truth
    from engine.cases.store import load_case
    from engine.study.demo import write_demo_definition

    root = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    add_bilateral_case(root)
    b = load_case(root / "cases" / "B001")
    b.truth = Truth("malignant", source="test construction")
    save_case(b)
    return write_demo_definition(tmp_path / "rs", root, case_ids=["B001", "U001"], ai_truth={"B001": 1, "U001": 0},
                                 washout_days=0, n_readers=1)


def _session(qtbot, definition: Path, case_id: str):
    from engine.study.design import load_design
    from engine.study.session import StudyRun
    from reader_app.study.qt_session import ReadingSessionWindow

    run = StudyRun(load_design(definition))
    win = ReadingSessionWindow(run)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    win.sign_in("R1")
    for _ in range(3):
        qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
        if win.current.case.case_id == case_id:
            break
        win.set_rating(3, "2")
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
    assert win.current.case.case_id == case_id
    qtbot.wait(50)  # the deferred fit
    return win, run


def test_session_uses_the_workstation_keys(make_window, qtbot, mg_definition: Path) -> None:
    """Every view/tool key of the workstation (Help > Keyboard shortcuts) does the same in the
    session; only case navigation, truth and lesion ids are withheld."""
    ws = make_window()
    table = {cmd: keys for _menu, cmd, keys in ws.shortcut_table}
    win, run = _session(qtbot, mg_definition, "B001")
    try:
        for tool in ("navigate", "box", "polygon", "freehand", "ruler"):
            k = table[f"{tool.capitalize()} tool"]
            qtbot.keyClick(win, getattr(Qt.Key, f"Key_{k}"))
            assert win.tool == tool and all(v.tool == tool for v in win.views), k
        qtbot.keyClick(win, Qt.Key.Key_V)
        assert table["Cycle layout"] == "L" and table["Fit all views"] == "Z" and table["Invert"] == "I"
        assert table["True size 1:1"] == "O" and table["Window preset 2"] == "F3"
        assert table["Next hanging step (4-view, CC pair, MLO pair, single views)"] == "H"
        assert table["Next slice (MR; nothing on 2-D images)"] == "Down, Right"
        v = win.active_view()
        qtbot.keyClick(win, Qt.Key.Key_I)
        assert v.view_state.invert
        qtbot.keyClick(win, Qt.Key.Key_F3)
        assert v.view_state.window == v._presets[1][1]
        qtbot.keyClick(win, Qt.Key.Key_O)
        assert v.vb.viewPixelSize()[0] == pytest.approx(1.0, rel=0.02)
        qtbot.keyClick(win, Qt.Key.Key_R)
        assert not v.view_state.invert and v.view_state.window == v._presets[0][1]
        # the 2-D case: every arrow and the workstation's case keys change nothing
        for k in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Up, Qt.Key.Key_PageDown,
                  Qt.Key.Key_BracketRight):
            qtbot.keyClick(win, k)
        assert win.current.case.case_id == "B001" and win.reading.score is None
        # withheld in a study: T (truth) and N (new lesion id) do nothing here
        qtbot.keyClick(win, Qt.Key.Key_T)
        assert not any(v.show_truth for v in win.views)
    finally:
        win.close()
        run.close()


def test_session_hanging_steps_and_portrait_cells(qtbot, mg_definition: Path) -> None:
    win, run = _session(qtbot, mg_definition, "B001")
    try:
        assert [v.slot.title for v in win.views] == ["R CC MG", "L CC MG", "R MLO MG", "L MLO MG"]
        assert all(v.isVisible() for v in win.views)
        for v in win.visible_views():  # portrait cells sized for mammograms
            assert v.width() / v.height() <= 0.82 * 1.1, (v.width(), v.height())
        # chest walls back to back: R on the right edge of its cell, L on the left (as displayed)
        from engine.imaging.breast import chest_wall_side

        for v in win.views:
            stored = chest_wall_side(v.plane())
            shown = {"left": "right", "right": "left"}[stored] if v.slot.flip else stored
            assert shown == ("right" if v.slot.laterality == "R" else "left"), v.slot.title
        seen = []
        for _ in range(3):
            qtbot.keyClick(win, Qt.Key.Key_H)
            seen.append([v.slot.title for v in win.visible_views()])
        assert seen == [["R CC MG", "L CC MG"], ["R MLO MG", "L MLO MG"], ["R CC MG"]]
        assert win.active_view().slot.title == "R CC MG"
        qtbot.keyClick(win, Qt.Key.Key_Tab)  # single view: Tab steps to the next one
        assert [v.slot.title for v in win.visible_views()] == ["L CC MG"]
        qtbot.keyClick(win, Qt.Key.Key_L)  # 1x1 -> 1x2
        assert len(win.visible_views()) == 2
        qtbot.keyClick(win, Qt.Key.Key_L)  # -> 2x2
        assert len(win.visible_views()) == 4
        assert win.reading.score is None  # no layout key rates
    finally:
        win.close()
        run.close()


def test_session_polygon_inside_a_box_freehand_and_enter(qtbot, mg_definition: Path) -> None:
    win, run = _session(qtbot, mg_definition, "B001")
    try:
        v = win.active_view()
        vp = v.gv.viewport()
        w, h = v.image_size()
        qtbot.keyClick(win, Qt.Key.Key_B)
        drag(vp, image_point(v, 0.2 * w, 0.2 * h), image_point(v, 0.8 * w, 0.8 * h))
        assert [m.kind for m in win.reading.marks] == ["box"]
        qtbot.keyClick(win, Qt.Key.Key_6)  # confidence of M1
        qtbot.keyClick(win, Qt.Key.Key_P)
        for fx, fy in ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)):  # every vertex inside the box
            click(vp, image_point(v, fx * w, fy * h))
        assert len(v._draft) == 4
        qtbot.keyClick(win, Qt.Key.Key_Return)  # closes the polygon, does not submit
        assert [m.kind for m in win.reading.marks] == ["box", "polygon"] and win.current.case.case_id == "B001"
        xs = [p[0] for p in win.reading.marks[1].points]
        assert min(xs) == pytest.approx(0.4 * w, abs=0.03 * w) and max(xs) == pytest.approx(0.6 * w, abs=0.03 * w)
        qtbot.keyClick(win, Qt.Key.Key_8)  # confidence of M2
        qtbot.keyClick(win, Qt.Key.Key_F)
        drag(vp, image_point(v, 0.3 * w, 0.3 * h), image_point(v, 0.5 * w, 0.7 * h), steps=12)
        assert win.reading.marks[-1].kind == "polygon" and len(win.reading.marks[-1].points) >= 3
        qtbot.keyClick(win, Qt.Key.Key_Escape)  # back to rating the case
        qtbot.keyClick(win, Qt.Key.Key_7)
        qtbot.keyClick(win, Qt.Key.Key_C)
        qtbot.keyClick(win, Qt.Key.Key_4)
        qtbot.keyClick(win, Qt.Key.Key_B)
        assert win.reading.score == 7 and win.reading.birads == "4B"
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        rec = json.loads(mg_definition.with_suffix(".marks.json").read_text())["R1"]
        saved = next(iter(rec.values()))["B001"]
        assert [m["kind"] for m in saved["marks"]] == ["box", "polygon", "polygon"]
        assert [m["confidence"] for m in saved["marks"]][:2] == [6, 8]
    finally:
        win.close()
        run.close()


def _clipped_labels(top) -> list[str]:
    """Visible labels whose text needs more width than they got (word-wrapped labels and
    labels that elide on purpose, with the full text in a tooltip, excepted)."""
    from PySide6.QtWidgets import QLabel, QSizePolicy

    out = []
    for lab in top.findChildren(QLabel):
        if not lab.isVisible() or not lab.text().strip() or lab.wordWrap() or lab.pixmap() is not None and not lab.pixmap().isNull():
            continue
        if lab.sizePolicy().horizontalPolicy() == QSizePolicy.Policy.Ignored:
            continue
        if lab.width() + 1 < lab.sizeHint().width():
            out.append(f"{lab.objectName() or lab.text()[:40]!r}: {lab.width()} < {lab.sizeHint().width()}")
    return out


def test_no_text_clipped_at_1600_px(make_window, qtbot, mg_definition: Path, prior_study: Path) -> None:
    win, run = _session(qtbot, mg_definition, "B001")
    try:
        qtbot.wait(50)
        assert _clipped_labels(win) == []
    finally:
        win.close()
        run.close()
    ws = _open(make_window, prior_study, qtbot, "E2025")
    ws.resize(1600, 1000)
    qtbot.wait(50)
    assert _clipped_labels(ws) == []


def test_demo_03_is_hung_as_its_film_marker_reads(qtbot) -> None:
    """The film's own lead marker reads R; the demo once labelled it L from the chest wall."""
    from engine.io.reader import read_image
    from reader_app.imaging import hanging_protocol

    study = load_study(ROOT / "resources" / "demo")
    case = study.case("demo-03")
    mg = case.images_of("MG")[0]
    slots = hanging_protocol(case, {mg.image_id: read_image(mg.path)})
    assert slots[0].title.startswith("R MLO") and slots[0].laterality_source in ("DICOM", "study")


def test_scale_bar_readable_zoomed_in_and_out(make_window, prior_study: Path, qtbot) -> None:
    """The bar stays 40-250 screen px with a round mm label at every zoom (it once overflowed)."""
    win = _open(make_window, prior_study, qtbot, "E2025")
    v = win.views[0]
    assert v.scale_bar is not None
    for factor in (1 / 16, 1 / 4, 4.0, 4.0, 4.0, 4.0):  # 16x in ... 16x out from the fit
        v.vb.scaleBy((factor, factor))
        qtbot.wait(5)
        px = v.scale_bar.size / v.vb.viewPixelSize()[0]
        label = v.scale_bar.text.toPlainText()
        assert 40 <= px <= 250, (factor, px)
        assert label.endswith(" mm") and float(label.split()[0]) in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
        assert px < v.gv.viewport().width()
