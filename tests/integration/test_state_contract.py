"""The `CursorStore` contract, the same test functions against SQLite and PostgreSQL.

SQLite is the reference (`SqliteCursorStore`); PostgreSQL must answer every call alike.
The PostgreSQL store here is unfenced (no lease manager): fencing has its own tests in
`test_leases.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state.base import CursorUpdate, DeadLetter, StateError
from daily_otel_bridge.state.postgres import PostgresStateStore
from daily_otel_bridge.state.sqlite import SqliteCursorStore, SqliteStateStore

Store = SqliteStateStore | PostgresStateStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStateStore(SqliteCursorStore(tmp_path / "state.db"))
    else:
        opened = await PostgresStateStore.open(request.getfixturevalue("pg_dsn"))
    try:
        yield opened
    finally:
        await opened.close()


def cursor(session: str, **kw: Any) -> SessionCursor:
    base: dict[str, Any] = {"session_id": session, "room": "room-1", "start_floor_ms": 1000}
    base.update(kw)
    return SessionCursor(**base)


async def test_load_domain_inserts_the_default_floor_once(store: Store) -> None:
    first = await store.load_domain("acme", 1000)
    assert (first.floor_ms, first.discovered_until_ms) == (1000, None)
    again = await store.load_domain("acme", 5000)  # an existing domain keeps its floor
    assert (again.floor_ms, again.discovered_until_ms) == (1000, None)
    assert await store.domains() == ["acme"]


async def test_commit_round_trips_cursors_and_seen(store: Store) -> None:
    await store.load_domain("acme", 0)
    c = cursor("s1", watermark_ns=5 * NS_PER_MS, drained_until_ms=6, ended_at_ms=None)
    await store.commit(
        "acme", {"logs": [CursorUpdate(c, new_seen=[("u1", 4 * NS_PER_MS), ("u2", 5 * NS_PER_MS)])]}
    )
    loaded = await store.load_cursors("acme", "logs")
    assert list(loaded) == ["s1"]
    got = loaded["s1"]
    assert (got.room, got.start_floor_ms, got.watermark_ns, got.drained_until_ms) == (
        "room-1",
        1000,
        5 * NS_PER_MS,
        6,
    )
    assert got.seen == {"u1": 4 * NS_PER_MS, "u2": 5 * NS_PER_MS}
    assert got.ended_at_ms is None
    assert got.retired is False
    assert await store.load_cursors("acme", "metrics") == {}
    assert await store.load_cursors("other", "logs") == {}


async def test_commit_upserts_and_ignores_known_seen(store: Store) -> None:
    await store.load_domain("acme", 0)
    c = cursor("s1", watermark_ns=1)
    await store.commit("acme", {"logs": [CursorUpdate(c, new_seen=[("u1", 1)])]})
    c2 = cursor("s1", room="renamed", watermark_ns=9, drained_until_ms=10, ended_at_ms=11)
    await store.commit("acme", {"logs": [CursorUpdate(c2, new_seen=[("u1", 1), ("u2", 9)])]})
    got = (await store.load_cursors("acme", "logs"))["s1"]
    assert (got.room, got.watermark_ns, got.drained_until_ms, got.ended_at_ms) == (
        "renamed",
        9,
        10,
        11,
    )
    assert got.seen == {"u1": 1, "u2": 9}


async def test_prune_drops_seen_older_than_the_overlap(store: Store) -> None:
    await store.load_domain("acme", 0)
    seen = [("old", 1 * NS_PER_MS), ("edge", 5 * NS_PER_MS), ("new", 9 * NS_PER_MS)]
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), new_seen=seen)]})
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), prune_before_ms=5)]})
    got = (await store.load_cursors("acme", "logs"))["s1"]
    assert got.seen == {"edge": 5 * NS_PER_MS, "new": 9 * NS_PER_MS}  # strictly before


async def test_prune_across_blocks_is_exact_and_the_listing_counts_what_is_kept(
    store: Store,
) -> None:
    """Identities are kept in blocks, one per session and commit: a prune drops the blocks
    wholly before it and only the older identities of a block that straddles it."""
    await store.load_domain("acme", 0)
    ms = NS_PER_MS
    first = [("a", 1 * ms), ("b", 4 * ms), ("c", 6 * ms)]
    second = [("d", 2 * ms), ("e", 7 * ms), ("c", 6 * ms)]  # "c" again: counted once
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), new_seen=first)]})
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), new_seen=second)]})
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), new_seen=[("z", 1 * ms)])]})
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), prune_before_ms=5)]})
    assert (await store.load_cursors("acme", "logs"))["s1"].seen == {"c": 6 * ms, "e": 7 * ms}
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), prune_before_ms=3)]})
    # A floor never moves back: what the prune at 5 ms dropped stays dropped.
    assert (await store.load_cursors("acme", "logs"))["s1"].seen == {"c": 6 * ms, "e": 7 * ms}
    (row,) = await store.session_rows("acme")
    assert row.seen == 2


async def test_retired_session_forgets_its_seen_and_then_its_row(store: Store) -> None:
    await store.load_domain("acme", 0)
    await store.commit("acme", {"logs": [CursorUpdate(cursor("s1"), new_seen=[("u", 1)])]})
    retired = cursor("s1", retired=True, drained_until_ms=500)
    await store.commit(
        "acme", {"logs": [CursorUpdate(retired, new_seen=[("u2", 2)], prune_before_ms=0)]}
    )
    got = (await store.load_cursors("acme", "logs"))["s1"]
    assert got.retired is True
    assert got.seen == {}
    # Only retired rows drained before the floor go.
    assert await store.forget_retired("acme", "logs", 500) == 0
    assert await store.forget_retired("acme", "metrics", 501) == 0
    assert await store.forget_retired("acme", "logs", 501) == 1
    assert await store.load_cursors("acme", "logs") == {}


async def test_forget_retired_keeps_active_and_undrained(store: Store) -> None:
    await store.load_domain("acme", 0)
    await store.commit(
        "acme",
        {
            "logs": [
                CursorUpdate(cursor("active", drained_until_ms=1)),
                CursorUpdate(cursor("undrained", retired=True)),
            ]
        },
    )
    assert await store.forget_retired("acme", "logs", 10**12) == 0
    assert sorted(await store.load_cursors("acme", "logs")) == ["active", "undrained"]


async def test_one_commit_writes_every_stream_and_the_discovery_watermark(store: Store) -> None:
    await store.load_domain("acme", 0)
    await store.commit(
        "acme",
        {
            "logs": [CursorUpdate(cursor("s1"), new_seen=[("a", 1)])],
            "metrics": [CursorUpdate(cursor("s1", room="m"))],
        },
        discovered_until_ms=777,
    )
    assert (await store.load_domain("acme", 0)).discovered_until_ms == 777
    assert list(await store.load_cursors("acme", "metrics")) == ["s1"]
    # Discovery alone: no session, only the watermark.
    await store.commit("acme", {}, discovered_until_ms=888)
    assert (await store.load_domain("acme", 0)).discovered_until_ms == 888
    await store.commit("acme", {"logs": []})
    assert (await store.load_domain("acme", 0)).discovered_until_ms == 888


async def test_a_failed_commit_writes_nothing(store: Store) -> None:
    await store.load_domain("acme", 0)
    good = CursorUpdate(cursor("good"), new_seen=[("u", 1)])
    # A watermark no 64-bit column can hold: the whole transaction must go, good row too.
    bad = CursorUpdate(cursor("bad", watermark_ns=2**70))
    with pytest.raises((StateError, OverflowError)):
        await store.commit("acme", {"logs": [good, bad]}, discovered_until_ms=5)
    assert await store.load_cursors("acme", "logs") == {}
    assert (await store.load_domain("acme", 0)).discovered_until_ms is None
    # ... and the store stays usable.
    await store.commit("acme", {"logs": [good]})
    assert list(await store.load_cursors("acme", "logs")) == ["good"]


async def test_dead_letters_are_kept_once_in_order(store: Store) -> None:
    def letter(uid: str, domain: str = "acme") -> DeadLetter:
        return DeadLetter(domain, "logs", "s1", uid, "unmappable", '{"x": 1}', 1.5)

    assert await store.add_dead_letter(letter("u1")) is True
    assert await store.add_dead_letter(letter("u1")) is False
    assert await store.add_dead_letter(letter("u2")) is True
    assert await store.add_dead_letter(letter("u3", "other")) is True
    assert [d.uid for d in await store.dead_letters()] == ["u1", "u2", "u3"]
    assert [d.uid for d in await store.dead_letters("acme", limit=1)] == ["u1"]
    assert await store.dead_letters("acme") == [letter("u1"), letter("u2")]


async def test_dead_letters_keep_hostile_text(store: Store) -> None:
    raw = '{"message": "\ud800 lone surrogate"}'
    letter = DeadLetter("acme", "logs", "s\ud800", "u", "bad \ud800", raw, 1.0)
    assert await store.add_dead_letter(letter) is True
    (kept,) = await store.dead_letters()
    assert "\\ud800" in kept.raw
    assert "\\ud800" in kept.reason
    assert kept.session_id == "s\\ud800"
    nul = DeadLetter("acme", "logs", "s", "u-nul", "nul", "a\x00b", 1.0)
    assert await store.add_dead_letter(nul) is True
    assert len(await store.dead_letters()) == 2
    # Both backends keep the same text: NUL (which PostgreSQL refuses) escaped on SQLite too,
    # and the uid (an id from Daily's data for some sources) made storable like the rest.
    hostile_uid = DeadLetter("acme", "logs", "s", "id\x00\udfff", "r", "{}", 1.0)
    assert await store.add_dead_letter(hostile_uid) is True
    assert await store.add_dead_letter(hostile_uid) is False  # the same letter, once
    kept_all = await store.dead_letters()
    assert [d.raw for d in kept_all][1] == "a\\u0000b"
    assert kept_all[2].uid == "id\\u0000\\udfff"


async def test_session_rows_and_reset(store: Store) -> None:
    await store.load_domain("acme", 0)
    await store.load_domain("beta", 0)
    await store.commit(
        "acme",
        {
            "logs": [
                CursorUpdate(cursor("s2", drained_until_ms=7), new_seen=[("a", 1), ("b", 2)]),
                CursorUpdate(cursor("s1", ended_at_ms=3)),
            ]
        },
    )
    await store.commit("beta", {"logs": [CursorUpdate(cursor("s9"))]})
    rows = await store.session_rows()
    assert [(r.domain, r.session_id, r.seen, r.drained_until_ms) for r in rows] == [
        ("acme", "s1", 0, None),
        ("acme", "s2", 2, 7),
        ("beta", "s9", 0, None),
    ]
    assert [r.session_id for r in await store.session_rows("beta")] == ["s9"]
    assert await store.reset("acme", "s2") == 1
    assert [r.session_id for r in await store.session_rows("acme")] == ["s1"]
    assert await store.reset("acme") == 1
    assert await store.domains() == ["beta"]
    assert await store.session_rows("acme") == []
    assert await store.reset("nope") == 0


async def test_leases_of_an_unleased_store_are_empty(store: Store) -> None:
    assert await store.leases() == {}
