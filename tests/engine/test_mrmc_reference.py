"""MRMC analysis against MRMCaov's published VanDyke output (tests/data/mrmc/).

The reference numbers are copied from MRMCaov's JSS manuscript (see the `_source` key of
mrmcaov_vandyke_reference.json); the data are RJafroc's VD.lrc converted to long CSV.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from engine.stats.delong import naive_placements
from engine.stats.mrmc import (
    ai_vs_readers,
    auc_covariance,
    jackknife_covariance_from_placements,
    mrmc_analysis,
)
from engine.stats.roc import naive_auc

DATA = Path(__file__).resolve().parents[1] / "data" / "mrmc"
REF = json.loads((DATA / "mrmcaov_vandyke_reference.json").read_text())
RTOL = 5e-6  # printed references carry 7 significant digits; the contract is 4


def _vandyke() -> tuple[np.ndarray, np.ndarray]:
    ratings = np.zeros((2, 5, 114))
    truth = np.zeros(114, dtype=int)
    with open(DATA / "vandyke.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            c = int(row["case"]) - 1
            ratings[int(row["treatment"]) - 1, int(row["reader"]) - 1, c] = float(row["rating"])
            truth[c] = int(row["truth"])
    return truth, ratings


TRUTH, RATINGS = _vandyke()


def close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=RTOL, atol=1e-9))


def test_data_shape() -> None:
    assert RATINGS.shape == (2, 5, 114)
    assert TRUTH.sum() == 45 and (TRUTH == 0).sum() == 69


def _check_vc(vc: dict[str, float], ref: dict[str, float]) -> None:
    assert close(vc["var_R"], ref["reader"])
    assert close(vc["var_TR"], ref["treatment:reader"])
    assert close(vc["var_error"], ref["Error"])
    assert close(vc["cov1"], ref["Cov1"])
    assert close(vc["cov2"], ref["Cov2"])
    assert close(vc["cov3"], ref["Cov3"])


def test_rrrc_delong_matches_mrmcaov() -> None:
    ref = REF["rrrc_delong"]
    res = mrmc_analysis(TRUTH, RATINGS, cov="delong", design="rrrc")
    _check_vc(res.variance_components, ref["variance_components"])
    g = res.global_test
    assert close(g["MS_T"], ref["global_test"]["MS(T)"])
    assert close(g["MS_TR"], ref["global_test"]["MS(T:R)"])
    assert close(g["denominator"], ref["global_test"]["Denominator"])
    assert close(g["F"], ref["global_test"]["F"])
    assert close(g["df2"], ref["global_test"]["df2"])
    assert close(g["p"], ref["global_test"]["p"])
    (pw,) = res.pairwise
    rp = ref["pairwise"]
    assert pw.comparison == rp["comparison"]
    for k in ("estimate", "se", "df", "t", "p"):
        assert close(getattr(pw, k), rp[k]), k
    assert close(pw.ci[0], rp["ci"][0]) and close(pw.ci[1], rp["ci"][1])
    for name, tr in res.treatment_results.items():
        rt = ref["treatments"][name]
        assert close(tr.auc, rt["auc"]) and close(tr.se, rt["se"]) and close(tr.df, rt["df"])
        assert close(tr.ci[0], rt["ci"][0]) and close(tr.ci[1], rt["ci"][1])


def test_frrc_jackknife_matches_mrmcaov() -> None:
    ref = REF["frrc_jackknife"]
    res = mrmc_analysis(TRUTH, RATINGS, cov="jackknife", design="frrc")
    _check_vc(res.variance_components, ref["variance_components"])
    g = res.global_test
    assert close(g["denominator"], ref["global_test"]["Denominator"])
    assert close(g["X2"], ref["global_test"]["X2"])
    assert close(g["p"], ref["global_test"]["p"])
    (pw,) = res.pairwise
    for k, rk in (("estimate", "estimate"), ("se", "se"), ("t", "z"), ("p", "p")):
        assert close(getattr(pw, k), ref["pairwise"][rk]), k
    assert close(pw.ci[0], ref["pairwise"]["ci"][0]) and close(pw.ci[1], ref["pairwise"]["ci"][1])
    for name, tr in res.treatment_results.items():
        rt = ref["treatments"][name]
        assert close(tr.se, rt["se"]) and close(tr.ci[0], rt["ci"][0]) and close(tr.ci[1], rt["ci"][1])
    assert len(res.reader_pairwise) == 5
    for got, want in zip(res.reader_pairwise, ref["reader_pairwise"], strict=True):
        assert got.reader == want["reader"]
        for k, rk in (("estimate", "estimate"), ("se", "se"), ("t", "z"), ("p", "p")):
            assert close(getattr(got, k), want[rk]), (want["reader"], k)
    # single-reader AUCs and their jackknife SEs
    for sr in ref["single_reader"]:
        i, j = int(sr["treatment"]) - 1, int(sr["reader"]) - 1
        assert close(res.aucs[i, j], sr["auc"])
        assert close(np.sqrt(res.cov[i * 5 + j, i * 5 + j]), sr["se"])


def test_rrrc_jackknife_shares_mrmcaov_components() -> None:
    # variance components do not depend on the reader/case factor types
    res = mrmc_analysis(TRUTH, RATINGS, cov="jackknife", design="rrrc")
    _check_vc(res.variance_components, REF["frrc_jackknife"]["variance_components"])


def test_rrfc_matches_mrmcaov() -> None:
    ref = REF["rrfc"]
    res = mrmc_analysis(TRUTH, RATINGS, cov="delong", design="rrfc")
    g = res.global_test
    assert close(g["F"], ref["global_test"]["F"]) and g["df2"] == 4 and close(g["p"], ref["global_test"]["p"])
    (pw,) = res.pairwise
    for k in ("estimate", "se", "t", "p"):
        assert close(getattr(pw, k), ref["pairwise"][k]), k
    for name, tr in res.treatment_results.items():
        rt = ref["treatments"][name]
        assert close(tr.se, rt["se"]) and tr.df == 4
        assert close(tr.ci[0], rt["ci"][0]) and close(tr.ci[1], rt["ci"][1])


def test_fast_jackknife_equals_leave_one_out() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 30)
    truth[:2] = [0, 1]
    scores = rng.integers(0, 5, (3, 30)).astype(float)
    fast = jackknife_covariance_from_placements(naive_placements(truth, scores))
    loo = np.array(
        [[naive_auc(np.delete(truth, k), np.delete(s, k)) for s in scores] for k in range(30)]
    )
    centred = loo - loo.mean(axis=0)
    brute = (29 / 30) * centred.T @ centred
    np.testing.assert_allclose(fast, brute, atol=1e-14)


def _rjafroc_1t_rrrc(truth: np.ndarray, readers: np.ndarray, cad: np.ndarray) -> tuple[float, float, float]:
    """Independent port of RJafroc's DiffFomAnal2007Hillis53 / VarCov2 loops (naive AUCs)."""
    j_n, k_n = readers.shape
    psi_jk = np.zeros((j_n, k_n))
    for k in range(k_n):
        keep = np.arange(k_n) != k
        a_cad = naive_auc(truth[keep], cad[keep])
        for j in range(j_n):
            psi_jk[j, k] = naive_auc(truth[keep], readers[j, keep]) - a_cad
    cov = np.cov(psi_jk) * (k_n - 1) ** 2 / k_n
    cov2 = cov[~np.eye(j_n, dtype=bool)].mean()
    psi = np.array([naive_auc(truth, readers[j]) for j in range(j_n)]) - naive_auc(truth, cad)
    msr = psi.var(ddof=1)
    den = msr + max(j_n * cov2, 0)
    ddf = den**2 / (msr**2 / (j_n - 1))
    return float(psi.mean()), float(psi.mean() / np.sqrt(den / j_n)), float(ddf)


def test_ai_vs_readers_matches_rjafroc_algorithm() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 40)
    truth[:2] = [0, 1]
    readers = np.clip(np.round(truth * 1.5 + rng.normal(size=(4, 40)) * 1.2 + 2), 0, 5)
    cad = truth + rng.normal(size=40)
    est, tstat, ddf = _rjafroc_1t_rrrc(truth, readers, cad)
    res = ai_vs_readers(truth, readers, cad, cov="jackknife")
    assert res.estimate == pytest.approx(est, rel=1e-10)
    assert res.t == pytest.approx(tstat, rel=1e-10)
    assert res.df == pytest.approx(ddf, rel=1e-10)
    assert res.reader_ci[0] < res.mean_reader_auc < res.reader_ci[1]
    assert res.mean_reader_auc == pytest.approx(res.model_auc + res.estimate)


def test_ai_vs_readers_on_vandyke() -> None:
    # model := reader 4 in treatment 2 (AUC 0.9994); panel := treatment-1 readers
    res = ai_vs_readers(TRUTH, RATINGS[0], RATINGS[1, 3], cov="delong")
    assert res.model_auc == pytest.approx(0.9993559, abs=1e-7)
    assert res.estimate == pytest.approx(0.8970370 - 0.9993559, abs=1e-7)
    assert res.p < 0.05 and res.ci[1] < 0


def test_auc_covariance_bad_method() -> None:
    with pytest.raises(ValueError):
        auc_covariance(TRUTH, RATINGS, "bootstrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mrmc_analysis(TRUTH, RATINGS[:, :1], design="rrrc")
