"""Reader-study design, store, sessions, crash safety and export (no Qt)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition
from engine.study.design import case_order, load_design
from engine.study.export import export_study
from engine.study.session import StudyRun, WashoutError
from engine.study.store import _V1, SCHEMA_VERSION, RatingLockedError, RatingStore, _split_sql

N = 6  # benign and malignant cases each


@pytest.fixture(scope="module")
def cases_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_case_study(tmp_path_factory.mktemp("cases") / "study", N, N, size=32)


def _truth() -> dict[str, int]:
    return {f"T{k + 1:03d}": int(k >= N) for k in range(2 * N)}


@pytest.fixture()
def definition(tmp_path: Path, cases_study: Path) -> Path:
    return write_demo_definition(tmp_path / "rs", cases_study, ai_truth=_truth())


def test_design_parsing_and_errors(definition: Path, tmp_path: Path) -> None:
    d = load_design(definition)
    assert [a.arm_id for a in d.arms] == ["unaided", "aided"] and d.washout_days == 28
    assert [a.arm_id for a in d.arms_for("R2")] == ["aided", "unaided"]  # counterbalanced
    bad = tmp_path / "bad.toml"
    bad.write_text(definition.read_text() + "\n[hide]\ntruth = false\n")
    with pytest.raises(ConfigError):  # duplicate [hide] table -> invalid TOML
        load_design(bad)
    text = definition.read_text().replace("[hide]\nother_readers = true", "[hide]\ntruth = false")
    bad.write_text(text)
    with pytest.raises(ConfigError, match="truth is always hidden"):
        load_design(bad)
    bad.write_text('[study]\nname = "x"\ncases_study = "."\nseed = 1\n')
    with pytest.raises(ConfigError, match="readers"):
        load_design(bad)


def test_case_order_is_seeded_per_reader_and_arm() -> None:
    ids = [f"c{i}" for i in range(30)]
    a = case_order(7, "R1", "unaided", ids)
    assert a == case_order(7, "R1", "unaided", list(reversed(ids)))
    assert sorted(a) == sorted(ids)
    assert a != case_order(7, "R2", "unaided", ids) and a != case_order(7, "R1", "aided", ids)
    assert a != case_order(8, "R1", "unaided", ids)


def test_store_locking_audit_and_migration(tmp_path: Path) -> None:
    # a version-1 file is migrated to the current schema on open
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    for stmt in _split_sql(_V1):
        con.execute(stmt)
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    s = RatingStore(db)
    assert s.schema_version == SCHEMA_VERSION
    assert "comment" in [r[1] for r in s.conn.execute("PRAGMA table_info(ratings)")]
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    s.initialise(meta={"seed": "1"}, readers=[("R1", "a")], arms=[("u", False)], cases=[("c1", 0)],
                 orders={("R1", "u"): ["c1"]})
    s.submit("R1", "u", "c1", 4)
    with pytest.raises(RatingLockedError):
        s.submit("R1", "u", "c1", 5)
    with pytest.raises(sqlite3.IntegrityError, match="locked"):
        s.conn.execute("UPDATE ratings SET score = 9")
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        s.conn.execute("DELETE FROM ratings")
    with pytest.raises(ConfigError, match="FOREIGN KEY"):  # unknown reader
        s.submit("R9", "u", "c1", 1)
    with pytest.raises(ConfigError, match="reason"):
        s.amend("R1", "u", "c1", 6, "  ", who="R1")
    s.amend("R1", "u", "c1", 6, "mis-click", who="R1")
    assert s.ratings()[0].score == 6
    (a,) = s.audit()
    assert (a.old_score, a.new_score, a.reason, a.who) == (4, 6, "mis-click", "R1")
    for sql in ("UPDATE audit SET reason = 'x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            s.conn.execute(sql)
    s.close()


def test_session_blinding_order_resume_and_washout(definition: Path) -> None:
    clock = FakeClock()
    run = StudyRun(load_design(definition), clock=clock)
    s1 = run.sign_in("R1")
    first = s1.next_case()
    assert first is not None and first.arm.arm_id == "unaided" and not first.show_ai
    assert first.ai_score is None and first.case.truth is None and first.label == f"Case 1 of {2 * N}"
    assert s1.next_case().case.case_id == first.case.case_id  # only the next case, stable
    others = [c for c in run.cases if c != first.case.case_id]
    with pytest.raises(ConfigError, match="not the current case"):
        s1.submit(others[0], 5, "3")
    with pytest.raises(ConfigError, match="outside the scale"):
        s1.submit(first.case.case_id, 11, "3")
    with pytest.raises(ConfigError, match="BI-RADS"):
        s1.submit(first.case.case_id, 5)
    clock.advance(42)
    s1.submit(first.case.case_id, 7, "4A")
    second = s1.next_case().case.case_id
    run.close()
    # "restart": a new process opens the same store and resumes exactly there
    run2 = StudyRun(load_design(definition), clock=clock)
    s1b = run2.sign_in("R1")
    assert s1b.next_case().case.case_id == second
    (r,) = run2.store.ratings()
    assert r.reading_s == pytest.approx(42) and r.birads == "4A"
    # other readers are unaffected by R1's progress
    assert run2.sign_in("R2").status().done == {"aided": 0, "unaided": 0}


def test_washout_enforced(definition: Path) -> None:
    clock = FakeClock()
    run = StudyRun(load_design(definition), clock=clock)
    s = run.sign_in("R1")
    for _ in range(2 * N):
        item = s.next_case()
        s.submit(item.case.case_id, 5, "3")
    with pytest.raises(WashoutError, match="washout"):
        s.next_case()
    assert s.status().washout_until is not None
    clock.advance(28 * 86400 + 1)
    item = s.next_case()
    assert item.arm.arm_id == "aided" and item.show_ai and item.ai_score is not None


_CHILD = """
import sys, time
from pathlib import Path
from engine.study.demo import FakeClock, run_scripted_readers
log = open(sys.argv[2], "a", buffering=1)
def on_submit(reader, arm, case):
    log.write(f"{reader},{arm},{case}\\n")  # written only after the rating is committed
    time.sleep(0.05)
run_scripted_readers(Path(sys.argv[1]), FakeClock(), on_submit=on_submit)
time.sleep(60)
"""


def test_sigkill_mid_session_loses_no_submitted_rating(definition: Path, tmp_path: Path) -> None:
    log = tmp_path / "submitted.log"
    log.touch()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(definition), str(log)], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(log.read_text().splitlines()) < 8:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    logged = {tuple(x.split(",")) for x in log.read_text().splitlines() if x}
    assert len(logged) >= 8
    run = StudyRun(load_design(definition))
    stored = {(r.reader_id, r.arm_id, r.case_id) for r in run.store.ratings()}
    assert logged <= stored, f"lost: {logged - stored}"
    # and the session resumes after the last stored rating
    status = {s.reader_id: s for s in run.status()}
    assert sum(sum(s.done.values()) for s in status.values()) == len(stored)


def test_export_everything_without_identifiers(definition: Path, tmp_path: Path) -> None:
    run = run_scripted_readers(definition)
    run.sign_in("R1").amend("unaided", "T001", 3, "re-read the images")
    res = export_study(run, tmp_path / "out")
    assert res.complete
    for name in ("ratings.csv", "ratings.imrmc", "reader_auc.csv", "mrmc_results.json", "mrmc_results.csv",
                 "sens_spec.csv", "amendments.csv", "roc.png", "roc.svg", "roc.pdf", "report.pdf"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    text = "".join((tmp_path / "out" / n).read_text() for n in ("ratings.csv", "ratings.imrmc", "mrmc_results.json",
                                                                 "amendments.csv", "sens_spec.csv"))
    assert "T001" not in text and str(run.design.cases_study) not in text
    rows = list(csv.DictReader(open(tmp_path / "out" / "ratings.csv")))
    assert len(rows) == 3 * 2 * 2 * N and {r["case"] for r in rows} == {f"C{i:03d}" for i in range(1, 2 * N + 1)}
    out = json.loads((tmp_path / "out" / "mrmc_results.json").read_text())
    assert set(out["mrmc"]) >= {"treatments", "global_test", "pairwise", "variance_components", "per_reader"}
    assert "panel_1T_RRRC" in out["model_vs_readers"]["aided"]
    assert (tmp_path / "out" / "report.pdf").read_bytes()[:5] == b"%PDF-"
    amend = list(csv.DictReader(open(tmp_path / "out" / "amendments.csv")))
    assert amend[0]["reason"] == "re-read the images" and amend[0]["case"].startswith("C")
    res2 = export_study(run, tmp_path / "out2", include_identifiers=True)
    assert "T001" in (tmp_path / "out2" / "ratings.csv").read_text() and "case_ids_csv" in res2.files


def test_export_incomplete_study_skips_mrmc(definition: Path, tmp_path: Path) -> None:
    run = run_scripted_readers(definition, stop_after=5)
    res = export_study(run, tmp_path / "out")
    assert not res.complete and "report_pdf" not in res.files
    out = json.loads((tmp_path / "out" / "mrmc_results.json").read_text())
    assert out["ratings_stored"] == 5 and "incomplete" in out["message"]
