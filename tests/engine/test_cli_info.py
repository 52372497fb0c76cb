"""`breast-engine info`: JSON-lines contract, table output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from engine.cli.main import main
from engine.io.writer import write_dicom, write_dicom_series


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.strip().splitlines()]


def test_info_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mg = write_dicom(tmp_path / "mg.dcm", np.zeros((40, 30), np.uint16), modality="MG", laterality="R", view="MLO",
                     pixel_spacing=(0.1, 0.1), window=(100, 200), photometric="MONOCHROME1", patient_id="SECRET-ID")
    mr = get_testdata_file("MR_small.dcm", download=False)
    rc = main(["info", "--json", str(mg), str(mr)])
    out = capsys.readouterr()
    assert rc == 0
    a, b = _lines(out.out)
    assert a["path"] == str(mg)
    for key in ("path", "modality", "shape", "laterality", "view", "photometric", "pixel_spacing", "window"):
        assert key in a
    assert (a["modality"], a["shape"], a["laterality"], a["view"]) == ("MG", [40, 30], "R", "MLO")
    assert a["photometric"] == "MONOCHROME1" and a["pixel_spacing"] == [0.1, 0.1]
    assert a["window"] == [65535 - 100, 200]  # mirrored with the MONOCHROME1 inversion
    assert b["shape"] == [64, 64] and b["modality"] == "MR" and b["window"] == [600.0, 1600.0]
    assert "SECRET-ID" not in out.out  # identifiers are never printed


def test_info_reports_bad_files_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "ok.dcm"
    write_dicom(good, np.zeros((4, 4), np.uint8), modality="US")
    text = tmp_path / "notes.dcm"
    text.write_text("just some text\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    rc = main(["info", "--json", str(text), str(good), str(empty), str(tmp_path / "missing.dcm")])
    out = capsys.readouterr()
    assert rc == 1
    recs = _lines(out.out)
    assert [r["path"] for r in recs] == [str(text), str(good), str(empty), str(tmp_path / "missing.dcm")]
    assert "text" in recs[0]["error"] and set(recs[0]) == {"path", "error"}
    assert recs[1]["shape"] == [4, 4]
    assert "empty" in recs[2]["error"] and "not found" in recs[3]["error"]
    assert "Traceback" not in out.err and "3 of 4" in out.err


def test_info_directory_is_one_entry_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dicom_series(tmp_path / "mr", np.zeros((3, 8, 6), np.int16), slice_thickness=2.0)
    rc = main(["info", "--json", str(tmp_path / "mr")])
    (rec,) = _lines(capsys.readouterr().out)
    assert rc == 0 and rec["shape"] == [3, 8, 6] and rec["slice_positions"] == [0.0, 2.0, 4.0]
    rc = main(["info", str(tmp_path / "mr"), str(tmp_path / "nope.png")])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].split()[:3] == ["PATH", "MOD", "SHAPE"]
    assert "3x8x6" in out[1] and "MR" in out[1]
    assert "ERROR" in out[2] and "file not found" in out[2]


def test_info_modality_hint_for_raster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    p = tmp_path / "us.png"
    cv2.imwrite(str(p), np.zeros((5, 7), np.uint8))
    assert main(["info", "--json", "--modality", "US", str(p)]) == 0
    (rec,) = _lines(capsys.readouterr().out)
    assert rec["modality"] == "US" and rec["shape"] == [5, 7] and rec["window"] is None
