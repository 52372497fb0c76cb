"""SR (TID 1500) and SEG round trips, validated by dciodvfy (dicom3tools) when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from engine.cases import load_case
from engine.interop.errors import InteropError
from engine.interop.export import export_case
from engine.interop.seg import lesion_masks, rasterise, read_seg
from engine.interop.sources import case_sources
from engine.interop.sr import AIScore, read_report, size_of, spacing_of
from engine.interop.validate import dciodvfy_path, validate
from tests.engine.interop_cases import build_case

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def case(tmp_path: Path):
    return build_case(tmp_path / "study")


def _ai(case, with_map: bool = True) -> list[AIScore]:
    rng = np.random.default_rng(3)
    sal = rng.random((240, 200))
    return [AIScore("mg_cc", 0.8125, "mg_effnet_lite0_mias_lesion", "3f2a9c1b0d4e", saliency=sal if with_map else None),
            AIScore("us_1", 0.25, "us_effnet_lite0_busi", "aa11bb22cc33")]


def _same(a, b) -> bool:
    ja, jb = a.to_json(), b.to_json()
    ja.pop("created"), jb.pop("created")
    return ja == jb


def test_sr_round_trip_restores_every_annotation(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out", ai=_ai(case), birads="4B")
    assert res.sr is not None and not res.problems
    back = read_report(res.sr, case_sources(case, tmp_path / "out" / "source"))
    assert len(back.annotations) == len(case.annotations)
    for a, b in zip(case.annotations, back.annotations, strict=True):
        assert _same(a, b), (a.to_json(), b.to_json())
    assert back.birads == "4B"
    got = {s.image_id: s for s in back.ai}
    assert got["mg_cc"].probability == pytest.approx(0.8125)
    assert (got["mg_cc"].model_name, got["mg_cc"].model_version) == ("mg_effnet_lite0_mias_lesion", "3f2a9c1b0d4e")
    assert got["us_1"].model_name == "us_effnet_lite0_busi"


def test_sr_sizes_are_in_mm_with_spacing_and_pixels_without(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out", birads="3")
    ds = pydicom.dcmread(res.sr)
    nums = {}

    def walk(items, group=None):
        for it in items:
            name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
            if it.ValueType == "TEXT" and name == "Tracking Identifier":
                group = it.TextValue
            if it.ValueType == "NUM":
                mv = it.MeasuredValueSequence[0]
                nums.setdefault(name, []).append((float(mv.NumericValue), mv.MeasurementUnitsCodeSequence[0].CodeValue))
            walk(it.get("ContentSequence", []), group)

    walk(ds.ContentSequence)
    # first annotation: 50.5 x 51 px box at 0.1 mm -> 5.05 x 5.1 mm; long axis 5.1 mm
    assert nums["Long axis"][0] == (pytest.approx(5.1), "mm")
    assert nums["Area"][0] == (pytest.approx(5.05 * 5.1), "mm2")
    # the PNG ultrasound has no spacing: pixels
    us = [v for v in nums["Long axis"] if v[1] == "{pixels}"]
    assert us and us[0][0] == pytest.approx(40.0)
    assert ds.CompletionFlag == "PARTIAL" and ds.VerificationFlag == "UNVERIFIED"


def test_seg_round_trip_masks_equal_rasterised_annotations(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out", ai=_ai(case))
    src = case_sources(case, tmp_path / "out" / "source")
    lesion_files = [p for p in res.segs if not p.name.endswith("_saliency_seg.dcm")]
    assert len(lesion_files) == 5  # one per annotated image
    seen = 0
    for p in lesion_files:
        back = read_seg(p, src)
        assert back["type"] == "BINARY"
        for lid, frames in back["segments"].items():
            for (iid, frame), mask in frames.items():
                expect = lesion_masks(case, src[iid])[lid][frame or 0]
                assert mask.shape == expect.shape and np.array_equal(mask, expect)
                assert mask.any()
                seen += 1
    # 2 lesions on CC, 1 on MLO, 1 on US, 1 cine frame, 2 MR slices
    assert seen == 7


def test_mammography_seg_has_no_invented_frame_of_reference(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out")
    cc = pydicom.dcmread(next(p for p in res.segs if "_mg_cc_seg" in p.name))
    mr = pydicom.dcmread(next(p for p in res.segs if "_mr_1_seg" in p.name))
    assert "FrameOfReferenceUID" not in cc
    assert (cc.Rows, cc.Columns) == (240, 200)
    ref = cc.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == pydicom.dcmread(case.image("mg_cc").path).SOPInstanceUID
    src_mr = case_sources(case)["mr_1"]
    assert mr.FrameOfReferenceUID == src_mr.datasets[0].FrameOfReferenceUID
    assert "PlanePositionSequence" in mr.PerFrameFunctionalGroupsSequence[0]


def test_saliency_fractional_seg_round_trip(case, tmp_path: Path) -> None:
    ai = _ai(case)
    res = export_case(case, tmp_path / "out", ai=ai)
    p = next(p for p in res.segs if p.name.endswith("_saliency_seg.dcm"))
    back = read_seg(p, case_sources(case, tmp_path / "out" / "source"))
    assert back["type"] == "FRACTIONAL"
    assert back["algorithms"]["AI saliency"] == ("mg_effnet_lite0_mias_lesion", "3f2a9c1b0d4e")
    got = back["segments"]["AI saliency"][("mg_cc", None)]
    assert np.abs(got - ai[0].saliency).max() <= 0.5 / 255 + 1e-6


def test_raster_images_are_wrapped_deterministically(case, tmp_path: Path) -> None:
    a = case_sources(case, tmp_path / "a")["us_1"]
    b = case_sources(case, tmp_path / "b")["us_1"]
    assert a.wrapped and a.datasets[0].SOPInstanceUID == b.datasets[0].SOPInstanceUID
    ds = pydicom.dcmread(a.paths[0])
    assert ds.ConversionType == "WSD" and ds.Modality == "US"
    assert ds.StudyInstanceUID == pydicom.dcmread(case.image("mg_cc").path).StudyInstanceUID
    from PIL import Image

    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(case.image("us_1").path)))


def test_rasterise_box_and_polygon_pixel_centres(case) -> None:
    box = case.annotations[0]
    m = rasterise(box, (240, 200))
    # x in [40, 90.5] -> columns 40..90 (centres 40.5..90.5); y in [50, 101] -> rows 50..100
    assert m.sum() == 51 * 51 and m[50, 40] and m[50, 90] and not m[49, 40] and not m[50, 91]
    tri = type(box)("mg_cc", "polygon", [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert rasterise(tri, (20, 20)).sum() == 45  # centres strictly below the diagonal x + y < 10
    assert size_of(box, spacing_of(pydicom.dcmread(case.image("mg_cc").path)))[1] == pytest.approx(5.1)


def test_reading_back_into_the_reloaded_case(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out")
    reloaded = load_case(case.folder)
    back = read_report(res.sr, case_sources(reloaded, tmp_path / "out" / "source"))
    assert [b.ann_id for b in back.annotations] == [a.ann_id for a in reloaded.annotations]


def test_bad_inputs_give_one_clear_error(case, tmp_path: Path) -> None:
    with pytest.raises(InteropError, match="not a TID 1500"):
        read_report(case.image("mg_cc").path, case_sources(case))
    with pytest.raises(InteropError, match="not a Segmentation"):
        read_seg(case.image("mg_cc").path, case_sources(case))
    case.annotations[0].frame = 7
    res = export_case(case, tmp_path / "out")
    assert any("frame 7" in p for p in res.problems)  # SR and the CC SEG refuse; the others are written
    assert len(res.segs) == 4
    case.annotations = []
    with pytest.raises(InteropError, match="nothing to export"):
        export_case(case, tmp_path / "out2")


@pytest.mark.skipif(dciodvfy_path() is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
def test_written_objects_pass_dciodvfy(case, tmp_path: Path) -> None:
    res = export_case(case, tmp_path / "out", ai=_ai(case), birads="4A")
    assert len(res.files) == 1 + 1 + 6  # wrapper, SR, 5 lesion SEGs + 1 saliency SEG
    for p in res.files:
        v = validate(p)
        assert v.ok, (p.name, v.errors)
    assert validate(res.sr).iod == "ComprehensiveSR"
