"""`breast-engine score` contract with a temporary tiny weights folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cli.main import main
from engine.models import get_model
from engine.models.weights import WeightsSpec, save_weights


def make_weights(root: Path, name: str = "tiny_us") -> Path:
    torch.manual_seed(0)
    spec = WeightsSpec(name=name, model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality="US",
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)")
    return save_weights(get_model("habib_basic_cnn", in_chans=1), spec, root / name)


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))
    make_weights(models)
    (models / "defaults.json").write_text(json.dumps({"US": "tiny_us"}))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for n in ("b.png", "a.png"):
        cv2.imwrite(str(imgs / n), (rng.random((60, 80)) * 255).astype(np.uint8))
    (imgs / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_text("this is text, not a PNG")
    return tmp_path


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))


def test_score_folder_and_files(setup: Path) -> None:
    out = setup / "out.csv"
    rc = main(["score", "--modality", "US", str(setup / "imgs"), "--out", str(out)])
    assert rc == 0
    rows = _read(out)
    assert [Path(r["path"]).name for r in rows] == ["a.png", "b.png"]  # sorted, .txt skipped
    assert all(r["model"] == "tiny_us" and 0 <= float(r["score"]) <= 1 for r in rows)


def test_manifest_keeps_order_columns_and_reports_bad_rows(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    man = setup / "m.csv"
    man.write_text(
        "path,modality,x0,y0,x1,y1,reader\n"
        "imgs/b.png,US,10,10,40,40,r1\n"
        "broken.png,US,,,,,r2\n"
        "missing.png,US,,,,,r3\n"
        "imgs/a.png,US,,,,,r4\n"
    )
    out = setup / "o.csv"
    rc = main(["score", "--manifest", str(man), "--out", str(out)])
    assert rc == 1
    rows = _read(out)
    assert list(rows[0]) == ["path", "modality", "x0", "y0", "x1", "y1", "reader", "model", "score",
                             "box_x0", "box_y0", "box_x1", "box_y1", "ood", "ood_flag"]
    assert [rows[0][k] for k in ("box_x0", "box_y0", "box_x1", "box_y1")] == ["10", "10", "40", "40"]
    assert [r["reader"] for r in rows] == ["r1", "r2", "r3", "r4"]
    assert rows[0]["score"] and rows[3]["score"] and not rows[1]["score"] and not rows[2]["score"]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("breast-engine score:")]
    assert len(err) == 2 and "broken.png" in err[0] and "missing.png" in err[1]
    # the box changes the score
    plain = setup / "p.csv"
    man.write_text("path,modality\nimgs/b.png,US\n")
    main(["score", "--manifest", str(man), "--out", str(plain)])
    assert _read(plain)[0]["score"] != rows[0]["score"]


def test_no_model_for_modality_is_one_clear_error(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["score", "--modality", "MR", str(setup / "imgs"), "--out", str(setup / "x.csv")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["breast-engine: error: no default model is installed for MR (resources/models/defaults.json); "
                   "train one or pass --model"]


def test_bad_manifest_names_row(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    man = setup / "bad.csv"
    man.write_text("path,modality,x0,y0,x1,y1\nimgs/a.png,US,1,2,,\n")
    assert main(["score", "--manifest", str(man), "--out", str(setup / "x.csv")]) == 2
    assert "row 2" in capsys.readouterr().err


def test_explicit_model_path(setup: Path) -> None:
    out = setup / "e.csv"
    rc = main(["score", "--model", str(setup / "models" / "tiny_us"), str(setup / "imgs" / "a.png"),
               "--out", str(out)])
    assert rc == 0 and _read(out)[0]["model"] == "tiny_us"
