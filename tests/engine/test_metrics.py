"""engine.metrics: hand-worked cases and properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.metrics import (
    accuracy,
    auc,
    auc_with_ci,
    best_threshold,
    confusion_matrix,
    evaluation_report,
    fbeta,
    mean_ci,
    mri_weighted_score,
    per_task_auc,
    plot_roc,
    precision,
    roc_points,
    sensitivity,
    specificity,
)

# truth:  1 1 1 0 0 0 0 0 ; calls: 1 1 0 1 0 0 0 0 -> TP 2, FN 1, FP 1, TN 4
T = np.array([1, 1, 1, 0, 0, 0, 0, 0])
P = np.array([1, 1, 0, 1, 0, 0, 0, 0])


def test_confusion_and_rates_by_hand() -> None:
    assert confusion_matrix(T, P).tolist() == [[4, 1], [1, 2]]
    assert accuracy(T, P) == pytest.approx(6 / 8)
    assert sensitivity(T, P) == pytest.approx(2 / 3)
    assert specificity(T, P) == pytest.approx(4 / 5)
    assert precision(T, P) == pytest.approx(2 / 3)
    # F2 = 5 TP / (5 TP + 4 FN + FP) = 10 / 15
    assert fbeta(T, P, 2.0) == pytest.approx(10 / 15)
    assert fbeta(T, P, 1.0) == pytest.approx(4 / 6)
    assert np.isnan(precision([0, 1], [0, 0]))


def test_auc_by_hand_and_properties() -> None:
    # positives 3, 2 ; negatives 1, 2, 0 -> 5.5 / 6
    t, s = np.array([1, 1, 0, 0, 0]), np.array([3.0, 2.0, 1.0, 2.0, 0.0])
    assert auc(t, s) == pytest.approx(11 / 12)
    assert auc(t, -s) == pytest.approx(1 - 11 / 12)
    fpr, tpr, thr = roc_points(t, s)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(11 / 12)
    rng = np.random.default_rng(0)
    t2, s2 = rng.integers(0, 2, 60), rng.normal(size=60)
    assert auc(t2, s2 * 3 + 1) == pytest.approx(auc(t2, s2))  # rank invariant
    with pytest.raises(ValueError, match="both"):
        auc([1, 1], [0.2, 0.3])


def test_auc_ci_brackets_auc_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        t = rng.integers(0, 2, n)
        return t, t + rng.normal(0, 1.0, n)

    small, big = auc_with_ci(*sample(40)), auc_with_ci(*sample(4000))
    for r in (small, big):
        assert r["ci_low"] < r["auc"] < r["ci_high"]
    assert (big["ci_high"] - big["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5
    assert big["auc"] == pytest.approx(0.76, abs=0.03)  # Phi(1/sqrt(2))


def test_best_threshold_f2_by_hand() -> None:
    # scores 0.9(1) 0.8(0) 0.6(1) 0.3(0) 0.2(1):
    # thr .9: TP1 FN2 FP0 -> 5/(5+8)=.385 ; .8: TP1 FN2 FP1 -> 5/14 ; .6: TP2 FN1 FP1 -> 10/15=.667
    # thr .3: TP2 FN1 FP2 -> 10/16 ; .2: TP3 FN0 FP2 -> 15/17 = .882  <- best F2
    t = [1, 0, 1, 0, 1]
    s = [0.9, 0.8, 0.6, 0.3, 0.2]
    assert best_threshold(t, s, "f2") == pytest.approx(0.2)
    # Youden: .9 -> 1/3 + 1 - 1 = 1/3 (best) ; .6 -> 2/3 + 1/2 - 1 = 1/6 ; .2 -> 0
    assert best_threshold(t, s, "youden") == pytest.approx(0.9)


def test_per_task_auc_and_mri_weighted_score() -> None:
    truth = np.array([0, 1, 2, 0, 1, 2])
    scores = np.eye(3)[truth] * 0.8 + 0.1
    res = per_task_auc(truth, scores, ["a", "b", "c"])
    assert res == {"a": 1.0, "b": 1.0, "c": 1.0}
    # the paper's Table 3 reproduces its overall 0.817
    assert mri_weighted_score(0.869, [0.728, 0.659, 0.805, 0.761]) == pytest.approx(0.817, abs=5e-4)


def test_mean_ci() -> None:
    m, lo, hi = mean_ci([0.8, 0.9, 1.0])
    # t(0.975, 2) = 4.303 ; sd = 0.1 ; half = 4.303 * 0.1 / sqrt(3) = 0.2484
    assert m == pytest.approx(0.9) and hi - m == pytest.approx(0.2484, abs=1e-3) and m - lo == pytest.approx(hi - m)


def test_evaluation_report_and_plot(tmp_path: Path) -> None:
    t = [1, 0, 1, 0, 1]
    s = [0.9, 0.8, 0.6, 0.3, 0.2]
    rep = evaluation_report(t, s, threshold=0.5)
    assert rep["confusion"] == [[1, 1], [1, 2]]
    assert rep["sensitivity"] == pytest.approx(2 / 3) and rep["specificity"] == pytest.approx(0.5)
    assert rep["auc"] == pytest.approx(3 / 6) and rep["threshold_source"] == "given"
    auto = evaluation_report(t, s)
    assert auto["threshold"] == pytest.approx(0.2) and "best f2" in auto["threshold_source"]
    one = evaluation_report([1, 1], [0.3, 0.6], 0.5)
    assert one["auc"] is None and one["sensitivity"] == 0.5 and one["specificity"] is None
    png = plot_roc(t, s, tmp_path / "sub" / "roc.png", curves={"fold": (t, s)})
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_auc_ci_undefined_with_one_case_of_a_class() -> None:
    r = auc_with_ci([1, 0, 0, 0], [0.9, 0.1, 0.5, 0.95])
    assert r["auc"] == pytest.approx(2 / 3) and np.isnan(r["ci_low"]) and np.isnan(r["se"])
    rep = evaluation_report([1, 0, 0, 0], [0.9, 0.1, 0.5, 0.95], 0.5)
    assert rep["auc"] == pytest.approx(2 / 3) and rep["auc_ci"] == [None, None]
