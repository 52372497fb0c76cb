"""Weights integrity that survives editing the model folder (issue 16, deliverable 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import WeightsMismatchError
from engine.models.pinned import PINNED_SHA256
from engine.models.weights import load_weights, sha256_file

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models"


def test_pinned_table_matches_every_shipped_model() -> None:
    for d in sorted(p for p in SHIPPED.iterdir() if (p / "weights.pt").is_file()):
        digest = sha256_file(d / "weights.pt")
        assert PINNED_SHA256.get(d.name) == digest, (
            f"engine/models/pinned.py: set  \"{d.name}\": \"{digest}\",  (re-shipped weights need their pin)")


def test_tampered_shipped_model_is_refused_even_with_a_rewritten_spec(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    name = "us_effnet_lite0_busi"
    if not (SHIPPED / name / "weights.pt").is_file():
        pytest.skip("shipped US model not present")
    d = tmp_path / name
    shutil.copytree(SHIPPED / name, d)
    monkeypatch.setattr("engine.models.pinned.shipped_root", lambda: tmp_path.resolve())  # a copy stands in
    with open(d / "weights.pt", "ab") as fh:  # any change, then the attacker fixes spec.json too
        fh.write(b"\0")
    spec = json.loads((d / "spec.json").read_text())
    spec["sha256"] = sha256_file(d / "weights.pt")
    (d / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(WeightsMismatchError, match="pinned in the package"):
        load_weights(d)


def test_ship_into_resources_updates_the_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.models.pinned as pinned

    src = tmp_path / "pinned.py"
    src.write_text(Path(pinned.__file__).read_text())
    monkeypatch.setattr(pinned, "__file__", str(src))
    monkeypatch.setattr(pinned, "shipped_root", lambda: tmp_path.resolve())
    monkeypatch.setattr(pinned, "PINNED_SHA256", dict(pinned.PINNED_SHA256))
    (tmp_path / "us_effnet_lite0_busi").mkdir()
    assert pinned.update_pin(tmp_path / "us_effnet_lite0_busi", "ab" * 32)
    assert '"us_effnet_lite0_busi": "' + "ab" * 32 + '",' in src.read_text()
    assert not pinned.update_pin(tmp_path / "elsewhere" / "x", "cd" * 32)
