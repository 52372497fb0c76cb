"""`breast-engine ship`: a config in, a weights folder out -- reproducible, parity-checked, loadable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.tiny_study import TinyBusi


TINY = """
[data]
kind = "busi"
path = "{data}"

[model]
name = "efficientnet_lite0"

[model.cfg]
num_classes = 2
in_chans = 3
pretrained = false

[train]
mode = "linear_probe"
seed = 3
threads = 1

[ship]
name = "tiny_us"
modality = "US"
c = 0.1
views = "random_crops"
random_crops = 1
folds = 2
repeats = 2
parity_images = 4

[ship.preprocess]
size = [32, 32]
in_chans = 3
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
crop = "whole"
box = "ignored"
resize = "five_crop"
"""


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_busi: TinyBusi) -> Path:
    data = tiny_busi(n=10)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(data=data))
    return cfg


def test_ship_is_reproducible_and_its_card_figures_are_evaluates(tiny_config: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["ship", str(tiny_config), "--out", str(a), "--quiet"]) == 0
    assert main(["ship", str(tiny_config), "--out", str(b), "--quiet"]) == 0
    for f in ("weights.pt", "spec.json", "MODEL_CARD.md"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    spec = json.loads((a / "spec.json").read_text())
    assert spec["preprocess"]["resize"] == "five_crop" and spec["threshold"] == spec["metrics"]["f2_threshold"]
    capsys.readouterr()
    assert main(["evaluate", "--config", str(tiny_config), "--protocol", "recipe", "--json", "--quiet"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the card's metrics are evaluate's, on the same config (evaluate also lists the out-of-fold
    # scores, oof_*, for paired comparisons between configs; make_spec leaves them out of spec.json)
    assert {k: v for k, v in evaluated.items() if not k.startswith("oof_")} == spec["metrics"]
    assert len(evaluated["oof_scores_all_partitions"][0]) == len(evaluated["oof_ids"]) == 10
    card = (a / "MODEL_CARD.md").read_text()
    assert spec["sha256"] in card and f"{spec['metrics']['auc_mean']:.4f}" in card
    # a different seed is a different model
    c = tmp_path / "c"
    assert main(["ship", str(tiny_config), "--out", str(c), "--quiet", "--set", "train.seed=4"]) == 0
    assert (c / "weights.pt").read_bytes() != (a / "weights.pt").read_bytes()


def test_shipped_weights_score_like_the_recipe_through_the_cli(tiny_config: Path, tmp_path: Path) -> None:
    """What ship checked (app predictor == recipe) also holds for `breast-engine score` on the same files."""
    out = tmp_path / "w"
    assert main(["ship", str(tiny_config), "--out", str(out), "--quiet"]) == 0
    from engine.inference import Predictor
    from engine.io.reader import read_image

    imgs = sorted((tiny_config.parent / "busi" / "images").glob("*.png"))
    pred = Predictor(out, device="cpu")
    want = [pred.predict(read_image(str(f))) for f in imgs]
    csv_out = tmp_path / "s.csv"
    assert main(["score", *map(str, imgs), "--modality", "US", "--model", str(out), "--out", str(csv_out)]) == 0
    import csv

    with csv_out.open() as fh:
        got = [float(r["score"]) for r in csv.DictReader(fh)]
    assert got == pytest.approx(want, abs=1e-5)


FINETUNE = """
[data]
kind = "image_folder_csv"
path = "{data}"
image_size = [32, 32]
grayscale = true
mean = [0.5]
std = [0.25]

[model]
name = "habib_basic_cnn"

[model.cfg]
in_chans = 1

[augment]
preset = "hijab"

[optim]
name = "adam"
lr = 0.003

[train]
mode = "finetune"
epochs = 2
batch_size = 4
seed = 5
threads = 1
device = "cpu"
select = []

[ship]
name = "tiny_ft"
modality = "US"
folds = 2
parity_images = 4
"""


def test_ship_a_finetune_config_same_bytes_card_from_evaluate(tmp_path: Path, tiny_busi: TinyBusi,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A gradient-trained (train.mode = finetune) config ships too: same config + seed -> same
    bytes; the card's AUC is `evaluate --protocol kfold` of the same config; the spec's
    preprocessing is the datasets' own (so the parity check inside ship passed); another
    seed gives other weights."""
    data = tiny_busi(n=12)
    cfg = tmp_path / "ft.toml"
    cfg.write_text(FINETUNE.format(data=data))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["ship", str(cfg), "--out", str(a), "--quiet"]) == 0
    assert main(["ship", str(cfg), "--out", str(b), "--quiet"]) == 0
    for f in ("weights.pt", "spec.json", "MODEL_CARD.md"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    spec = json.loads((a / "spec.json").read_text())
    assert spec["model"] == "habib_basic_cnn" and spec["preprocess"]["size"] == [32, 32]
    assert spec["preprocess"]["in_chans"] == 1 and spec["preprocess"]["crop"] == "whole"
    capsys.readouterr()
    assert main(["evaluate", "--config", str(cfg), "--protocol", "kfold", "--folds", "2", "--json", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert spec["metrics"]["pooled_auc"] == pytest.approx(ev["pooled"]["auc"], abs=1e-4)
    assert f"{spec['metrics']['pooled_auc']:.4f}" in (a / "MODEL_CARD.md").read_text()
    c = tmp_path / "c"
    assert main(["ship", str(cfg), "--out", str(c), "--quiet", "--set", "train.seed=6"]) == 0
    assert (c / "weights.pt").read_bytes() != (a / "weights.pt").read_bytes()
