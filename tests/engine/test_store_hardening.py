"""The ratings store under attack: every SQL path that could change a locked rating, a forged
audit row, a dropped trigger, concurrent first opens, a full disk and a read-only folder."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.io.atomic import atomic_open, atomic_path
from engine.study.store import RatingLockedError, RatingStore, StoreReadOnlyError, StoreWriteError


def _store(path: Path) -> RatingStore:
    s = RatingStore(path)
    s.initialise(meta={"seed": "1"}, readers=[("R1", "a"), ("R2", "b")], arms=[("u", False)],
                 cases=[("c1", 0), ("c2", 1)], orders={("R1", "u"): ["c1", "c2"], ("R2", "u"): ["c2", "c1"]})
    s.submit("R1", "u", "c1", 4)
    s.submit("R1", "u", "c2", 2)
    return s


def _raw(path: Path) -> sqlite3.Connection:
    """A foreign connection: no recursive_triggers, no foreign keys, autocommit."""
    return sqlite3.connect(path, isolation_level=None)


BYPASSES = [
    "UPDATE ratings SET score = 9 WHERE case_id = 'c1'",
    "DELETE FROM ratings WHERE case_id = 'c1'",
    "REPLACE INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1', 'u', 'c1', 9, 1)",
    "INSERT OR REPLACE INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1','u','c1',9,1)",
    "INSERT OR REPLACE INTO ratings (rating_id, reader_id, arm_id, case_id, score, submitted_at) "
    "VALUES (1, 'R2', 'u', 'c1', 9, 1)",
    "INSERT INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1', 'u', 'c1', 9, 1) "
    "ON CONFLICT (reader_id, arm_id, case_id) DO UPDATE SET score = excluded.score",
    "INSERT INTO ratings (rating_id, reader_id, arm_id, case_id, score, submitted_at) VALUES (1, 'R2', 'u', 'c1', 9, 1) "
    "ON CONFLICT (rating_id) DO UPDATE SET score = excluded.score",
    "UPDATE OR REPLACE ratings SET case_id = 'c2' WHERE case_id = 'c1'",
    "REPLACE INTO audit (audit_id, rating_id, who, at, old_score, new_score, reason) VALUES (1, 1, 'x', 1, 4, 9, 'x')",
    "UPDATE ledger SET payload = '{}'",
    "DELETE FROM ledger",
    "UPDATE cases SET truth = 1 WHERE case_id = 'c1'",
    "DELETE FROM case_order",
]


@pytest.mark.parametrize("own", [True, False], ids=["store-connection", "foreign-connection"])
@pytest.mark.parametrize("sql", BYPASSES)
def test_no_sql_path_changes_a_locked_rating(tmp_path: Path, sql: str, own: bool) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    s.amend("R1", "u", "c2", 3, "mis-click", who="R1")
    before = s.ratings(), s.audit()
    conn = s.conn if own else _raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="locked|cannot be|append-only"):
        conn.execute(sql)
    assert (s.ratings(), s.audit()) == before
    rep = s.verify()
    assert rep.ok, rep.problems
    s.close()


def test_migration_text_is_unchanged() -> None:
    """An existing study file verifies only if the migrations build the schema it was built with
    (the SQLite tables now come from engine.study.schema, shared with PostgreSQL): the text must
    not move. A new migration appends; it never edits these."""
    import hashlib

    from engine.study.pg import PG_MIGRATIONS
    from engine.study.store import MIGRATIONS

    def digest(migrations: list[tuple[int, str]]) -> str:
        return hashlib.sha256("\x00".join(v for _, v in migrations[:4]).encode()).hexdigest()

    assert digest(MIGRATIONS) == "d3f137ee30bba20bc72c7dcdf16d5e633d736af3e69cf7d017796944cfa38c3d"
    assert digest(PG_MIGRATIONS) == "c58536a6c9afea58e4618ea571188ef60922b78487983a9101eb5c1198b81544"


def test_replace_on_design_tables_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    conn = _raw(db)
    conn.execute("INSERT OR REPLACE INTO cases VALUES ('c1', 1)")
    conn.execute("REPLACE INTO case_order VALUES ('R1', 'u', 0, 'c2')")
    assert s.truth()["c1"] == 0 and s.order("R1", "u") == ["c1", "c2"]
    assert s.verify().ok


def test_dropped_trigger_and_the_edit_it_allowed_are_reported(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    assert s.verify().ok
    conn = _raw(db)
    conn.execute("DROP TRIGGER ratings_locked")
    rep = s.verify()
    assert not rep.ok and any("schema fingerprint" in p and "ratings_locked" in p for p in rep.problems)
    conn.execute("UPDATE ratings SET score = 9 WHERE case_id = 'c1'")
    rep = s.verify()
    assert any("rating 1 (R1/u/c1) was changed without an audited amendment (score)" in p for p in rep.problems)
    assert "INTEGRITY BROKEN" in rep.summary()


def test_forged_audit_row_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    conn = _raw(db)
    # a hand-written audit row satisfies the UPDATE trigger ...
    conn.execute("INSERT INTO audit (rating_id, who, at, old_score, new_score, reason) VALUES (1, 'R1', 5, 4, 9, 'x')")
    conn.execute("UPDATE ratings SET score = 9 WHERE rating_id = 1")
    assert s.ratings()[0].score == 9
    # ... but not the ledger
    rep = s.verify()
    assert not rep.ok
    assert any("audit row 1 was not written by the store (forged)" in p for p in rep.problems)
    assert any("rating 1" in p and "without an audited amendment" in p for p in rep.problems)


def test_rewritten_ledger_row_breaks_the_chain(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    head = s.verify().head
    conn = _raw(db)
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("DROP TRIGGER ratings_locked")
    conn.execute("UPDATE ratings SET score = 9 WHERE rating_id = 1")
    conn.execute("UPDATE ledger SET payload = replace(payload, '\"score\":4.0', '\"score\":9.0') WHERE kind = 'rating'"
                 " AND ref = 1")
    rep = s.verify()
    assert any("hash does not match" in p for p in rep.problems), rep.problems
    assert rep.head == head  # the head itself is unchanged: only a rewrite of the whole chain moves it


def test_legit_amend_and_old_files_verify(tmp_path: Path) -> None:
    from engine.study.store import _V1, _V2, _split_sql

    db = tmp_path / "v2.sqlite"
    con = sqlite3.connect(db)
    for stmt in _split_sql(_V1) + _split_sql(_V2):
        con.execute(stmt)
    con.execute("INSERT INTO readers VALUES ('R1', 'a')")
    con.execute("INSERT INTO arms VALUES ('u', 0)")
    con.execute("INSERT INTO cases VALUES ('c1', 0)")
    con.execute("INSERT INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1', 'u', 'c1', 4, 1)")
    con.execute("INSERT INTO audit (rating_id, who, at, old_score, new_score, reason) VALUES (1, 'R1', 2, 4, 5, 'x')")
    con.execute("UPDATE ratings SET score = 5")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    s = RatingStore(db)
    rep = s.verify()
    assert rep.ok, rep.problems
    assert rep.entries == 3  # rating + amendment + design, chained at migration
    s.amend("R1", "u", "c1", 6, "second look", who="R1")
    assert s.verify().ok and s.ratings()[0].score == 6


def _open_new(path: str, barrier: object, q: object) -> None:
    try:
        barrier.wait()  # type: ignore[attr-defined]
        s = RatingStore(path)
        s.initialise(meta={"seed": "1"}, readers=[("R1", "a")], arms=[("u", False)], cases=[("c1", 0)],
                     orders={("R1", "u"): ["c1"]})
        s.close()
        q.put("ok")  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - the test reports what failed
        q.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def test_twenty_pairs_of_concurrent_first_opens_never_fail(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    results = []
    for i in range(20):
        path = str(tmp_path / f"s{i}" / "study.ratings.sqlite")
        barrier, q = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_open_new, args=(path, barrier, q)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        results += [q.get(timeout=5) for _ in procs]
        s = RatingStore(path)
        assert s.verify().ok and s.order("R1", "u") == ["c1"]
        s.close()
    assert results == ["ok"] * 40, [r for r in results if r != "ok"]


def test_disk_full_surfaces_the_real_error_and_keeps_earlier_ratings(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    s = _store(db)
    # SQLITE_FULL as on a full disk: the file may not grow by another page
    pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
    s.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreWriteError, match="full") as err:
        s.submit("R2", "u", "c2", 3, comment="x" * 200_000)
    assert "rollback" not in str(err.value)
    assert not s.conn.in_transaction
    s.conn.execute("PRAGMA max_page_count = 1073741823")
    s.submit("R2", "u", "c2", 3)  # disk freed: the next submit works
    assert len(s.ratings()) == 3 and s.verify().ok


def test_atomic_write_never_leaves_a_partial_or_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "ratings.csv"
    with pytest.raises(OSError, match="No space"), atomic_open(target) as fh:
        fh.write("header\n")
        raise OSError(28, "No space left on device")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.write_text("old complete file\n")
    with pytest.raises(OSError), atomic_path(target):
        pass  # nothing written: an empty result never replaces a file
    assert target.read_text() == "old complete file\n"
    with atomic_open(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n" and len(list(tmp_path.iterdir())) == 1


def test_export_to_a_full_disk_is_one_clear_error_and_no_empty_file(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 1 kB fail with EFBIG, as a full disk fails with ENOSPC."""
    from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition

    folder = make_tiny_case_study(tmp_path / "cases", 4, 4)
    from engine.cases import load_study

    ids = [c.case_id for c in load_study(folder).cases]
    toml = write_demo_definition(tmp_path / "study", folder, case_ids=ids)
    run_scripted_readers(toml, FakeClock()).close()
    out = tmp_path / "export"
    code = (
        "import resource, sys\n"
        "from engine.errors import BreastReaderError\n"
        "from engine.study.export import export_study\n"
        "from engine.study.session import open_study_run\n"
        f"run = open_study_run({str(toml)!r})\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
        "try:\n"
        f"    export_study(run, {str(out)!r})\n"
        "except BreastReaderError as exc:\n"
        "    print('breast-reader: error:', exc)\n"
        "    sys.exit(1)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert "cannot write the export" in p.stderr + p.stdout
    written = [f for f in out.iterdir()] if out.exists() else []
    assert all(f.stat().st_size > 0 for f in written), [(f.name, f.stat().st_size) for f in written]
    assert not any(f.name.startswith(".") for f in written)  # no temp file left behind


def _unprivileged() -> list[str] | None:
    """A command prefix that drops root (chmod does not stop root); None when not needed."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_study_folder_status_works_and_submit_is_one_clear_error() -> None:
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only for this process")
    from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition
    from engine.cases import load_study

    # pytest's tmp_path sits under a 0700 root folder the unprivileged user cannot enter
    tmp_path = Path(tempfile.mkdtemp(prefix="br-readonly-"))
    tmp_path.chmod(0o755)
    folder = make_tiny_case_study(tmp_path / "cases", 3, 3)
    ids = [c.case_id for c in load_study(folder).cases]
    toml = write_demo_definition(tmp_path / "study", folder, case_ids=ids)
    run_scripted_readers(toml, FakeClock()).close()
    for p in [tmp_path, *tmp_path.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code = (
            "import sys\nfrom reader_app.main import main\n"
            f"rc1 = main(['study', 'status', {str(toml)!r}])\n"
            f"rc2 = main(['study', 'export', {str(toml)!r}, '--out', {str(tmp_path / 'export')!r}])\n"
            "from engine.study.session import open_study_run\n"
            f"run = open_study_run({str(toml)!r})\n"
            "assert run.store.read_only\n"
            "try:\n    run.store.submit('R1', 'unaided', 'x', 1)\nexcept Exception as e:\n"
            "    print('SUBMIT:', type(e).__name__, e)\n"
            "print('RC', rc1, rc2)\n"
        )
        p = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           cwd="/", env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": "/tmp"})
    finally:
        for q in [tmp_path, *tmp_path.rglob("*")]:
            q.chmod(0o755 if q.is_dir() else 0o644)
        shutil.rmtree(tmp_path, ignore_errors=True)
    out = p.stdout + p.stderr
    assert "Traceback" not in out, out
    assert "opened read-only" in out and "integrity ok" in out
    assert "SUBMIT: StoreReadOnlyError" in out and "read-only" in out
    assert "RC 0" in out  # status works
    assert "cannot write the export" in out  # the export folder is inside the read-only tree: one line


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    _store(db).close()
    s = RatingStore(db, read_only=True)
    assert [r.score for r in s.ratings()] == [4, 2] and s.verify().ok
    with pytest.raises(StoreReadOnlyError, match="read-only"):
        s.submit("R2", "u", "c1", 1)
    with pytest.raises(StoreReadOnlyError):
        RatingStore(tmp_path / "missing.sqlite", read_only=True)


def test_non_finite_and_duplicate_submits_are_refused(tmp_path: Path) -> None:
    s = _store(tmp_path / "r.sqlite")
    with pytest.raises(ConfigError, match="finite"):
        s.submit("R2", "u", "c1", float("nan"))
    with pytest.raises(RatingLockedError):
        s.submit("R1", "u", "c1", 3)


def test_failed_submit_is_journalled_kept_and_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.study.demo import FakeClock, make_tiny_case_study, write_demo_definition
    from engine.study.journal import pending
    from engine.study.session import SaveFailedError, StudyRun
    from engine.study.design import load_design
    from engine.cases import load_study

    monkeypatch.setenv("BREAST_READER_CONFIG", str(tmp_path / "cfg"))
    folder = make_tiny_case_study(tmp_path / "cases", 2, 2)
    toml = write_demo_definition(tmp_path / "study", folder, case_ids=[c.case_id for c in load_study(folder).cases])
    run = StudyRun(load_design(toml), clock=FakeClock())
    s = run.sign_in(run.design.readers[0].reader_id)
    case = s.next_case()
    assert case is not None
    pages = run.store.conn.execute("PRAGMA page_count").fetchone()[0]
    run.store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    with pytest.raises(SaveFailedError, match="recovery journal .* press Submit to retry") as err:
        s.submit(case.case.case_id, 3, "3" if run.design.birads else None, comment="y" * 100_000)
    assert "rollback" not in str(err.value)
    assert [d["case_id"] for d in pending(run.store.path)] == [case.case.case_id]
    assert run.store.ratings() == []
    run.store.conn.execute("PRAGMA max_page_count = 1073741823")  # space again: signing in replays it
    run.sign_in(run.design.readers[0].reader_id)
    assert [r.case_id for r in run.store.ratings()] == [case.case.case_id] and pending(run.store.path) == []
    assert run.store.verify().ok


def test_study_status_and_export_report_a_broken_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deliverable 4: the CLI a study lead runs says so, and exits 3, when a rating was edited by hand."""
    import json

    from engine.cases import load_study
    from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition
    from reader_app.main import main

    folder = make_tiny_case_study(tmp_path / "cases", 3, 3)
    toml = write_demo_definition(tmp_path / "study", folder, case_ids=[c.case_id for c in load_study(folder).cases])
    run = run_scripted_readers(toml, FakeClock())
    db = run.store.path
    run.close()
    assert main(["study", "status", str(toml)]) == 0
    assert "integrity ok" in capsys.readouterr().out
    conn = _raw(db)
    conn.execute("DROP TRIGGER ratings_locked")
    conn.execute("UPDATE ratings SET score = score + 1 WHERE rating_id = 1")
    conn.close()
    assert main(["study", "status", str(toml)]) == 3
    out = capsys.readouterr().out
    assert "INTEGRITY BROKEN" in out and "without an audited amendment" in out
    assert main(["study", "status", str(toml), "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["integrity"]["ok"] is False
    assert main(["study", "export", str(toml), "--out", str(tmp_path / "export")]) == 3
    assert "INTEGRITY BROKEN" in capsys.readouterr().out
    res = json.loads((tmp_path / "export" / "mrmc_results.json").read_text())
    assert res["integrity"]["ok"] is False and res["integrity"]["problems"]


def test_concurrent_first_opens_through_the_cli_never_fail(tmp_path: Path) -> None:
    """Main crashed 9/10 here ("table meta already exists"): two `study status` at once on a new study."""
    from engine.cases import load_study
    from engine.study.demo import make_tiny_case_study, write_demo_definition

    folder = make_tiny_case_study(tmp_path / "cases", 2, 2)
    ids = [c.case_id for c in load_study(folder).cases]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1"}
    failures = []
    for i in range(2):
        toml = write_demo_definition(tmp_path / f"study{i}", folder, case_ids=ids)
        cmd = [sys.executable, "-c", "import sys; from reader_app.main import main; sys.exit(main(sys.argv[1:]))",
               "study", "status", str(toml)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            if p.returncode != 0 or "Traceback" in err or "integrity ok" not in out:
                failures.append((p.returncode, err[-300:]))
    assert failures == []


def test_export_of_a_study_too_small_to_analyse_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One benign and one malignant case: DeLong needs two of each; `study export` said so in a traceback."""
    from engine.cases import load_study
    from engine.study.demo import FakeClock, make_tiny_case_study, run_scripted_readers, write_demo_definition
    from reader_app.main import main

    folder = make_tiny_case_study(tmp_path / "cases", 1, 1)
    toml = write_demo_definition(tmp_path / "study", folder, case_ids=[c.case_id for c in load_study(folder).cases],
                                 washout_days=0)
    run_scripted_readers(toml, FakeClock()).close()
    assert main(["study", "export", str(toml), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "cannot be analysed" in err and "at least 2 positive and 2 negative" in err and "Traceback" not in err
    assert (tmp_path / "out" / "ratings.csv").stat().st_size > 0  # what was written before is complete
