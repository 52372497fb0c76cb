"""engine.io.writer: valid DICOM files read back by pydicom and by read_image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from engine.io.reader import read_image
from engine.io.writer import SOP_CLASSES, write_dicom

MG = (np.arange(40 * 30).reshape(40, 30) * 3 % 4096).astype(np.uint16)


@pytest.mark.parametrize(
    "syntax", ["ExplicitVRLittleEndian", "ImplicitVRLittleEndian", "ExplicitVRBigEndian", "RLELossless"]
)
def test_mg_round_trip_every_syntax(tmp_path: Path, syntax: str) -> None:
    p = write_dicom(
        tmp_path / "mg.dcm", MG, modality="MG", laterality="L", view="CC", pixel_spacing=(0.07, 0.065),
        window=(2048, 4096), bits_stored=12, patient_id="P-42", accession="ACC9", transfer_syntax=syntax,
    )
    ds = pydicom.dcmread(p)  # a valid Part 10 file: preamble, DICM, file meta
    assert ds.file_meta.TransferSyntaxUID == getattr(pydicom.uid, syntax)
    assert ds.SOPClassUID == SOP_CLASSES["MG_PRESENTATION"] == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.ImageLaterality == "L" and ds.ViewPosition == "CC"
    assert ds.ViewCodeSequence[0].CodeValue == "399162004" and ds.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert ds.PresentationIntentType == "FOR PRESENTATION" and ds.BodyPartExamined == "BREAST"
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.07, 0.065]
    np.testing.assert_array_equal(ds.pixel_array, MG)
    img = read_image(p)
    np.testing.assert_array_equal(img.pixels, MG)
    assert img.meta.modality == "MG" and img.meta.laterality == "L" and img.meta.view == "CC"
    assert img.meta.pixel_spacing == (0.07, 0.065) and img.meta.windows == [(2048.0, 4096.0)]
    assert img.meta.bits_stored == 12
    assert img.ids.patient_id == "P-42" and img.ids.accession == "ACC9" and img.ids.sop_uid == ds.SOPInstanceUID


def test_mg_for_processing_sop_class(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "p.dcm", MG, modality="MG", presentation_intent="FOR PROCESSING", view="MLO")
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == SOP_CLASSES["MG_PROCESSING"]
    assert ds.ViewCodeSequence[0].CodeValue == "399368009"
    assert read_image(p).meta.presentation_intent == "FOR PROCESSING"


def test_us_rgb_and_multiframe(tmp_path: Path) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 7
    p = write_dicom(tmp_path / "us.dcm", rgb, modality="US", photometric="RGB", laterality="R")
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == SOP_CLASSES["US"]
    assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (3, "RGB", 0)
    img = read_image(p)
    np.testing.assert_array_equal(img.pixels, rgb)
    assert img.is_rgb and img.meta.laterality == "R"

    cine = np.stack([np.full((6, 8), v, np.uint8) for v in range(5)])
    p2 = write_dicom(tmp_path / "cine.dcm", cine, modality="US", frame_time_ms=40)
    ds2 = pydicom.dcmread(p2)
    assert ds2.SOPClassUID == SOP_CLASSES["US_MULTIFRAME"] and ds2.NumberOfFrames == 5
    assert float(ds2.FrameTime) == 40.0 and ds2.FrameIncrementPointer == 0x00181063
    np.testing.assert_array_equal(read_image(p2).pixels, cine)

    cine_rgb = np.stack([rgb] * 3)
    p3 = write_dicom(tmp_path / "cine_rgb.dcm", cine_rgb, modality="US", photometric="RGB")
    assert read_image(p3).shape == (3, 6, 8, 3)


def test_mr_and_secondary_capture(tmp_path: Path) -> None:
    sl = (np.arange(20).reshape(4, 5) - 10).astype(np.int16)
    p = write_dicom(tmp_path / "mr.dcm", sl, modality="MR", image_position=(1, 2, 3),
                    image_orientation=(1, 0, 0, 0, 1, 0), slice_thickness=2.0, pixel_spacing=(0.5, 0.5))
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == SOP_CLASSES["MR"] and ds.PixelRepresentation == 1
    assert [float(v) for v in ds.ImagePositionPatient] == [1, 2, 3] and float(ds.SliceLocation) == 3.0
    assert "FrameOfReferenceUID" in ds
    np.testing.assert_array_equal(read_image(p).pixels, sl)

    p2 = write_dicom(tmp_path / "sc.dcm", np.zeros((4, 4), np.uint8), modality="OT")
    assert pydicom.dcmread(p2).SOPClassUID == SOP_CLASSES["SC"]
    p3 = write_dicom(tmp_path / "sc3.dcm", np.zeros((2, 4, 4), np.uint16), modality="OT")
    assert pydicom.dcmread(p3).SOPClassUID == SOP_CLASSES["SC_MULTIFRAME_WORD"]


def test_shared_uids_and_atomic_write(tmp_path: Path) -> None:
    a = write_dicom(tmp_path / "a.dcm", MG, modality="MG", study_uid="1.2.3", series_uid="1.2.3.4", instance_number=7)
    ds = pydicom.dcmread(a)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber) == ("1.2.3", "1.2.3.4", 7)
    assert [f.name for f in tmp_path.iterdir()] == ["a.dcm"]  # no temporary file left behind


@pytest.mark.parametrize(
    "pixels,kw,match",
    [
        (np.zeros((4, 4), np.float32), {"modality": "MG"}, "uint8, uint16 or int16"),
        (np.zeros((2, 4, 4), np.uint16), {"modality": "MG"}, "single-frame"),
        (np.zeros((4, 4, 3), np.uint8), {"modality": "US"}, "photometric='RGB'"),
        (np.zeros((4, 4), np.uint8), {"modality": "CT"}, "modality must be"),
        (np.zeros((4, 4), np.uint8), {"modality": "MG", "laterality": "X"}, "laterality"),
        (np.zeros((4, 4), np.uint8), {"modality": "MG", "transfer_syntax": "JPEGBaseline8Bit"}, "not supported"),
    ],
)
def test_writer_refuses_bad_arguments(tmp_path: Path, pixels: np.ndarray, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_dicom(tmp_path / "x.dcm", pixels, **kw)
    assert not (tmp_path / "x.dcm").exists()
