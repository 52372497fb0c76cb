"""Issue 12 item 7, the exact forms outside checks rely on, with the shipped US default:

* ``score ... --saliency DIR`` writes one float32 ``<input stem>.npy`` per input in the decoded
  image's pixel grid (rows x cols), and the CSV gains ``saliency_x,saliency_y`` = the map's peak;
* a manifest box on an ultrasound row is the lesion box (written back as given); without one the
  finder's box is used and written as ``box_x0,box_y0,box_x1,box_y1``;
* the input's rows and columns are kept, in order, the added columns after them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cli.cmd_score import ADDED, SALIENCY_COLS
from engine.cli.main import main

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BUSI = DATA / "busi-dev"
needs_busi = pytest.mark.skipif(not (BUSI / "labels.csv").is_file(), reason="shared/data/busi-dev not present")


def _read(p: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(p, newline="") as fh:
        r = csv.DictReader(fh)
        rows = list(r)
        return list(r.fieldnames or []), rows


@needs_busi
def test_default_us_model_writes_the_contract_forms(tmp_path: Path) -> None:
    from engine.inference import Predictor
    from engine.io.reader import read_image
    from engine.models.weights import default_weights

    assert default_weights("US") == "us_lesion_lite0_busi"
    mal = BUSI / "images" / "malignant_114.png"
    ben = BUSI / "images" / "benign_180.png"
    dcm = next(iter(sorted((DATA / "mimbcd-dev" / "us").glob("*/*.dcm"))), None)
    mask = cv2.imread(str(BUSI / "masks" / "malignant_114.png"), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    lines = ["case,path,modality,x0,y0,x1,y1,note",
             f"c2,{ben},US,,,,,no box: the finder's",
             f"c1,{mal},US,{box[0]},{box[1]},{box[2]},{box[3]},reader box"]
    if dcm is not None:
        lines.append(f"c3,{dcm},US,,,,,another hospital (DICOM)")
    man = tmp_path / "m.csv"
    man.write_text("\n".join(lines) + "\n")
    out, sal = tmp_path / "o.csv", tmp_path / "maps"
    assert main(["score", "--manifest", str(man), "--out", str(out), "--saliency", str(sal)]) == 0
    header, rows = _read(out)
    assert header == ["case", "path", "modality", "x0", "y0", "x1", "y1", "note", *ADDED, *SALIENCY_COLS]
    assert [r["case"] for r in rows] == [ln.split(",")[0] for ln in lines[1:]]  # input order kept
    assert [r["note"] for r in rows] == [ln.split(",")[-1] for ln in lines[1:]]
    pred = Predictor("us_lesion_lite0_busi", "cpu")
    for r in rows:
        img = read_image(r["path"], modality_hint="US")
        plane = img.pixels if img.pixels.ndim == 2 or img.is_rgb else img.pixels[img.pixels.shape[0] // 2]
        m = np.load(sal / f"{Path(r['path']).stem}.npy")  # named after the input's stem
        assert m.dtype == np.float32 and m.shape == plane.shape[:2]  # the decoded image's pixel grid
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        assert (int(r["saliency_x"]), int(r["saliency_y"])) == (px, py)
        assert r["model"] == "us_lesion_lite0_busi" and r["ood_flag"] in ("0", "1") and float(r["ood"]) > 0
        given = None if not r["x0"] else tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
        a = pred.assess(img, given)  # type: ignore[arg-type]
        written = tuple(float(r[k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1"))
        if given is not None:
            assert written == given and a.box_source == "reader"  # the manifest box is the lesion box
        else:
            assert written == tuple(float(v) for v in a.box) and a.box_source == "finder"  # the finder's box
            x0, y0, x1, y1 = written
            assert 0 <= x0 < x1 <= plane.shape[1] and 0 <= y0 < y1 <= plane.shape[0]
        assert float(r["score"]) == pytest.approx(a.score, abs=1e-6)
    assert len(list(sal.glob("*.npy"))) == len(rows)


def test_resampled_large_image_is_reported_in_the_decoded_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image above the scoring size is scored on a smaller view, but the map, its peak and the
    box are written in the decoded image's own pixels."""
    import engine.cli.cmd_score as cs
    from engine.models import get_model
    from engine.models.weights import WeightsSpec, save_weights

    models = tmp_path / "models"
    spec = WeightsSpec(name="tiny_us", model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality="US",
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)")
    torch.manual_seed(0)
    save_weights(get_model("habib_basic_cnn", in_chans=1), spec, models / "tiny_us")
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))
    monkeypatch.setattr(cs, "MAX_SCORED_PIXELS", 60 * 80)  # 240 x 320 -> scored at 60 x 80
    rng = np.random.default_rng(1)
    cv2.imwrite(str(tmp_path / "big.png"), (rng.random((240, 320)) * 255).astype(np.uint8))
    man = tmp_path / "m.csv"
    man.write_text(f"path,modality,x0,y0,x1,y1\n{tmp_path / 'big.png'},US,40,60,200,180\n")
    out = tmp_path / "o.csv"
    assert main(["score", "--model", "tiny_us", "--manifest", str(man), "--out", str(out),
                 "--saliency", str(tmp_path / "s")]) == 0
    _, rows = _read(out)
    m = np.load(tmp_path / "s" / "big.npy")
    assert m.shape == (240, 320) and m.dtype == np.float32
    py, px = np.unravel_index(int(np.argmax(m)), m.shape)
    assert (int(rows[0]["saliency_x"]), int(rows[0]["saliency_y"])) == (px, py)
    assert [float(rows[0][k]) for k in ("box_x0", "box_y0", "box_x1", "box_y1")] == pytest.approx([40, 60, 200, 180])
