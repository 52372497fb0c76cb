"""Lesion marks in the study store (schema v4): one transaction with the rating, locked, chained; FROC export."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition
from engine.study.export import export_study
from engine.study.store import SCHEMA_VERSION, RatingStore, StoredMark

MARKS = [{"image_id": "us_1", "kind": "point", "points": [[30.5, 31.0]], "frame": None, "confidence": 7},
         {"image_id": "us_1", "kind": "box", "points": [[1, 2], [5, 6]], "frame": None, "confidence": 2}]


def _store(path: Path) -> RatingStore:
    s = RatingStore(path)
    s.initialise(meta={"seed": "1"}, readers=[("R1", "a")], arms=[("u", False)], cases=[("c1", 0), ("c2", 1)],
                 orders={("R1", "u"): ["c1", "c2"]})
    return s


def test_marks_are_stored_with_the_rating_and_locked(tmp_path: Path) -> None:
    s = _store(tmp_path / "s.sqlite")
    assert SCHEMA_VERSION >= 4
    s.submit("R1", "u", "c1", 6, marks=MARKS)
    s.submit("R1", "u", "c2", 3)
    got = s.marks()
    assert got == [StoredMark("R1", "u", "c1", 1, "us_1", "point", [[30.5, 31.0]], None, 7.0),
                   StoredMark("R1", "u", "c1", 2, "us_1", "box", [[1.0, 2.0], [5.0, 6.0]], None, 2.0)]
    assert s.verify().ok
    con = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    for sql in ("UPDATE marks SET rating = 9", "DELETE FROM marks",
                "INSERT OR REPLACE INTO marks (mark_id, rating_id, mark_no, image_id, kind, points) "
                "VALUES (1, 1, 1, 'us_1', 'point', '[[0,0]]')"):
        with pytest.raises(sqlite3.DatabaseError, match="locked"):
            con.execute(sql)
    # a mark slipped in by a foreign writer (triggers dropped) is reported by verify()
    con.execute("DROP TRIGGER marks_no_replace")
    con.execute("INSERT INTO marks (rating_id, mark_no, image_id, kind, points, rating) "
                "VALUES (2, 1, 'us_1', 'point', '[[1,1]]', 9)")
    con.close()
    rep = s.verify()
    assert not rep.ok and any("marks of rating 2" in p for p in rep.problems)


def test_bad_marks_store_nothing(tmp_path: Path) -> None:
    s = _store(tmp_path / "s.sqlite")
    with pytest.raises(ConfigError, match="kind point/box"):
        s.submit("R1", "u", "c1", 6, marks=[{"image_id": "us_1", "kind": "circle", "points": [[1, 1]]}])
    with pytest.raises(ConfigError, match="not a finite"):
        s.submit("R1", "u", "c1", 6, marks=[{"image_id": "us_1", "kind": "point", "points": [[1, 1]],
                                              "confidence": float("nan")}])
    assert s.ratings() == [] and s.marks() == []  # the rating was not stored either


def test_v3_file_migrates_and_keeps_verifying(tmp_path: Path) -> None:
    from engine.study.store import MIGRATIONS, _split_sql

    db = tmp_path / "v3.sqlite"
    # a v3 file: the schema up to v3 only
    con = sqlite3.connect(db)
    for v, script in MIGRATIONS:
        if v <= 3:
            for stmt in _split_sql(script):
                con.execute(stmt)
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    s = _store(db)
    assert s.schema_version == SCHEMA_VERSION and s.verify().ok
    s.submit("R1", "u", "c1", 5, marks=MARKS[:1])
    assert len(s.marks()) == 1 and s.verify().ok


def test_session_marks_to_froc_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scripted (SIMULATED) readers mark lesions; the export writes the three FROC CSVs and the analysis."""
    cases = make_tiny_case_study(tmp_path / "cases", 8, 8, size=48)
    toml = write_demo_definition(tmp_path / "rs", cases, washout_days=0, paradigm="froc")
    run = run_scripted_readers(toml, FakeClock())
    try:
        assert run.design.paradigm == "froc" and len(run.store.marks()) > 16
        res = export_study(run, tmp_path / "export")
    finally:
        run.close()
    froc = tmp_path / "export" / "froc"
    assert {p.name for p in froc.iterdir()} >= {"MARKS.csv", "LESIONS.csv", "CASES.csv", "froc_results.json",
                                                "froc.png"}
    header = (froc / "MARKS.csv").read_text().splitlines()[0]
    assert header == "treatment,reader,case,truth,mark_type,lesion_id,rating"
    body = (froc / "MARKS.csv").read_text()
    assert ",LL,L1," in body and ",NL,," in body and "T0" not in body  # pseudonymised case ids
    out = json.loads((froc / "froc_results.json").read_text())
    assert out["lesions"] == 8 and out["abnormal_cases"] == 8 and out["normal_cases"] == 8
    assert set(out["wafroc"]["per_reader"]) == {"R1", "R2", "R3"}
    assert res.results["froc"]["wafroc"]["global_test"]["df1"] == 1
    # the exported files reproduce the analysis through the CLI contract
    from engine.cli.main import main

    assert main(["mrmc", str(froc / "MARKS.csv"), "--paradigm", "froc", "--lesions", str(froc / "LESIONS.csv"),
                 "--cases", str(froc / "CASES.csv"), "--fom", "wafroc", "--cov", "jackknife", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["global_test"]["F"] == pytest.approx(out["wafroc"]["global_test"]["F"], rel=1e-9)


def test_split_plot_study_definition_session_and_export(tmp_path: Path) -> None:
    """design = "split-plot": each reader group reads its own stratified block; the export runs the split-plot OR."""
    cases = make_tiny_case_study(tmp_path / "cases", 8, 8, size=32)
    toml = write_demo_definition(tmp_path / "rs", cases, n_readers=4, washout_days=0)
    text = toml.read_text().replace('arm_order = "counterbalanced"', 'arm_order = "counterbalanced"\ndesign = "split-plot"')
    for j, g in enumerate("AABB"):
        text = text.replace(f'id = "R{j + 1}"\n', f'id = "R{j + 1}"\nblock = "{g}"\n')
    toml.write_text(text)
    run = run_scripted_readers(toml, FakeClock())
    try:
        a, b = set(run.cases_for("R1")), set(run.cases_for("R3"))
        assert a == set(run.cases_for("R2")) and not a & b and len(a) == len(b) == 8
        truth = {c: int(run.cases[c].truth.malignant) for c in run.cases}  # type: ignore[union-attr]
        assert sum(truth[c] for c in a) == 4  # stratified by truth
        assert len(run.store.ratings()) == 4 * 2 * 8
        res = export_study(run, tmp_path / "export")
    finally:
        run.close()
    assert res.complete and res.results["design"]["design"] == "split-plot"
    m = res.results["mrmc"]
    assert m["cov"] == "split-plot-delong" and set(m["per_reader"]) == {"R1", "R2", "R3", "R4"}
    assert m["global_test"]["df1"] == 1 and len(m["pairwise"]) == 1
    assert {r["cases"] for r in res.results["reader_auc"]} == {8}
    text2 = toml.read_text().replace('block = "B"', 'block = "A"')
    toml.write_text(text2)
    from engine.study.design import load_design

    with pytest.raises(ConfigError, match="at least 2 reader groups"):
        load_design(toml)
