"""Crash-safe, tamper-evident SQLite store of a reader study's ratings.

* WAL journal, ``synchronous=FULL``: a rating is on disk when :meth:`RatingStore.submit`
  returns, so killing the process (even SIGKILL) loses nothing that was submitted.
* One ``BEGIN IMMEDIATE`` transaction per rating; foreign keys on; ``recursive_triggers`` on,
  so the implicit delete of a ``REPLACE`` fires the delete triggers too.
* ``UNIQUE(reader_id, arm_id, case_id)``: one answer per reader, arm and case.
* A submitted rating is locked at schema level, whatever SQL reaches the file:

  - UPDATE is refused unless the change was first written to the append-only ``audit`` table
    (who, when, old, new, why) by :meth:`amend`; DELETE is refused;
  - a BEFORE INSERT trigger refuses a row whose (reader, arm, case) or id already exists, so
    ``REPLACE``, ``INSERT OR REPLACE`` and ``INSERT ... ON CONFLICT DO UPDATE`` (UPSERT) cannot
    swap a rating (SQLite's REPLACE deletes then inserts, and its delete triggers fire only with
    ``recursive_triggers``; the insert trigger does not depend on that pragma);
  - the audit table, the ledger and the design tables (readers, arms, cases, orders) refuse
    UPDATE, DELETE and REPLACE the same way.
* Tamper evidence: every submit, amendment and design change appends a row to ``ledger``, a
  SHA-256 hash chain (each row hashes the previous row's hash and its canonical payload).
  :meth:`verify` recomputes the chain, replays it against the ratings and audit tables
  (a rating or audit row written by any other path has no ledger row; a changed one no
  longer matches its row) and compares the schema with the one the migrations build (a
  dropped or edited trigger changes that fingerprint). ``study status`` and ``study export``
  run it and report a broken chain. Limitation, stated: the chain is not keyed, so someone
  who rewrites the ledger from the edited row onwards with this code's algorithm can hide an
  edit; the chain head (:attr:`IntegrityReport.head`) goes into every export, so a head
  recorded earlier exposes such a rewrite.
* Creation and migration are serialised: an exclusive file lock (``<db>.lock``) around
  ``PRAGMA journal_mode`` and the migrations, which run in ``BEGIN EXCLUSIVE`` and re-read
  ``user_version`` inside the transaction, so two processes opening a new study at once both
  succeed.
* Write failures (disk full, I/O error, read-only file) surface as :class:`StoreWriteError`
  with the real reason; a failed COMMIT that SQLite already rolled back is never masked by
  "cannot rollback - no transaction is active".
* A study folder that cannot be written is opened read-only (status and export still work).
* ``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` upgrades old files.
* Two engines behind this one class: SQLite (a path; the default) and PostgreSQL (a
  ``postgresql://`` URL, for multi-site studies). The PostgreSQL schema is the same migrations
  in its dialect (:data:`engine.study.pg.PG_MIGRATIONS`), the connection speaks this class's
  SQLite surface (:class:`engine.study.pg.PgConnection`: writers serialised by an advisory
  lock, trigger errors as ``sqlite3.IntegrityError``), so locks, audit trail, hash chain,
  marks and :meth:`verify` are the same code on both; the file lock and read-only mode are
  SQLite-only. A new migration needs its PostgreSQL twin in ``PG_MIGRATIONS``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any, cast

from engine.errors import ConfigError
from engine.study import pg, schema

try:  # POSIX advisory lock; on other platforms BEGIN EXCLUSIVE alone serialises migrations
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "AuditEntry", "IntegrityReport", "MIGRATIONS", "Rating", "RatingLockedError", "RatingStore",
    "SCHEMA_VERSION", "StoreReadOnlyError", "StoreWriteError", "StoredMark", "schema_fingerprint",
]

# v1: the tables (engine.study.schema, shared with PostgreSQL) and the triggers that lock ratings
_V1 = schema.tables(1, "sqlite") + """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER ratings_no_delete BEFORE DELETE ON ratings
BEGIN SELECT RAISE(ABORT, 'submitted ratings cannot be deleted'); END;
CREATE TRIGGER ratings_locked BEFORE UPDATE ON ratings
WHEN NOT EXISTS (
    SELECT 1 FROM audit a
    WHERE a.audit_id = (SELECT max(audit_id) FROM audit WHERE rating_id = OLD.rating_id)
      AND a.old_score = OLD.score AND a.new_score = NEW.score
      AND a.old_birads IS OLD.birads AND a.new_birads IS NEW.birads
)
OR NEW.reader_id IS NOT OLD.reader_id OR NEW.arm_id IS NOT OLD.arm_id
OR NEW.case_id IS NOT OLD.case_id OR NEW.submitted_at IS NOT OLD.submitted_at
BEGIN SELECT RAISE(ABORT, 'rating is locked: amend it with a reason'); END;
"""

# v2: readers may leave a free-text comment with a rating
_V2 = schema.V2

# v3: REPLACE / UPSERT refused at schema level, hash-chained ledger, design tables locked
_V3 = schema.tables(3, "sqlite") + """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_replace BEFORE INSERT ON ledger
WHEN EXISTS (SELECT 1 FROM ledger WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ratings_no_replace BEFORE INSERT ON ratings
WHEN EXISTS (
    SELECT 1 FROM ratings
    WHERE rating_id = NEW.rating_id
       OR (reader_id = NEW.reader_id AND arm_id = NEW.arm_id AND case_id = NEW.case_id)
)
BEGIN SELECT RAISE(ABORT, 'rating is locked: submitted ratings cannot be replaced'); END;
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE audit_id = NEW.audit_id)
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER readers_keep BEFORE INSERT ON readers
WHEN EXISTS (SELECT 1 FROM readers WHERE reader_id = NEW.reader_id)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER readers_no_update BEFORE UPDATE ON readers
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER readers_no_delete BEFORE DELETE ON readers
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER arms_keep BEFORE INSERT ON arms
WHEN EXISTS (SELECT 1 FROM arms WHERE arm_id = NEW.arm_id)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER arms_no_update BEFORE UPDATE ON arms
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER arms_no_delete BEFORE DELETE ON arms
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER cases_keep BEFORE INSERT ON cases
WHEN EXISTS (SELECT 1 FROM cases WHERE case_id = NEW.case_id)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER cases_no_update BEFORE UPDATE ON cases
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER case_order_keep BEFORE INSERT ON case_order
WHEN EXISTS (
    SELECT 1 FROM case_order
    WHERE reader_id = NEW.reader_id AND arm_id = NEW.arm_id
      AND (position = NEW.position OR case_id = NEW.case_id)
)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER case_order_no_update BEFORE UPDATE ON case_order
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
CREATE TRIGGER case_order_no_delete BEFORE DELETE ON case_order
BEGIN SELECT RAISE(ABORT, 'the study design is locked'); END;
"""

# v4 (issue-14): lesion marks for FROC analysis, written with their rating in one transaction,
# append-only like the ratings and chained in the ledger (kind "marks")
_V4 = schema.tables(4, "sqlite") + """CREATE TRIGGER marks_no_update BEFORE UPDATE ON marks
BEGIN SELECT RAISE(ABORT, 'marks are locked with their rating'); END;
CREATE TRIGGER marks_no_delete BEFORE DELETE ON marks
BEGIN SELECT RAISE(ABORT, 'marks are locked with their rating'); END;
CREATE TRIGGER marks_no_replace BEFORE INSERT ON marks
WHEN EXISTS (SELECT 1 FROM marks WHERE mark_id = NEW.mark_id
             OR (rating_id = NEW.rating_id AND mark_no = NEW.mark_no))
BEGIN SELECT RAISE(ABORT, 'marks are locked with their rating'); END;
"""

MIGRATIONS: list[tuple[int, str]] = [(1, _V1), (2, _V2), (3, _V3), (4, _V4)]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_GENESIS = hashlib.sha256(b"breast-reader rating ledger v1").hexdigest()
_RATING_COLS = ("rating_id", "reader_id", "arm_id", "case_id", "score", "birads", "opened_at", "submitted_at",
                "reading_s", "comment")
_AUDIT_COLS = ("audit_id", "rating_id", "who", "at", "old_score", "new_score", "old_birads", "new_birads", "reason")


class RatingLockedError(ConfigError):
    """A submitted rating was changed without going through :meth:`RatingStore.amend`."""


class StoreWriteError(ConfigError):
    """The ratings file could not be written (disk full, I/O error, read-only); nothing was stored."""


class StoreReadOnlyError(StoreWriteError):
    """The study folder or ratings file is read-only: it can be read (status, export), not written."""


@dataclass(frozen=True)
class Rating:
    """One stored rating."""

    rating_id: int
    reader_id: str
    arm_id: str
    case_id: str
    score: float
    birads: str | None
    submitted_at: float
    reading_s: float | None
    comment: str | None = None


@dataclass(frozen=True)
class StoredMark:
    """One lesion mark of a submitted case (FROC), read back from the store.

    Attributes:
        reader_id, arm_id, case_id: Whose mark, in which arm, on which case.
        mark_no: 1, 2, ... within the case.
        image_id: The case image the mark is on.
        kind: "point" (one point), "box" (two corners) or "polygon".
        points: [[x, y], ...] image pixels (x = column, y = row).
        frame: Slice of a stack, None for 2-D images.
        rating: The reader's confidence for this mark on the study's rating scale (None: not given).
    """

    reader_id: str
    arm_id: str
    case_id: str
    mark_no: int
    image_id: str
    kind: str
    points: list[list[float]]
    frame: int | None
    rating: float | None


def _mark_fields(m: Any) -> dict[str, Any]:
    """image_id/kind/points/frame/confidence (or rating) from a mark object or dict."""
    get = m.get if isinstance(m, dict) else (lambda k, d=None: getattr(m, k, d))
    conf = get("confidence", None)
    if conf is None:
        conf = get("rating", None)
    pts = [[float(p[0]), float(p[1])] for p in (get("points", None) or [])]
    kind = str(get("kind", "point"))
    if not pts or kind not in ("point", "box", "polygon") or (kind == "box" and len(pts) < 2):
        raise ConfigError(f"a mark needs kind point/box/polygon and its points (got {kind!r} with {len(pts)} points)")
    if conf is not None and not math.isfinite(float(conf)):
        raise ConfigError(f"mark confidence {conf} is not a finite number")
    frame = get("frame", None)
    return {"image_id": str(get("image_id", "")), "kind": kind, "points": pts,
            "frame": None if frame is None else int(frame), "rating": None if conf is None else float(conf)}


@dataclass(frozen=True)
class AuditEntry:
    """One amendment of a submitted rating."""

    rating_id: int
    who: str
    at: float
    old_score: float
    new_score: float
    old_birads: str | None
    new_birads: str | None
    reason: str


@dataclass
class IntegrityReport:
    """Result of :meth:`RatingStore.verify`.

    Attributes:
        ok: No problem found.
        problems: One line per problem (what was changed, which row), empty when ok.
        head: Hash of the last ledger row (record it to detect a later rewrite of the chain).
        entries: Ledger rows checked.
    """

    ok: bool
    problems: list[str] = field(default_factory=list)
    head: str = _GENESIS
    entries: int = 0

    def summary(self) -> str:
        """One line for a CLI or a dialog."""
        if self.ok:
            return f"integrity ok: {self.entries} ledger entries, chain head {self.head[:16]}"
        more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        return "INTEGRITY BROKEN: " + "; ".join(self.problems[:3]) + more


def _canonical(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _chain(prev: str, kind: str, payload: str) -> str:
    return hashlib.sha256(f"{prev}\n{kind}\n{payload}".encode()).hexdigest()


def _schema_rows(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    return [(str(t), str(n), " ".join(str(s).split())) for t, n, s in rows]


def schema_fingerprint(conn: sqlite3.Connection) -> str:
    """SHA-256 of the schema (tables, indexes, triggers) of an open database."""
    return hashlib.sha256(json.dumps(_schema_rows(conn)).encode()).hexdigest()


@lru_cache(maxsize=4)
def _expected_schema(version: int) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """Fingerprint and rows of the schema the migrations build up to ``version``."""
    conn = sqlite3.connect(":memory:")
    try:
        for v, script in MIGRATIONS:
            if v <= version:
                for stmt in _split_sql(script):
                    conn.execute(stmt)
        return schema_fingerprint(conn), tuple(_schema_rows(conn))
    finally:
        conn.close()


def _is_readonly_error(exc: sqlite3.Error) -> bool:
    msg = str(exc).lower()
    return "readonly" in msg or "read-only" in msg or "unable to open" in msg


class RatingStore:
    """The SQLite file of one reader study.

    Args:
        path: Database file (created when missing).
        clock: Time source in seconds since the epoch (tests inject a fake clock).
        read_only: Open without writing (also chosen automatically when the folder or file
            cannot be written).
    """

    def __init__(
        self, path: str | PathLike[str], clock: Callable[[], float] = time.time, *, read_only: bool = False
    ) -> None:
        self.clock = clock
        self.backend = "sqlite"
        if pg.is_url(path):  # multi-site: the same store on PostgreSQL (engine/study/pg.py)
            self._open_postgresql(str(path))
            return
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreWriteError(f"{self.path.parent}: cannot create the study folder ({exc.strerror})") from None
            if not _writable(self.path):
                self.read_only = True
        if self.read_only:
            self.conn = self._open_read_only()
            return
        with self._creation_lock():
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per rating)
            try:
                self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
                self.conn.execute("PRAGMA busy_timeout = 30000")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                self.conn.execute("PRAGMA recursive_triggers=ON")
                self.migrate()
            except sqlite3.DatabaseError as exc:
                raise StoreWriteError(f"{self.path}: cannot open the ratings file ({exc})") from None

    def _open_postgresql(self, url: str) -> None:
        """Connect to PostgreSQL and migrate (serialised by the study-wide advisory lock)."""
        self.backend = "postgresql"
        self.path = cast(Path, pg.safe_url(url))  # only ever formatted into messages; no password
        self.read_only = False
        try:
            self.conn = cast(sqlite3.Connection, pg.PgConnection(url))
        except sqlite3.Error as exc:
            raise StoreWriteError(f"cannot open the ratings database: {exc}") from None
        self.migrate()

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreReadOnlyError(
                f"{self.path}: no ratings file, and the study folder is read-only so none can be created"
            )
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error | None = None
        # mode=ro needs to write the WAL index; immutable=1 reads a file nobody can write anyway
        for q in ("?mode=ro", "?immutable=1"):
            try:
                conn = sqlite3.connect(uri + q, uri=True, isolation_level=None, timeout=30.0)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                last = exc
                continue
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                conn.close()
                raise ConfigError(
                    f"{self.path}: written by a newer breast-reader (schema {version} > {SCHEMA_VERSION}); upgrade"
                )
            return conn
        raise StoreReadOnlyError(f"{self.path}: cannot read the ratings file in a read-only folder ({last})")

    @contextlib.contextmanager
    def _creation_lock(self) -> Iterator[None]:
        """Exclusive advisory lock on ``<db>.lock`` while the file is created or migrated."""
        if fcntl is None:
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield  # cannot create a lock file: BEGIN EXCLUSIVE still serialises the migration
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[None]:
        """One write transaction; the original error surfaces, never a failed ROLLBACK.

        Raises:
            StoreReadOnlyError: The store was opened read-only.
            StoreWriteError: SQLite could not write (disk full, I/O error, read-only file).
        """
        if self.read_only:
            raise StoreReadOnlyError(f"{self.path}: the study folder is read-only; nothing can be saved")
        try:
            self.conn.execute(f"BEGIN {mode}")
            yield
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:  # SQLite rolls back by itself after some errors (SQLITE_FULL)
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreWriteError(f"{self.path}: could not save to the ratings file ({exc}); "
                                      "nothing from this step was stored") from None
            raise

    # -- schema -----------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """Current ``PRAGMA user_version``."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, target: int = SCHEMA_VERSION) -> None:
        """Apply pending migrations up to ``target`` in one exclusive transaction.

        ``user_version`` is re-read inside the transaction, so a second process that waited
        for the lock sees the first one's work and does nothing.
        """
        if self.schema_version > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: written by a newer breast-reader (schema {self.schema_version} > {SCHEMA_VERSION}); "
                "upgrade"
            )
        if self.schema_version >= target:
            return
        with self._tx("EXCLUSIVE"):
            current = self.schema_version
            for version, script in (pg.PG_MIGRATIONS if self.backend == "postgresql" else MIGRATIONS):
                if current < version <= target:
                    if self.backend == "postgresql":
                        cast(Any, self.conn).executescript_pg(script)
                    else:
                        for stmt in _split_sql(script):
                            self.conn.execute(stmt)
                    if version == 3:
                        self._backfill_ledger()
                    self.conn.execute(f"PRAGMA user_version = {version}")

    def _backfill_ledger(self) -> None:
        """v3 migration: chain the ratings and amendments already in the file (trusted as they are)."""
        for row in self.conn.execute(f"SELECT {', '.join(_RATING_COLS)} FROM ratings ORDER BY rating_id").fetchall():
            d = dict(zip(_RATING_COLS, row, strict=True))
            amended = self.conn.execute(
                "SELECT old_score, old_birads FROM audit WHERE rating_id = ? ORDER BY audit_id LIMIT 1",
                (d["rating_id"],),
            ).fetchone()
            if amended is not None:  # the ledger replays amendments onto the originally submitted value
                d["score"], d["birads"] = amended
            self._append("rating", int(d["rating_id"]), d)
        for row in self.conn.execute(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit ORDER BY audit_id").fetchall():
            d = dict(zip(_AUDIT_COLS, row, strict=True))
            self._append("amend", int(d["audit_id"]), d)
        self._append_design_if_changed()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # -- ledger -------------------------------------------------------------------------------
    def _head(self) -> str:
        row = self.conn.execute("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return _GENESIS if row is None else str(row[0])

    def _append(self, kind: str, ref: int | None, data: dict[str, Any]) -> None:
        payload = _canonical(data)
        prev = self._head()
        self.conn.execute(
            "INSERT INTO ledger (kind, ref, payload, prev, hash) VALUES (?, ?, ?, ?, ?)",
            (kind, ref, payload, prev, _chain(prev, kind, payload)),
        )

    def _design_digest(self) -> str:
        parts = [
            self.conn.execute("SELECT reader_id, name FROM readers ORDER BY reader_id").fetchall(),
            self.conn.execute("SELECT arm_id, show_ai FROM arms ORDER BY arm_id").fetchall(),
            self.conn.execute("SELECT case_id, truth FROM cases ORDER BY case_id").fetchall(),
            self.conn.execute(
                "SELECT reader_id, arm_id, position, case_id FROM case_order ORDER BY reader_id, arm_id, position"
            ).fetchall(),
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _last_design(self) -> str | None:
        row = self.conn.execute("SELECT payload FROM ledger WHERE kind = 'design' ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else str(json.loads(row[0])["digest"])

    def _append_design_if_changed(self) -> None:
        digest = self._design_digest()
        if digest != self._last_design():
            self._append("design", None, {"digest": digest})

    def verify(self) -> IntegrityReport:
        """Check the hash chain, replay it against ratings and audit, and check the schema.

        Returns:
            An :class:`IntegrityReport`; ``ok`` is False with one line per problem when a rating,
            an audit row, the design or a trigger was changed outside this class.
        """
        problems: list[str] = []
        version = self.schema_version
        if self.backend == "postgresql":
            want_rows = tuple(pg.expected_objects(version))
            fp = pg.pg_fingerprint(list(want_rows))
            have_rows = cast(Any, self.conn).schema_rows()
            have_fp = pg.pg_fingerprint(have_rows)
        else:
            fp, want_rows = _expected_schema(version)
            have_rows = _schema_rows(self.conn)
            have_fp = schema_fingerprint(self.conn)
        if version != SCHEMA_VERSION:
            problems.append(f"schema version {version} (expected {SCHEMA_VERSION}): user_version was changed")
        if have_fp != fp:
            have = set(have_rows)
            want = set(want_rows)
            missing = sorted(n for t, n, _ in want - have)
            extra = sorted(n for t, n, _ in have - want)
            what = ", ".join([f"missing/changed {m}" for m in missing] + [f"unexpected {e}" for e in extra])
            problems.append(f"schema fingerprint differs from the store's schema ({what})")
        check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            problems.append(f"SQLite quick_check: {check}")
        if "ledger" not in {n for _, n, _ in have_rows}:
            problems.append("ledger table missing")
            return IntegrityReport(False, problems)
        prev = _GENESIS
        expected_ratings: dict[int, dict[str, Any]] = {}
        expected_audit: dict[int, dict[str, Any]] = {}
        expected_marks: dict[int, list[dict[str, Any]]] = {}
        design: str | None = None
        n = 0
        for seq, kind, ref, payload, prev_col, h in self.conn.execute(
            "SELECT seq, kind, ref, payload, prev, hash FROM ledger ORDER BY seq"
        ):
            n += 1
            if prev_col != prev:
                problems.append(f"ledger row {seq}: does not follow the previous row (chain broken)")
            if _chain(prev_col, kind, payload) != h:
                problems.append(f"ledger row {seq}: hash does not match its content (edited)")
            prev = str(h)
            try:
                d = json.loads(payload)
            except ValueError:
                problems.append(f"ledger row {seq}: unreadable payload")
                continue
            if kind == "rating":
                expected_ratings[int(d["rating_id"])] = dict(d)
            elif kind == "amend":
                expected_audit[int(d["audit_id"])] = d
                r = expected_ratings.get(int(d["rating_id"]))
                if r is None:
                    problems.append(f"ledger row {seq}: amends rating {d['rating_id']}, which was never submitted")
                else:
                    r["score"], r["birads"] = d["new_score"], d["new_birads"]
            elif kind == "design":
                design = str(d["digest"])
            elif kind == "marks":
                expected_marks[int(d["rating_id"])] = list(d["marks"])
        actual = {int(r[0]): dict(zip(_RATING_COLS, r, strict=True))
                  for r in self.conn.execute(f"SELECT {', '.join(_RATING_COLS)} FROM ratings")}
        for rid, row in sorted(actual.items()):
            exp = expected_ratings.get(rid)
            if exp is None:
                problems.append(f"rating {rid} ({row['reader_id']}/{row['arm_id']}/{row['case_id']}) was not "
                                "written by the store (no ledger entry)")
            elif not _same(exp, row):
                diff = [k for k in _RATING_COLS if not _same_value(exp.get(k), row.get(k))]
                problems.append(f"rating {rid} ({row['reader_id']}/{row['arm_id']}/{row['case_id']}) was changed "
                                f"without an audited amendment ({', '.join(diff)})")
        for rid in sorted(set(expected_ratings) - set(actual)):
            problems.append(f"rating {rid} was removed")
        audit = {int(r[0]): dict(zip(_AUDIT_COLS, r, strict=True))
                 for r in self.conn.execute(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit")}
        for aid, row in sorted(audit.items()):
            exp = expected_audit.get(aid)
            if exp is None:
                problems.append(f"audit row {aid} was not written by the store (forged)")
            elif not _same(exp, row):
                problems.append(f"audit row {aid} was changed")
        for aid in sorted(set(expected_audit) - set(audit)):
            problems.append(f"audit row {aid} was removed")
        if self.schema_version >= 4:
            stored_marks: dict[int, list[dict[str, Any]]] = {}
            for m_rid, image_id, m_kind, pts, frame, m_rating in self.conn.execute(
                "SELECT rating_id, image_id, kind, points, frame, rating FROM marks ORDER BY rating_id, mark_no"
            ):
                stored_marks.setdefault(int(m_rid), []).append(
                    {"image_id": image_id, "kind": m_kind, "points": json.loads(pts), "frame": frame,
                     "rating": m_rating})
            for mr in sorted(set(stored_marks) | set(expected_marks)):
                if _canonical({"m": stored_marks.get(mr, [])}) != _canonical({"m": expected_marks.get(mr, [])}):
                    problems.append(f"the marks of rating {mr} were changed, added or removed outside the store")
        if design is not None and design != self._design_digest():
            problems.append("the recorded design (readers, arms, case truth or orders) was changed")
        return IntegrityReport(not problems, problems, prev, n)

    # -- set-up -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A meta value (None when unset)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def initialise(
        self,
        *,
        meta: dict[str, str],
        readers: list[tuple[str, str]],
        arms: list[tuple[str, bool]],
        cases: list[tuple[str, int | None]],
        orders: dict[tuple[str, str], list[str]],
    ) -> None:
        """Record the design once (idempotent: existing rows and orders are kept).

        Case orders are written only the first time, so a resumed session always sees the
        order it started with, whatever happens to the definition file. On a read-only store
        this only checks that the design is already recorded.
        """
        if self.read_only:
            have_readers = {r[0] for r in self.conn.execute("SELECT reader_id FROM readers")}
            have_cases = {r[0] for r in self.conn.execute("SELECT case_id FROM cases")}
            if not ({r for r, _ in readers} <= have_readers and {c for c, _ in cases} <= have_cases):
                raise StoreReadOnlyError(
                    f"{self.path}: the study folder is read-only and the ratings file does not hold this design yet"
                )
            return
        with self._tx():
            for k, v in meta.items():
                self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (k, v))
            self.conn.executemany("INSERT OR IGNORE INTO readers VALUES (?, ?)", readers)
            self.conn.executemany("INSERT OR IGNORE INTO arms VALUES (?, ?)", [(a, int(s)) for a, s in arms])
            self.conn.executemany("INSERT OR IGNORE INTO cases VALUES (?, ?)", cases)
            for (rd, arm), ids in orders.items():
                have = self.conn.execute(
                    "SELECT count(*) FROM case_order WHERE reader_id = ? AND arm_id = ?", (rd, arm)
                ).fetchone()[0]
                if not have:
                    self.conn.executemany(
                        "INSERT INTO case_order VALUES (?, ?, ?, ?)",
                        [(rd, arm, i, cid) for i, cid in enumerate(ids)],
                    )
            self._append_design_if_changed()

    # -- reading ------------------------------------------------------------------------------
    def order(self, reader_id: str, arm_id: str) -> list[str]:
        """Recorded case order of a reader in an arm."""
        rows = self.conn.execute(
            "SELECT case_id FROM case_order WHERE reader_id = ? AND arm_id = ? ORDER BY position",
            (reader_id, arm_id),
        ).fetchall()
        return [r[0] for r in rows]

    def rated_cases(self, reader_id: str, arm_id: str) -> set[str]:
        """Cases this reader has submitted in this arm."""
        rows = self.conn.execute(
            "SELECT case_id FROM ratings WHERE reader_id = ? AND arm_id = ?", (reader_id, arm_id)
        ).fetchall()
        return {r[0] for r in rows}

    def last_submit(self, reader_id: str, arm_id: str) -> float | None:
        """Time of the reader's last submission in an arm."""
        row = self.conn.execute(
            "SELECT max(submitted_at) FROM ratings WHERE reader_id = ? AND arm_id = ?", (reader_id, arm_id)
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_opened(self, reader_id: str, arm_id: str, case_id: str) -> float:
        """Record when a case was first shown (kept across restarts); returns that time."""
        now = self.clock()
        if not self.read_only:
            with self._tx():
                self.conn.execute("INSERT OR IGNORE INTO opened VALUES (?, ?, ?, ?)",
                                  (reader_id, arm_id, case_id, now))
        row = self.conn.execute(
            "SELECT opened_at FROM opened WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
            (reader_id, arm_id, case_id),
        ).fetchone()
        return now if row is None else float(row[0])

    def submit(
        self,
        reader_id: str,
        arm_id: str,
        case_id: str,
        score: float,
        birads: str | None = None,
        reading_s: float | None = None,
        comment: str | None = None,
        marks: Any = None,
    ) -> Rating:
        """Store one rating (and the case's lesion marks, if any) in one durable transaction.

        Args:
            marks: Iterable of mark objects or dicts with image_id, kind, points, frame and
                confidence (reader_app.study.reading_state.Mark); stored and locked with the rating.

        Raises:
            RatingLockedError: The case already has a rating from this reader in this arm.
            StoreWriteError: The file could not be written (the rating was not stored).
        """
        if not math.isfinite(float(score)):
            raise ConfigError(f"rating {score} is not a finite number")
        mk = [_mark_fields(m) for m in (marks or [])]
        now = self.clock()
        try:
            with self._tx():
                dup = self.conn.execute(
                    "SELECT 1 FROM ratings WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
                    (reader_id, arm_id, case_id),
                ).fetchone()
                if dup is not None:
                    raise RatingLockedError(
                        f"reader {reader_id} already rated case {case_id} in arm {arm_id}; "
                        "submitted ratings are locked (amend with a reason)"
                    )
                row = self.conn.execute(
                    "SELECT opened_at FROM opened WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
                    (reader_id, arm_id, case_id),
                ).fetchone()
                opened = None if row is None else float(row[0])
                if reading_s is None and opened is not None:
                    reading_s = max(0.0, now - opened)
                values = (reader_id, arm_id, case_id, float(score), birads, opened, now, reading_s, comment)
                cur = self.conn.execute(
                    "INSERT INTO ratings (reader_id, arm_id, case_id, score, birads, opened_at, submitted_at, "
                    "reading_s, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                rid = int(cur.lastrowid or 0)
                self._append("rating", rid, dict(zip(_RATING_COLS, (rid, *values), strict=True)))
                if mk:
                    for n, m in enumerate(mk, start=1):
                        self.conn.execute(
                            "INSERT INTO marks (rating_id, mark_no, image_id, kind, points, frame, rating) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (rid, n, m["image_id"], m["kind"], json.dumps(m["points"]), m["frame"], m["rating"]),
                        )
                    self._append("marks", rid, {"rating_id": rid, "marks": mk})
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "locked" in str(exc):
                raise RatingLockedError(
                    f"reader {reader_id} already rated case {case_id} in arm {arm_id}; "
                    "submitted ratings are locked (amend with a reason)"
                ) from None
            raise ConfigError(f"cannot store rating: {exc}") from None
        return Rating(rid, reader_id, arm_id, case_id, float(score), birads, now, reading_s, comment)

    def amend(
        self, reader_id: str, arm_id: str, case_id: str, new_score: float, reason: str,
        who: str, new_birads: str | None = None,
    ) -> AuditEntry:
        """Change a submitted rating: audit row first, then the update, in one transaction.

        Raises:
            ConfigError: No such rating, or an empty reason.
            StoreWriteError: The file could not be written (nothing was changed).
        """
        if not reason or not reason.strip():
            raise ConfigError("a change to a submitted rating needs a reason")
        if not math.isfinite(float(new_score)):
            raise ConfigError(f"rating {new_score} is not a finite number")
        now = self.clock()
        with self._tx():
            row = self.conn.execute(
                "SELECT rating_id, score, birads FROM ratings WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
                (reader_id, arm_id, case_id),
            ).fetchone()
            if row is None:
                raise ConfigError(f"no submitted rating of case {case_id} by {reader_id} in arm {arm_id}")
            rid, old, old_b = int(row[0]), float(row[1]), row[2]
            nb = old_b if new_birads is None else new_birads
            values = (rid, who, now, old, float(new_score), old_b, nb, reason.strip())
            cur = self.conn.execute(
                "INSERT INTO audit (rating_id, who, at, old_score, new_score, old_birads, new_birads, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            aid = int(cur.lastrowid or 0)
            self._append("amend", aid, dict(zip(_AUDIT_COLS, (aid, *values), strict=True)))
            self.conn.execute("UPDATE ratings SET score = ?, birads = ? WHERE rating_id = ?", (float(new_score), nb, rid))
        return AuditEntry(rid, who, now, old, float(new_score), old_b, nb, reason.strip())

    # -- queries ------------------------------------------------------------------------------
    def ratings(self) -> list[Rating]:
        """Every rating."""
        rows = self.conn.execute(
            "SELECT rating_id, reader_id, arm_id, case_id, score, birads, submitted_at, reading_s, comment "
            "FROM ratings ORDER BY rating_id"
        ).fetchall()
        return [Rating(int(r[0]), r[1], r[2], r[3], float(r[4]), r[5], float(r[6]),
                       None if r[7] is None else float(r[7]), r[8]) for r in rows]

    def audit(self) -> list[AuditEntry]:
        """Every amendment, oldest first."""
        rows = self.conn.execute(
            "SELECT rating_id, who, at, old_score, new_score, old_birads, new_birads, reason FROM audit "
            "ORDER BY audit_id"
        ).fetchall()
        return [AuditEntry(int(r[0]), r[1], float(r[2]), float(r[3]), float(r[4]), r[5], r[6], r[7]) for r in rows]

    def marks(self) -> list[StoredMark]:
        """Every stored lesion mark, in submission order."""
        if self.schema_version < 4:
            return []
        rows = self.conn.execute(
            "SELECT r.reader_id, r.arm_id, r.case_id, m.mark_no, m.image_id, m.kind, m.points, m.frame, m.rating "
            "FROM marks m JOIN ratings r ON r.rating_id = m.rating_id ORDER BY m.rating_id, m.mark_no"
        ).fetchall()
        return [StoredMark(r[0], r[1], r[2], int(r[3]), r[4], r[5], json.loads(r[6]),
                           None if r[7] is None else int(r[7]), None if r[8] is None else float(r[8]))
                for r in rows]

    def truth(self) -> dict[str, int | None]:
        """Recorded case truth (for analysis only; never shown to readers)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT case_id, truth FROM cases")}


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


def _same(exp: dict[str, Any], row: dict[str, Any]) -> bool:
    return all(_same_value(exp.get(k), row.get(k)) for k in row)


def _writable(path: Path) -> bool:
    """Whether the ratings file (or, when missing, its folder) can be written by this process."""
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        return False
    # WAL needs the -wal/-shm files beside the database: the folder must be writable too
    return os.access(path.parent, os.W_OK)


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements (trigger bodies keep their inner ';')."""
    out: list[str] = []
    buf: list[str] = []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            out.append(joined)
            buf = []
    if buf and "\n".join(buf).strip():
        out.append("\n".join(buf).strip())
    return out
