"""MRI reading: Qt-free session (hanging, linking, phases, MIP, kinetics, export) and the window.

Known truth: a SYNTHETIC bilateral DCE study (engine.data.synthetic) written as scanner-like
DICOM; the real demo case demo-09-mri-p11 (mimbcd-dev p11, CC BY-SA 4.0) where it is bundled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from engine.data.synthetic import synthetic_dce_study, write_dce_study_dicom
from engine.errors import BreastReaderError, ImageReadError
from reader_app.mri_state import MriSession

DEMO_P11 = Path(__file__).resolve().parents[2] / "resources" / "demo" / "cases" / "demo-09-mri-p11"


@pytest.fixture(scope="module")
def dce(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    st = synthetic_dce_study(5, lesions=(("fast", "washout"), ("medium", "persistent")), n_slices=12, rows=96,
                             cols=144)
    folder = tmp_path_factory.mktemp("mri")
    write_dce_study_dicom(st, folder / "with_sub")
    write_dce_study_dicom(st, folder / "no_sub", subtractions=False)
    return st, folder


def _box(les: dict) -> tuple[int, list[list[float]]]:
    core = ndimage.binary_erosion(les["mask"])
    z = int(np.argmax(core.sum(axis=(1, 2))))
    rows, cols = np.nonzero(core[z])
    r, c = int(np.median(rows)), int(np.median(cols))
    return z, [[c - 1, r - 1], [c + 1, r + 1]]


def test_session_hangs_links_steps_and_measures(dce: tuple[dict, Path], tmp_path: Path) -> None:
    st, folder = dce
    s = MriSession.open(folder / "with_sub")
    assert [v.role for v in s.viewports] == ["subtraction", "pre", "t2", "dwi"]
    assert "scanner" in s.viewports[0].title and s.post_phases == [1, 2, 3, 4, 5]
    # Scrolling the subtraction moves the pre (same grid) and the T2 (2x spacing) to the same place.
    s.scroll(0, 2)
    k = s.viewports[0].slice
    assert s.viewports[1].slice == k and s.viewports[2].slice == int(np.floor((k - 0.5) / 2 + 0.5))
    assert s.labels(0) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    s.step_phase(2)
    assert s.phase == 3 and s.viewports[0].title.startswith("SUB post 3")
    s.step_phase(10)
    assert s.phase == 5
    s.toggle_mip()
    assert s.image(0).shape == st["phases"][0].shape[1:] and "projection" in s.slice_text(0)
    s.toggle_mip()
    # Kinetics on the washout lesion, drawn on the subtraction viewport.
    z, box = _box(st["lesions"][0])
    s.viewports[0].slice = z
    m = s.measure(0, "box", box)
    assert (m.curve.initial, m.curve.delayed) == ("fast", "washout")
    s.show_map = True
    codes = s.map_overlay(0)
    r, c = int(box[0][1]) + 1, int(box[0][0]) + 1
    assert codes is not None and codes[r, c] == 3
    paths = s.export_kinetics(tmp_path / "exp")
    doc = json.loads(paths[0].read_text())
    assert doc["curve"]["initial"] == "fast" and doc["curve"]["delayed"] == "washout"
    assert "BI-RADS" in doc["thresholds_source"] and paths[1].read_text().count("\n") == 7
    with pytest.raises(BreastReaderError, match="DCE or subtraction"):
        s.measure(2, "box", box)  # the T2 is on another grid


def test_session_computes_subtraction_when_scanner_sent_none(dce: tuple[dict, Path]) -> None:
    st, folder = dce
    s = MriSession.open(folder / "no_sub")
    assert s.viewports[0].key == "computed:sub:1" and "computed" in s.viewports[0].title
    assert np.array_equal(s.image(0), (st["phases"][1].astype(np.int32) - st["phases"][0])[s.viewports[0].slice])
    s.step_phase(1)
    assert s.viewports[0].key == "computed:sub:2"
    z, box = _box(st["lesions"][1])
    s.viewports[0].slice = z
    assert s.measure(0, "box", box).curve.label == "medium / persistent"


def test_session_survives_a_broken_series(dce: tuple[dict, Path], tmp_path: Path) -> None:
    import shutil

    from engine.mri.series import scan_study

    st, folder = dce
    work = tmp_path / "s"
    shutil.copytree(folder / "with_sub", work)
    t2 = scan_study(work).of_kind("t2")[0]
    victim = Path(t2.files[0])
    victim.write_bytes(victim.read_bytes()[:-2000])  # pixel data cut short
    study = scan_study(work)
    assert any(Path(f) == victim for f, _ in study.skipped)  # named, not fatal
    assert study.of_kind("t2")[0].n_slices == t2.n_slices - 1
    # A series that fails to decode is left out of the hanging, with the reason.
    s = MriSession(study)
    bad = s.viewports[2].key

    def broken(*_a: object, **_k: object) -> np.ndarray:
        raise ImageReadError(victim.parent, "pixel data could not be decoded")

    study.volume(bad).load = broken  # type: ignore[method-assign]
    s.prepare()
    assert [v.role for v in s.viewports] == ["subtraction", "pre", "dwi"]
    assert "could not be decoded" in s.problems[bad]


@pytest.mark.skipif(not DEMO_P11.is_dir(), reason="demo MRI case not bundled")
def test_demo_p11_session() -> None:
    s = MriSession.open(DEMO_P11 / "mr")
    assert [v.role for v in s.viewports] == ["subtraction", "pre", "t2", "dwi"]
    dyn = s.study.main_dynamic
    assert dyn is not None and dyn.phase_indices == [0, 1, 2, 3, 4, 5]
    s.step_phase(1)  # post2: no scanner subtraction in the demo slab -> computed
    assert s.viewports[0].key == "computed:sub:2"
    # The scanner's SUB post1 equals post1 - pre + 100 on the demo copy too.
    sub = dyn.subtractions[1].load().astype(np.int32)
    assert np.array_equal(sub, np.maximum(dyn.phases[1].load().astype(np.int32) - dyn.phases[0].load() + 100, 0))


def test_window_opens_draws_and_measures(dce: tuple[dict, Path], qtbot: object, tmp_path: Path) -> None:
    from reader_app.qt_app import ensure_app
    from reader_app.qt_mri import MriWindow

    ensure_app()
    st, folder = dce
    win = MriWindow(folder / "with_sub", source_note="SYNTHETIC")
    qtbot.addWidget(win)  # type: ignore[attr-defined]
    with qtbot.waitSignal(win.loaded, timeout=30000):  # type: ignore[attr-defined]
        pass
    assert win.session is not None and len(win.views) == 4 and not win.error
    assert win.views[0].edges["right"].text() == "L" and win.views[0].edges["top"].text() == "A"
    win.session.scroll(0, 1)
    assert win.views[1].footer.text().startswith(f"slice {win.session.viewports[0].slice + 1}/")
    z, box = _box(st["lesions"][0])
    win.session.viewports[0].slice = z
    win.measure(0, "box", box)
    assert "fast / washout" in win.kin.result.text()
    # A contour traced with the contour tool reaches the session through the viewport's signal.
    (x0, y0), (x1, y1) = box
    win.set_tool("contour")
    assert all(v.tool == "contour" for v in win.views)
    win.views[0].boxed.emit(0, "freehand", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    assert win.session.kinetics.kind == "freehand" and win.session.kinetics.curve.delayed == "washout"
    assert win.views[0].contour_item.isVisible()
    win.session.toggle_map()
    assert win.views[0].overlay.isVisible()
    assert win.export_kinetics(tmp_path / "k")[0].name == "kinetics.json"
    assert "SYNTHETIC" in win.warn.text()
    # The series chooser puts the ADC in the T2 viewport (decoded on a worker).
    adc = win.session.study.of_kind("adc")[0].key
    assert win.views[2].series.findData(adc) >= 0
    win.choose_series(2, adc)
    qtbot.waitUntil(lambda: win.session.viewports[2].key == adc, timeout=10000)  # type: ignore[attr-defined]
    assert win.views[2].series.currentData() == adc and win.session.viewports[2].role == "adc"
    win.close()


def test_window_reports_a_folder_without_mr(tmp_path: Path, qtbot: object) -> None:
    from reader_app.qt_app import ensure_app
    from reader_app.qt_mri import MriWindow

    ensure_app()
    (tmp_path / "x.txt").write_text("no images")
    win = MriWindow(tmp_path)
    qtbot.addWidget(win)  # type: ignore[attr-defined]
    with qtbot.waitSignal(win.loaded, timeout=30000):  # type: ignore[attr-defined]
        pass
    assert "no MR images" in win.error and "no MR images" in win.status.text()
    win.close()


def test_main_window_opens_the_case_in_the_mri_window(make_window, study_dir: Path, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    win = make_window()
    assert win.open_study(study_dir)
    with qtbot.waitSignal(win.case_loaded, timeout=10000):
        win.state.select_case("M001")
    mri = win.open_mri_window()
    with qtbot.waitSignal(mri.loaded, timeout=30000):
        pass
    assert mri.session is not None and len(mri.views) == 1 and not mri.error
    mri.session.scroll(0, 2)
    assert mri.views[0].footer.text().startswith("slice ")
    # No dynamic in this one-series case: kinetics say why; the case export then has no kinetics file.
    with pytest.raises(BreastReaderError, match="pre-contrast"):
        mri.session.measure(0, "box", [[10, 10], [20, 20]])
    assert not any(p.name.startswith("kinetics") for p in win.export_annotations(tmp_path / "exp"))
    mri.close()


def test_case_export_includes_the_kinetics(make_window, dce: tuple[dict, Path], tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    from engine.cases import Case, CaseImage, create_study, load_study, save_case

    st, folder = dce
    root = tmp_path / "study"
    create_study(root, "mri-export", synthetic_note="SYNTHETIC")
    cdir = root / "cases" / "D001"
    cdir.mkdir(parents=True)
    import shutil

    shutil.copytree(folder / "with_sub", cdir / "mr")
    save_case(Case("D001", cdir, images=[CaseImage("mr", cdir / "mr", "MR", synthetic=True)], synthetic=True))
    assert load_study(root).case("D001")
    win = make_window()
    assert win.open_study(root)
    with qtbot.waitSignal(win.case_loaded, timeout=20000):
        win.state.select_case("D001")
    mri = win.open_mri_window()
    with qtbot.waitSignal(mri.loaded, timeout=30000):
        pass
    z, box = _box(st["lesions"][0])
    mri.session.viewports[0].slice = z
    mri.measure(0, "box", box)
    out = win.export_annotations(tmp_path / "exp")
    kin = [p for p in out if p.name == "kinetics.json"]
    assert kin and json.loads(kin[0].read_text())["curve"]["delayed"] == "washout"
    mri.close()


def test_synthetic_mri_model_gives_no_score_on_a_real_mri(study_dir: Path) -> None:
    from engine.cases import load_study
    from reader_app.ai import MRI_SYNTHETIC_ONLY, AIService
    from reader_app.imaging import ImageCache, load_case_images
    from studies import fake_loader

    case = load_study(study_dir).case("M001")
    case.synthetic = False
    for ci in case.images:
        ci.synthetic = False  # as a real scan would be
    images, _ = load_case_images(case, ImageCache())
    res = AIService(loader=fake_loader()).score_case(case, images, methods=())
    assert "mr_t1c" not in res.per_image and MRI_SYNTHETIC_ONLY in res.errors
    case.synthetic = True  # a synthetic test case is still scored (labelled SYNTHETIC by the panel)
    res = AIService(loader=fake_loader()).score_case(case, images, methods=())
    assert "mr_t1c" in res.per_image
