"""MG lesion pipeline pieces: OOD buffers of ``mg_lesion_lite0``, out-of-fold calibration / OOD
threshold of the recipe, and the feature cache key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.train.calibrate_ood import calibration_metrics, ood_metrics


def test_ood_buffers_rank_shifted_features_far() -> None:
    from engine.models import get_model

    m = get_model("mg_lesion_lite0", pretrained=False, ood_dims=8).eval()
    rng = np.random.default_rng(0)
    d = int(m.ood_mean.shape[0])
    assert d == 1280
    base = rng.normal(size=(60, d)).astype(np.float32) * np.linspace(3, 0.1, d, dtype=np.float32)
    m.set_ood(base)
    inside = torch.as_tensor(rng.normal(size=(20, d)).astype(np.float32) * np.linspace(3, 0.1, d, dtype=np.float32))
    shifted = inside + 2.0  # every feature moved: another scanner's crops
    di, ds = m.ood_from_features(inside), m.ood_from_features(shifted)
    assert float(ds.min()) > float(di.max())
    # the buffers travel in the state dict (the weights file carries the OOD measure)
    sd = m.state_dict()
    assert {"ood_mean", "ood_proj", "ood_basis", "ood_resid_scale"} <= set(sd)
    m2 = get_model("mg_lesion_lite0", pretrained=False, ood_dims=8).eval()
    m2.load_state_dict(sd)
    assert torch.allclose(m2.ood_from_features(shifted), ds)


def test_score_and_ood_matches_forward() -> None:
    from engine.models import get_model

    m = get_model("mg_lesion_lite0", pretrained=False, taps=[10], scales=[1.0, 0.75], cam_block=10).eval()
    x = torch.randn(2, 3, 64, 64)
    margin, ood = m.score_and_ood(x)
    with torch.no_grad():
        logits = m(x)
    assert torch.allclose(margin, logits[:, 1] - logits[:, 0], atol=1e-5)
    assert ood.shape == (2,) and torch.isfinite(ood).all()


def test_crossfit_platt_repairs_overconfident_scores() -> None:
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    z_true = np.where(y == 1, 0.8, -0.8) + rng.normal(0, 1.0, n)
    p_over = 1 / (1 + np.exp(-4 * z_true))  # 4x over-confident
    folds = np.arange(n) % 5
    m = calibration_metrics(y.astype(float), p_over, folds)
    assert m["ece_platt_crossfit"] < 0.5 * m["ece_raw"]
    a, _ = m["platt"]
    assert 0.1 < a < 0.5  # undoes the factor of 4 (about 1/4)
    assert len(m["oof_calibrated_partition0"]) == n
    assert sum(m["calibration_raw"]["counts"]) == n


def test_ood_threshold_is_a_heldout_percentile() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 40))
    folds = np.arange(80) % 5
    m90 = ood_metrics(X, folds, 8, 90.0)
    m99 = ood_metrics(X, folds, 8, 99.0)
    assert m90["ood_threshold"] < m99["ood_threshold"] <= m99["ood_heldout_max"] + 1e-6
    q = m90["ood_heldout_distance_quartiles"]
    assert q[0] <= q[1] <= q[2] <= m90["ood_threshold"]


def test_feature_cache_key_follows_what_the_features_depend_on(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.train.config import TrainConfig
    from engine.train.recipes import FEATURE_CACHE_ENV, Item, _feature_cache_path

    items = [Item("a#0", None, 0, "1", box=(1.0, 2.0, 3.0, 4.0), path="a.png")]
    cfg = TrainConfig.from_dict({"model": {"name": "mg_lesion_lite0", "cfg": {"ood_dims": 8}},
                                 "train": {"mode": "linear_probe"},
                                 "ship": {"preprocess": {"box_margin": 0.15}}})
    monkeypatch.delenv(FEATURE_CACHE_ENV, raising=False)
    assert _feature_cache_path(cfg, items) is None
    monkeypatch.setenv(FEATURE_CACHE_ENV, str(tmp_path))
    p = _feature_cache_path(cfg, items)
    assert p is not None and p.parent == tmp_path
    same = TrainConfig.from_dict({"model": {"name": "mg_lesion_lite0", "cfg": {"ood_dims": 16}},
                                  "train": {"mode": "linear_probe"},
                                  "ship": {"preprocess": {"box_margin": 0.15}}})
    assert _feature_cache_path(same, items) == p  # OOD size does not change the trunk's features
    other = TrainConfig.from_dict({"model": {"name": "mg_lesion_lite0", "cfg": {"ood_dims": 8}},
                                   "train": {"mode": "linear_probe"},
                                   "ship": {"preprocess": {"box_margin": 0.15, "clean": "film"}}})
    assert _feature_cache_path(other, items) != p
    moved = [Item("a#0", None, 0, "1", box=(1.0, 2.0, 3.0, 5.0), path="a.png")]
    assert _feature_cache_path(cfg, moved) != p
