"""`breast-engine train` / `evaluate`: end to end on tiny blob images, and bad configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import sys

from engine.cli.main import main
from engine.models.registry import _REGISTRY, register_model

sys.path.insert(0, str(Path(__file__).parent))
from test_train_fit import TinyNet, make_blob_folder  # noqa: E402

MODEL = "_test_tiny_blob_net"


@pytest.fixture(autouse=True, scope="module")
def _tiny_model_registered():
    """Register the tiny test model only while this module runs, so the registry-wide smoke
    test (collected from the real registry) never sees it."""
    if MODEL not in _REGISTRY:

        @register_model(MODEL, family="test", paper="test", modalities=("US",), task="blob vs no blob")
        def _tiny(*, in_chans: int = 1) -> nn.Module:
            return TinyNet(in_chans)

    yield
    _REGISTRY.pop(MODEL, None)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_blob_folder(tmp_path_factory.mktemp("blobs"), n_per_class=10, groups_of=2)


def write_config(path: Path, data: Path, model: str = MODEL, extra: str = "") -> Path:
    path.write_text(f"""
[data]
kind = "image_folder_csv"
path = "{data}"
image_size = [24, 24]
grayscale = true
val_fraction = 0.0

[model]
name = "{model}"

[optim]
name = "adam"
lr = 0.05

[train]
epochs = 4
batch_size = 8
device = "cpu"
output_dir = "{path.parent / 'runs'}"
{extra}
""")
    return path


def test_evaluate_kfold_json(blobs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    cfg = write_config(tmp_path / "c.toml", blobs)
    rc = main(["evaluate", "--config", str(cfg), "--protocol", "kfold", "--folds", "3", "--json",
               "--quiet", "--out", str(tmp_path / "ev")])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["per_fold"]) == 3 and res["n_lesions"] == 10  # groups of 2 images
    p = res["pooled"]
    assert p["auc"] > 0.9 and p["auc_ci"][0] <= p["auc"] <= p["auc_ci"][1]
    assert p["calls"]["sensitivity"] is not None and "f2" in p
    assert Path(res["roc_png"]).read_bytes()[:4] == b"\x89PNG"
    assert res["device"] == "cpu" and res["wall_s"] > 0
    assert (tmp_path / "ev" / "scores.csv").is_file()


def test_train_cli_and_resume(blobs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.toml", blobs)
    run = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--set", "train.epochs=2", "--set", "data.val_fraction=0.25",
               "--run-dir", str(run), "--json", "--quiet"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["epochs"] == 2 and "auc" in s["best"]
    assert "epochs = 2" in (run / "config.toml").read_text()
    rc = main(["train", "--resume", str(run), "--set", "train.epochs=3", "--json", "--quiet"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["epochs"] == 3
    assert (run / "metrics.csv").read_text().count("\n") == 4


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("unknown_model", "unknown model '_no_such_model'"),
        ("missing_data", "is not a folder"),
        ("one_class", "only one class"),
        ("labels_mismatch", "do not exist"),
        ("unknown_key", "unknown key train.epoch; valid keys in \\[train\\]: epochs"),
        ("bad_type", "train.epochs must be an integer"),
        ("unknown_section", "unknown section \\[trainer\\]"),
    ],
)
def test_bad_configs_stop_with_one_line(setup: str, message: str, blobs: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    data, model, extra, sets = blobs, MODEL, "", []
    if setup == "unknown_model":
        model = "_no_such_model"
    elif setup == "missing_data":
        data = tmp_path / "nowhere"
    elif setup in ("one_class", "labels_mismatch"):
        data = tmp_path / "d"
        data.mkdir()
        (data / "x.png").write_bytes((blobs / "images" / "benign_0.png").read_bytes())
        rows = "x.png,benign\nx.png,benign\n" if setup == "one_class" else "x.png,benign\ny.png,malignant\n"
        (data / "labels.csv").write_text("image,label\n" + rows)
    elif setup == "unknown_key":
        sets = ["--set", "train.epoch=3"]
    elif setup == "bad_type":
        sets = ["--set", "train.epochs=three"]
    elif setup == "unknown_section":
        extra = "[trainer]\nfoo = 1"
    cfg = write_config(tmp_path / "c.toml", data, model, extra)
    for cmd in (["evaluate", "--protocol", "kfold"], ["train"]):
        rc = main([*cmd, "--config", str(cfg), *sets, "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.startswith("breast-engine: error: ") and err.count("\n") == 1
        assert re.search(message, err), err


BUSI = Path(__file__).resolve().parents[3] / "shared" / "data" / "busi-dev"  # shared/ sits beside the clone


@pytest.mark.slow
@pytest.mark.skipif(not BUSI.is_dir(), reason="BUSI dev data not present")
def test_busi_quick_config_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The quick-start config: BUSI benign vs malignant, 5-fold CV, one command (a few minutes)."""
    cfg = Path(__file__).parents[2] / "configs" / "busi_habib_basic_cnn_quick.toml"
    rc = main(["evaluate", "--config", str(cfg), "--protocol", "kfold", "--folds", "5", "--json", "--quiet",
               "--set", "train.epochs=4", "--out", str(tmp_path / "ev")])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_lesions"] == 418 and len(res["per_fold"]) == 5
    p = res["pooled"]
    assert 0.5 < p["auc"] <= 1 and p["auc_ci"][0] < p["auc"] < p["auc_ci"][1]
    assert res["fold_mean"]["auc"]["mean"] > 0.55
