"""pytest fixtures: one throw-away PostgreSQL server per session, one fresh database per test.

Import with ``from tests.postgres_fixture import pg_server, pg_url``. They skip, naming the
reason, only where the server cannot be started (no Debian postgresql, no postgres user).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from engine.errors import ConfigError
from engine.study.pg_server import PgServer, missing_reason

_n = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = missing_reason()
    if reason:
        pytest.skip(f"{reason}: apt-get install postgresql")
    srv = PgServer()
    try:
        srv.start()
    except ConfigError as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.create_database(f"t{next(_n)}")
