"""The seeded mutation fuzzer, bounded for `make test` (the full run: `breast-engine bench fuzz --json`).

300 mutants (plus the 41 seeds, valid and hostile) through `info`; 60 through `score` with a tiny
model, then every seed in one `score` batch (pydicom's colour multi-frame DICOM first), which
must score each seed that scores alone. Each input runs in a worker process with a 30 s timeout and a 2 GB peak-RSS bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.bench.fuzz import run_fuzz

from test_cli_score import make_weights


def test_fuzz_info_300_mutants() -> None:
    res = run_fuzz(300, seed=16, timeout=30.0, max_rss_mb=2048.0)
    assert res["inputs"] == 300 + res["seeds"]
    assert res["outcomes"].get("ok", 0) > 50 and res["outcomes"].get("refused", 0) > 50  # it really mutates
    assert res["passed"], res["findings"]
    assert res["peak_rss_mb"] < 2048


def test_fuzz_score_60_mutants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    make_weights(models)
    (models / "defaults.json").write_text(json.dumps({"US": "tiny_us"}))
    monkeypatch.setenv("BREAST_READER_MODELS", str(models))
    res = run_fuzz(60, seed=7, score=True, timeout=30.0, max_rss_mb=2048.0)
    assert res["score_outcomes"].get("scored", 0) > 10
    assert res["passed"], res["findings"]
    batch = res["batch"]  # every seed in one batch, the colour multi-frame DICOM first
    assert batch["passed"] and batch["lost"] == [], batch
    assert batch["csv_rows"] == batch["files"] == res["seeds"] and batch["scored"] >= batch["scored_alone"] > 10
    if batch["first"] == "pydicom_examples_ybr_color.dcm":
        assert batch["first_scored"], batch
