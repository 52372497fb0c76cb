"""Opening a case never holds the event loop for all its views at once (issue 17): the load
worker makes the display values (hanging, window presets, breast box, pyramid levels), the GUI
thread builds one view per event-loop turn, and a view uses what it was given."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from engine.io.types import ImageMeta, LoadedImage
from studies import add_bilateral_case, build_study, mammogram


@pytest.fixture
def bilateral_study(tmp_path: Path) -> Path:
    root = build_study(tmp_path / "study", bad_image=False, bad_case=False)
    add_bilateral_case(root)
    return root


def _open_on(make_window, folder: Path, qtbot, other: str = "P001"):
    """A window on the study, showing case ``other`` (B001, the 4-view case, comes first)."""
    win = make_window()
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        win.open_study(folder)
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        win.state.select_case(other)
    return win


def _mg(pixels: np.ndarray) -> LoadedImage:
    return LoadedImage(pixels, ImageMeta(path="t.dcm", modality="MG", source_format="DICOM"))


def test_prepared_display_values_are_the_views_own():
    """prepare_display (worker) gives the presets and breast box the view would compute, and
    pyramid levels within one grey level of the view's own direct area reduction."""
    from reader_app.display import area_level, display_plane, level_factors, prepare_display
    from engine.imaging.breast import breast_view_box
    from reader_app.imaging import window_presets

    img = _mg(mammogram(rows=600, cols=450).astype(np.uint16) * 16)
    prep = prepare_display(img, "MG")
    assert prep.presets == window_presets(img)
    assert prep.breast_box == breast_view_box(img.pixels)
    assert sorted(prep.levels) == level_factors(450, 600) == [2, 4]  # 450 // 8 = 56 < 64
    for f, lv in prep.levels.items():
        direct = area_level(display_plane(img), f)
        assert lv.shape == direct.shape == (600 // f, 450 // f)
        assert np.abs(lv.astype(int) - direct.astype(int)).max() <= 1
    rgb_grey = LoadedImage(np.repeat(img.pixels[..., None], 3, axis=2), img.meta)
    assert display_plane(rgb_grey).ndim == 2  # grey stored as RGB: one channel, as the view shows it
    stack = LoadedImage(np.zeros((5, 80, 80), np.uint16), ImageMeta(path="s", modality="MR", source_format="DICOM"))
    assert prepare_display(stack).levels == {} and prepare_display(stack).breast_box is None


def test_prepare_case_hangs_the_case_and_prepares_each_loaded_image(bilateral_study):
    """The load worker's job: the 4-view hanging in reading order, display values per loaded
    image, and a slot (no display values) for an image that could not be read."""
    from engine.cases import load_study
    from reader_app.display import prepare_case
    from reader_app.imaging import ImageCache, load_case_images

    case = next(c for c in load_study(bilateral_study).cases if c.case_id == "B001")
    images, errors = load_case_images(case, ImageCache())
    del images["lmlo"]
    out = prepare_case(case, images, {**errors, "lmlo": "LMLO.dcm: unreadable"})
    assert out.case_id == "B001" and [s.image_id for s in out.slots] == ["rcc", "lcc", "rmlo", "lmlo"]
    assert set(out.displays) == {"rcc", "lcc", "rmlo"} and all(d.breast_box for d in out.displays.values())
    assert out.errors == {"lmlo": "LMLO.dcm: unreadable"}


def test_level_factors_follow_the_views_rule():
    from reader_app.display import level_factors

    assert level_factors(4096, 3328) == [2, 4, 8, 16, 32]  # 3328 // 64 = 52 < 64: the view never asks for 64
    assert level_factors(100, 100) == []


def test_a_four_view_case_is_built_one_view_per_event_loop_turn(make_window, bilateral_study, qtbot, monkeypatch):
    """B001 (R/L CC/MLO): each view is made in its own event-loop turn, the grid keeps its 2x2
    cells meanwhile, case_loaded comes after the last, and no window preset, breast box or
    hanging test is computed on the GUI thread (the load worker made them)."""
    import reader_app.imaging as imaging
    import reader_app.qt_view as qt_view

    win = _open_on(make_window, bilateral_study, qtbot)
    gui = threading.get_ident()
    on_gui: list[str] = []

    def spy(name, real):
        def f(*a, **kw):
            if threading.get_ident() == gui:
                on_gui.append(name)
            return real(*a, **kw)
        return f

    monkeypatch.setattr(qt_view, "window_presets", spy("window_presets", qt_view.window_presets))
    monkeypatch.setattr(qt_view, "memo_breast_box", spy("memo_breast_box", qt_view.memo_breast_box))
    monkeypatch.setattr(imaging, "chest_wall_side", spy("chest_wall_side", imaging.chest_wall_side))
    turns = {"n": 0}
    ticker = QTimer()
    ticker.timeout.connect(lambda: turns.__setitem__("n", turns["n"] + 1))
    ticker.start(0)  # one tick per event-loop turn
    made: list[tuple[int, int, tuple[int, int]]] = []
    real_make = win._make_view

    def make_view(cs, slot):
        made.append((turns["n"], len(win.views), win.grid_shape()))
        return real_make(cs, slot)

    monkeypatch.setattr(win, "_make_view", make_view)
    at_loaded: list[int] = []
    win.case_loaded.connect(lambda _cid: at_loaded.append(len(win.views)))
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        win.state.select_case("B001")
    ticker.stop()
    assert [m[1] for m in made] == [0, 1, 2, 3] and at_loaded == [4]
    assert len({m[0] for m in made}) == 4  # four different event-loop turns
    assert all(m[2] == (2, 2) for m in made)  # the cells stay put while the views build
    assert on_gui == []
    assert [v.slot.title for v in win.views] == ["R CC MG", "L CC MG", "R MLO MG", "L MLO MG"]
    v = win.views[0]
    assert v._display is not None and v._presets is v._display.presets
    assert v.breast_box() == v._display.breast_box is not None
    qtbot.wait(50)
    assert v._factor == 1 or (0, v._factor) in v._pyramid  # a prepared level is what it shows


def test_leaving_a_case_while_its_views_build_stops_the_build(make_window, bilateral_study, qtbot):
    win = _open_on(make_window, bilateral_study, qtbot)
    loaded: list[str] = []
    win.case_loaded.connect(loaded.append)
    made: list[str] = []
    real_make = win._make_view

    def make_view(cs, slot):
        made.append(cs.case.case_id)
        if len(made) == 2:
            win.state.select_case("M001")  # the reader moves on mid-build
        return real_make(cs, slot)

    win._make_view = make_view  # type: ignore[method-assign]
    win.state.select_case("B001")
    qtbot.waitUntil(lambda: "M001" in loaded, timeout=15000)
    qtbot.wait(50)
    assert "B001" not in loaded and win.state.current.case.case_id == "M001"
    assert all(v.slot.image_id in {ci.image_id for ci in win.state.current.case.images} for v in win.views)
    assert len(win.views) == len(win.slots)


def test_window_level_still_adjusts_on_a_prepared_view(make_window, bilateral_study, qtbot):
    from PySide6.QtCore import QPoint, Qt

    from gui_helpers import drag

    win = _open_on(make_window, bilateral_study, qtbot)
    with qtbot.waitSignal(win.case_loaded, timeout=15000):
        win.state.select_case("B001")
    qtbot.wait(50)
    v = win.views[1]
    c0, w0 = v.view_state.window
    vp = v.gv.viewport()
    mid = QPoint(vp.width() // 2, vp.height() // 2)
    drag(vp, mid, mid + QPoint(60, 30), Qt.MouseButton.RightButton)
    c, w = v.view_state.window
    assert w > w0 and c < c0 and v.img_item.levels == pytest.approx([c - w / 2, c + w / 2])
    assert v.wl_label.text().strip() == f"W {w:.0f}  L {c:.0f}"
    assert v.apply_preset(1) and v.view_state.window == v._display.presets[1][1]
