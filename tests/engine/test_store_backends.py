"""The reader-study store on both engines, SQLite (default) and PostgreSQL (--db postgresql://):
same schema version, locked ratings, audit trail, hash chain, marks, concurrency, a server
that goes away. PostgreSQL is a real throw-away server (tests/postgres_fixture.py)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from engine.study.store import SCHEMA_VERSION, RatingLockedError, RatingStore, StoreWriteError
from tests.postgres_fixture import pg_server, pg_url  # noqa: F401 - fixtures

READERS = [f"R{i}" for i in range(1, 9)]
CASES = [f"c{i:02d}" for i in range(8)]


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "r.sqlite")
    return request.getfixturevalue("pg_url")


def _init(s: RatingStore, readers=("R1", "R2"), cases=("c1", "c2")) -> None:
    s.initialise(meta={"seed": "1"}, readers=[(r, r.lower()) for r in readers], arms=[("u", False), ("a", True)],
                 cases=[(c, i % 2) for i, c in enumerate(cases)],
                 orders={(r, arm): list(cases) for r in readers for arm in ("u", "a")})


def _foreign(s: RatingStore, where: str):
    """A connection that is not the store's (raw psycopg / raw sqlite3, autocommit)."""
    if s.backend == "postgresql":
        import psycopg

        c = psycopg.connect(where, autocommit=True)
        return c, psycopg.Error
    return sqlite3.connect(where, isolation_level=None), sqlite3.Error


def test_same_behaviour_on_both_engines(where: str) -> None:
    s = RatingStore(where)
    assert s.schema_version == SCHEMA_VERSION
    _init(s)
    _init(s)  # idempotent
    assert s.order("R1", "u") == ["c1", "c2"] and s.truth() == {"c1": 0, "c2": 1}
    s.mark_opened("R1", "u", "c1")
    r = s.submit("R1", "u", "c1", 7.5, "4A", comment="spiculated",
                 marks=[{"image_id": "mg_cc", "kind": "box", "points": [[1, 2], [30, 40]], "confidence": 8}])
    assert r.rating_id >= 1 and r.birads == "4A"
    with pytest.raises(RatingLockedError):
        s.submit("R1", "u", "c1", 2)
    s.submit("R2", "a", "c2", 1)
    s.amend("R1", "u", "c1", 6.0, "mis-click", who="R1", new_birads="3")
    (a,) = s.audit()
    assert (a.old_score, a.new_score, a.old_birads, a.new_birads, a.reason) == (7.5, 6.0, "4A", "3", "mis-click")
    got = {(x.reader_id, x.arm_id, x.case_id): (x.score, x.birads, x.comment) for x in s.ratings()}
    assert got == {("R1", "u", "c1"): (6.0, "3", "spiculated"), ("R2", "a", "c2"): (1.0, None, None)}
    (m,) = s.marks()
    assert (m.case_id, m.kind, m.points, m.rating) == ("c1", "box", [[1.0, 2.0], [30.0, 40.0]], 8.0)
    assert s.rated_cases("R1", "u") == {"c1"} and s.last_submit("R1", "u") is not None
    rep = s.verify()
    assert rep.ok, rep.problems
    assert rep.entries == 6  # empty design (migration), design, rating, marks, rating, amend
    s.close()
    s2 = RatingStore(where)  # reopen: nothing lost, chain still verifies, same head
    assert len(s2.ratings()) == 2 and s2.verify().head == rep.head
    s2.close()


BYPASS = [
    "UPDATE ratings SET score = 9 WHERE case_id = 'c1'",
    "DELETE FROM ratings WHERE case_id = 'c1'",
    "INSERT INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1', 'u', 'c1', 9, 1) "
    "ON CONFLICT (reader_id, arm_id, case_id) DO UPDATE SET score = excluded.score",
    "INSERT INTO ratings (reader_id, arm_id, case_id, score, submitted_at) VALUES ('R1', 'u', 'c1', 9, 1)",
    "UPDATE audit SET reason = 'x'",
    "DELETE FROM audit",
    "UPDATE ledger SET payload = '{}'",
    "DELETE FROM ledger",
    "UPDATE cases SET truth = 1 WHERE case_id = 'c1'",
    "DELETE FROM case_order",
    "UPDATE marks SET kind = 'point'",
]


@pytest.mark.parametrize("sql", BYPASS)
def test_no_foreign_sql_changes_a_locked_rating(where: str, sql: str) -> None:
    s = RatingStore(where)
    _init(s)
    s.submit("R1", "u", "c1", 4, marks=[{"image_id": "i", "kind": "point", "points": [[1, 1]], "confidence": 3}])
    s.amend("R1", "u", "c1", 5, "typo", who="R1")
    before = s.ratings(), s.audit(), s.marks(), s.truth(), s.order("R1", "u")
    conn, err = _foreign(s, where)
    with pytest.raises(err, match="locked|cannot be|append-only"):
        conn.execute(sql)
    conn.close()
    assert (s.ratings(), s.audit(), s.marks(), s.truth(), s.order("R1", "u")) == before
    assert s.verify().ok
    s.close()


def test_dropped_trigger_and_its_edit_are_reported_on_postgresql(pg_url: str) -> None:  # noqa: F811
    import psycopg

    s = RatingStore(pg_url)
    _init(s)
    s.submit("R1", "u", "c1", 4)
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP TRIGGER ratings_locked ON ratings")
        rep = s.verify()
        assert not rep.ok and any("schema fingerprint" in p and "ratings_locked" in p for p in rep.problems)
        c.execute("UPDATE ratings SET score = 9")
    rep = s.verify()
    assert any("was changed without an audited amendment (score)" in p for p in rep.problems), rep.problems
    s.close()


def _reader(where: str, reader: str, q) -> None:  # runs in a child process
    s = RatingStore(where)
    locked = 0
    for i, c in enumerate(CASES):
        s.mark_opened(reader, "u", c)
        s.submit(reader, "u", c, float(i % 11), marks=[{"image_id": "i", "kind": "point", "points": [[i, i]]}])
        try:  # a second answer to the same case must be refused, under contention too
            s.submit(reader, "u", c, 10.0)
        except RatingLockedError:
            locked += 1
    s.close()
    q.put((reader, locked))


def test_eight_concurrent_readers_lose_nothing_and_break_no_lock(where: str) -> None:
    s = RatingStore(where)
    _init(s, readers=READERS, cases=CASES)
    # fork: children open their own connections (the parent's is never used in them)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(where, r, q)) for r in READERS]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    results = dict(q.get(timeout=5) for _ in procs)
    assert results == {r: len(CASES) for r in READERS}  # every duplicate refused
    rows = s.ratings()
    assert len(rows) == len(READERS) * len(CASES)
    assert {(r.reader_id, r.case_id) for r in rows} == {(r, c) for r in READERS for c in CASES}
    assert all(r.score == float(CASES.index(r.case_id) % 11) for r in rows)  # no duplicate overwrote one
    assert len(s.marks()) == len(rows)
    rep = s.verify()
    assert rep.ok, rep.problems
    assert rep.entries == 2 + 2 * len(rows)  # 2 design rows + (rating, marks) per rating, one chain
    s.close()


def test_postgresql_going_away_is_one_clear_error_and_keeps_what_was_saved(pg_server, pg_url) -> None:  # noqa: F811
    import psycopg

    s = RatingStore(pg_url)
    _init(s)
    s.submit("R1", "u", "c1", 4)
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the server drops this session
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(StoreWriteError, match="unreachable or went away") as ei:
        s.submit("R1", "u", "c2", 5)
    assert "Traceback" not in str(ei.value)
    s2 = RatingStore(pg_url)  # reconnect: the first rating is there, the failed one is not
    assert [(r.case_id, r.score) for r in s2.ratings()] == [("c1", 4.0)]
    assert s2.verify().ok
    s2.submit("R1", "u", "c2", 5)  # and the reader carries on
    s2.close()


def test_unreachable_server_and_password_never_in_messages() -> None:
    from engine.interop.orthanc import free_port

    url = f"postgresql://reader:t0psecret@127.0.0.1:{free_port()}/study"
    with pytest.raises(StoreWriteError, match="cannot open the ratings database") as ei:
        RatingStore(url)
    assert "t0psecret" not in str(ei.value)


def test_whole_reader_study_gives_the_same_results_on_both_engines(pg_url, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    """Scripted 3-reader x 2-arm study (SYNTHETIC tiny cases) stored on SQLite, then on
    PostgreSQL via $BREAST_READER_DB: identical ratings and MRMC results."""
    from engine.study.demo import make_tiny_case_study, run_scripted_readers, write_demo_definition
    from engine.study.export import study_table

    cases = make_tiny_case_study(tmp_path / "cases", n_benign=4, n_malignant=4, size=32)
    out = {}
    for engine_name, db in (("sqlite", None), ("postgresql", pg_url)):
        d = write_demo_definition(tmp_path / engine_name, cases, n_readers=2, washout_days=0)
        if db:
            monkeypatch.setenv("BREAST_READER_DB", db)
        run = run_scripted_readers(d)
        assert run.store.backend == engine_name
        _table, _index, complete = study_table(run)
        out[engine_name] = (sorted((r.reader_id, r.arm_id, r.case_id, r.score, r.birads) for r in run.store.ratings()),
                            complete, run.store.verify().ok, [s.finished for s in run.status()])
        run.close()
        monkeypatch.delenv("BREAST_READER_DB", raising=False)
    assert out["sqlite"] == out["postgresql"]
    assert out["sqlite"][1:] == (True, True, [True, True]) and len(out["sqlite"][0]) == 2 * 2 * 8
