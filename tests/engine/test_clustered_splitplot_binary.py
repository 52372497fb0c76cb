"""Clustered AUC (Obuchowski 1997), split-plot OR (Hillis 2014 / RJafroc SpC) and binary MRMC endpoints.

No published numbers exist in the offline sources for these three; each is checked against an
independent slow implementation or an exact reduction, and by SYNTHETIC null simulations
(>= 1000 studies): 95 % CI coverage within 93-97 % and type I error near 5 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mrmc_sim import clustered_units, roe_metz

from engine.cli.main import main
from engine.stats.binary import binary_fom_jackknife, binary_mrmc
from engine.stats.clustered import clustered_auc_covariance, clustered_mrmc
from engine.stats.delong import delong_covariance
from engine.stats.mrmc import mrmc_analysis
from engine.stats.roc import empirical_auc
from engine.stats.splitplot import split_plot_blocks, split_plot_mrmc

VANDYKE = Path(__file__).resolve().parents[1] / "data" / "mrmc" / "vandyke.csv"


def _naive_obuchowski(cl: np.ndarray, t: np.ndarray, s: np.ndarray) -> float:
    """Obuchowski 1997 eqs. written as loops over patients and unit pairs."""
    pos, neg = np.nonzero(t == 1)[0], np.nonzero(t == 0)[0]
    big_m, big_n = pos.size, neg.size
    psi = lambda x, y: 1.0 if x > y else (0.5 if x == y else 0.0)  # noqa: E731
    a = sum(psi(s[i], s[j]) for i in pos for j in neg) / (big_m * big_n)
    pats = np.unique(cl)
    v10 = {p: sum(sum(psi(s[i], s[j]) for j in neg) / big_n for i in pos if cl[i] == p) for p in pats}
    v01 = {p: sum(sum(psi(s[i], s[j]) for i in pos) / big_m for j in neg if cl[j] == p) for p in pats}
    m_i = {p: int(((cl == p) & (t == 1)).sum()) for p in pats}
    n_i = {p: int(((cl == p) & (t == 0)).sum()) for p in pats}
    i10 = sum(1 for p in pats if m_i[p] > 0)
    i01 = sum(1 for p in pats if n_i[p] > 0)
    s10 = i10 / ((i10 - 1) * big_m) * sum((v10[p] - m_i[p] * a) ** 2 for p in pats)
    s01 = i01 / ((i01 - 1) * big_n) * sum((v01[p] - n_i[p] * a) ** 2 for p in pats)
    s11 = len(pats) / (len(pats) - 1) * sum((v10[p] - m_i[p] * a) * (v01[p] - n_i[p] * a) for p in pats)
    return s10 / big_m + s01 / big_n + 2 * s11 / (big_m * big_n)


def test_clustered_matches_loops_and_reduces_to_delong() -> None:
    rng = np.random.default_rng(3)
    cl, t, s = clustered_units(rng, patients=25)
    s = np.round(s, 1)  # ties
    a, cov = clustered_auc_covariance(cl, t, s)
    assert a[0] == pytest.approx(empirical_auc(t, s))
    assert cov[0, 0] == pytest.approx(_naive_obuchowski(cl, t, s), rel=1e-12)
    # one unit per patient: exactly DeLong (variance and the covariance of two readers)
    t2, r2 = roe_metz(rng, treatments=1, readers=2, pos=20, neg=25)
    _, c_cl = clustered_auc_covariance(np.arange(45), t2, r2[0])
    assert np.allclose(c_cl, delong_covariance(t2, r2[0])[1], rtol=1e-12)
    # the patient jackknife agrees with Obuchowski's variance to first order
    cl3, t3, s3 = clustered_units(rng, patients=400)
    v_ob = clustered_auc_covariance(cl3, t3, s3)[1][0, 0]
    v_jk = clustered_auc_covariance(cl3, t3, s3, "jackknife")[1][0, 0]
    assert v_jk == pytest.approx(v_ob, rel=0.05)


def test_clustered_coverage_simulation() -> None:
    """1000 SYNTHETIC clustered samples: Obuchowski CIs cover ~95 %, unit-level DeLong under-covers."""
    rng = np.random.default_rng(1997)
    est, se_cl, se_unit = [], [], []
    for _ in range(1000):
        cl, t, s = clustered_units(rng, patients=80, sd_patient=1.2)
        a, c = clustered_auc_covariance(cl, t, s)
        est.append(a[0])
        se_cl.append(np.sqrt(c[0, 0]))
        se_unit.append(np.sqrt(delong_covariance(t, s)[1][0, 0]))
    est_a = np.asarray(est)
    target = est_a.mean()  # the design's expected AUC (Monte Carlo SE ~ 0.002)
    cover = np.mean(np.abs(est_a - target) <= 1.96 * np.asarray(se_cl))
    naive = np.mean(np.abs(est_a - target) <= 1.96 * np.asarray(se_unit))
    assert 0.93 <= cover <= 0.97, cover
    assert naive < cover - 0.02, (naive, cover)


def test_clustered_mrmc_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # VanDyke with each case its own patient = the ordinary DeLong analysis
    from engine.study.ratings import load_ratings

    tab = load_ratings(VANDYKE)
    a = clustered_mrmc(tab.cases, tab.truth, tab.ratings)
    b = mrmc_analysis(tab.truth, tab.ratings, cov="delong")
    assert a.global_test["F"] == pytest.approx(b.global_test["F"], rel=1e-10)
    # pair the 114 cases into 57 "patients": the analysis must change and run through the CLI
    (tmp_path / "cl.csv").write_text("case,patient\n" + "".join(f"{c},P{k // 2}\n" for k, c in enumerate(tab.cases)))
    assert main(["mrmc", str(VANDYKE), "--clusters", str(tmp_path / "cl.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cov"] == "clustered-obuchowski" and out["global_test"]["F"] != pytest.approx(b.global_test["F"])
    (tmp_path / "bad.csv").write_text("case,patient\n1,P1\n")
    assert main(["mrmc", str(VANDYKE), "--clusters", str(tmp_path / "bad.csv")]) == 2
    assert "have no patient" in capsys.readouterr().err


def _split(rng: np.random.Generator, groups: int = 4, per_group: int = 40, readers_per: int = 1
           ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    r = groups * readers_per
    truth, full = roe_metz(rng, treatments=2, readers=r, pos=groups * per_group // 2, neg=groups * per_group // 2)
    ratings = np.full_like(full, np.nan)
    order = rng.permutation(truth.size)
    labels = []
    for g in range(groups):
        cases = order[g * per_group:(g + 1) * per_group]
        members = list(range(g * readers_per, (g + 1) * readers_per))
        ratings[np.ix_([0, 1], members, cases)] = full[np.ix_([0, 1], members, cases)]
        labels += [f"G{g}"] * readers_per
    return truth, ratings, labels


def test_split_plot_reductions() -> None:
    from engine.study.ratings import load_ratings

    tab = load_ratings(VANDYKE)
    # one group: the fully crossed analysis
    one = split_plot_mrmc(tab.truth, tab.ratings, ["A"] * 5, cov="jackknife")
    full = mrmc_analysis(tab.truth, tab.ratings, cov="jackknife")
    assert one.global_test["F"] == pytest.approx(full.global_test["F"], rel=1e-12)
    # one reader per block (RJafroc split-plot-C): Cov2 = Cov3 = 0, F = MS(T)/MS(T:R) on (1, r - 1)
    rng = np.random.default_rng(4)
    truth, ratings, groups = _split(rng, groups=4, per_group=30)
    res = split_plot_mrmc(truth, ratings, groups)
    assert res.variance_components["cov2"] == 0 and res.variance_components["cov3"] == 0
    g = res.global_test
    assert g["F"] == pytest.approx(g["MS_T"] / g["MS_TR"]) and g["df2"] == pytest.approx(3.0)
    # each reader's Var is the jackknife on that reader's own 30 cases
    blocks = split_plot_blocks(ratings, groups)
    from engine.stats.mrmc import auc_covariance

    _, c0 = auc_covariance(truth[blocks["G0"]], ratings[:, :1][:, :, blocks["G0"]], "jackknife")
    assert res.cov[0, 0] == pytest.approx(c0[0, 0]) and res.cov[0, 1] == 0.0
    bad = ratings.copy()
    bad[0, 1, blocks["G0"][0]] = 3.0  # reader of G1 also read a G0 case
    with pytest.raises(ValueError, match="not read by every reader|must not overlap"):
        split_plot_mrmc(truth, bad, groups)


def test_split_plot_null_simulation() -> None:
    """1000 SYNTHETIC null split-plot studies, 3 groups x 2 readers, 40 cases per block."""
    rng = np.random.default_rng(2014)
    rej = 0
    for _ in range(1000):
        truth, ratings, groups = _split(rng, groups=3, per_group=40, readers_per=2)
        rej += split_plot_mrmc(truth, ratings, groups).pairwise[0].p < 0.05
    assert 0.03 <= rej / 1000 <= 0.07, rej


def test_binary_endpoints_jackknife_and_simulation() -> None:
    rng = np.random.default_rng(8)
    truth, ratings = roe_metz(rng, pos=30, neg=30)
    foms, loo = binary_fom_jackknife(truth, ratings, 0.75, "sensitivity")
    assert foms[1, 2] == pytest.approx((ratings[1, 2, truth == 1] >= 0.75).mean())
    k = 4  # a positive case: recompute without it
    keep = np.arange(60) != k
    assert loo[1 * 4 + 2, k] == pytest.approx((ratings[1, 2, keep][truth[keep] == 1] >= 0.75).mean())
    sp, _ = binary_fom_jackknife(truth, ratings, 0.75, "specificity")
    assert sp[0, 0] == pytest.approx((ratings[0, 0, truth == 0] < 0.75).mean())
    rej = cov = 0
    for _ in range(1000):
        truth, ratings = roe_metz(rng, pos=50, neg=50)
        pw = binary_mrmc(truth, ratings, 0.75, "sensitivity").pairwise[0]
        rej += pw.p < 0.05
        cov += pw.ci[0] <= 0 <= pw.ci[1]
    assert 0.93 <= cov / 1000 <= 0.97 and 0.03 <= rej / 1000 <= 0.07, (cov, rej)


def test_cli_binary_and_split_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mrmc", str(VANDYKE), "--endpoint", "sensitivity", "--threshold", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fom"] == "sensitivity@>=4" and set(out["treatments"]["1"]) == {"fom", "se", "df", "ci"}
    assert main(["mrmc", str(VANDYKE), "--endpoint", "specificity"]) == 2
    assert "--threshold" in capsys.readouterr().err
    rng = np.random.default_rng(9)
    truth, ratings, groups = _split(rng, groups=2, per_group=30, readers_per=2)
    rows = ["reader,treatment,case,truth,rating"]
    for i in range(2):
        for j in range(4):
            for k in range(truth.size):
                if not np.isnan(ratings[i, j, k]):
                    rows.append(f"R{j},T{i},C{k},{truth[k]},{ratings[i, j, k]:.6f}")
    (tmp_path / "sp.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "g.csv").write_text("reader,group\n" + "".join(f"R{j},{groups[j]}\n" for j in range(4)))
    assert main(["mrmc", str(tmp_path / "sp.csv")]) == 2  # not fully crossed without --groups
    capsys.readouterr()
    assert main(["mrmc", str(tmp_path / "sp.csv"), "--groups", str(tmp_path / "g.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cov"] == "split-plot-jackknife" and out["variance_components"]["cov2"] > 0
