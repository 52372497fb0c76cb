"""Crash-safe SQLite store of a reader study's ratings.

* WAL journal, ``synchronous=FULL``: a rating is on disk when :meth:`RatingStore.submit`
  returns, so killing the process (even SIGKILL) loses nothing that was submitted.
* One ``BEGIN IMMEDIATE`` transaction per rating; foreign keys on.
* ``UNIQUE(reader_id, arm_id, case_id)``: one answer per reader, arm and case.
* A submitted rating is locked: triggers refuse UPDATE unless the change was first written
  to the append-only ``audit`` table (who, when, old, new, why) by :meth:`amend`, and refuse
  any DELETE; the audit table itself refuses UPDATE and DELETE.
* ``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` upgrades old files.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from engine.errors import ConfigError

__all__ = ["AuditEntry", "Rating", "RatingLockedError", "RatingStore", "SCHEMA_VERSION", "MIGRATIONS"]

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE readers (reader_id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE arms (arm_id TEXT PRIMARY KEY, show_ai INTEGER NOT NULL CHECK (show_ai IN (0, 1)));
CREATE TABLE cases (case_id TEXT PRIMARY KEY, truth INTEGER CHECK (truth IN (0, 1)));
CREATE TABLE case_order (
    reader_id TEXT NOT NULL REFERENCES readers(reader_id),
    arm_id TEXT NOT NULL REFERENCES arms(arm_id),
    position INTEGER NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    PRIMARY KEY (reader_id, arm_id, position),
    UNIQUE (reader_id, arm_id, case_id)
);
CREATE TABLE ratings (
    rating_id INTEGER PRIMARY KEY,
    reader_id TEXT NOT NULL REFERENCES readers(reader_id),
    arm_id TEXT NOT NULL REFERENCES arms(arm_id),
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    score REAL NOT NULL,
    birads TEXT,
    opened_at REAL,
    submitted_at REAL NOT NULL,
    reading_s REAL,
    UNIQUE (reader_id, arm_id, case_id)
);
CREATE TABLE audit (
    audit_id INTEGER PRIMARY KEY,
    rating_id INTEGER NOT NULL REFERENCES ratings(rating_id),
    who TEXT NOT NULL,
    at REAL NOT NULL,
    old_score REAL NOT NULL,
    new_score REAL NOT NULL,
    old_birads TEXT,
    new_birads TEXT,
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0)
);
CREATE TABLE opened (
    reader_id TEXT NOT NULL REFERENCES readers(reader_id),
    arm_id TEXT NOT NULL REFERENCES arms(arm_id),
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    opened_at REAL NOT NULL,
    PRIMARY KEY (reader_id, arm_id, case_id)
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
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
_V2 = "ALTER TABLE ratings ADD COLUMN comment TEXT;"

MIGRATIONS: list[tuple[int, str]] = [(1, _V1), (2, _V2)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class RatingLockedError(ConfigError):
    """A submitted rating was changed without going through :meth:`RatingStore.amend`."""


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


class RatingStore:
    """The SQLite file of one reader study.

    Args:
        path: Database file (created when missing).
        clock: Time source in seconds since the epoch (tests inject a fake clock).
    """

    def __init__(self, path: str | PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per rating)
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    # -- schema -----------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """Current ``PRAGMA user_version``."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, target: int = SCHEMA_VERSION) -> None:
        """Apply pending migrations up to ``target``, each in its own transaction."""
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: written by a newer breast-reader (schema {current} > {SCHEMA_VERSION}); upgrade"
            )
        for version, script in MIGRATIONS:
            if current < version <= target:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _split_sql(script):
                        self.conn.execute(stmt)
                    self.conn.execute(f"PRAGMA user_version = {version}")
                    self.conn.execute("COMMIT")
                except Exception:
                    self.conn.execute("ROLLBACK")
                    raise

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

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
        order it started with, whatever happens to the definition file.
        """
        self.conn.execute("BEGIN IMMEDIATE")
        try:
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
            self.conn.execute("COMMIT")
        except Exception:
            self.conn.execute("ROLLBACK")
            raise

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
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT OR IGNORE INTO opened VALUES (?, ?, ?, ?)", (reader_id, arm_id, case_id, now))
        self.conn.execute("COMMIT")
        row = self.conn.execute(
            "SELECT opened_at FROM opened WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
            (reader_id, arm_id, case_id),
        ).fetchone()
        return float(row[0])

    def submit(
        self,
        reader_id: str,
        arm_id: str,
        case_id: str,
        score: float,
        birads: str | None = None,
        reading_s: float | None = None,
        comment: str | None = None,
    ) -> Rating:
        """Store one rating in one durable transaction.

        Raises:
            RatingLockedError: The case already has a rating from this reader in this arm.
        """
        now = self.clock()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                "SELECT opened_at FROM opened WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
                (reader_id, arm_id, case_id),
            ).fetchone()
            opened = None if row is None else float(row[0])
            if reading_s is None and opened is not None:
                reading_s = max(0.0, now - opened)
            cur = self.conn.execute(
                "INSERT INTO ratings (reader_id, arm_id, case_id, score, birads, opened_at, submitted_at, "
                "reading_s, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (reader_id, arm_id, case_id, float(score), birads, opened, now, reading_s, comment),
            )
            self.conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK")
            if "UNIQUE" in str(exc):
                raise RatingLockedError(
                    f"reader {reader_id} already rated case {case_id} in arm {arm_id}; "
                    "submitted ratings are locked (amend with a reason)"
                ) from None
            raise ConfigError(f"cannot store rating: {exc}") from None
        except Exception:
            self.conn.execute("ROLLBACK")
            raise
        return Rating(int(cur.lastrowid or 0), reader_id, arm_id, case_id, float(score), birads, now, reading_s, comment)

    def amend(
        self, reader_id: str, arm_id: str, case_id: str, new_score: float, reason: str,
        who: str, new_birads: str | None = None,
    ) -> AuditEntry:
        """Change a submitted rating: audit row first, then the update, in one transaction.

        Raises:
            ConfigError: No such rating, or an empty reason.
        """
        if not reason or not reason.strip():
            raise ConfigError("a change to a submitted rating needs a reason")
        now = self.clock()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                "SELECT rating_id, score, birads FROM ratings WHERE reader_id = ? AND arm_id = ? AND case_id = ?",
                (reader_id, arm_id, case_id),
            ).fetchone()
            if row is None:
                raise ConfigError(f"no submitted rating of case {case_id} by {reader_id} in arm {arm_id}")
            rid, old, old_b = int(row[0]), float(row[1]), row[2]
            nb = old_b if new_birads is None else new_birads
            self.conn.execute(
                "INSERT INTO audit (rating_id, who, at, old_score, new_score, old_birads, new_birads, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, who, now, old, float(new_score), old_b, nb, reason.strip()),
            )
            self.conn.execute("UPDATE ratings SET score = ?, birads = ? WHERE rating_id = ?", (float(new_score), nb, rid))
            self.conn.execute("COMMIT")
        except Exception:
            self.conn.execute("ROLLBACK")
            raise
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

    def truth(self) -> dict[str, int | None]:
        """Recorded case truth (for analysis only; never shown to readers)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT case_id, truth FROM cases")}


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
