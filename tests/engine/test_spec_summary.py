"""The AI panel's facts come from spec.json without torch (engine.model_catalog.spec_summary):
they must be exactly what WeightsSpec reads (issue 17: the GUI process never imports torch)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from engine.model_catalog import SPEC_FIELDS, list_weights, spec_summary


def test_spec_fields_are_the_weights_spec_fields() -> None:
    from engine.models.weights import WeightsSpec

    assert SPEC_FIELDS == {f.name for f in dataclasses.fields(WeightsSpec)}


@pytest.mark.parametrize("name", list_weights() or ["(none installed)"])
def test_summary_is_what_read_spec_reads(name: str) -> None:
    if name == "(none installed)":
        pytest.skip("no weights installed")
    from engine.models.weights import read_spec

    spec = read_spec(name)
    assert spec_summary(name) == (spec.threshold, spec.extra)


def test_unreadable_specs_give_none(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("{not json")
    assert spec_summary(str(tmp_path)) is None
    (tmp_path / "spec.json").write_text(json.dumps({"name": "x"}))  # no model
    assert spec_summary(str(tmp_path)) is None
    (tmp_path / "spec.json").write_text(json.dumps({"name": "x", "model": "m", "platt": [1, 2], "extra": {"a": 1}}))
    assert spec_summary(str(tmp_path)) == (0.5, {"a": 1, "platt": [1, 2]})
    assert spec_summary(str(tmp_path / "missing")) is None
