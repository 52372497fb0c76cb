"""Tests of the real-data loaders (engine.data.busi, engine.data.mias) on tiny fixtures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.data.busi import load_busi, load_busi_arrays, mask_box
from engine.data.mias import circle_box, copy_licence, lesion_crop, load_mias
from engine.errors import CaseFormatError

BUSI_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"
MIAS_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "mias-dev"


def _busi(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("benign_1", "malignant_1", "normal_1"):
        img = np.full((40, 60), 90, np.uint8)
        mask = np.zeros((40, 60), np.uint8)
        if name != "normal_1":
            mask[10:20, 30:45] = 255
            img[10:20, 30:45] = 20
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), img)
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), mask)
    (tmp_path / "labels.csv").write_text("image,mask,label,original_width,original_height\n" + "\n".join(rows) + "\n")
    return tmp_path


ROWS = [
    "images/benign_1.png,masks/benign_1.png,benign,60,40",
    "images/malignant_1.png,masks/malignant_1.png,malignant,60,40",
    "images/normal_1.png,masks/normal_1.png,normal,60,40",
]


def test_busi_excludes_normal_by_default(tmp_path: Path) -> None:
    root = _busi(tmp_path, ROWS)
    recs = load_busi(root)
    assert [r.image_id for r in recs] == ["benign_1", "malignant_1"]
    assert [r.label for r in recs] == [0, 1]
    assert [r.group for r in recs] == ["benign_1", "malignant_1"]  # image = lesion unit
    with_normal = load_busi(root, include_normal=True)
    assert len(with_normal) == 3 and with_normal[2].label == 0 and with_normal[2].label_name == "normal"


def test_busi_arrays_and_mask_box(tmp_path: Path) -> None:
    root = _busi(tmp_path, ROWS)
    recs = load_busi(root)
    imgs, masks, labels = load_busi_arrays(recs, size=32, cache=tmp_path / "c.npz")
    assert imgs.shape == (2, 32, 32) and imgs.dtype == np.uint8 and labels.tolist() == [0, 1]
    again = load_busi_arrays(recs, size=32, cache=tmp_path / "c.npz")
    assert np.array_equal(again[0], imgs)
    full = cv2.imread(str(recs[0].mask), cv2.IMREAD_GRAYSCALE)
    assert mask_box(full) == (30, 10, 45, 20)
    assert mask_box(np.zeros((4, 4))) is None


@pytest.mark.parametrize(
    "rows, reason",
    [
        (["images/benign_1.png,masks/benign_1.png,cyst,60,40"], "unknown label"),
        (["images/missing.png,masks/benign_1.png,benign,60,40"], "not found"),
    ],
)
def test_busi_bad_rows(tmp_path: Path, rows: list[str], reason: str) -> None:
    root = _busi(tmp_path, rows)
    with pytest.raises(CaseFormatError, match=reason):
        load_busi(root)


INFO = """mdb001 G CIRC B 535 425 197
mdb002 G CIRC M 522 280 69
mdb003 D NORM
mdb004 F CALC M 100 900 10
mdb004 F CALC B 200 800 12
mdb216 D CALC M *NOTE 3*
"""


def _mias(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for ref in ("mdb001", "mdb002", "mdb003", "mdb004", "mdb216"):
        img = np.zeros((1024, 1024), np.uint8)
        img[100:900, 0:600] = 120  # a breast blob on the left
        cv2.imwrite(str(tmp_path / "images" / f"{ref}.png"), img)
    (tmp_path / "Info.txt").write_text(INFO)
    (tmp_path / "Licence.txt").write_text("research use only")
    return tmp_path


def test_mias_y_from_bottom_norm_and_missing_coords(tmp_path: Path) -> None:
    ims = {m.refnum: m for m in load_mias(_mias(tmp_path))}
    a = ims["mdb001"].abnormalities[0]
    assert a.centre == (1024 - 425, 535) and a.radius == 197 and a.label == 0
    assert ims["mdb002"].label == 1
    assert ims["mdb003"].normal and ims["mdb003"].label == 0
    assert len(ims["mdb004"].abnormalities) == 2 and ims["mdb004"].label == 1
    assert ims["mdb216"].abnormalities[0].centre is None and ims["mdb216"].label == 1
    # Left/right breasts of one woman share a patient id.
    assert ims["mdb001"].patient == ims["mdb002"].patient != ims["mdb003"].patient
    box = circle_box(a.centre, a.radius)
    assert box == (338, 402, 733, 797)
    assert circle_box((5, 5), 10, (64, 64)) == (0, 0, 16, 16)
    lic = copy_licence(tmp_path, tmp_path / "copy")
    assert lic.read_text() == "research use only"


def test_mias_bad_row(tmp_path: Path) -> None:
    root = _mias(tmp_path)
    (root / "Info.txt").write_text("mdb001 G BLOB B 1 2 3\n")
    with pytest.raises(CaseFormatError, match="malformed"):
        load_mias(root)


def test_lesion_crop_pads_at_border() -> None:
    img = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100)
    crop = lesion_crop(img, (0, 0, 20, 20), size=16, margin=0.25)
    assert crop.shape == (16, 16) and crop.dtype == np.uint16 and crop[0, 0] == 0


@pytest.mark.skipif(not BUSI_DEV.is_dir(), reason="busi-dev not available")
def test_busi_dev_counts() -> None:
    recs = load_busi(BUSI_DEV)
    assert len(recs) == 418 and sum(r.label for r in recs) == 136


@pytest.mark.skipif(not MIAS_DEV.is_dir(), reason="mias-dev not available")
def test_mias_dev_counts() -> None:
    ims = load_mias(MIAS_DEV)
    assert len(ims) == 185
    boxes = [a for m in ims for a in m.abnormalities if a.centre is not None]
    assert len(boxes) == 72
