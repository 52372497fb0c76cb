"""Hand-worked and property tests of engine.stats.roc and engine.stats.delong."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.delong import (
    auc_ci,
    covariance_from_placements,
    delong_covariance,
    naive_placements,
    paired_delong_test,
    placements,
)
from engine.stats.roc import empirical_auc, naive_auc, roc_points

# Hand-worked: positives X = [3, 2], negatives Y = [1, 2, 0].
# psi(3, .) = 1,1,1 ; psi(2, .) = 1, 1/2, 1  ->  AUC = 5.5 / 6 = 11/12
# V10 = [1, 5/6] -> S10 = (1/6)^2 / 2 = 1/72 ; V01 = [1, 3/4, 1] -> S01 = (6/144) / 2 = 1/48
# Var = S10/m + S01/n = 1/144 + 1/144 = 1/72
T = np.array([1, 1, 0, 0, 0])
S = np.array([3.0, 2.0, 1.0, 2.0, 0.0])


def test_hand_worked_auc_and_variance() -> None:
    assert empirical_auc(T, S) == pytest.approx(11 / 12)
    p = placements(T, S)
    np.testing.assert_allclose(p.v10[0], [1.0, 5 / 6])
    np.testing.assert_allclose(p.v01[0], [1.0, 0.75, 1.0])
    aucs, cov = delong_covariance(T, S)
    assert aucs[0] == pytest.approx(11 / 12)
    assert cov[0, 0] == pytest.approx(1 / 72)


def test_hand_worked_roc_points() -> None:
    r = roc_points(T, S)
    np.testing.assert_allclose(r.fpr, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(r.tpr, [0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(r.thresholds[1:], [3, 2, 1, 0])
    assert r.auc == pytest.approx(11 / 12)


def test_perfect_and_all_tied() -> None:
    assert empirical_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert empirical_auc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert empirical_auc([0, 1, 0, 1], [5, 5, 5, 5]) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_of_negated_scores_is_complement(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, 80)
    s = rng.integers(0, 6, 80).astype(float)  # many ties
    assert empirical_auc(t, -s) == pytest.approx(1 - empirical_auc(t, s))
    # variance is invariant to the flip
    _, c1 = delong_covariance(t, s)
    _, c2 = delong_covariance(t, -s)
    assert c1[0, 0] == pytest.approx(c2[0, 0])


@pytest.mark.parametrize("seed", [3, 4])
def test_fast_midrank_matches_naive_pairwise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, 120)
    scores = np.vstack([rng.integers(0, 11, 120), rng.normal(size=120) + t, t + rng.integers(0, 3, 120)])
    fast = placements(t, scores)
    slow = naive_placements(t, scores)
    np.testing.assert_allclose(fast.v10, slow.v10, atol=1e-12)
    np.testing.assert_allclose(fast.v01, slow.v01, atol=1e-12)
    np.testing.assert_allclose(covariance_from_placements(fast), covariance_from_placements(slow), atol=1e-14)
    for k in range(3):
        assert empirical_auc(t, scores[k]) == pytest.approx(naive_auc(t, scores[k]))
        assert roc_points(t, scores[k]).auc == pytest.approx(fast.aucs[k])


def test_auc_ci_normal_and_logit() -> None:
    auc, lo, hi = auc_ci(T, S)
    se = np.sqrt(1 / 72)
    assert auc == pytest.approx(11 / 12)
    assert lo == pytest.approx(11 / 12 - 1.959963984540054 * se)
    assert hi == 1.0  # clipped
    auc2, lo2, hi2 = auc_ci(T, S, method="logit")
    assert 0 < lo2 < auc2 < hi2 < 1
    with pytest.raises(ValueError):
        auc_ci(T, S, method="bogus")


def test_variance_needs_two_per_class() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        delong_covariance([0, 1, 1], [1, 2, 3])


def test_paired_test() -> None:
    # a = S, b = -S : diff = 11/12 - 1/12 = 5/6; Var(a - b) = 4 Var(a) -> se = 2 sqrt(1/72)
    d, se, z, p = paired_delong_test(T, S, -S)
    assert d == pytest.approx(5 / 6)
    assert se == pytest.approx(2 * np.sqrt(1 / 72))
    assert z == pytest.approx(d / se)
    assert 0 < p < 0.05
    d, se, z, p = paired_delong_test(T, S, S)
    assert d == 0.0 and se == 0.0 and np.isnan(p)
    d, se, z, p = paired_delong_test(T, S, 2 * S + 1)  # monotone transform: same AUC
    assert d == pytest.approx(0.0)


@pytest.mark.parametrize(
    "truth,scores",
    [([1, 1, 1], [1, 2, 3]), ([0, 0], [1, 2]), ([0, 2, 1], [1, 2, 3]), ([0, 1], [1.0, np.nan]), ([0, 1, 1], [1, 2])],
)
def test_bad_inputs(truth: list[int], scores: list[float]) -> None:
    with pytest.raises(ValueError):
        empirical_auc(truth, scores)
