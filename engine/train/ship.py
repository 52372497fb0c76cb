"""``breast-engine ship CONFIG --out resources/models/NAME``: a config in, a shipped model out.

1. :func:`engine.train.recipes.evaluate_recipe` cross-validates the config's recipe (the same
   function ``breast-engine evaluate`` runs for it) -> the card's metrics;
2. :func:`engine.train.recipes.train_recipe` fits on all the data;
3. ``weights.pt`` + ``spec.json`` (typed Preprocess, sha256, F2 operating point from the CV)
   + ``MODEL_CARD.md`` (metrics, protocol, preprocessing, data licence, notes) are written;
4. parity: the app's own :class:`~engine.inference.Predictor` re-scores the first images from
   disk and must agree with the recipe's in-memory scores (1e-4).

The same config and seed give the same bytes (no timestamps anywhere; ``tests/engine/test_ship.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from engine.errors import BreastReaderError, ConfigError
from engine.models.weights import WeightsSpec, save_weights
from engine.progress import ProgressCallback
from engine.train.config import TrainConfig
from engine.train.recipes import evaluate_recipe, make_spec, train_recipe

DISCLAIMER = (
    "**Decision support, not a diagnosis.** This model is a research tool. Its score is one input "
    "for a qualified reader, who makes every clinical decision. It has not been cleared by any "
    "regulator and must not be used on its own to diagnose, triage or exclude disease."
)


class ParityError(BreastReaderError):
    """The written weights do not reproduce the recipe's scores through the app's predictor."""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"{v[0]:.4f}–{v[1]:.4f}"
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def model_card(cfg: TrainConfig, spec: WeightsSpec, config_path: str) -> str:
    """The MODEL_CARD.md text: generated from the spec's metrics and the config (no hand-typed figures)."""
    sh, m, pre = cfg.ship, spec.metrics, spec.pre
    syn = " — **SYNTHETIC**" if spec.synthetic else ""
    lines = [f"# Model card — {spec.name} ({spec.modality}){syn}", "", DISCLAIMER, ""]
    if spec.synthetic:
        lines += ["> **SYNTHETIC: trained and tested only on procedurally generated images.** It demonstrates "
                  "the method and drives the app's path; its scores mean nothing clinically.", ""]
    lines += ["## Rebuild", f"`breast-engine ship {config_path} --out resources/models/{spec.name}` "
              "(trains on all the data; the metrics below come from the same recipe's cross-validation, "
              f"`breast-engine evaluate --config {config_path} --protocol recipe`).", "",
              "## Data", sh.training_data or cfg.data.kind, ""]
    if sh.data_licence:
        lines += ["Licence and citation: " + sh.data_licence, ""]
    lines += ["## Protocol and recipe", f"- protocol: {m.get('protocol', '')}", f"- recipe: {m.get('recipe', cfg.train.mode)}",
              f"- architecture: `{spec.model}` {json.dumps(spec.model_cfg)}; initial weights: {spec.init or 'random'}", "",
              "## Metrics (computed by the recipe's evaluation; 95 % CIs)", "", "| metric | value |", "|---|---|"]
    for k, v in m.items():
        if k in ("protocol", "recipe"):
            continue
        if k == "platt" and isinstance(v, list) and len(v) == 2:  # (a, b), not an interval
            lines.append(f"| {k} | a = {v[0]:.4f}, b = {v[1]:.4f} (p = sigmoid(a·logit + b)) |")
            continue
        lines.append(f"| {k} | {_fmt(v)} |")
    lines += ["", f"Operating threshold (F2-selected on partition 0's out-of-fold scores): {spec.threshold:.4f}", "",
              "## Preprocessing (`spec.json` `preprocess`, applied by `spec.transforms()` in training, "
              "`evaluate`, `score` and the app)", ""]
    for k, v in pre.to_json().items():
        if k != "description":
            lines.append(f"- {k}: {json.dumps(v) if isinstance(v, (list, dict, bool)) else v}")
    if pre.description:
        lines += ["", pre.description]
    lines += ["", "## Files", f"- `weights.pt`: `state_dict` of `{spec.model}`, load with "
              f"`engine.models.weights.load_weights(\"{spec.name}\")` (`torch.load(..., weights_only=True)`)",
              f"- sha256 of `weights.pt`: `{spec.sha256}`", "- `spec.json`: architecture, preprocessing, classes, threshold, metrics", ""]
    if sh.card_notes:
        lines += ["## Notes", "", sh.card_notes.strip(), ""]
    return "\n".join(lines)


def ship(cfg: TrainConfig, out: str | Path, *, config_path: str = "CONFIG",
         progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Evaluate, train on all data, write the weights folder and check parity (see module docstring).

    Returns:
        ``{"folder", "sha256", "metrics", "parity_max_abs_diff"}``.

    Raises:
        ConfigError: the config is not a ship recipe.
        ParityError: the app's predictor does not reproduce the recipe's scores.
    """
    if cfg.train.mode == "finetune":
        raise ConfigError("breast-engine ship runs a recipe: set train.mode = linear_probe or supervised_attention "
                          "(finetune configs are trained with breast-engine train)")
    torch.manual_seed(cfg.train.seed)
    metrics, st = evaluate_recipe(cfg, progress=progress)
    model, check = train_recipe(cfg, metrics, st, progress=progress)
    thr = float(metrics.get("f2_threshold", 0.5))
    spec = make_spec(cfg, metrics, threshold=thr)
    if cfg.ship.fp16_weights:
        model = model.half()
    folder = save_weights(model, spec, out)
    from engine.models.pinned import update_pin

    update_pin(Path(folder), spec.sha256)  # shipped into resources/models: the pin travels with the code
    (Path(folder) / "MODEL_CARD.md").write_text(model_card(cfg, spec, config_path), encoding="utf-8")
    if cfg.ship.licence_file:
        src = Path(cfg.ship.licence_file)
        shutil.copyfile(src, Path(folder) / (cfg.ship.licence_name or src.name))
    from engine.inference import Predictor

    pred = Predictor(folder, device="cpu")
    diffs = []
    for it, want in zip(st.items, check["scores"]):
        # lesion pipelines calibrate their output: parity is on the uncalibrated score
        got = pred.assess(it.image, it.box).raw_score if pred.lesion is not None else pred.predict(it.image, box=it.box)
        diffs.append(abs(got - float(want)))
    worst = max(diffs) if diffs else 0.0
    if worst > 1e-4:
        raise ParityError(f"{folder}: the app's predictor differs from the recipe by {worst:.2e} on "
                          f"{check['ids'][diffs.index(worst)]}")
    return {"folder": str(folder), "sha256": spec.sha256, "metrics": metrics, "parity_max_abs_diff": worst}
