"""PostgreSQL for tests: one throwaway server per test session, a fresh database per test.

Import the fixtures where needed (`from tests.pg import pg_server_session, pg_dsn`). When the
server binaries are missing the fixture *fails* with a clear message instead of skipping:
CI installs Debian's postgresql package, so a missing server is a broken machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from daily_otel_bridge.testing.pg_server import PgServer, PgUnavailable, pg_server

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server_session() -> Iterator[PgServer]:
    try:
        # Bounded: the server stops by itself even if this test process is killed.
        with pg_server(max_seconds=3600) as server:
            yield server
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_dsn(pg_server_session: PgServer) -> str:
    """The DSN (with password) of a new, empty database."""
    return pg_server_session.create_database(f"t{next(_names)}")
