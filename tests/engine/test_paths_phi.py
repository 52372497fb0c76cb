"""Paths stay inside the study, imports take image files only, identifiers never reach the files
the app writes, pseudonyms are keyed (issue 16, deliverables 6 and 7)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cases import load_study
from engine.cases.importers import import_dicom_folder, import_manifest, pseudonym
from engine.cases.secret import KEY_FILE, _unkeyed
from engine.cases.store import IMAGE_ROOTS_ENV, load_case
from engine.errors import CaseFormatError, ImageReadError
from engine.io.reader import read_image
from engine.io.writer import write_dicom

PHI = {"name": "DOE^JANE", "id": "MRN7654321", "birth": "19610704", "accession": "ACC998877"}


@pytest.fixture(autouse=True)
def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "config"
    monkeypatch.setenv("BREAST_READER_CONFIG", str(cfg))
    monkeypatch.delenv(IMAGE_ROOTS_ENV, raising=False)
    return cfg


def _case(study: Path, image_path: str) -> Path:
    folder = study / "cases" / "c1"
    folder.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": "s", "format": 1}))
    (folder / "case.json").write_text(json.dumps(
        {"case_id": "c1", "images": [{"image_id": "i", "path": image_path, "modality": "US"}]}))
    return folder


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_case_paths_cannot_leave_the_study(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-CONTENT do not print\n")
    study = tmp_path / "study"
    if kind == "dotdot":
        folder = _case(study, "../../../outside/secret.txt")
    elif kind == "absolute":
        folder = _case(study, str(secret))
    else:
        folder = _case(study, "link.png")
        (folder / "link.png").symlink_to(secret)
    with pytest.raises(CaseFormatError, match="outside the study folder") as err:
        load_case(folder)
    assert "TOP-SECRET" not in str(err.value)
    monkeypatch.setenv(IMAGE_ROOTS_ENV, str(secret.parent))  # an explicitly allowed external root
    case = load_case(folder)
    with pytest.raises(ImageReadError) as err2:
        read_image(case.images[0].path)
    assert "TOP-SECRET" not in str(err2.value) and "text" in str(err2.value)


def test_manifest_import_takes_image_files_from_inside_the_source_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir_of_text").mkdir(parents=True)
    (src / "dir_of_text" / "a.txt").write_text("hello")
    cv2.imwrite(str(src / "DOE_JANE_MRN7654321.png"), np.full((40, 50), 100, np.uint8))
    (src / "notes.png").write_text("PATIENT NOTES private")
    outside = tmp_path / "outside.png"
    cv2.imwrite(str(outside), np.zeros((40, 50), np.uint8))
    (src / "link.png").symlink_to(outside)
    rows = ["DOE_JANE_MRN7654321.png", "notes.png", "link.png", "../outside.png", str(outside), "/etc/passwd",
            "/proc/self/environ", "dir_of_text", "missing.png"]
    (src / "m.csv").write_text("case_id,path,modality\n" + "".join(f"p1,{r},US\n" for r in rows))
    res = import_manifest(src / "m.csv", tmp_path / "study")
    (case,) = res.study.cases
    assert len(case.images) == 1
    assert len(res.problems) == len(rows) - 1  # every refusal is reported, one line each
    msgs = " | ".join(str(p) for p in res.problems)
    assert "private" not in msgs and "root:" not in msgs
    assert msgs.count("outside the manifest's folder") == 5
    assert "not an image file" in msgs
    copied = [p.name for p in (tmp_path / "study").rglob("*") if p.is_file()]
    assert not any("passwd" in n or "environ" in n or "notes" in n or "outside" in n for n in copied)
    _assert_no_phi(tmp_path / "study")


def _write_phi_dicoms(folder: Path) -> None:
    folder.mkdir(parents=True)
    px = (np.mgrid[0:64, 0:48][0] * 30).astype(np.uint16)
    common = {"patient_id": PHI["id"], "patient_name": PHI["name"], "accession": PHI["accession"],
              "study_uid": "1.2.826.0.1.3680043.9.7777.10", "extra_tags": {"PatientBirthDate": PHI["birth"]}}
    for lat, view in (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")):
        write_dicom(folder / f"{PHI['id']}_{PHI['name'].replace('^', '_')}_{lat}{view}.dcm", px, modality="MG",
                    laterality=lat, view=view, **common)
    write_dicom(folder / f"{PHI['id']}_bad_laterality.dcm", px, modality="MG", laterality="L", view="CC",
                **{**common, "extra_tags": {"PatientBirthDate": PHI["birth"], "ImageLaterality": "Q"}})


def _assert_no_phi(study: Path) -> None:
    """Grep every file the app wrote (not the copied original DICOMs) and every file name."""
    for p in study.rglob("*"):
        for value in PHI.values():
            assert value not in p.name and value.replace("^", "_") not in p.name, p
        if p.is_file() and p.suffix.lower() != ".dcm":
            text = p.read_bytes()
            for value in PHI.values():
                assert value.encode() not in text, (p, value)


def test_dicom_exam_is_one_case_with_both_breasts_and_no_identifiers(tmp_path: Path) -> None:
    _write_phi_dicoms(tmp_path / "dicom")
    res = import_dicom_folder(tmp_path / "dicom", tmp_path / "study")
    (case,) = res.study.cases
    lats = sorted(im.laterality or "-" for im in case.images)
    assert lats == ["-", "L", "L", "R", "R"]  # the bad ImageLaterality does not abort the import
    assert any("ImageLaterality" in str(p) for p in res.problems)
    _assert_no_phi(tmp_path / "study")
    assert load_study(tmp_path / "study").cases[0].case_id == case.case_id


def test_pseudonyms_are_keyed_per_installation(tmp_path: Path, _config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = pseudonym(PHI["id"])
    key = _config / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pseudonym(PHI["id"]) == ref  # stable on this installation
    # the old unkeyed scheme falls to enumeration; the keyed one does not
    targets = {_unkeyed(f"MRN{n:07d}") for n in range(7654300, 7654400)}
    assert _unkeyed(PHI["id"]) in targets
    assert ref not in {_unkeyed(f"MRN{n:07d}") for n in range(7654300, 7654400)}
    monkeypatch.setenv("BREAST_READER_CONFIG", str(tmp_path / "other-install"))
    assert pseudonym(PHI["id"]) != ref
    assert os.path.getsize(key) == 32


def test_import_cli_preview_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    _write_phi_dicoms(tmp_path / "dicom")
    assert main(["import", str(tmp_path / "dicom"), "--dry-run", "--json"]) == 1  # the bad laterality is reported
    pv = json.loads(capsys.readouterr().out)
    assert pv["kind"] == "dicom" and pv["study"] is None and len(pv["cases"]) == 1
    assert sorted(im["laterality"] or "-" for im in pv["cases"][0]["images"]) == ["-", "L", "L", "R", "R"]
    assert not (tmp_path / "study").exists()
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(imgs / "MRN7654321_us.png"), (rng.random((300, 400)) * 200 + 30).astype(np.uint8))
    (imgs / "readme.txt").write_text("x")
    assert main(["import", str(imgs), "--out", str(tmp_path / "study")]) == 1
    out = capsys.readouterr()
    assert "1 case(s)" in out.out and "readme.txt" in out.err
    (case,) = load_study(tmp_path / "study").cases
    assert case.images[0].modality == "US"
    _assert_no_phi(tmp_path / "study")


def test_deidentified_export_has_no_identifiers_even_in_the_dicoms(tmp_path: Path) -> None:
    import pydicom

    from engine.cases.deid import export_deidentified

    _write_phi_dicoms(tmp_path / "dicom")
    import_dicom_folder(tmp_path / "dicom", tmp_path / "study")
    rep = export_deidentified(tmp_path / "study", tmp_path / "share")
    assert rep.dicom_files == 5 and not rep.refused
    for p in (tmp_path / "share").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for value in PHI.values():
                assert value.encode() not in data, (p, value)
    f = next((tmp_path / "share").rglob("*.dcm"))
    ds = pydicom.dcmread(f)
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert 0 < len(ds.DeidentificationMethod) <= 64  # VR LO
    assert ds.AccessionNumber == "" and "StudyID" in ds and ds.StudyID == ""  # PS3.15 action Z: present, empty
    assert str(ds.StudyInstanceUID).startswith("2.25.") and ds.StudyInstanceUID != "1.2.826.0.1.3680043.9.7777.10"
    assert read_image(f).pixels.shape == (64, 48)  # still a readable image
    study = load_study(tmp_path / "share")
    assert len(study.cases) == 1 and len(study.cases[0].images) == 5
