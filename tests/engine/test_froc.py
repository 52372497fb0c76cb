"""FROC paradigm: matching, wAFROC/AFROC/inferred-ROC FOMs, jackknife ORH analysis, CLI contract.

Published FROC reference outputs (RJafroc dataset01/dataset04 wAFROC) could not be obtained
offline: RJafroc keeps those datasets as binary .RData/.xlsx, which the sources available here
do not hold as text (see tests/data/froc/README.md). The checks instead are (1) an independent
slow implementation (the O(K1 L) double sum and explicit leave-one-case-out recomputation),
(2) ROC data written as FROC marks, where AFROC = wAFROC = Wilcoxon AUC, so the whole FROC
pipeline must reproduce MRMCaov's published VanDyke jackknife numbers, (3) simulated null
studies: 95 % CI coverage and type I error.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli.main import main
from engine.stats.froc import (
    AcceptanceRule,
    FrocData,
    Lesion,
    Mark,
    afroc_points,
    froc_analysis,
    froc_fom_jackknife,
    froc_foms,
    froc_points,
    inferred_roc_ratings,
    match_marks,
    simulate_froc,
    wafroc_points,
)
from engine.study.froc_files import load_froc, write_froc
from engine.study.ratings import load_ratings

DATA = Path(__file__).resolve().parents[1] / "data"
REF = json.loads((DATA / "mrmc" / "mrmcaov_vandyke_reference.json").read_text())


def _naive_fom(d: FrocData, i: int, j: int, fom: str) -> float:
    fp = d.max_nl()[i, j][~d.truth]
    k2 = int(d.truth.sum())
    tot = 0.0
    for x in fp:
        for li, y in enumerate(d.ll[i, j]):
            psi = 1.0 if y > x else (0.5 if y == x else 0.0)
            tot += psi * (d.weights[li] / k2 if fom == "wafroc" else 1.0 / d.n_lesions)
    return tot / fp.size


def _drop_case(d: FrocData, k: int) -> FrocData:
    keep = np.ones(len(d.cases), bool)
    keep[k] = False
    remap = np.cumsum(keep) - 1
    lk, nk = keep[d.lesion_case], keep[d.nl_case]
    return FrocData(d.treatments, d.readers, [c for c, q in zip(d.cases, keep, strict=True) if q], d.truth[keep],
                    remap[d.lesion_case[lk]], [x for x, q in zip(d.lesion_ids, lk, strict=True) if q], d.weights[lk],
                    d.ll[:, :, lk], d.nl_treatment[nk], d.nl_reader[nk], remap[d.nl_case[nk]], d.nl_rating[nk])


@pytest.mark.parametrize("fom", ["wafroc", "afroc", "roc"])
def test_fom_and_jackknife_match_slow_implementation(fom: str) -> None:
    d = simulate_froc(np.random.default_rng(11), treatments=2, readers=3, normal=15, abnormal=18)
    foms, loo = froc_fom_jackknife(d, fom)  # type: ignore[arg-type]
    if fom != "roc":
        for i in range(2):
            for j in range(3):
                assert foms[i, j] == pytest.approx(_naive_fom(d, i, j, fom), abs=1e-12)
    else:
        from engine.stats.roc import naive_auc

        h = inferred_roc_ratings(d)
        h = np.where(np.isfinite(h), h, -99.0)
        assert foms[1, 2] == pytest.approx(naive_auc(d.truth.astype(int), h[1, 2]), abs=1e-12)
    for k in (0, 7, 14, 15, 25, 32):  # normal and abnormal cases
        assert loo[1 * 3 + 2, k] == pytest.approx(froc_foms(_drop_case(d, k), fom)[1, 2], abs=1e-12)  # type: ignore[arg-type]


def test_curves_areas_equal_foms_and_froc_points() -> None:
    d = simulate_froc(np.random.default_rng(5), treatments=1, readers=2, normal=20, abnormal=20)
    assert afroc_points(d, 0, 1).area == pytest.approx(froc_foms(d, "afroc")[0, 1], abs=1e-12)
    assert wafroc_points(d, 0, 1).area == pytest.approx(froc_foms(d, "wafroc")[0, 1], abs=1e-12)
    f = froc_points(d, 0, 0)
    nl = d.nl_rating[(d.nl_treatment == 0) & (d.nl_reader == 0)]
    assert f.x[-1] == pytest.approx(nl.size / 40) and f.y[-1] == pytest.approx(np.isfinite(d.ll[0, 0]).mean())
    z = f.thresholds[3]
    assert f.x[3] == pytest.approx((nl >= z).sum() / 40) and f.y[3] == pytest.approx((d.ll[0, 0] >= z).mean())
    assert np.all(np.diff(f.x) >= 0) and np.all(np.diff(f.y) >= 0)


def _vandyke_as_froc(tmp: Path) -> tuple[Path, Path, Path]:
    """ROC ratings as FROC marks: each case one mark; abnormal cases one lesion (LL), normal NL."""
    table = load_ratings(DATA / "mrmc" / "vandyke.csv")
    with open(tmp / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["treatment", "reader", "case", "truth", "mark_type", "lesion_id", "rating"])
        for i, t in enumerate(table.treatments):
            for j, r in enumerate(table.readers):
                for k, c in enumerate(table.cases):
                    pos = table.truth[k] == 1
                    w.writerow([t, r, c, int(pos), "LL" if pos else "NL", "1" if pos else "", table.ratings[i, j, k]])
    (tmp / "l.csv").write_text("case,lesion_id,weight\n" + "".join(
        f"{c},1,1\n" for k, c in enumerate(table.cases) if table.truth[k]))
    (tmp / "c.csv").write_text("case,truth\n" + "".join(f"{c},{int(table.truth[k])}\n"
                                                         for k, c in enumerate(table.cases)))
    return tmp / "m.csv", tmp / "l.csv", tmp / "c.csv"


def test_roc_data_as_froc_reproduces_mrmcaov_vandyke(tmp_path: Path) -> None:
    m, les, c = _vandyke_as_froc(tmp_path)
    d = load_froc(m, les, c)
    ref = REF["frrc_jackknife"]["variance_components"]
    for fom in ("wafroc", "afroc", "roc"):
        res = froc_analysis(d, fom, cov="jackknife", design="frrc")  # type: ignore[arg-type]
        vc = res.variance_components
        for ours, theirs in (("var_R", "reader"), ("var_TR", "treatment:reader"), ("var_error", "Error"),
                             ("cov1", "Cov1"), ("cov2", "Cov2"), ("cov3", "Cov3")):
            assert vc[ours] == pytest.approx(ref[theirs], rel=5e-6), (fom, ours)
        assert res.global_test["X2"] == pytest.approx(REF["frrc_jackknife"]["global_test"]["X2"], rel=5e-6)
    # the inferred-ROC AUC with DeLong covariance = the ROC analysis with DeLong
    roc = froc_analysis(d, "roc", cov="delong")
    assert roc.global_test["F"] == pytest.approx(REF["rrrc_delong"]["global_test"]["F"], rel=5e-6)
    with pytest.raises(ValueError, match="DeLong covariance applies"):
        froc_analysis(d, "wafroc", cov="delong")


def test_cli_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = simulate_froc(np.random.default_rng(7), treatments=3, readers=4, normal=30, abnormal=30, effect=0.4)
    paths = write_froc(d, tmp_path)
    args = ["mrmc", str(paths["marks"]), "--paradigm", "froc", "--lesions", str(paths["lesions"]),
            "--cases", str(paths["cases"])]
    for fom in ("wafroc", "afroc"):
        assert main([*args, "--fom", fom, "--cov", "jackknife", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert set(out) >= {"treatments", "global_test", "pairwise", "variance_components", "per_reader"}
        assert set(out["global_test"]) >= {"F", "df1", "df2", "p"}
        assert out["global_test"]["df1"] == 2 and len(out["pairwise"]) == 3
        assert set(out["treatments"]) == {"T1", "T2", "T3"}
        assert set(out["variance_components"]) == {"var_R", "var_TR", "var_error", "cov1", "cov2", "cov3"}
        foms = froc_foms(load_froc(paths["marks"], paths["lesions"], paths["cases"]), fom)  # type: ignore[arg-type]
        assert out["per_reader"]["R3"]["T2"] == pytest.approx(foms[1, 2], abs=1e-12)
        assert out["fom"] == fom and out["paradigm"] == "froc" and out["lesions"] == d.n_lesions
        ref = froc_analysis(d, fom)  # type: ignore[arg-type]
        assert out["global_test"]["F"] == pytest.approx(ref.global_test["F"], rel=1e-9)
    # power on an FROC pilot
    assert main([*args, "--power-readers", "6", "--power-cases", "200", "--effect-size", "0.05", "--json"]) == 0
    pw = json.loads(capsys.readouterr().out)["power"]
    assert 0.05 < pw["power"] < 1 and pw["pilot"]["fom"] == "wafroc" and pw["pilot"]["cases"] == 60
    # text output and figure
    assert main([*args, "--plot", str(tmp_path / "f.png")]) == 0
    assert "FOM wafroc" in capsys.readouterr().out and (tmp_path / "f.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "which,text,words",
    [
        ("marks", "treatment,reader,case,truth,mark_type,lesion_id,rating\nT1,R1,A001,1,LL,L9,3\n", "not in"),
        ("marks", "treatment,reader,case,truth,mark_type,lesion_id,rating\nT1,R1,A001,1,XX,,3\n", "NL or LL"),
        ("marks", "treatment,reader,case,truth,mark_type,lesion_id,rating\nT1,R1,A001,0,NL,,3\n", "truth of case"),
        ("marks", "treatment,reader,case,truth,lesion_id,rating\n", "missing column(s) mark_type"),
        ("lesions", "case,lesion_id,weight\nA001,L1,0.7\nA001,L2,0.7\n", "sum to 1.4"),
        ("lesions", "case,lesion_id,weight\nN001,L1,1\n", "has truth 0"),
    ],
)
def test_bad_froc_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, text: str,
                                     words: str) -> None:
    d = simulate_froc(np.random.default_rng(1), treatments=1, readers=2, normal=5, abnormal=5, max_lesions=2)
    paths = write_froc(d, tmp_path)
    if which == "lesions":
        good = paths["lesions"].read_text().splitlines()
        keep = [ln for ln in good[1:] if not ln.startswith("A001,")]
        text = text + "\n".join(keep) + "\n"
    paths[which].write_text(text)
    rc = main(["mrmc", str(paths["marks"]), "--paradigm", "froc", "--lesions", str(paths["lesions"]),
               "--cases", str(paths["cases"]), "--json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0] and str(paths[which]) in err[0], err
    assert main(["mrmc", str(paths["marks"]), "--paradigm", "froc"]) == 2
    assert "--lesions" in capsys.readouterr().err


def test_matching_rules() -> None:
    les = [Lesion("a", 10, 10, radius=5), Lesion("b", 40, 40, outline=((30, 30), (50, 30), (50, 50), (30, 50))),
           Lesion("c", 80, 80, box=(70, 70, 90, 90))]
    marks = [Mark(12, 11, 4), Mark(11, 9, 2), Mark(48, 31, 3), Mark(60, 60, 5), Mark(79, 81, 1, box=(71, 71, 91, 91))]
    r = match_marks(marks, les, AcceptanceRule("outline", radius=3))
    # a: inside its own 5 px radius twice (kept once, the higher rating); b: inside the square outline
    # c has no outline: its centre is within the rule's 3 px radius of the last mark
    assert r.ll == {"a": 4.0, "b": 3.0, "c": 1.0}
    assert r.dropped == 1 and r.nl == [5.0]
    r2 = match_marks(marks, les, AcceptanceRule("radius", radius=3, duplicates="nl"))
    assert "b" not in r2.ll and sorted(r2.nl) == [2.0, 3.0, 5.0] and r2.ll["a"] == 4.0
    r3 = match_marks(marks, les, AcceptanceRule("iou", iou_min=0.5))
    assert r3.ll == {"c": 1.0} and len(r3.nl) == 4
    assert match_marks([], les).ll == {} and match_marks(marks, []).nl == sorted([4, 2, 3, 5, 1], reverse=True)


def test_null_simulation_coverage_and_type_one_error() -> None:
    """1000 SYNTHETIC null studies (2 treatments x 4 readers x 80 cases, correlated over cases)."""
    rng = np.random.default_rng(20261201)
    n = 1000
    rejected = covered = 0
    for _ in range(n):
        d = simulate_froc(rng, treatments=2, readers=4, normal=40, abnormal=40)
        pw = froc_analysis(d, "wafroc").pairwise[0]
        rejected += pw.p < 0.05
        covered += pw.ci[0] <= 0.0 <= pw.ci[1]
    assert 0.93 <= covered / n <= 0.97
    assert 0.03 <= rejected / n <= 0.07
    assert covered + rejected == n  # the CI and the test agree

