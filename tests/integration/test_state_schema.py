"""The schema is what it was: a state file or database of version 1 (the first release)
opens, keeps every row and gains the version 2 tables; a fresh one has exactly the version 1
tables it had, on SQLite and on PostgreSQL, now that both are made from `state.sql`.

The DDL below is version 1 as shipped (SQLite's `_SCHEMA`, PostgreSQL's migration 1 but
for the lease tables, which are still written out in `state/postgres.py`), copied here on
purpose: it is the reference, never to be edited.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state.base import CursorUpdate, StateError
from daily_otel_bridge.state.postgres import MIGRATIONS, PostgresStateStore
from daily_otel_bridge.state.postgres import SCHEMA_VERSION as PG_VERSION
from daily_otel_bridge.state.sqlite import SCHEMA_VERSION, SqliteCursorStore
from daily_otel_bridge.testing.pg_server import PgServer

SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY,
    floor_ms INTEGER NOT NULL,
    discovered_until_ms INTEGER,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    start_floor_ms INTEGER NOT NULL,
    watermark_ns INTEGER,
    drained_until_ms INTEGER,
    ended_at_ms INTEGER,
    retired INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (domain, stream, session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    PRIMARY KEY (domain, stream, session_id, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (domain, stream, session_id, uid)
);
"""

POSTGRES_V1 = """CREATE TABLE domains (
    domain TEXT PRIMARY KEY,
    floor_ms BIGINT NOT NULL,
    discovered_until_ms BIGINT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE sessions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    start_floor_ms BIGINT NOT NULL,
    watermark_ns BIGINT,
    drained_until_ms BIGINT,
    ended_at_ms BIGINT,
    retired BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (domain, stream, session_id)
);
CREATE TABLE delivered (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    PRIMARY KEY (domain, stream, session_id, uid)
);
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (domain, stream, session_id, uid)
);
"""

V1_TABLES = ("domains", "sessions", "delivered", "dead_letters")


def sqlite_tables(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name: " ".join(sql.split()) for name, sql in rows}


def write_v1_file(path: Path) -> None:
    """A state file as version 1 left it, with a cursor in it."""
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_V1)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        db.execute("INSERT INTO domains VALUES ('acme', 1000, 1234, 1.0)")
        db.execute(
            "INSERT INTO sessions VALUES ('acme', 'logs', 's1', 'r', 1000, 5, 6, NULL, 0, 1)"
        )
        db.execute("INSERT INTO delivered VALUES ('acme', 'logs', 's1', 'u1', 5)")
        db.execute("INSERT INTO delivered VALUES ('acme', 'logs', 's1', 'u0-2', 7)")
    db.close()


def test_a_fresh_sqlite_file_has_the_version_1_tables_as_shipped(tmp_path: Path) -> None:
    SqliteCursorStore(tmp_path / "new.db").close()
    reference = sqlite3.connect(":memory:")
    reference.executescript(SQLITE_V1)
    fresh = sqlite3.connect(tmp_path / "new.db")
    try:
        new, old = sqlite_tables(fresh), sqlite_tables(reference)
        assert {t: new[t] for t in old} == old  # the same CREATE TABLE text, meta included
        assert set(new) - set(old) == {"positions", "inbox", "delivered_blocks"}
        version = fresh.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
    finally:
        fresh.close()
        reference.close()


def test_a_version_1_sqlite_file_keeps_its_rows_and_gains_the_new_tables(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_v1_file(path)
    store = SqliteCursorStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert store.load_domain("acme", 0).discovered_until_ms == 1234
        cursors = store.load_cursors("acme", "logs")
        assert cursors["s1"].seen == {"u1": 5, "u0-2": 7}  # moved into a block (v3) ...
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM delivered").fetchone() == (0,)  # ... all
        db.close()
        assert (cursors["s1"].watermark_ns, cursors["s1"].retired) == (5, False)
        assert store.inbox_add("acme", "e1", b"{}", 1.0, 60.0) is True
        store.commit_streams("acme", {}, positions={"api": "p"}, inbox_done=["e1"])
        assert store.load_positions("acme") == {"api": "p"}
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_a_newer_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    write_v1_file(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StateError, match="schema version 4, newer than this program's 3"):
        SqliteCursorStore(path)
    with sqlite3.connect(path) as db:
        assert "inbox" not in sqlite_tables(db)  # nothing created in a file not ours
    db.close()


def pg_columns(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable,"
            " column_default FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position"
        ).fetchall()


def pg_constraints(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT t.relname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = 'public' AND t.relname <> 'schema_migrations'"
            " ORDER BY 1, 2, 3"
        ).fetchall()


def test_postgres_version_1_is_the_migration_as_shipped(pg_server_session: PgServer) -> None:
    reference = pg_server_session.create_database("schema_reference")
    with psycopg.connect(reference, autocommit=True) as conn:
        conn.execute(POSTGRES_V1.encode())
    fresh = pg_server_session.create_database("schema_fresh")

    async def open_and_close() -> None:
        await (await PostgresStateStore.open(fresh)).close()

    asyncio.run(open_and_close())
    old_tables = {row[0] for row in pg_columns(reference)}
    assert [c for c in pg_columns(fresh) if c[0] in old_tables] == pg_columns(reference)
    assert [c for c in pg_constraints(fresh) if c[0] in old_tables] == pg_constraints(reference)
    new_tables = {row[0] for row in pg_columns(fresh)} - old_tables
    assert new_tables == {"leases", "replicas", "positions", "inbox", "delivered_blocks"}


def test_a_version_1_postgres_database_migrates_and_keeps_its_rows(
    pg_server_session: PgServer,
) -> None:
    dsn = pg_server_session.create_database("schema_v1")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(POSTGRES_V1.encode())
        # ... and the lease tables of migration 1, unchanged.
        lease_tables = MIGRATIONS[0][2][MIGRATIONS[0][2].index("CREATE TABLE leases") :]
        conn.execute(lease_tables.encode())
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT"
            " NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (1, 'v1')")
        conn.execute("INSERT INTO domains VALUES ('acme', 1000, 1234, 1.0)")
        conn.execute(
            "INSERT INTO sessions VALUES ('acme', 'logs', 's1', 'r', 1000, 5, 6, NULL, false, 1)"
        )
        conn.execute("INSERT INTO delivered VALUES ('acme', 'logs', 's1', 'u1', 5)")
        conn.execute("INSERT INTO delivered VALUES ('acme', 'logs', 's1', 'u0-2', 7)")

    async def check() -> None:
        store = await PostgresStateStore.open(dsn)
        try:
            assert await store.schema_version() == PG_VERSION == 3
            assert (await store.load_domain("acme", 0)).discovered_until_ms == 1234
            # Moved into a block by migration 3, and gone from `delivered`.
            seen = (await store.load_cursors("acme", "logs"))["s1"].seen
            assert seen == {"u1": 5, "u0-2": 7}
            assert (await store.session_rows("acme"))[0].seen == 2
            assert await store.inbox_add("acme", "e1", b"{}", 1.0, 60.0) is True
            update = CursorUpdate(SessionCursor("s2", "r", 0))
            await store.commit("acme", {"logs": [update]}, positions={"api": "p"})
            assert await store.load_positions("acme") == {"api": "p"}
        finally:
            await store.close()

    asyncio.run(check())
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM delivered").fetchone() == (0,)
