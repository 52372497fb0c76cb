"""`breast-engine mrmc` and the ratings-file loader (good files and bad ones)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli.main import main
from engine.errors import CaseFormatError
from engine.stats.binary import sens_spec_at, wilson_ci
from engine.study.ratings import load_ratings, parse_long_csv, write_imrmc, write_long_csv

VANDYKE = Path(__file__).resolve().parents[1] / "data" / "mrmc" / "vandyke.csv"
HEADER = "reader,treatment,case,truth,rating\n"


def _good_rows() -> list[str]:
    rows = []
    for rd in ("r1", "r2"):
        for tr in ("unaided", "aided"):
            for cs, t, s in (("c1", 0, 1), ("c2", 0, 3), ("c3", 1, 7), ("c4", 1, 9)):
                rows.append(f"{rd},{tr},{cs},{t},{s}\n")
    return rows


def test_cli_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mrmc", str(VANDYKE), "--cov", "delong", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"treatments", "global_test", "pairwise", "variance_components", "per_reader"}
    assert set(out["treatments"]["1"]) == {"auc", "se", "df", "ci"}
    assert set(out["global_test"]) >= {"F", "df1", "df2", "p"}
    assert set(out["pairwise"][0]) >= {"comparison", "estimate", "se", "df", "ci", "t", "p"}
    assert out["global_test"]["F"] == pytest.approx(4.484854, rel=1e-6)
    assert out["per_reader"]["5"]["2"] == pytest.approx(0.9299517, abs=1e-7)


def test_cli_imrmc_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = load_ratings(VANDYKE)
    write_imrmc(table, tmp_path / "vd.imrmc")
    write_long_csv(table, tmp_path / "vd.csv")
    back = load_ratings(tmp_path / "vd.imrmc")
    np.testing.assert_array_equal(back.ratings, table.ratings)
    np.testing.assert_array_equal(back.truth, table.truth)
    assert main(["mrmc", str(tmp_path / "vd.imrmc"), "--cov", "jackknife", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variance_components"]["var_error"] == pytest.approx(0.0008022883, rel=1e-6)


@pytest.mark.parametrize(
    "text,row,words",
    [
        ("reader,case,truth,rating\nr1,c1,0,1\n", 1, "missing column(s) treatment"),
        (HEADER + "r1,unaided,c1,0,1\nr1,unaided,c1,0,2\n", 3, "rated twice"),
        (HEADER + "r1,unaided,c1,maybe,1\n", 2, "not 0/1"),
        (HEADER + "r1,unaided,c1,0,high\n", 2, "not a number"),
        (HEADER + "r1,unaided,c1,0,1\nr2,unaided,c1,1,1\n", 3, "has one truth"),
    ],
)
def test_bad_rows_are_named(text: str, row: int, words: str) -> None:
    with pytest.raises(CaseFormatError) as ei:
        parse_long_csv(text, "bad.csv")
    assert ei.value.row == row
    assert words in str(ei.value)
    assert "bad.csv" in str(ei.value)


def test_one_class_and_missing_case() -> None:
    one = HEADER + "r1,a,c1,1,3\nr1,a,c2,1,4\n"
    with pytest.raises(CaseFormatError, match="need|needs both"):
        parse_long_csv(one, "one.csv")
    rows = _good_rows()
    del rows[5]  # r1, aided, c2
    with pytest.raises(CaseFormatError, match="reader 'r1' has no rating for case 'c2' in treatment 'aided'"):
        parse_long_csv(HEADER + "".join(rows), "gap.csv")
    tiny = HEADER + "r1,a,c1,0,3\nr1,a,c2,1,4\nr1,a,c3,1,4\n"
    with pytest.raises(CaseFormatError, match="at least 2 of each"):
        parse_long_csv(tiny, "tiny.csv")
    ok = parse_long_csv(HEADER + "".join(_good_rows()), "ok.csv")
    assert ok.ratings.shape == (2, 2, 4) and ok.treatments == ["unaided", "aided"]


def test_cli_bad_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "r1,a,c1,0,1\nr1,a,c1,0,2\n")
    assert main(["mrmc", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 3" in err[0] and err[0].startswith("breast-engine: error:")


def test_wilson_and_sens_spec() -> None:
    # Wilson 95% for 8/10 worked by hand: centre 0.99216/1.38415, half 1.96*0.16/1.38415
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_ci(0, 5)[0] == 0.0 and wilson_ci(5, 5)[1] == 1.0
    (op,) = sens_spec_at([0, 0, 1, 1, 1], [1, 6, 5, 7, 2], [5])
    assert (op.tp, op.fn, op.tn, op.fp) == (2, 1, 1, 1)
    assert op.sensitivity == pytest.approx(2 / 3) and op.specificity == 0.5


def test_cli_model_vs_readers(capsys: pytest.CaptureFixture[str]) -> None:
    # reader 4 as a stand-in "model": left out of MRMC, compared with the other four
    assert main(["mrmc", str(VANDYKE), "--model", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["per_reader"]) == {"1", "2", "3", "5"}
    mv = out["model_vs_readers"]["1"]
    assert mv["model_auc"] == pytest.approx(0.9731079, abs=1e-7)
    assert mv["mean_reader_auc"] == pytest.approx((0.9196457 + 0.8587762 + 0.9038647 + 0.8297907) / 4, abs=1e-6)
    assert main(["mrmc", str(VANDYKE), "--model", "nobody"]) == 2
    assert "not a reader" in capsys.readouterr().err
