"""``breast-engine evaluate --protocol compare``: recipe configs paired by repeated grouped CV.

A ``[compare]`` config names a reference config and the arms to compare with it. Each arm is
cross-validated by its own recipe (``linear_probe``: :func:`engine.train.recipes.evaluate_recipe`;
``lp_finetune``: :func:`engine.train.lp_finetune.evaluate_lp_finetune`) on the same items and
the same partitions (stratified folds grouped by patient, seeds ``train.seed + r``), so, per
partition, the out-of-fold scores of two arms are paired lesion by lesion: DeLong et al. (1988)
gives each pooled AUC a 95 % CI and the paired test of its difference to the reference.
Unweighted ensembles (mean out-of-fold logit of named arms) add no fitting and so no selection.

Each arm's metrics are written to ``<out>/arms/<name>.json`` with the SHA-256 of its resolved
config; a rerun reuses a file whose hash matches (the arms are deterministic given the config).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.progress import ProgressCallback, report
from engine.train.config import TrainConfig, load_config


def config_sha256(cfg: TrainConfig) -> str:
    """Hash of what an arm's figures depend on: the resolved config's values that differ from the
    defaults (so a new config field at its default keeps old hashes), file locations reduced to
    their names (the same config in another checkout hashes the same), card text left out."""
    d, default = cfg.to_dict(), TrainConfig().to_dict()
    d.pop("compare", None)
    d["data"]["path"] = Path(d["data"]["path"]).name if d["data"]["path"] else ""
    for k, v in list(d["ship"].items()):
        if k == "card_notes":
            d["ship"][k] = ""
        elif k in ("licence_file", "context_config", "lso_data", "bench_result", "baseline_saliency") and v:
            d["ship"][k] = Path(v).name
    changed = {sec: {k: v for k, v in body.items() if default.get(sec, {}).get(k) != v}
               for sec, body in d.items() if isinstance(body, dict)}
    return hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()


def evaluate_arm(cfg: TrainConfig, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """One arm's recipe cross-validation (the metrics ``--protocol recipe`` prints)."""
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    if cfg.train.mode == "linear_probe":
        from engine.train.recipes import evaluate_recipe

        return evaluate_recipe(cfg, progress=progress)[0]
    if cfg.train.mode == "lp_finetune":
        from engine.train.lp_finetune import evaluate_lp_finetune

        return evaluate_lp_finetune(cfg, progress=progress)
    raise ConfigError(f"--protocol compare pairs linear_probe / lp_finetune recipes, not train.mode = {cfg.train.mode!r}")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def paired_comparison(names: list[str], runs: list[dict[str, Any]],
                      ensembles: list[list[str]] | None = None) -> dict[str, Any]:
    """Per-partition pooled AUC (DeLong CI) of every arm and its paired difference to ``runs[0]``.

    Args:
        names: Arm names, the reference first.
        runs: Their recipe metrics (``oof_ids``, ``oof_labels``, ``oof_scores_all_partitions``).
        ensembles: Groups of arm names averaged in logit space (added as arms named ``a+b``).

    Returns:
        ``{"reference", "n", "n_malignant", "test", "configs": {name: {...}}}``.

    Raises:
        ConfigError: arms scored on different items, or with different numbers of partitions.
    """
    from scipy.special import expit

    from engine.stats.delong import auc_ci, paired_delong_test

    if len(names) != len(runs):
        raise ConfigError("one name per compared config")
    ref = runs[0]
    y = np.asarray(ref["oof_labels"])
    scores = {n: [np.asarray(s, np.float64) for s in m["oof_scores_all_partitions"]] for n, m in zip(names, runs)}
    for n, m in zip(names, runs):
        if m["oof_ids"] != ref["oof_ids"] or len(scores[n]) != len(scores[names[0]]):
            raise ConfigError(f"{n}: not the reference's items and partitions (same data, folds, repeats and seed)")
    meta: dict[str, dict[str, Any]] = {n: m for n, m in zip(names, runs)}
    for group in ensembles or []:
        missing = [g for g in group if g not in scores]
        if missing:
            raise ConfigError(f"compare.ensembles: unknown arm(s) {missing}; arms: {names}")
        name = "+".join(group)
        scores[name] = [np.asarray(expit(np.mean([_logit(scores[g][r]) for g in group], 0)))
                        for r in range(len(scores[names[0]]))]
        meta[name] = {"recipe": "unweighted ensemble (mean out-of-fold logit) of " + ", ".join(group)}
    out: dict[str, Any] = {
        "reference": names[0], "n": int(len(y)), "n_malignant": int(y.sum()),
        "partitions": len(scores[names[0]]),
        "test": "paired DeLong (1988) per CV partition, same lesions and folds; pooled out-of-fold AUC",
        "configs": {},
    }
    keep = ("recipe", "config", "c", "c_grid_mean_pooled_auc", "auc_mean_over_partitions", "ece_raw",
            "ece_platt_crossfit", "ece_raw_mean_over_partitions", "ece_platt_crossfit_mean_over_partitions",
            "brier_raw_mean_over_partitions", "brier_platt_crossfit_mean_over_partitions", "brier_base_rate",
            "platt", "ood_threshold", "wall_s", "config_sha256")
    for i, (name, parts_scores) in enumerate(scores.items()):
        parts = []
        for r, s in enumerate(parts_scores):
            auc, lo, hi = auc_ci(y, s)
            row: dict[str, Any] = {"partition": r, "pooled_auc": round(auc, 4),
                                   "delong_ci95": [round(float(lo), 4), round(float(hi), 4)]}
            if i:
                diff, _se, _z, p = paired_delong_test(y, s, scores[names[0]][r])
                row.update(diff_vs_reference=round(diff, 4), p=round(p, 4) if p == p else None)
            parts.append(row)
        entry: dict[str, Any] = {k: meta[name][k] for k in keep if k in meta[name]}
        pooled = [p["pooled_auc"] for p in parts]
        entry["pooled_auc_mean_over_partitions"] = round(float(np.mean(pooled)), 4)
        entry["pooled_auc_range_over_partitions"] = [min(pooled), max(pooled)]
        entry["partitions"] = parts
        if i:
            diffs = [p["diff_vs_reference"] for p in parts]
            entry["mean_diff_vs_reference"] = round(float(np.mean(diffs)), 4)
            entry["partitions_higher"] = sum(1 for d in diffs if d > 0)
            entry["partitions_better_p_lt_0.05"] = sum(
                1 for p in parts if p["diff_vs_reference"] > 0 and (p["p"] if p["p"] is not None else 1.0) < 0.05)
            entry["min_p"] = min((p["p"] for p in parts if p["p"] is not None), default=None)
        out["configs"][name] = entry
    return out


def run_compare(cfg: TrainConfig, out_dir: str | Path, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Evaluate (or reuse) every arm of ``cfg.compare`` and write ``<out>/compare.json``.

    Raises:
        ConfigError: no reference/arms, or a name list of the wrong length.
    """
    cc = cfg.compare
    if not cc.reference or not cc.arms:
        raise ConfigError("--protocol compare needs [compare] reference and arms (config files)")
    paths = [cc.reference, *cc.arms]
    names = list(cc.names) or [Path(p).stem for p in paths]
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise ConfigError(f"compare.names: {len(paths)} distinct names needed (reference first), got {names}")
    out = Path(out_dir)
    (out / "arms").mkdir(parents=True, exist_ok=True)
    runs = []
    root = Path.cwd()
    for k, (name, path) in enumerate(zip(names, paths)):
        arm = load_config(path)
        sha = config_sha256(arm)
        cached = out / "arms" / f"{name}.json"
        m: dict[str, Any] | None = None
        if cached.is_file():
            m = json.loads(cached.read_text(encoding="utf-8"))
            if m.get("config_sha256") != sha:
                m = None
        if m is None:
            m = evaluate_arm(arm, progress=progress)
            m["config_sha256"] = sha
            try:
                m["config"] = str(Path(path).resolve().relative_to(root))
            except ValueError:
                m["config"] = str(path)
            cached.write_text(json.dumps(m) + "\n", encoding="utf-8")
        runs.append(m)
        report(progress, k + 1, len(paths), f"{name}: mean pooled AUC {m.get('pooled_auc_mean_over_partitions')}")
    res = paired_comparison(names, runs, [list(e) for e in cc.ensembles])
    (out / "compare.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return res


__all__ = ["config_sha256", "evaluate_arm", "paired_comparison", "run_compare"]
