"""The reading session's keyboard annotation flow (issue 17: a lesion box + rating + BI-RADS in
<= 10 s per image): the sequence the benchmark times (``reader_app.bench_gui``,
benchmarks/results/gui-annotation-flow.json) stores box, confidence, rating and BI-RADS; and
what was cut from a cold session's first image (no tool key in a study that asks for marks, the
first case decoded while the reader signs in, one decode per file) is real."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from engine.study.demo import write_demo_definition
from engine.study.design import load_design
from engine.study.session import StudyRun
from gui_helpers import drag, image_point
from studies import add_bilateral_case, build_study


@pytest.fixture()
def froc_definition(tmp_path: Path) -> Path:
    from engine.cases import Truth, save_case
    from engine.cases.store import load_case

    root = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    add_bilateral_case(root)
    b = load_case(root / "cases" / "B001")
    b.truth = Truth("malignant", source="test construction")
    save_case(b)
    return write_demo_definition(tmp_path / "rs", root, case_ids=["B001", "U001"], washout_days=0, n_readers=1,
                                 paradigm="froc")


def _window(qtbot, definition: Path):
    from reader_app.study.qt_session import ReadingSessionWindow

    run = StudyRun(load_design(definition))
    win = ReadingSessionWindow(run)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    return win, run


def test_keyboard_flow_stores_box_rating_and_birads(qtbot, froc_definition: Path) -> None:
    win, run = _window(qtbot, froc_definition)
    try:
        qtbot.keyClick(win, Qt.Key.Key_Return)  # Enter signs the selected reader in
        qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
        qtbot.wait(50)
        cid = win.current.case.case_id
        assert win.tool == "box" and all(v.tool == "box" for v in win.views)  # a FROC study: no tool key
        v = win.active_view()
        w, h = v.image_size()
        drag(v.gv.viewport(), image_point(v, 0.3 * w, 0.3 * h), image_point(v, 0.6 * w, 0.6 * h))
        for k in (Qt.Key.Key_7, Qt.Key.Key_6, Qt.Key.Key_C, Qt.Key.Key_3):  # mark 7, case 6, BI-RADS 3
            qtbot.keyClick(win, k)
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        rating = next(r for r in run.store.ratings() if r.case_id == cid)
        assert rating.score == 6.0 and rating.birads == "3"
        (mark,) = [m for m in run.store.marks() if m.case_id == cid]
        assert mark.kind == "box" and mark.rating == 7 and mark.image_id == v.slot.image_id
        (x0, y0), (x1, y1) = mark.points
        assert abs(x0 - 0.3 * w) < 0.05 * w and abs(y1 - 0.6 * h) < 0.05 * h
    finally:
        win.close()
        run.close()


def test_roc_study_starts_with_the_navigate_tool(qtbot, tmp_path: Path) -> None:
    root = build_study(tmp_path / "cases", bad_image=False, bad_case=False)
    d = write_demo_definition(tmp_path / "rs", root, ai_truth={"P001": 1, "M001": 0, "U001": 0},
                              washout_days=0, n_readers=1)
    win, run = _window(qtbot, d)
    try:
        assert win.tool == "navigate"  # no marks asked for: a left-drag pans, as in the workstation
    finally:
        win.close()
        run.close()


def test_first_case_is_decoded_while_the_reader_signs_in(qtbot, froc_definition: Path) -> None:
    win, run = _window(qtbot, froc_definition)
    try:
        store = run.store
        first = store.order("R1", run.design.arms_for("R1")[0].arm_id)[0]
        case = run.cases[first]
        qtbot.waitUntil(lambda: all(win.cache.peek(ci) is not None for ci in case.images), timeout=15000)
        assert win.session is None  # not signed in yet: nothing shown, nothing marked as opened
        reads: list[str] = []
        read = win.cache.reader

        def counting(ci):  # any decode from here on is a cache miss
            reads.append(str(ci.path))
            return read(ci)

        win.cache.reader = counting
        win.sign_in("R1")
        qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
        assert win.current.case.case_id == first
        assert not {str(ci.path) for ci in case.images} & set(reads)  # shown from the cache
    finally:
        win.close()
        run.close()


def test_image_cache_decodes_a_file_once_for_concurrent_readers(tmp_path: Path) -> None:
    from engine.cases import CaseImage
    from reader_app.imaging import ImageCache

    calls: list[str] = []

    def slow_read(ci):
        calls.append(ci.image_id)
        time.sleep(0.2)
        return object()

    cache = ImageCache(reader=slow_read)
    ci = CaseImage("a", tmp_path / "a.dcm", "MG", "CC", "R")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(ci))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["a"] and len(got) == 3 and got[0] is got[1] is got[2]

    def failing(ci):
        calls.append("fail")
        raise OSError("disk gone")

    cache2 = ImageCache(reader=failing)
    with pytest.raises(OSError):
        cache2.get(ci)
    with pytest.raises(OSError):  # a failed read is not remembered: the next get tries again
        cache2.get(ci)
    assert calls.count("fail") == 2


def test_point_mark_by_x_and_a_click_with_its_confidence(qtbot, froc_definition: Path) -> None:
    from gui_helpers import click

    win, run = _window(qtbot, froc_definition)
    try:
        win.sign_in("R1")
        qtbot.waitUntil(lambda: bool(win.views), timeout=15000)
        qtbot.wait(50)
        cid = win.current.case.case_id
        qtbot.keyClick(win, Qt.Key.Key_X)  # the point-mark tool (localisation without a box)
        assert win.tool == "point"
        v = win.active_view()
        w, h = v.image_size()
        click(v.gv.viewport(), image_point(v, 0.4 * w, 0.5 * h))
        assert [m.kind for m in win.reading.marks] == ["point"] and win.reading.target == "M1"
        for k in (Qt.Key.Key_8, Qt.Key.Key_5, Qt.Key.Key_C, Qt.Key.Key_4, Qt.Key.Key_C):  # mark 8, case 5, 4C
            qtbot.keyClick(win, k)
        assert win.reading.birads == "4C" and win.reading.score == 5
        with qtbot.waitSignal(win.submitted, timeout=5000):
            qtbot.keyClick(win, Qt.Key.Key_Return)
        (mark,) = [m for m in run.store.marks() if m.case_id == cid]
        assert mark.kind == "point" and mark.rating == 8
        (x, y), = mark.points
        assert abs(x - 0.4 * w) < 0.05 * w and abs(y - 0.5 * h) < 0.05 * h
    finally:
        win.close()
        run.close()
