"""The MG experiment protocols: paired comparison, reliability figure, LP-FT's split network.

``--protocol compare`` / ``reliability`` / ``ood_smoke`` replace tools/mg_compare_cv.py,
tools/mg_reliability_figure.py and tools/mg_ood_smoke.py; ``train.mode = "lp_finetune"`` is the
light fine-tuning arm (engine.train.lp_finetune).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.train.compare import config_sha256, paired_comparison

ROOT = Path(__file__).resolve().parents[2]


def _run(scores: list[list[float]], labels: list[int], ids: list[str] | None = None) -> dict[str, object]:
    return {"oof_ids": ids or [f"i{k}" for k in range(len(labels))], "oof_labels": labels,
            "oof_scores_all_partitions": scores, "recipe": "test"}


def test_paired_comparison_worked_by_hand() -> None:
    y = [0, 0, 1, 1]
    ref = _run([[0.1, 0.6, 0.4, 0.9]], y)  # 3 of 4 pairs ordered: AUC 0.75
    better = _run([[0.1, 0.2, 0.4, 0.9]], y)  # every pair ordered: AUC 1.0
    res = paired_comparison(["ref", "better"], [ref, better])
    assert res["n"] == 4 and res["n_malignant"] == 2 and res["partitions"] == 1
    c = res["configs"]
    assert c["ref"]["partitions"][0]["pooled_auc"] == 0.75
    assert c["better"]["partitions"][0]["pooled_auc"] == 1.0
    assert c["better"]["mean_diff_vs_reference"] == 0.25 and c["better"]["partitions_higher"] == 1
    assert "diff_vs_reference" not in c["ref"]["partitions"][0]
    lo, hi = c["ref"]["partitions"][0]["delong_ci95"]
    assert lo < 0.75 < hi


def test_paired_comparison_ensemble_is_the_mean_logit_and_items_must_match() -> None:
    y = [0, 1, 0, 1, 1, 0]
    a = _run([[0.2, 0.7, 0.4, 0.6, 0.9, 0.1]], y)
    b = _run([[0.5, 0.5, 0.3, 0.8, 0.2, 0.4]], y)
    res = paired_comparison(["a", "b"], [a, b], [["a", "b"], ["a", "a"]])
    assert res["configs"]["a+a"]["partitions"][0]["pooled_auc"] == res["configs"]["a"]["partitions"][0]["pooled_auc"]
    assert res["configs"]["a+a"]["mean_diff_vs_reference"] == 0.0
    logit = lambda p: np.log(np.asarray(p) / (1 - np.asarray(p)))  # noqa: E731
    from engine.stats.roc import empirical_auc

    want = empirical_auc(np.array(y), (logit(a["oof_scores_all_partitions"][0]) + logit(b["oof_scores_all_partitions"][0])) / 2)
    assert res["configs"]["a+b"]["partitions"][0]["pooled_auc"] == round(want, 4)
    with pytest.raises(ConfigError, match="items"):
        paired_comparison(["a", "c"], [a, _run([[0.5] * 6], y, ids=list("abcdef"))])
    with pytest.raises(ConfigError, match="unknown arm"):
        paired_comparison(["a", "b"], [a, b], [["a", "z"]])


def test_config_hash_ignores_the_checkout_but_not_the_recipe(tmp_path: Path) -> None:
    from engine.train.config import load_config

    src = ROOT / "configs" / "experiments" / "mg_lesion_head_context35.toml"
    cfg = load_config(src)
    moved = tmp_path / "configs" / "experiments"
    moved.mkdir(parents=True)
    (moved / src.name).write_text(src.read_text())
    assert config_sha256(load_config(moved / src.name)) == config_sha256(cfg)
    assert config_sha256(load_config(src, ["ship.c_grid=[0.001]"])) != config_sha256(cfg)


def test_compare_config_names_every_arm_and_each_is_a_recipe() -> None:
    from engine.train.config import load_config

    cfg = load_config(ROOT / "configs" / "experiments" / "mg_lesion_compare.toml")
    paths = [cfg.compare.reference, *cfg.compare.arms]
    assert len(cfg.compare.names) == len(paths)
    for p in paths:
        arm = load_config(p)
        assert arm.data.kind == "mias_lesions" and arm.train.mode in ("linear_probe", "lp_finetune"), p
        assert arm.ship.folds == 5 and arm.ship.repeats == 5 and arm.train.seed == 0, p  # same partitions


def test_reliability_figure_from_recipe_metrics(tmp_path: Path) -> None:
    from engine.metrics.report import save_reliability

    bins = {"ece": 0.08, "mean_predicted": [0.1, 0.3, None, 0.7, 0.9], "fraction_positive": [0.1, 0.4, None, 0.5, 0.6],
            "counts": [5, 10, 0, 8, 3], "brier": 0.24}
    out = save_reliability({"calibration_raw": bins, "calibration_platt_crossfit": {**bins, "ece": 0.05},
                            "n": 26, "n_malignant": 10}, tmp_path / "r" / "rel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError):
        save_reliability({"n": 1, "n_malignant": 0}, tmp_path / "x.png")


def test_lp_finetune_split_network_equals_the_full_forward_and_trains_only_the_tail() -> None:
    from engine.models import get_model
    from engine.train.config import load_config
    from engine.train.lp_finetune import _fit_fold, _front, _split, _tail

    torch.manual_seed(0)
    model = get_model("mg_lesion_lite0", pretrained=True).eval()
    start, _ = _split(model, 2)
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        full = model.scale_features(x)[0]
        split, _ = _tail(model, _front(model, x, start), start)
    torch.testing.assert_close(split, full, rtol=1e-4, atol=1e-5)
    cfg = load_config(ROOT / "configs" / "experiments" / "mg_lesion_lpft_block2.toml",
                      ["train.epochs=1", "train.batch_size=4"])
    with torch.no_grad():
        acts = torch.stack([_front(model, torch.randn(2, 3, 224, 224), start) for _ in range(8)])  # (8, 2, ...)
    y = np.array([0, 1] * 4)
    tuned = _fit_fold(cfg, model, start, acts, y, np.arange(6), seed=0)
    before, after = dict(model.named_parameters()), dict(tuned.named_parameters())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("net._blocks.14.", "net._blocks.15.", "net._conv_head", "net._bn1", "heads."))
                           for k in changed), sorted(changed)[:5]
    assert any(k.startswith("net._blocks.14.") for k in changed)  # two blocks, not one
    with pytest.raises(ConfigError, match="MBConv"):
        _split(model, 99)


def test_old_experiment_scripts_are_gone() -> None:
    for name in ("mg_compare_cv.py", "mg_ood_smoke.py", "mg_reliability_figure.py"):
        assert not (ROOT / "tools" / name).exists(), name
    assert json.loads((ROOT / "docs" / "site-robust" / "mg_lesion_cv" / "compare.json").read_text())["n"] == 72


def test_experiment_settings_are_refused_by_ship(tmp_path: Path) -> None:
    """An LP-FT config and test-time margin averaging are experiments: ship says so by name."""
    from engine.train.config import load_config
    from engine.train.recipes import RecipeState, train_recipe
    from engine.train.ship import ship

    with pytest.raises(ConfigError, match="lp_finetune"):
        ship(load_config(ROOT / "configs" / "experiments" / "mg_lesion_lpft_block1.toml"), tmp_path / "x")
    tta = load_config(ROOT / "configs" / "experiments" / "mg_lesion_head_tta.toml")
    with pytest.raises(ConfigError, match="eval_margins"):
        train_recipe(tta, {}, RecipeState([], np.zeros(0), np.zeros(0)))
