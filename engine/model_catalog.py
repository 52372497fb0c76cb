"""Installed weights without importing torch: folder names, defaults and modalities.

The workstation fills its model selectors at start-up; reading ``spec.json`` files here keeps
torch (seconds to import) off the path to the first image (issue 17).
:mod:`engine.models.weights` re-exports these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC_FILE = "spec.json"
DEFAULTS_FILE = "defaults.json"


def models_root() -> Path:
    """Folder holding the shipped model folders (``$BREAST_READER_MODELS`` overrides)."""
    from engine.resources import resource_dir

    return resource_dir("models", "BREAST_READER_MODELS")


def list_weights() -> list[str]:
    """Names of the weights folders installed under :func:`models_root` (sorted)."""
    root = models_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / SPEC_FILE).is_file())


def default_weights(modality: str) -> str | None:
    """Folder name of the default model for ``modality`` from ``defaults.json`` (None when absent).

    Args:
        modality: ``"US"``, ``"MG"``, ``"MR"`` or ``"MG+US"`` (case-insensitive).
    """
    f = models_root() / DEFAULTS_FILE
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    name = data.get(modality.upper()) or data.get(modality)
    if not name or not (models_root() / str(name) / SPEC_FILE).is_file():
        return None
    return str(name)


def installed_by_modality() -> dict[str, list[str]]:
    """Installed weights folder names by modality (from each ``spec.json``; unreadable ones skipped)."""
    out: dict[str, list[str]] = {}
    root = models_root()
    for name in list_weights():
        try:
            data = json.loads((root / name / SPEC_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        modality = data.get("modality") if isinstance(data, dict) else None
        if isinstance(modality, str) and modality:
            out.setdefault(modality.upper(), []).append(name)
    return out


#: The fields of :class:`engine.models.weights.WeightsSpec` (a test keeps the two in step):
#: every other top-level key of ``spec.json`` is read into its ``extra``.
SPEC_FIELDS = frozenset({"name", "model", "model_cfg", "modality", "input_size", "in_chans", "mean", "std",
                         "class_names", "threshold", "sha256", "synthetic", "init", "preprocess", "metrics", "extra"})


def spec_summary(name: str) -> tuple[float, dict[str, Any]] | None:
    """``(threshold, extra)`` of an installed weights folder as its WeightsSpec would read them,
    without importing torch (the AI panel's facts); None when the spec cannot be read."""
    d = Path(name)
    if not (d / SPEC_FILE).is_file():
        d = models_root() / str(name)
    try:
        data = json.loads((d / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or "name" not in data or "model" not in data:
        return None
    extra = dict(data.get("extra") or {})
    extra.update({k: v for k, v in data.items() if k not in SPEC_FIELDS})
    try:
        threshold = float(data.get("threshold", 0.5))
    except (TypeError, ValueError):
        return None
    return threshold, extra
