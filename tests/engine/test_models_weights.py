"""Weights API: round trip, sha256 / shape mismatches refused, defaults.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.errors import ModelNotFoundError, WeightsMismatchError
from engine.models import get_model
from engine.models.weights import (
    WeightsSpec,
    default_weights,
    list_weights,
    load_weights,
    read_spec,
    save_weights,
)


def _spec(name: str = "tiny_us") -> WeightsSpec:
    return WeightsSpec(name=name, model="habib_basic_cnn", model_cfg={"in_chans": 1}, modality="US",
                       input_size=[32, 32], in_chans=1, mean=[0.5], std=[0.25], class_names=["malignant"],
                       init="random (test)")


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BREAST_READER_MODELS", str(tmp_path))
    return tmp_path


def test_round_trip_same_outputs(root: Path) -> None:
    torch.manual_seed(0)
    m = get_model("habib_basic_cnn", in_chans=1).eval()
    spec = _spec()
    save_weights(m, spec, root / "tiny_us", card="# card\n")
    assert len(spec.sha256) == 64
    on_disk = json.loads((root / "tiny_us" / "spec.json").read_text())
    assert on_disk["sha256"] == spec.sha256 and on_disk["model"] == "habib_basic_cnn"
    m2, s2 = load_weights("tiny_us")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), m2(x))
    assert not m2.training and s2.name == "tiny_us"
    assert list_weights() == ["tiny_us"]
    assert (root / "tiny_us" / "MODEL_CARD.md").is_file()


def test_sha_mismatch_refused(root: Path) -> None:
    save_weights(get_model("habib_basic_cnn", in_chans=1), _spec(), root / "w")
    with open(root / "w" / "weights.pt", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(WeightsMismatchError, match="sha256"):
        load_weights(root / "w")


def test_shape_mismatch_names_the_tensor(root: Path) -> None:
    save_weights(get_model("habib_basic_cnn", in_chans=1), _spec(), root / "w")
    d = json.loads((root / "w" / "spec.json").read_text())
    d["model_cfg"] = {"in_chans": 1, "descriptor_dim": 256}
    (root / "w" / "spec.json").write_text(json.dumps(d))
    with pytest.raises(WeightsMismatchError, match=r"proj\.1\.weight.*shape"):
        load_weights(root / "w")


def test_wrong_architecture_and_unknown_names(root: Path) -> None:
    save_weights(get_model("habib_basic_cnn", in_chans=1), _spec(), root / "w")
    d = json.loads((root / "w" / "spec.json").read_text())
    d["model"] = "an_heatmap_fcn"
    (root / "w" / "spec.json").write_text(json.dumps(d))
    with pytest.raises(WeightsMismatchError, match="do not fit model 'an_heatmap_fcn'"):
        load_weights(root / "w")
    with pytest.raises(ModelNotFoundError):
        load_weights("nope")


def test_defaults_json(root: Path) -> None:
    assert default_weights("US") is None  # no defaults.json
    save_weights(get_model("habib_basic_cnn", in_chans=1), _spec(), root / "tiny_us")
    (root / "defaults.json").write_text(json.dumps({"US": "tiny_us", "MG": "missing_folder"}))
    assert default_weights("US") == "tiny_us"
    assert default_weights("us") == "tiny_us"
    assert default_weights("MG") is None
    assert default_weights("MR") is None
    assert read_spec("tiny_us").malignant_index == 0
