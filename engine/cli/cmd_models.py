"""`breast-engine models`: registered architectures (with their papers) and installed weights."""

from __future__ import annotations

import argparse
import json
from typing import Any


def collect() -> dict[str, Any]:
    """Registered models, installed weights and per-modality defaults as plain data."""
    from engine.models import list_models
    from engine.models.weights import default_weights, list_weights, read_spec

    models = [
        {"name": m.name, "family": m.family, "paper": m.paper, "modalities": list(m.modalities), "task": m.task,
         "saliency": list(m.saliency)}
        for m in list_models()
    ]
    weights: list[dict[str, Any]] = []
    for w in list_weights():
        try:
            s = read_spec(w)
        except Exception as exc:  # noqa: BLE001 - a broken folder is listed, not fatal
            weights.append({"name": w, "error": str(exc)})
            continue
        weights.append({"name": s.name, "model": s.model, "modality": s.modality, "synthetic": s.synthetic,
                        "init": s.init, "input_size": s.input_size, "metrics": s.metrics})
    defaults = {m: default_weights(m) for m in ("US", "MG", "MR", "MG+US")}
    return {"models": models, "weights": weights, "defaults": defaults}


def _handler(args: argparse.Namespace) -> int:
    data = collect()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("Registered models (architectures):")
    for m in data["models"]:
        print(f"  {m['name']:<24} {m['family']:<18} {'/'.join(m['modalities']):<8} "
              f"saliency: {', '.join(m['saliency']) or '-'}")
        print(f"  {'':<24} {m['paper']}")
    print("\nInstalled weights:")
    if not data["weights"]:
        print("  none (resources/models/ is empty)")
    for w in data["weights"]:
        if "error" in w:
            print(f"  {w['name']:<24} UNREADABLE: {w['error']}")
            continue
        syn = " SYNTHETIC" if w["synthetic"] else ""
        auc = w["metrics"].get("auc") if isinstance(w["metrics"], dict) else None
        print(f"  {w['name']:<24} {w['modality']:<6} {w['model']}{syn}" + (f"  AUC {auc}" if auc is not None else ""))
    print("\nDefaults: " + ", ".join(f"{k}={v or 'none'}" for k, v in data["defaults"].items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``models``."""
    p = sub.add_parser("models", help="list registered models and installed weights")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_handler)
