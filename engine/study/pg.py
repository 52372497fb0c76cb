"""PostgreSQL engine of the reader-study store (psycopg 3), for multi-site studies.

:class:`engine.study.store.RatingStore` talks to its database through a small DB-API
surface (``execute`` with ``?`` parameters, ``fetchone``/``fetchall``, ``lastrowid``,
``in_transaction``, ``user_version``). :class:`PgConnection` provides that surface on
PostgreSQL, so the store's logic — one transaction per rating, audit-before-update, the hash
chain, ``verify()`` — is the same code on both engines. Only the schema is written twice:
:data:`PG_MIGRATIONS` are the SQLite migrations in PostgreSQL's dialect, version for version,
with the same tables, columns and locks (plpgsql trigger functions instead of SQLite's
``RAISE(ABORT)`` triggers).

Semantics kept on PostgreSQL:

* ``BEGIN IMMEDIATE`` / ``BEGIN EXCLUSIVE`` (SQLite's single writer) become ``BEGIN`` +
  ``pg_advisory_xact_lock`` on one study-wide key: writers are serialised, so the ledger's hash
  chain is appended in one order, exactly as on SQLite; readers never block.
* A submitted rating is locked by triggers: UPDATE only after a matching audit row, no DELETE,
  no second row for (reader, arm, case); UPSERT (``ON CONFLICT DO UPDATE``) goes through the
  UPDATE trigger and is refused. Audit, ledger and marks are append-only; the design tables
  (readers, arms, cases, orders) refuse UPDATE/DELETE and silently keep existing rows.
* Durability: PostgreSQL commits are WAL-fsynced (``synchronous_commit`` on, the default):
  a rating is durable when ``submit`` returns.
* ``user_version`` lives in the one-row table ``br_schema``.
* Errors come back as :mod:`sqlite3` exception classes carrying PostgreSQL's message, so the
  store's handling (RatingLockedError, StoreWriteError) is engine-independent; a server that
  goes away mid-session is a StoreWriteError naming the server (never its password).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any

from engine.io.urls import safe_url as _safe_url
from engine.study import schema

#: study-wide advisory lock key for write transactions
_LOCK_KEY = 0x6272_5354  # "brST"

_FN = """
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {body} END $$;
CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
"""


def _refuse(name: str, event: str, table: str, msg: str) -> str:
    return _FN.format(name=name, event=event, table=table, body=f"RAISE EXCEPTION '{msg}';")


def _keep(name: str, table: str, cond: str) -> str:
    """BEFORE INSERT that silently drops a row that exists (SQLite's RAISE(IGNORE))."""
    return _FN.format(name=name, event="INSERT", table=table,
                      body=f"IF EXISTS (SELECT 1 FROM {table} WHERE {cond}) THEN RETURN NULL; END IF; RETURN NEW;")


_PG_V1 = """
CREATE TABLE br_schema (version INTEGER NOT NULL);
INSERT INTO br_schema VALUES (0);""" + schema.tables(1, "postgresql") \
    + _refuse("audit_no_update", "UPDATE", "audit", "audit is append-only") \
    + _refuse("audit_no_delete", "DELETE", "audit", "audit is append-only") \
    + _refuse("ratings_no_delete", "DELETE", "ratings", "submitted ratings cannot be deleted") \
    + _FN.format(name="ratings_locked", event="UPDATE", table="ratings", body="""
    IF NOT EXISTS (
        SELECT 1 FROM audit a
        WHERE a.audit_id = (SELECT max(audit_id) FROM audit WHERE rating_id = OLD.rating_id)
          AND a.old_score = OLD.score AND a.new_score = NEW.score
          AND a.old_birads IS NOT DISTINCT FROM OLD.birads AND a.new_birads IS NOT DISTINCT FROM NEW.birads
    ) OR NEW.reader_id IS DISTINCT FROM OLD.reader_id OR NEW.arm_id IS DISTINCT FROM OLD.arm_id
      OR NEW.case_id IS DISTINCT FROM OLD.case_id OR NEW.submitted_at IS DISTINCT FROM OLD.submitted_at
      OR NEW.rating_id IS DISTINCT FROM OLD.rating_id THEN
        RAISE EXCEPTION 'rating is locked: amend it with a reason';
    END IF;
    RETURN NEW;""")

_PG_V2 = schema.V2

_PG_V3 = schema.tables(3, "postgresql") \
    + _refuse("ledger_no_update", "UPDATE", "ledger", "ledger is append-only") \
    + _refuse("ledger_no_delete", "DELETE", "ledger", "ledger is append-only") \
    + "".join(_refuse(f"{t}_no_update", "UPDATE", t, "the study design is locked")
              + _refuse(f"{t}_no_delete", "DELETE", t, "the study design is locked")
              for t in ("readers", "arms", "cases", "case_order")) \
    + _keep("readers_keep", "readers", "reader_id = NEW.reader_id") \
    + _keep("arms_keep", "arms", "arm_id = NEW.arm_id") \
    + _keep("cases_keep", "cases", "case_id = NEW.case_id") \
    + _keep("case_order_keep", "case_order",
            "reader_id = NEW.reader_id AND arm_id = NEW.arm_id AND (position = NEW.position OR case_id = NEW.case_id)") \
    + _FN.format(name="ratings_no_replace", event="INSERT", table="ratings", body="""
    IF EXISTS (SELECT 1 FROM ratings WHERE rating_id = NEW.rating_id
               OR (reader_id = NEW.reader_id AND arm_id = NEW.arm_id AND case_id = NEW.case_id)) THEN
        RAISE EXCEPTION 'rating is locked: submitted ratings cannot be replaced';
    END IF;
    RETURN NEW;""")

_PG_V4 = schema.tables(4, "postgresql") \
    + _refuse("marks_no_update", "UPDATE", "marks", "marks are locked with their rating") \
    + _refuse("marks_no_delete", "DELETE", "marks", "marks are locked with their rating")

#: The SQLite migrations (engine.study.store.MIGRATIONS) in PostgreSQL's dialect, same versions.
PG_MIGRATIONS: list[tuple[int, str]] = [(1, _PG_V1), (2, _PG_V2), (3, _PG_V3), (4, _PG_V4)]


def is_url(path: object) -> bool:
    """Whether a store location is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return isinstance(path, str) and path.lower().startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return _safe_url(url, keep_user=True)


def split_statements(script: str) -> list[str]:
    """Split a PG script into statements, keeping ``$$ ... $$`` bodies whole."""
    out, buf, in_body = [], [], False
    for part in re.split(r"(\$\$|;)", script):
        if part == "$$":
            in_body = not in_body
            buf.append(part)
        elif part == ";" and not in_body:
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
        else:
            buf.append(part)
    if "".join(buf).strip():
        out.append("".join(buf).strip())
    return out


def expected_objects(version: int) -> list[tuple[str, str, str]]:
    """(type, name, normalised definition) of the tables, functions and triggers up to ``version``."""
    rows: list[tuple[str, str, str]] = []
    for v, script in PG_MIGRATIONS:
        if v > version:
            continue
        for stmt in split_statements(script):
            m = re.match(r"CREATE (TABLE|FUNCTION|TRIGGER) (\w+)", stmt)
            if not m:
                continue
            kind, name = m.group(1).lower(), m.group(2)
            if kind == "function":
                body = stmt.split("$$")[1]
                rows.append(("function", name, " ".join(body.split())))
            elif kind == "trigger":
                rows.append(("trigger", name, "enabled"))
            else:
                rows.append(("table", name, ""))
    return sorted(rows)


def _translate(sql: str) -> tuple[str, bool]:
    """SQLite dialect of the store's queries -> PostgreSQL; second value: needs RETURNING."""
    s = sql.strip()
    if re.match(r"INSERT OR IGNORE INTO", s, re.I):
        s = re.sub(r"^INSERT OR IGNORE INTO", "INSERT INTO", s, flags=re.I) + " ON CONFLICT DO NOTHING"
    s = s.replace("?", "%s")
    return s, False


_RETURNING = {"ratings": "rating_id", "audit": "audit_id", "ledger": "seq", "marks": "mark_id"}


class PgCursor:
    """What the store uses of a sqlite3 cursor."""

    def __init__(self, rows: list[tuple[Any, ...]], lastrowid: int | None = None) -> None:
        self._rows = rows
        self.lastrowid = lastrowid

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def __iter__(self) -> Any:
        return iter(self._rows)


def _sqlite_error(exc: Exception, where: str) -> sqlite3.Error:
    import psycopg

    msg = str(getattr(getattr(exc, "diag", None), "message_primary", None) or exc).strip()
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.RaiseException):
        return sqlite3.IntegrityError(f"{msg}" + (" (UNIQUE)" if isinstance(exc, psycopg.errors.UniqueViolation) else ""))
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.AdminShutdown | psycopg.InterfaceError):
        return sqlite3.OperationalError(f"PostgreSQL server {where} is unreachable or went away ({msg})")
    if isinstance(exc, psycopg.errors.InFailedSqlTransaction):
        return sqlite3.OperationalError(msg)
    return sqlite3.DatabaseError(msg)


class PgConnection:
    """The sqlite3.Connection surface the store uses, on a psycopg 3 connection (autocommit)."""

    def __init__(self, url: str, *, connect_timeout_s: int = 10) -> None:
        import psycopg

        self.where = safe_url(url)
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout_s)
        except psycopg.Error as exc:
            raise _sqlite_error(exc, self.where) from None

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def _run(self, sql: str, params: Any = ()) -> PgCursor:
        import psycopg

        s = sql.strip()
        up = s.upper()
        try:
            if up.startswith("BEGIN"):
                self.raw.execute("BEGIN")
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                return PgCursor([])
            if up.startswith("PRAGMA USER_VERSION ="):
                self.raw.execute("UPDATE br_schema SET version = %s", (int(s.split("=")[1]),))
                return PgCursor([])
            if up.startswith("PRAGMA USER_VERSION"):
                exists = self.raw.execute("SELECT to_regclass('br_schema') IS NOT NULL").fetchone()
                if not exists or not exists[0]:
                    return PgCursor([(0,)])
                return PgCursor([tuple(r) for r in self.raw.execute("SELECT version FROM br_schema").fetchall()])
            if up.startswith("PRAGMA QUICK_CHECK"):
                return PgCursor([("ok",)])
            if up.startswith("PRAGMA"):
                return PgCursor([])
            if "FROM SQLITE_MASTER" in up:
                return PgCursor(self.schema_rows())
            q, _ = _translate(s)
            m = re.match(r"INSERT INTO (\w+)", q, re.I)
            pk = _RETURNING.get(m.group(1).lower()) if m else None
            if pk and "RETURNING" not in q.upper() and "ON CONFLICT" not in q.upper():
                cur = self.raw.execute(q + f" RETURNING {pk}", tuple(params))
                row = cur.fetchone()
                return PgCursor([], int(row[0]) if row else None)
            cur = self.raw.execute(q, tuple(params))
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            return PgCursor(rows)
        except psycopg.Error as exc:
            raise _sqlite_error(exc, self.where) from None

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        """Run one statement (``?`` placeholders; the store's few SQLite idioms are translated)."""
        return self._run(sql, params)

    def executemany(self, sql: str, seq: Any) -> None:
        """Run one statement per parameter tuple."""
        for params in seq:
            self._run(sql, params)

    def executescript_pg(self, script: str) -> None:
        """Run a PostgreSQL migration script (inside the caller's transaction)."""
        import psycopg

        try:
            for stmt in split_statements(script):
                self.raw.execute(stmt)
        except psycopg.Error as exc:
            raise _sqlite_error(exc, self.where) from None

    def schema_rows(self) -> list[tuple[str, str, str]]:
        """(type, name, normalised definition) of the store's tables, functions and triggers."""
        tables = self.raw.execute(
            "SELECT 'table', tablename, '' FROM pg_tables WHERE schemaname = current_schema()").fetchall()
        funcs = self.raw.execute(
            "SELECT 'function', p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.prorettype = 'trigger'::regtype").fetchall()
        trigs = self.raw.execute(
            "SELECT 'trigger', t.tgname, CASE WHEN t.tgenabled = 'D' THEN 'disabled' ELSE 'enabled' END "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema()").fetchall()
        rows = [(str(a), str(b), " ".join(str(c).split())) for a, b, c in [*tables, *funcs, *trigs]]
        return sorted(rows)

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


def pg_fingerprint(rows: list[tuple[str, str, str]]) -> str:
    """SHA-256 of schema rows (same role as engine.study.store.schema_fingerprint)."""
    import json

    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()


__all__ = ["PG_MIGRATIONS", "PgConnection", "expected_objects", "is_url", "pg_fingerprint", "safe_url"]
