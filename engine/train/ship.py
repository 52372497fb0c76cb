"""``breast-engine ship CONFIG --out resources/models/NAME``: a config in, a shipped model out.

1. :func:`engine.train.recipes.evaluate_recipe` cross-validates the config's recipe (the same
   function ``breast-engine evaluate`` runs for it) -> the card's metrics;
2. :func:`engine.train.recipes.train_recipe` fits on all the data;
3. ``weights.pt`` + ``spec.json`` (typed Preprocess, sha256, F2 operating point from the CV)
   + ``MODEL_CARD.md`` (metrics, protocol, preprocessing, data licence, notes) are written;
4. parity: the app's own :class:`~engine.inference.Predictor` re-scores the first images from
   disk and must agree with the recipe's in-memory scores (1e-4).

Fine-tune configs (``train.mode = "finetune"``, the gradient trainer) ship the same way
(:func:`ship_finetune`): the card's metrics are ``breast-engine evaluate --protocol kfold`` of the
config (``[ship] folds`` / ``repeats``), the weights are :func:`engine.train.loop.fit` on all the
data, and the spec's preprocessing is the one the datasets used (``[ship] preprocess`` or the one
derived from ``[data]``, :func:`engine.train.data.preprocess_of`).

The same config and seed give the same bytes (no timestamps anywhere; ``tests/engine/test_ship.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import ConfigError
from engine.train.ship_common import ParityError, card_preamble  # ParityError re-exported: engine.train.ship.ParityError
from engine.models.weights import WeightsSpec, save_weights
from engine.progress import ProgressCallback
from engine.train.config import TrainConfig
from engine.train.recipes import evaluate_recipe, make_spec, train_recipe





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
    lines = card_preamble(
        f"# Model card — {spec.name} ({spec.modality}){syn}",
        "> **SYNTHETIC: trained and tested only on procedurally generated images.** It demonstrates "
        "the method and drives the app's path; its scores mean nothing clinically." if spec.synthetic else None,
        f"`breast-engine ship {config_path} --out resources/models/{spec.name}` "
        "(trains on all the data; the metrics below come from the same recipe's cross-validation, "
        f"`breast-engine evaluate --config {config_path} --protocol recipe`).",
        sh.training_data or cfg.data.kind, sh.data_licence)
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
        return ship_finetune(cfg, out, config_path=config_path, progress=progress)
    if cfg.train.mode == "lp_finetune":
        raise ConfigError("train.mode = lp_finetune is an experiment (`breast-engine evaluate --protocol recipe`); "
                          "shipping it is not implemented: it lost to the linear probe by grouped CV (docs/results.md)")
    if cfg.train.mode == "us_lesion":
        from engine.train.us_lesion import ship_us_lesion

        return ship_us_lesion(cfg, out, config_path=config_path, progress=progress)
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


def _finetune_metrics(cv: dict[str, Any], folds: int, repeats: int) -> dict[str, Any]:
    """The card's figures from ``cross_validate``'s report (rounded: the bytes must not depend
    on the last float digit's platform noise)."""
    pooled = cv["pooled"]
    calls = pooled.get("calls", {})
    protocol = (f"{folds}-fold grouped stratified CV" if repeats <= 1 else f"{repeats} x {folds}-fold grouped stratified CV")
    m: dict[str, Any] = {"protocol": protocol + " (breast-engine evaluate, the same config)",
                         "recipe": "finetune (engine.train.loop.fit)",
                         "pooled_auc": round(float(pooled["auc"]), 4),
                         "pooled_auc_delong_ci95": [round(float(v), 4) for v in pooled["auc_ci"]],
                         "n_lesions": int(pooled["n"])}
    fm = (cv.get("fold_mean") or {}).get("auc")
    if isinstance(fm, dict) and fm.get("mean") is not None:
        m["fold_mean_auc"] = round(float(fm["mean"]), 4)
    for k in ("sensitivity", "specificity", "f2"):
        if calls.get(k) is not None:
            m[f"calls_{k}"] = round(float(calls[k]), 4)
    thr = pooled.get("threshold")
    if thr is not None:
        m["f2_threshold"] = round(float(thr), 6)
    return m


def ship_finetune(cfg: TrainConfig, out: str | Path, *, config_path: str = "CONFIG",
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Ship a gradient-trained (``finetune``) config: CV for the card, ``fit`` on all data, parity.

    Returns:
        ``{"folder", "sha256", "metrics", "parity_max_abs_diff"}``.

    Raises:
        ConfigError: ``[ship]`` lacks ``name`` / ``modality``, or the data is not binary.
        ParityError: the app's predictor does not reproduce ``evaluate``'s scores (1e-4).
    """
    from engine.inference import Predictor
    from engine.train.data import load_dataset, preprocess_of, read_model_image
    from engine.train.loop import build_model, fit, predict, seed_everything
    from engine.train.protocols import cross_validate

    sh = cfg.ship
    if not sh.name or not sh.modality:
        raise ConfigError("[ship] needs name and modality")
    ds = load_dataset(cfg)
    if len(ds.classes) != 2:
        raise ConfigError(f"breast-engine ship scores binary tasks; the data has classes {ds.classes}")
    folds, repeats = int(sh.folds), int(sh.repeats)
    cv = cross_validate(cfg, ds, protocol="kfold" if repeats <= 1 else "repeated-kfold", folds=folds,
                        repeats=max(1, repeats), progress=progress)
    metrics = _finetune_metrics(cv, folds, repeats)
    seed_everything(cfg.train.seed)
    model = build_model(cfg)
    fit(model, ds.subset(range(len(ds)), train=True), None, cfg=cfg.override(["train.select=[]"]), progress=progress)
    model.eval()
    pre = preprocess_of(cfg)
    cfg_model = {k: v for k, v in cfg.model.cfg.items() if k != "pretrained"}
    spec = WeightsSpec(name=sh.name, model=cfg.model.name, model_cfg=cfg_model, modality=sh.modality,
                       class_names=list(sh.class_names), threshold=float(metrics.get("f2_threshold", 0.5)),
                       synthetic=bool(sh.synthetic or getattr(ds, "synthetic", False)), init=sh.init,
                       preprocess=pre, metrics=metrics,
                       extra={**({"training_data": sh.training_data} if sh.training_data else {}), **sh.extra})
    if sh.fp16_weights:
        model = model.half()
    folder = save_weights(model.cpu(), spec, out)
    (Path(folder) / "MODEL_CARD.md").write_text(model_card(cfg, spec, config_path), encoding="utf-8")
    if sh.licence_file:
        src = Path(sh.licence_file)
        shutil.copyfile(src, Path(folder) / (sh.licence_name or src.name))
    n = min(int(sh.parity_images), len(ds))
    want = predict(model.float(), ds.subset(range(n), train=False), device="cpu") if n else np.zeros(0)
    pred = Predictor(folder, device="cpu")
    diffs = []
    for i in range(n):
        img, box = ds.image_and_box(i) if hasattr(ds, "image_and_box") else (read_model_image(ds.samples[i].path), None)
        diffs.append(abs(pred.predict(img, box=box) - float(want[i])))
    worst = max(diffs) if diffs else 0.0
    if worst > 1e-4:
        raise ParityError(f"{folder}: the app's predictor differs from evaluate's scores by {worst:.2e} on "
                          f"{ds.samples[diffs.index(worst)].path}")
    return {"folder": str(folder), "sha256": spec.sha256, "metrics": metrics, "parity_max_abs_diff": worst}
