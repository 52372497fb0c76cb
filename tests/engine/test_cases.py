"""engine.cases: study/case JSON round trips, validation messages, importers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cases import (
    Annotation,
    Case,
    CaseImage,
    Truth,
    create_study,
    import_dicom_folder,
    import_manifest,
    load_study,
    save_annotations,
    save_case,
)
from engine.errors import CaseFormatError


def _png(path: Path, value: int = 100) -> Path:
    Image.fromarray(np.full((32, 40), value, np.uint8)).save(path)
    return path


def _make_case(study_dir: Path, case_id: str) -> Case:
    folder = study_dir / "cases" / case_id
    folder.mkdir(parents=True)
    case = Case(case_id=case_id, folder=folder, truth=Truth("malignant", subtype="IDC"))
    case.images.append(CaseImage("us_1", _png(folder / "us.png"), "US", view="radial"))
    case.images.append(CaseImage("mg_cc", _png(folder / "cc.png"), "MG", view="CC", laterality="L"))
    save_case(case)
    return case


def test_round_trip_with_annotations(tmp_path: Path) -> None:
    create_study(tmp_path, "s", description="d")
    case = _make_case(tmp_path, "c1")
    case.annotations.append(Annotation("us_1", "box", [[1, 2], [10, 12]], lesion_id="L1"))
    case.annotations.append(Annotation("mg_cc", "polygon", [[1, 1], [5, 1], [3, 4]], lesion_id="L1"))
    save_annotations(case)
    study = load_study(tmp_path)
    assert study.problems == []
    loaded = study.case("c1")
    assert loaded.truth is not None and loaded.truth.malignant and loaded.truth.subtype == "IDC"
    assert [im.image_id for im in loaded.images] == ["us_1", "mg_cc"]
    assert loaded.images[0].path == (tmp_path / "cases/c1/us.png")
    assert loaded.modalities == ["MG", "US"]
    assert loaded.lesion_box("us_1") == (1, 2, 10, 12)
    # the same lesion id links the US box and the MG polygon
    assert {a.lesion_id for a in loaded.annotations} == {"L1"}
    # stored paths are relative: the study folder can be moved
    moved = tmp_path.parent / "moved_study"
    shutil.copytree(tmp_path, moved)
    assert load_study(moved).case("c1").images[0].path == moved / "cases/c1/us.png"


def test_bad_case_is_reported_and_others_load(tmp_path: Path) -> None:
    create_study(tmp_path, "s")
    _make_case(tmp_path, "good")
    bad = tmp_path / "cases" / "bad"
    bad.mkdir()
    (bad / "case.json").write_text('{"case_id": "bad", "images": [ {"image_id": "x"', encoding="utf-8")
    wrong_mod = tmp_path / "cases" / "wrongmod"
    wrong_mod.mkdir()
    (wrong_mod / "case.json").write_text(json.dumps(
        {"case_id": "wrongmod", "images": [{"image_id": "a", "path": "a.png", "modality": "CT"}]}))
    study = load_study(tmp_path)
    assert [c.case_id for c in study.cases] == ["good"]
    msgs = sorted(str(p) for p in study.problems)
    assert len(msgs) == 2
    assert "invalid JSON" in msgs[0] and "bad/case.json" in msgs[0]
    assert "modality 'CT'" in msgs[1] and "wrongmod" in msgs[1]


def test_bad_annotation_names_file_and_record(tmp_path: Path) -> None:
    create_study(tmp_path, "s")
    case = _make_case(tmp_path, "c1")
    (case.folder / "annotations.json").write_text(json.dumps(
        {"annotations": [{"image_id": "nope", "kind": "box", "points": [[0, 0], [1, 1]]}]}))
    study = load_study(tmp_path)
    assert study.cases == []
    assert "annotations[0] refers to unknown image 'nope'" in str(study.problems[0])


def test_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(CaseFormatError, match="no study.json"):
        load_study(tmp_path)
    (tmp_path / "study.json").write_text('{"format": "breast-reader-study", "version": 99}')
    with pytest.raises(CaseFormatError, match="newer than this program"):
        load_study(tmp_path)


def test_manifest_import(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    _png(src / "b.png")
    (src / "m.csv").write_text(
        "case_id,path,modality,view,truth\n"
        "p1,a.png,US,radial,malignant\n"
        "p1,b.png,MG,CC,malignant\n"
        "p2,missing.png,US,,benign\n"
    )
    res = import_manifest(src / "m.csv", tmp_path / "study")
    assert [c.case_id for c in res.study.cases] == ["p1"]
    assert len(res.problems) == 1 and res.problems[0].row == 4
    assert "missing.png" in str(res.problems[0])
    study = load_study(tmp_path / "study")
    assert [im.modality for im in study.case("p1").images] == ["US", "MG"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("case_id,path\np1,a.png\n", "missing column(s) modality"),
        ("case_id,path,modality\np1,a.png,CT\n", "row 2: modality 'CT'"),
        ("case_id,path,modality,truth\np1,a.png,US,maybe\n", "row 2: truth 'maybe'"),
        ("case_id,path,modality\n", "no rows"),
    ],
)
def test_manifest_errors_name_row(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(CaseFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_manifest(tmp_path / "m.csv", tmp_path / "study")


def test_dicom_folder_import_groups_and_hides_phi(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = tmp_path / "dicom"
    src.mkdir()
    mr = get_testdata_file("MR_small.dcm", download=False)
    ct = get_testdata_file("CT_small.dcm", download=False)
    assert mr and ct
    shutil.copy(mr, src / "mr1.dcm")
    shutil.copy(ct, src / "ct.dcm")
    (src / "notes.txt").write_text("not dicom")
    res = import_dicom_folder(src, tmp_path / "study")
    assert len(res.study.cases) == 1
    case = res.study.cases[0]
    assert case.images[0].modality == "MR" and case.images[0].path.is_dir()
    reasons = " ".join(str(p) for p in res.problems)
    assert "ct.dcm" in reasons and "'CT' is not MG, US or MR" in reasons
    assert "notes.txt" in reasons and "not a readable DICOM" in reasons
    import pydicom

    pid = str(pydicom.dcmread(mr, stop_before_pixels=True).PatientID)
    assert pid not in case.case_id and pid not in (case.patient_ref or "")
