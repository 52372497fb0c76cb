"""Slow smoke tests of the lab scripts (results reproduction, synthetic generators at scale)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_habib_synthetic_quick_run_writes_results(tmp_path: Path) -> None:
    out = REPO / "scripts" / "results" / "habib_synthetic_quick.json"
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, str(REPO / "scripts" / "reproduce_results.py"), "run", "habib_synthetic",
                    "--quick", "--folds", "2"], check=True, cwd=REPO)
    data = json.loads(out.read_text())
    out.unlink()
    assert set(data["configs"]) == {"two_step/bce", "end_to_end/bce", "two_step/lmcl", "end_to_end/lmcl"}
    for cfg in data["configs"].values():
        for mod in ("mg", "us", "fused"):
            assert len(cfg[mod]["fold_auc"]) == 2
            assert all(0.0 <= a <= 1.0 for a in cfg[mod]["fold_auc"])
    assert data["wall_s"] > 0 and "CPU" in data["device"]


@pytest.mark.slow
def test_render_results_writes_markdown(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "reproduce_results.py"), "render"], check=True, cwd=REPO)
    text = (REPO / "docs" / "results.md").read_text()
    assert "reduced" in text.lower() and "SYNTHETIC" in text
