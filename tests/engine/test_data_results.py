"""docs/results.md is exactly what scripts/render_results.py renders from docs/results/*.json."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_results_page_is_rendered_from_the_result_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("render_results", REPO / "scripts" / "render_results.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.render(tmp_path / "results.md")
    text = out.read_text(encoding="utf-8")
    assert text == (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert "reduced" in text.lower() and "SYNTHETIC" in text and "breast-engine ship configs/" in text
    assert sorted(p.name for p in (REPO / "scripts").iterdir() if not p.name.startswith("__")) == ["render_results.py"]
