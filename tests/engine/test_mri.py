"""engine.mri: series model, linking geometry, subtraction/MIP and kinetics.

Known truth from the SYNTHETIC bilateral DCE generator (engine.data.synthetic.synthetic_dce_study,
lesions with chosen BI-RADS curve classes), and the real mimbcd-dev p11 study (full dynamic,
scanner subtractions, T2, DWI) where ../shared/data is present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from engine.data.synthetic import DCE_DELAYED_PCT, DCE_INITIAL_PCT, synthetic_dce_study, write_dce_study_dicom
from engine.errors import ImageReadError
from engine.mri.geometry import VolumeGeometry, edge_labels, link_slice, plane_of
from engine.mri.hanging import computed_mip, computed_subtraction, default_protocol
from engine.mri.kinetics import (
    KineticsError,
    classify_curve,
    delayed_class,
    initial_class,
    kinetic_map,
    roi_mask,
    time_intensity_curve,
)
from engine.mri.series import classify, scan_study
from engine.mri.subtraction import GeometryMismatchError, mip, subtract

MIMBCD = Path(__file__).resolve().parents[3] / "shared" / "data" / "mimbcd-dev"
P11 = MIMBCD / "mri" / "mimbcd-p11"
need_p11 = pytest.mark.skipif(not P11.is_dir(), reason="mimbcd-dev (../shared/data) not available")

CURVES = (("fast", "washout"), ("medium", "persistent"), ("fast", "plateau"), ("slow", "persistent"))


@pytest.fixture(scope="module")
def synth() -> dict:
    return synthetic_dce_study(7, lesions=CURVES, n_slices=16, rows=112, cols=168)


@pytest.fixture(scope="module")
def synth_dicom(synth: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dce")
    write_dce_study_dicom(synth, folder)
    return folder


# ------------------------------------------------------------------ series model


def test_series_model_groups_classifies_and_links(synth_dicom: Path, synth: dict) -> None:
    study = scan_study(synth_dicom)
    labels = sorted(v.label for v in study.volumes)
    assert labels == sorted(["DCE pre"] + [f"DCE post {k}" for k in range(1, 6)] + [f"SUB post {k}" for k in range(1, 6)]
                            + ["T2 t2_tse_tra", "DWI b50", "DWI b800", "ADC"])
    (dyn,) = study.dynamics
    assert dyn.phase_indices == [0, 1, 2, 3, 4, 5] and sorted(dyn.subtractions) == [1, 2, 3, 4, 5]
    assert dyn.phase_times() is None  # no times written
    # Files were written shuffled: the stack must come back in slice order, equal to the truth.
    for k, vol in dyn.phases.items():
        assert np.array_equal(vol.load(), synth["phases"][k])
        assert np.all(np.diff(vol.geometry.offsets) > 0)
        assert vol.plane == "axial" and vol.linkable
    # The DWI series holds two b-values at the same positions: split into two volumes.
    dwi = study.of_kind("dwi")
    assert [v.b_value for v in dwi] == [50.0, 800.0] and {v.series_uid for v in dwi} == {dwi[0].series_uid}
    assert all(v.n_slices == synth["t2"].shape[0] for v in dwi)


def test_phase_times_from_trigger_time(synth: dict, tmp_path: Path) -> None:
    small = synthetic_dce_study(3, lesions=(("fast", "washout"),), n_post=2, n_slices=4, rows=48, cols=64)
    write_dce_study_dicom(small, tmp_path, subtractions=False, times=True)
    dyn = scan_study(tmp_path).main_dynamic
    assert dyn is not None and dyn.phase_times() == pytest.approx([0.0, 90.0, 180.0])


def test_default_hanging_protocol(synth_dicom: Path) -> None:
    study = scan_study(synth_dicom)
    assert [s.role for s in default_protocol(study)] == ["subtraction", "pre", "t2", "dwi"]
    assert "DWI b800" in default_protocol(study)[3].title


def test_classify_from_tags() -> None:
    from pydicom.dataset import Dataset

    def ds(**kw: object) -> Dataset:
        d = Dataset()
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    assert classify(ds(SeriesDescription="ep2d_diff_tra_ADC", ImageType=["DERIVED", "ADC"]))[0] == "adc"
    assert classify(ds(SeriesDescription="x", ImageType=["DIFFUSION", "TRACEW"]))[0] == "dwi"
    assert classify(ds(SeriesDescription="dyn_SUB_MIP_TRA", ImageType=["MIP_TRA", "SUB"])) == ("mip", "tra")
    assert classify(ds(SeriesDescription="t1_dyn_SUB", ImageType=["SUB"]))[0] == "subtraction"
    assert classify(ds(SeriesDescription="t1_dyn_PEI", ImageType=["M", "PEI"])) == ("map", "positive enhancement integral")
    assert classify(ds(SeriesDescription="Ax VIBRANT MPh", TemporalPositionIdentifier=2))[0] == "dce"
    assert classify(ds(SeriesDescription="t2_tirm_tra"))[0] == "t2"
    assert classify(ds(SeriesDescription="AX FSE", EchoTime=100, ScanningSequence="SE"))[0] == "t2"
    assert classify(ds(SeriesDescription="t1_tse_tra"))[0] == "t1"
    assert classify(ds(SeriesDescription="localizer"))[0] == "other"


def test_scan_reports_no_mr(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageReadError, match="no MR images"):
        scan_study(tmp_path)


# ------------------------------------------------------------------ geometry


def _axial(n: int, spacing: float, z0: float = 0.0, pix: float = 1.0, size: int = 100) -> VolumeGeometry:
    return VolumeGeometry((1, 0, 0), (0, 1, 0), tuple((0.0, 0.0, z0 + k * spacing) for k in range(n)), (pix, pix),
                          size, size, spacing)


def test_link_different_spacing_and_orientation() -> None:
    fine, coarse = _axial(40, 1.2), _axial(16, 3.0, z0=0.5)
    # Slice 20 of the fine stack is at z = 24 mm: nearest coarse slice is (24 - 0.5) / 3 = 7.83 -> 8.
    link = link_slice(fine, 20, coarse)
    assert link.index == 8 and link.distance_mm == pytest.approx(abs(24 - 24.5)) and link.inside
    assert link_slice(fine, 39, _axial(5, 3.0)).inside is False  # beyond the coarse slab
    # A sagittal stack (normal +x): an axial cursor at column 30 links to the sagittal slice at x = 30.
    sag = VolumeGeometry((0, 1, 0), (0, 0, -1), tuple((float(x), 0.0, 60.0) for x in range(0, 100, 2)), (1.0, 1.0),
                         60, 100, 2.0)
    assert plane_of(sag) == "sagittal" and plane_of(fine) == "axial"
    link = link_slice(fine, 10, sag, point=(40.0, 30.0))
    assert link.index == 15 and link.col == pytest.approx(40.0) and link.row == pytest.approx(60.0 - 12.0)


def test_edge_labels_axial_and_sagittal() -> None:
    assert edge_labels(_axial(2, 1.0)) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    sag = VolumeGeometry((0, 1, 0), (0, 0, -1), ((0.0, 0.0, 0.0),), (1.0, 1.0), 10, 10)
    assert edge_labels(sag) == {"right": "P", "left": "A", "bottom": "F", "top": "H"}


def test_synthetic_link_dce_to_t2_finds_lesion(synth_dicom: Path, synth: dict) -> None:
    study = scan_study(synth_dicom)
    dce = study.main_dynamic.phases[1]
    t2 = study.of_kind("t2")[0]
    les = synth["lesions"][0]
    z, r, c = (int(round(v)) for v in les["centre"])
    link = link_slice(dce.geometry, z, t2.geometry, point=(r, c))
    assert link.inside and link.row == pytest.approx(r) and link.col == pytest.approx(c)
    t2_vol = t2.load()
    assert t2_vol[link.index, r, c] > 2 * np.median(t2_vol[t2_vol > 20])  # the lesion is bright on that T2 slice


# ------------------------------------------------------------------ subtraction / MIP


def test_subtraction_and_mip(synth_dicom: Path, synth: dict) -> None:
    study = scan_study(synth_dicom)
    dyn = study.main_dynamic
    sub = computed_subtraction(dyn, 2)
    assert np.array_equal(sub.pixels, synth["phases"][2].astype(np.int32) - synth["phases"][0])
    scanner = dyn.subtractions[2].load()
    assert np.array_equal(subtract(synth["phases"][2], synth["phases"][0], offset=100, clip_negative=True), scanner)
    m = computed_mip(sub)
    assert m.pixels.shape == (1,) + synth["phases"][0].shape[1:] and m.kind == "mip"
    assert np.array_equal(m.pixels[0], mip(sub.pixels))
    les = synth["lesions"][0]["mask"]
    assert m.pixels[0][les.any(axis=0)].mean() > 3 * np.median(m.pixels[0])  # the lesion shows on the MIP
    with pytest.raises(GeometryMismatchError):
        subtract(np.zeros((2, 3, 3)), np.zeros((3, 3, 3)))


# ------------------------------------------------------------------ kinetics


@pytest.mark.parametrize("initial, delayed", CURVES)
def test_kinetic_classes_match_generator_truth(synth: dict, initial: str, delayed: str) -> None:
    les = next(x for x in synth["lesions"] if (x["initial"], x["delayed"]) == (initial, delayed))
    core = ndimage.binary_erosion(les["mask"])
    curve = time_intensity_curve(synth["phases"], core)
    assert (curve.initial, curve.delayed) == (initial, delayed)
    assert curve.x_unit == "phase" and curve.x == (0, 1, 2, 3, 4, 5)
    assert curve.initial_pct == pytest.approx(DCE_INITIAL_PCT[initial], abs=8)
    assert curve.delayed_pct == pytest.approx(DCE_DELAYED_PCT[delayed], abs=5)
    timed = time_intensity_curve(synth["phases"], core, times=synth["times_s"])
    assert (timed.initial, timed.delayed) == (initial, delayed) and timed.x_unit == "s" and timed.x[-1] == 450


def test_kinetic_map_colours_lesions_by_class(synth: dict) -> None:
    km = kinetic_map(synth["phases"], threshold_pct=50)
    want = {"persistent": 1, "plateau": 2, "washout": 3}
    for les in synth["lesions"]:
        codes = km["codes"][ndimage.binary_erosion(les["mask"])]
        if les["initial"] == "slow":
            assert (codes == 0).mean() > 0.9  # below the 50 % threshold: not coloured
        else:
            assert (codes == want[les["delayed"]]).mean() > 0.9
    # Fat and slowly enhancing parenchyma stay uncoloured.
    breast = synth["breast_mask"] & ~np.any([x["mask"] for x in synth["lesions"]], axis=0)
    assert (km["codes"][breast] > 0).mean() < 0.02


def test_thresholds_and_errors() -> None:
    assert [initial_class(v) for v in (49.9, 50, 100, 100.1)] == ["slow", "medium", "medium", "fast"]
    assert [delayed_class(v) for v in (10.1, 10, -10, -10.1)] == ["persistent", "plateau", "plateau", "washout"]
    one_post = classify_curve([100, 180])
    assert one_post.initial == "medium" and one_post.delayed is None
    # With times, the initial signal is the peak within 120 s.
    timed = classify_curve([100, 190, 210, 170], times=[0, 60, 120, 300])
    assert timed.initial_pct == pytest.approx(110) and timed.delayed == "washout"
    with pytest.raises(KineticsError, match="pre-contrast signal"):
        classify_curve([0, 10, 20])
    with pytest.raises(KineticsError, match="empty"):
        time_intensity_curve([np.ones((4, 4))] * 3, np.zeros((4, 4), bool))
    m = roi_mask((10, 10), "box", [[2, 3], [5, 6]])
    assert m.sum() == 16 and m[3, 2] and not m[2, 2]
    tri = roi_mask((10, 10), "polygon", [[0, 0], [9, 0], [0, 9]])
    assert tri[1, 1] and not tri[8, 8]
    assert classify_curve([100, 200, 150]).to_json()["source"].startswith("ACR BI-RADS")


# ------------------------------------------------------------------ real p11 (mimbcd-dev)


@need_p11
def test_p11_series_model() -> None:
    study = scan_study(P11)
    dyn = study.main_dynamic
    assert dyn is not None and dyn.phase_indices == [0, 1, 2, 3, 4, 5] and sorted(dyn.subtractions) == [1, 2, 3, 4, 5]
    assert {v.label for v in study.of_kind("dwi")} == {"DWI b50", "DWI b400", "DWI b800"}
    assert len(study.of_kind("adc")) == 1 and len(study.of_kind("t2")) == 2
    assert {m.detail for m in dyn.mips} == {"tra", "sag"} and len(dyn.maps) == 3
    assert {m.plane for m in dyn.mips if m.detail == "sag"} == {"sagittal"}
    assert [s.role for s in default_protocol(study)] == ["subtraction", "pre", "t2", "dwi"]
    assert edge_labels(dyn.phases[0].geometry) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    # The mean signal rises with the phase (README: 13.1 -> 22.0).
    means = [float(dyn.phases[k].load().mean()) for k in dyn.phase_indices]
    assert all(m > 1.3 * means[0] for m in means[1:]) and means[1] < means[2] < means[3]


@need_p11
def test_p11_computed_subtraction_equals_scanner() -> None:
    dyn = scan_study(P11).main_dynamic
    pre = dyn.phases[0].load()
    for k in range(1, 6):
        scanner = dyn.subtractions[k].load()
        ours = subtract(dyn.phases[k].load(), pre, offset=100, clip_negative=True)
        assert np.array_equal(ours, scanner), f"post{k}"
        plain = computed_subtraction(dyn, k).pixels
        assert np.array_equal(np.maximum(plain + 100, 0), scanner)


@need_p11
def test_p11_linking_across_spacing() -> None:
    study = scan_study(P11)
    dce = study.main_dynamic.phases[0]
    t2 = next(v for v in study.of_kind("t2") if "tse" in v.description)
    dwi = study.of_kind("dwi")[0]
    assert dce.geometry.slice_spacing == pytest.approx(1.2, abs=0.01)
    assert t2.geometry.slice_spacing == pytest.approx(3.3, abs=0.05)
    assert dwi.geometry.slice_spacing == pytest.approx(4.8, abs=0.05)
    for k in range(dce.n_slices):
        z = dce.geometry.offsets[k]
        for tgt in (t2, dwi):
            link = link_slice(dce.geometry, k, tgt.geometry)
            expect = int(np.argmin(np.abs(tgt.geometry.offsets - z)))
            assert link.index == expect
            assert link.distance_mm <= tgt.geometry.slice_spacing / 2 + 1e-3 or not link.inside
    # Round trip through a different pixel grid (1.02 mm DCE vs 0.64 mm T2): same patient point.
    link = link_slice(dce.geometry, 12, t2.geometry, point=(100.0, 200.0))
    back = t2.geometry.to_patient(link.index, link.row, link.col)
    here = dce.geometry.to_patient(12, 100.0, 200.0)
    assert np.allclose(back[:2], here[:2], atol=1e-6)


DEMO_P11 = Path(__file__).resolve().parents[2] / "resources" / "demo" / "cases" / "demo-09-mri-p11"
SYNTH_MRI_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "mri_attention_synthetic"


@pytest.mark.skipif(not (DEMO_P11.is_dir() and SYNTH_MRI_MODEL.is_dir()), reason="demo MRI or MRI model not bundled")
def test_cli_warns_when_the_synthetic_mri_model_scores_a_real_mri(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    main(["score", "--model", str(SYNTH_MRI_MODEL), str(DEMO_P11 / "mr" / "dce_tp2_post1" / "IM0085.dcm"),
          "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert "trained on SYNTHETIC images only" in err and "not validated" in err
