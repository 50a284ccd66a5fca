"""`state.sql`, the pure half of the state layer: dialects, text made storable, what a commit
and a reset write. Plain tables, no database (the stores run these in the contract tests)."""

from __future__ import annotations

import pytest

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state import sql
from daily_otel_bridge.state.base import Commit, CursorUpdate


@pytest.mark.parametrize(
    ("template", "sqlite", "postgres"),
    [
        (
            "SELECT a FROM t WHERE b = ?",
            "SELECT a FROM t WHERE b = ?",
            "SELECT a FROM t WHERE b = %s",
        ),
        ("x LIKE 'a%' AND y = ?", "x LIKE 'a%' AND y = ?", "x LIKE 'a%%' AND y = %s"),
        ("ORDER BY d COLLATE {byte_order}", "ORDER BY d COLLATE BINARY", 'ORDER BY d COLLATE "C"'),
        ("n {integer}, f {real}", "n INTEGER, f REAL", "n BIGINT, f DOUBLE PRECISION"),
        ("b {boolean} DEFAULT {false}", "b INTEGER DEFAULT 0", "b BOOLEAN DEFAULT FALSE"),
        ("id {serial_key}", "id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY"),
        ("){without_rowid};", ") WITHOUT ROWID;", ");"),
        ("body {blob}", "body BLOB", "body BYTEA"),
    ],
)
def test_render_speaks_each_dialect(template: str, sqlite: str, postgres: str) -> None:
    assert sql.render(template, sql.SQLITE) == sqlite
    assert sql.render(template, sql.POSTGRES) == postgres


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("é ü 日本 🎉", "é ü 日本 🎉"),  # any valid text as it is
        ("a\x00b", "a\\u0000b"),  # NUL: PostgreSQL's text refuses it
        ("lone \ud800", "lone \\ud800"),  # a lone surrogate: UTF-8 cannot hold it
        ("\udfff\x00", "\\udfff\\u0000"),
        ("already \\u0000 escaped", "already \\u0000 escaped"),
    ],
)
def test_storable_text_is_the_same_for_both_backends(text: str, stored: str) -> None:
    assert sql.storable(text) == stored
    stored.encode("utf-8")  # valid everywhere


def test_a_commit_writes_positions_and_inbox_before_the_cursors() -> None:
    """So that a cursor no column can hold fails after them, in the same transaction (the
    contract tests check that nothing of such a commit stays)."""
    retired = SessionCursor("old", "r", 0, retired=True)
    live = SessionCursor("new", "r", 0, watermark_ns=7)
    commit = Commit(
        "acme",
        {
            "logs": [
                CursorUpdate(live, new_seen=[("u", 1)], prune_before_ms=5),
                CursorUpdate(retired, new_seen=[("v", 2)]),
            ],
            "metrics": [],
        },
        discovered_until_ms=9,
        positions={"api": "p\x00"},
        inbox_done=("e1",),
    )
    steps = sql.commit_steps(commit, now=100.0)
    assert [s.sql for s in steps] == [
        sql.SET_DISCOVERED,
        sql.UPSERT_POSITION,
        sql.INBOX_DONE,
        sql.UPSERT_SESSION,
        sql.INSERT_DELIVERED,
        sql.FORGET_DELIVERED,
        sql.PRUNE_DELIVERED,
        sql.RAISE_DELIVERED_FLOOR,
    ]
    assert steps[1].rows == [("acme", "api", "p\\u0000", 100.0)]
    assert steps[2].rows == [(False, b"", "acme", "e1")]
    # One block of identities per live session; a retired one writes none ...
    assert steps[4].rows == [("acme", "logs", "new", 1, 1, "u", (1).to_bytes(8, "big"))]
    assert steps[5].rows == [("acme", "logs", "old")]  # ... and forgets them all
    assert steps[6].rows == [("acme", "logs", "new", 5 * NS_PER_MS)]
    assert steps[7].rows == [(5 * NS_PER_MS, "acme", "logs", "new", 5 * NS_PER_MS)]
    assert not any(s.counted for s in steps)


def test_an_empty_commit_writes_nothing() -> None:
    assert sql.commit_steps(Commit("acme", {"logs": []}), now=1.0) == []


@pytest.mark.parametrize(
    ("session", "tables"),
    [
        (None, ["delivered_blocks", "sessions", "positions", "inbox", "domains"]),
        ("s1", ["delivered_blocks", "sessions"]),
    ],
)
def test_reset_forgets_a_domain_or_a_session(session: str | None, tables: list[str]) -> None:
    steps = sql.reset_steps("acme", session)
    assert [s.sql.split()[2] for s in steps] == tables
    # What it reports: every row but the domain's own, or the session's cursor rows.
    counted = [s.sql.split()[2] for s in steps if s.counted]
    assert counted == (tables[:-1] if session is None else ["sessions"])


def test_the_prune_clock_prunes_each_domain_once_a_period() -> None:
    clock = sql.PruneClock(every=60.0)
    assert [clock.due("a", t) for t in (0.0, 10.0, 59.9, 60.0, 61.0)] == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert clock.due("b", 10.0) is True


def test_importable_rows_take_postgres_types() -> None:
    assert sql.importable("inbox", ("acme", "e\x00", b"{}", 1.5, 1)) == (
        "acme",
        "e\\u0000",
        b"{}",
        1.5,
        True,
    )
    assert sql.importable("sessions", ("d", "s", "i", "r", 0, None, None, None, 0, 2.0))[8] is False
