"""engine.io DICOM reading: pydicom's offline test files, LUT/inversion math, metadata, series."""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from engine.errors import ImageReadError
from engine.io.reader import probe, read_image, read_series
from engine.io.writer import write_dicom, write_dicom_series


def tdf(name: str) -> str:
    """A pydicom test file shipped with the wheel (never the network)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not shipped with this pydicom")
    return str(path)


def _ref(name: str) -> np.ndarray:
    return pydicom.dcmread(tdf(name)).pixel_array


# name, shape, dtype, modality, photometric (source)
KNOWN = [
    ("CT_small.dcm", (128, 128), "int32", "OT", "MONOCHROME2"),
    ("MR_small.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("MR_small_bigendian.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("MR_small_implicit.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("MR_small_RLE.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("MR_small_jp2klossless.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("MR_small_jpeg_ls_lossless.dcm", (64, 64), "int16", "MR", "MONOCHROME2"),
    ("JPEG2000.dcm", (1024, 256), "int16", "OT", "MONOCHROME2"),
    ("JPEGLSNearLossless_16.dcm", (50, 10), "uint16", "OT", "MONOCHROME2"),
    ("ExplVR_BigEnd.dcm", (60, 80, 3), "uint8", "US", "RGB"),
    ("examples_rgb_color.dcm", (240, 320, 3), "uint8", "US", "RGB"),
    ("examples_palette.dcm", (350, 800, 3), "uint8", "US", "PALETTE COLOR"),
    ("examples_ybr_color.dcm", (30, 240, 320, 3), "uint8", "US", "YBR_FULL_422"),
    ("examples_jpeg2k.dcm", (480, 640, 3), "uint8", "US", "YBR_RCT"),
    ("examples_overlay.dcm", (300, 484), "uint16", "MR", "MONOCHROME2"),
    ("SC_rgb_jpeg_gdcm.dcm", (100, 100, 3), "uint8", "OT", "RGB"),
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", (100, 100, 3), "uint8", "OT", "YBR_FULL_422"),
    ("SC_ybr_full_422_uncompressed.dcm", (100, 100, 3), "uint8", "OT", "YBR_FULL_422"),
    ("SC_rgb_rle_2frame.dcm", (2, 100, 100, 3), "uint8", "OT", "RGB"),
    ("SC_rgb_rle_16bit.dcm", (100, 100, 3), "uint16", "OT", "RGB"),
    ("rtdose.dcm", (15, 10, 10), "uint32", "OT", "MONOCHROME2"),
    ("image_dfl.dcm", (512, 512), "uint8", "OT", "MONOCHROME2"),
]


@pytest.mark.parametrize("name,shape,dtype,modality,photometric", KNOWN, ids=[k[0] for k in KNOWN])
def test_pydicom_testfiles_shape_and_meta(name: str, shape: tuple[int, ...], dtype: str, modality: str,
                                          photometric: str) -> None:
    img = read_image(tdf(name))
    assert img.shape == shape
    assert str(img.pixels.dtype) == dtype
    assert img.meta.modality == modality
    assert img.meta.photometric == photometric
    assert img.meta.source_format == "DICOM"
    assert probe(tdf(name)).extra["shape"] == "x".join(map(str, shape))


@pytest.mark.parametrize(
    "name",
    ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
     "MR_small_jpeg_ls_lossless.dcm", "MR_small_expb.dcm"],
)
def test_lossless_syntaxes_decode_to_the_same_pixels(name: str) -> None:
    ref = read_image(tdf("MR_small.dcm")).pixels
    np.testing.assert_array_equal(read_image(tdf(name)).pixels, ref)
    np.testing.assert_array_equal(ref, _ref("MR_small.dcm"))


def test_mr_small_known_values() -> None:
    img = read_image(tdf("MR_small.dcm"))
    assert img.meta.windows == [(600.0, 1600.0)]
    assert img.meta.pixel_spacing == (0.3125, 0.3125)
    assert img.ids.patient_id is not None
    assert img.ids.patient_id not in repr(dataclasses.asdict(img.meta))  # PHI never in meta


def test_ct_modality_lut_applied() -> None:
    ds = pydicom.dcmread(tdf("CT_small.dcm"))
    img = read_image(tdf("CT_small.dcm"))
    expected = ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(img.pixels, expected)


def test_colour_conversions_match_rgb_sources() -> None:
    # The same picture stored as RGB JPEG and as YBR_FULL_422 JPEG decodes to similar RGB.
    rgb = read_image(tdf("SC_rgb_dcmtk_+eb+cr.dcm")).pixels.astype(int)
    ybr = read_image(tdf("SC_rgb_dcmtk_+eb+cy+np.dcm")).pixels.astype(int)
    assert np.abs(rgb - ybr).mean() < 8
    # Uncompressed YBR_FULL_422 -> RGB: the first pixel of this file is pure red.
    assert tuple(read_image(tdf("SC_ybr_full_422_uncompressed.dcm")).pixels[0, 0]) == (254, 0, 0)
    # Big-endian RGB equals its little-endian twin.
    np.testing.assert_array_equal(
        read_image(tdf("SC_rgb_small_odd_big_endian.dcm")).pixels, read_image(tdf("SC_rgb_small_odd.dcm")).pixels
    )


def test_palette_colour_expanded_through_lut() -> None:
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(tdf("examples_palette.dcm"))
    expected = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tdf("examples_palette.dcm")).pixels, expected)


def test_ultrasound_region_spacing_and_multiframe() -> None:
    img = read_image(tdf("examples_ybr_color.dcm"))
    assert img.meta.extra["frames"] == "30"
    assert img.meta.pixel_spacing is not None and img.meta.pixel_spacing[0] == pytest.approx(0.51049, abs=1e-4)


# ---------------------------------------------------------------- MONOCHROME1, LUTs, windows


def _mg(tmp: Path, pixels: np.ndarray, **kw: Any) -> Path:
    kw.setdefault("modality", "MG")
    return write_dicom(tmp / "mg.dcm", pixels, **kw)


def test_monochrome1_inversion_math(tmp_path: Path) -> None:
    x = np.array([[0, 1, 100], [2000, 4094, 4095]], np.uint16)
    p = _mg(tmp_path, x, photometric="MONOCHROME1", bits_stored=12, window=[(1000, 500), (3000, 2000)])
    img = read_image(p)
    np.testing.assert_array_equal(img.pixels, 4095 - x)  # lo + hi - x over 12 bits stored
    assert img.pixels.dtype == np.uint16
    assert img.meta.windows == [(3095.0, 500.0), (1095.0, 2000.0)]  # centers mirrored, widths kept
    assert img.meta.photometric == "MONOCHROME1"  # original kept in meta


def test_monochrome1_with_rescale(tmp_path: Path) -> None:
    x = np.array([[0, 10], [4000, 4095]], np.uint16)
    p = _mg(tmp_path, x, photometric="MONOCHROME1", bits_stored=12, rescale=(2, -100), window=(500, 100))
    img = read_image(p)
    lo, hi = -100, 2 * 4095 - 100
    np.testing.assert_array_equal(img.pixels, lo + hi - (2 * x.astype(int) - 100))
    assert img.meta.windows == [(lo + hi - 500.0, 100.0)]


def test_float_rescale_gives_float32(tmp_path: Path) -> None:
    x = np.array([[0, 10], [20, 30]], np.uint16)
    img = read_image(write_dicom(tmp_path / "r.dcm", x, modality="MR", rescale=(0.5, 1.25)))
    assert img.pixels.dtype == np.float32
    np.testing.assert_allclose(img.pixels, x * 0.5 + 1.25)


def test_high_bits_masked_for_unsigned(tmp_path: Path) -> None:
    x = np.array([[0x0FFF, 0xF001]], np.uint16)  # top nibble is overlay garbage, 12 bits stored
    img = read_image(_mg(tmp_path, x, bits_stored=12))
    np.testing.assert_array_equal(img.pixels, [[0x0FFF, 0x0001]])


def _tamper(path: Path, fn: Any) -> Path:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path)
    return path


def test_modality_lut_sequence(tmp_path: Path) -> None:
    x = np.array([[0, 1], [2, 3]], np.uint16)

    def add_lut(ds: Dataset) -> None:
        del ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType
        item = Dataset()
        item.LUTDescriptor = [4, 0, 16]
        item.ModalityLUTType = "US"
        item.add_new(0x00283006, "US", [10, 20, 40, 80])  # LUTData
        ds.ModalityLUTSequence = [item]

    img = read_image(_tamper(_mg(tmp_path, x, bits_stored=2), add_lut))
    np.testing.assert_array_equal(img.pixels, [[10, 20], [40, 80]])


def test_voi_lut_sequence_gives_a_window(tmp_path: Path) -> None:
    def add_voi(ds: Dataset) -> None:
        item = Dataset()
        item.LUTDescriptor = [256, 100, 8]
        item.add_new(0x00283006, "US", list(range(256)))  # LUTData
        ds.VOILUTSequence = [item]

    img = read_image(_tamper(_mg(tmp_path, np.zeros((4, 4), np.uint16)), add_voi))
    assert img.meta.windows == [(228.0, 256.0)]
    assert "VOILUTSequence" in img.meta.extra["window_source"]


def test_laterality_view_intent_from_alternative_tags(tmp_path: Path) -> None:
    p = _mg(tmp_path, np.zeros((4, 4), np.uint16), laterality="R", view="MLO", presentation_intent="FOR PROCESSING")

    def strip(ds: Dataset) -> None:
        del ds.ViewPosition, ds.ImageLaterality, ds.PresentationIntentType
        ds.Laterality = "R"

    img = read_image(_tamper(p, strip))
    assert (img.meta.laterality, img.meta.view) == ("R", "MLO")  # from Laterality and ViewCodeSequence
    assert img.meta.presentation_intent == "FOR PROCESSING"  # from the SOP class


def test_ultrasound_regions_spacing(tmp_path: Path) -> None:
    def add_region(ds: Dataset) -> None:
        r = Dataset()
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX, r.PhysicalDeltaY = 0.01, 0.02
        ds.SequenceOfUltrasoundRegions = [r]

    p = write_dicom(tmp_path / "us.dcm", np.zeros((4, 4), np.uint8), modality="US")
    img = read_image(_tamper(p, add_region))
    assert img.meta.pixel_spacing == pytest.approx((0.2, 0.1))


def test_modality_hint_only_when_dicom_says_nothing(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "sc.dcm", np.zeros((4, 4), np.uint8), modality="OT")
    assert read_image(p, modality_hint="US").meta.modality == "US"
    p2 = write_dicom(tmp_path / "mr.dcm", np.zeros((4, 4), np.uint16), modality="MR")
    assert read_image(p2, modality_hint="US").meta.modality == "MR"


# ---------------------------------------------------------------- series


def _volume() -> np.ndarray:
    return (np.arange(5)[:, None, None] * 100 + np.arange(12).reshape(3, 4)).astype(np.int16)


@pytest.mark.parametrize(
    "orientation", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1), (0.8, 0.6, 0, 0, 0, -1)], ids=["axial", "coronal", "oblique"]
)
def test_series_sorted_by_position_whatever_the_file_order(tmp_path: Path, orientation: tuple[float, ...]) -> None:
    vol = _volume()
    src = tmp_path / "src"
    files = write_dicom_series(src, vol, pixel_spacing=(0.7, 0.7), slice_thickness=2.5, image_orientation=orientation)
    shuffled = tmp_path / "series"
    shuffled.mkdir()
    names = [f"img{n}.dcm" for n in random.Random(3).sample(range(100), len(files))]
    for f, n in zip(files, names):
        shutil.copy(f, shuffled / n)
    img = read_image(shuffled)
    np.testing.assert_array_equal(img.pixels, vol)
    assert img.meta.modality == "MR" and img.meta.path == str(shuffled)
    assert img.meta.slice_positions == pytest.approx([2.5 * k for k in range(5)])
    assert img.meta.extra["slice_order"] == "ImagePositionPatient"
    # read_series on a shuffled list gives the same volume
    np.testing.assert_array_equal(read_series(random.Random(1).sample(files, len(files))).pixels, vol)


def test_series_falls_back_to_instance_number(tmp_path: Path) -> None:
    vol = _volume()
    files = write_dicom_series(tmp_path / "s", vol)
    for f in files:
        _tamper(f, lambda ds: delattr(ds, "ImagePositionPatient"))
    img = read_series(list(reversed(files)))
    np.testing.assert_array_equal(img.pixels, vol)
    assert img.meta.extra["slice_order"] == "InstanceNumber"


def test_series_with_mismatched_slices_is_refused(tmp_path: Path) -> None:
    files = write_dicom_series(tmp_path / "s", _volume())
    write_dicom(files[0], np.zeros((5, 5), np.int16), modality="MR", series_uid=pydicom.dcmread(files[1]).SeriesInstanceUID)
    with pytest.raises(ImageReadError, match="different sizes"):
        read_image(tmp_path / "s")


def test_two_series_in_one_folder_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", _volume(), prefix="a")
    write_dicom_series(tmp_path / "s", _volume(), prefix="b")
    with pytest.raises(ImageReadError, match="2 different series"):
        read_image(tmp_path / "s")


def test_multiframe_frames_sorted_by_functional_groups(tmp_path: Path) -> None:
    frames = np.stack([np.full((3, 4), v, np.uint8) for v in (30, 10, 20)])
    p = write_dicom(tmp_path / "mf.dcm", frames, modality="OT")

    def add_groups(ds: Dataset) -> None:
        orient, shared = Dataset(), Dataset()
        orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        shared.PlaneOrientationSequence = [orient]
        ds.SharedFunctionalGroupsSequence = [shared]
        per = []
        for z in (3.0, 1.0, 2.0):
            pos, item = Dataset(), Dataset()
            pos.ImagePositionPatient = [0, 0, z]
            item.PlanePositionSequence = [pos]
            per.append(item)
        ds.PerFrameFunctionalGroupsSequence = per

    img = read_image(_tamper(p, add_groups))
    assert [int(f[0, 0]) for f in img.pixels] == [10, 20, 30]
    assert img.meta.slice_positions == [1.0, 2.0, 3.0]


def test_unsupported_and_truncated_pydicom_files() -> None:
    from engine.io.errors import MissingPixelDataError, TruncatedImageError, UnsupportedTransferSyntaxError

    with pytest.raises(UnsupportedTransferSyntaxError, match="JPEG Extended"):
        read_image(tdf("JPGExtended.dcm"))
    with pytest.raises(TruncatedImageError, match="truncated"):
        read_image(tdf("MR_truncated.dcm"))
    with pytest.raises(TruncatedImageError, match="truncated"):
        read_image(tdf("rtplan_truncated.dcm"))
    with pytest.raises(MissingPixelDataError, match="SR has no pixel data"):
        read_image(tdf("test-SR.dcm"))


def test_real_mr_series_folder_from_pydicom() -> None:
    # A radial MR series: every slice has its own orientation, so there is no common normal
    # and the order must fall back to InstanceNumber.
    folder = Path(tdf("MR_small.dcm")).parent / "dicomdirtests" / "98892003" / "MR700"
    if not folder.is_dir():
        pytest.skip("dicomdirtests not shipped")
    img = read_image(folder)
    assert img.shape == (7, 16, 16) and img.meta.modality == "MR"
    assert img.meta.extra["slice_order"] == "InstanceNumber" and img.meta.slice_positions is None
    by_instance = {int(ds.InstanceNumber): ds.pixel_array for ds in map(pydicom.dcmread, folder.iterdir())}
    for k, frame in enumerate(img.pixels):
        np.testing.assert_array_equal(frame, by_instance[k + 1])
    with pytest.raises(ImageReadError, match="sub-folder"):
        read_image(folder.parent.parent)  # a DICOMDIR tree root: say to open a series folder


def test_enhanced_per_frame_rescale_and_windows(tmp_path: Path) -> None:
    frames = np.stack([np.full((3, 4), 10, np.uint16)] * 2)
    p = write_dicom(tmp_path / "emr.dcm", frames, modality="OT")

    def add_groups(ds: Dataset) -> None:
        per = []
        for slope, intercept in ((1.0, 0.0), (2.5, -1.0)):
            pvt, item = Dataset(), Dataset()
            pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, intercept, "US"
            voi = Dataset()
            voi.WindowCenter, voi.WindowWidth = 40, 80
            item.PixelValueTransformationSequence = [pvt]
            item.FrameVOILUTSequence = [voi]
            per.append(item)
        ds.PerFrameFunctionalGroupsSequence = per

    img = read_image(_tamper(p, add_groups))
    assert img.pixels.dtype == np.float32
    np.testing.assert_allclose(img.pixels[0], 10.0)
    np.testing.assert_allclose(img.pixels[1], 24.0)
    assert img.meta.windows == [(40.0, 80.0)]


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("syntax", ["ExplicitVRLittleEndian", "ExplicitVRBigEndian"])
def test_uncompressed_mammogram_read_without_extra_copies(tmp_path: Path, photometric: str, syntax: str) -> None:
    import tracemalloc

    x = (np.arange(1024 * 832, dtype=np.uint32).reshape(1024, 832) % 4096).astype(np.uint16)
    p = write_dicom(tmp_path / "mg.dcm", x, modality="MG", photometric=photometric, bits_stored=12,
                    transfer_syntax=syntax)
    tracemalloc.start()
    img = read_image(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(img.pixels, x if photometric == "MONOCHROME2" else 4095 - x)
    assert peak < 1.1 * img.pixels.nbytes  # one buffer: read in place, swapped/inverted in place
