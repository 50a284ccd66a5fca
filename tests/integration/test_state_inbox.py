"""Source positions and the webhook inbox: the same contract on SQLite, PostgreSQL and (what
does not need a reopen) the in-memory store.

Positions move only with a commit; an inbox event is accepted once per de-duplication window,
waits until a commit says it was exported (in that commit's transaction), and then stays
remembered until its window has passed. Fencing of `inbox_done` is in `test_leases.py`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state.base import CursorStore, CursorUpdate, InboxEvent, StateError
from daily_otel_bridge.state.memory import MemoryCursorStore
from daily_otel_bridge.state.postgres import PostgresStateStore
from daily_otel_bridge.state.sql import INBOX_PRUNE_EVERY
from daily_otel_bridge.state.sqlite import SqliteCursorStore, SqliteStateStore

WINDOW = 600.0  # seconds: the de-duplication window of these tests
T0 = 1_700_000_000.0


class Backend:
    """Opens the store of one backend, again and again on the same data (a restart), and
    counts its inbox rows behind its back."""

    def __init__(self, kind: str, tmp_path: Path, dsn: str | None) -> None:
        self.kind = kind
        self.path = tmp_path / "state.db"
        self.dsn = dsn
        self.memory = MemoryCursorStore()

    async def open(self) -> CursorStore:
        if self.kind == "sqlite":
            return SqliteStateStore(SqliteCursorStore(self.path))
        if self.kind == "postgres":
            assert self.dsn is not None
            return await PostgresStateStore.open(self.dsn)
        return self.memory

    def inbox_rows(self) -> int:
        """Rows in the inbox table, pending or remembered."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                return int(db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
        if self.kind == "postgres":
            assert self.dsn is not None
            with psycopg.connect(self.dsn) as conn:
                row = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()
                assert row is not None
                return int(row[0])
        return sum(len(events) for events in self.memory.inbox.values())


def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    return Backend(request.param, tmp_path, dsn)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The two persistent backends."""
    return make_backend(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CursorStore]:
    """Any store: what the pipeline and the receiver may be given."""
    opened = await make_backend(request, tmp_path).open()
    try:
        yield opened
    finally:
        await opened.close()


@asynccontextmanager
async def opened(backend: Backend) -> AsyncIterator[CursorStore]:
    store = await backend.open()
    try:
        yield store
    finally:
        await store.close()


def update(session: str, **kw: int) -> CursorUpdate:
    return CursorUpdate(SessionCursor(session, "room", 0, **kw))


async def pending_ids(store: CursorStore, domain: str = "acme") -> list[str]:
    return [e.event_id for e in await store.inbox_pending(domain, 100)]


# -- positions ----------------------------------------------------------------------------


async def test_positions_round_trip_and_move_only_with_a_commit(store: CursorStore) -> None:
    await store.load_domain("acme", 0)
    assert await store.load_positions("acme") == {}
    await store.commit("acme", {}, positions={"api": "log-5"})
    assert await store.load_positions("acme") == {"api": "log-5"}
    await store.commit("acme", {"logs": [update("s1")]}, positions={"api": "log-9", "x": "p"})
    assert await store.load_positions("acme") == {"api": "log-9", "x": "p"}
    # A commit naming no position keeps them; another domain has its own.
    await store.commit("acme", {"logs": [update("s1")]})
    assert await store.load_positions("acme") == {"api": "log-9", "x": "p"}
    assert await store.load_positions("other") == {}


async def test_a_failed_commit_moves_no_position_and_exports_no_event(backend: Backend) -> None:
    async with opened(backend) as store:
        await failed_commit_writes_nothing(store)


async def failed_commit_writes_nothing(store: CursorStore) -> None:
    await store.load_domain("acme", 0)
    await store.commit("acme", {}, positions={"api": "log-1"})
    assert await store.inbox_add("acme", "e1", b"{}", T0, WINDOW) is True
    # A watermark no 64-bit column can hold: the statement fails after the position and
    # the inbox were written in the same transaction (they go first): all of it goes.
    bad = update("bad", watermark_ns=2**70)
    with pytest.raises((StateError, OverflowError)):
        await store.commit("acme", {"logs": [bad]}, positions={"api": "log-2"}, inbox_done=["e1"])
    assert await store.load_positions("acme") == {"api": "log-1"}
    assert await pending_ids(store) == ["e1"]
    assert await store.load_cursors("acme", "logs") == {}


# -- the inbox ----------------------------------------------------------------------------


async def test_a_repeat_within_the_window_is_refused_after_it_accepted_again(
    store: CursorStore,
) -> None:
    assert await store.inbox_add("acme", "e1", b'{"a": 1}', T0, WINDOW) is True
    assert await store.inbox_add("acme", "e1", b'{"a": 1}', T0 + 1, WINDOW) is False
    assert await store.inbox_add("acme", "e1", b"{}", T0 + WINDOW - 0.5, WINDOW) is False
    # Per domain: the same id pushed for another domain is another event.
    assert await store.inbox_add("beta", "e1", b"{}", T0 + 1, WINDOW) is True
    assert await store.inbox_pending("acme", 10) == [InboxEvent("e1", b'{"a": 1}', T0)]
    # The window counts from the acceptance: after it, the id is accepted anew (once).
    assert await store.inbox_add("acme", "e1", b'{"a": 2}', T0 + WINDOW, WINDOW) is True
    assert await store.inbox_pending("acme", 10) == [InboxEvent("e1", b'{"a": 2}', T0 + WINDOW)]
    assert await store.inbox_add("acme", "e1", b"{}", T0 + WINDOW + 1, WINDOW) is False


async def test_pending_events_come_oldest_first_with_their_body(store: CursorStore) -> None:
    assert await store.inbox_stats("acme") == (0, None)
    await store.inbox_add("acme", "late", b"\x00\xffbinary", T0 + 2, WINDOW)
    await store.inbox_add("acme", "early", '{"text": "é"}', T0, WINDOW)
    await store.inbox_add("acme", "middle", b"{}", T0 + 1, WINDOW)
    assert await store.inbox_pending("acme", 10) == [
        InboxEvent("early", '{"text": "é"}'.encode(), T0),
        InboxEvent("middle", b"{}", T0 + 1),
        InboxEvent("late", b"\x00\xffbinary", T0 + 2),
    ]
    assert await pending_ids(store) == ["early", "middle", "late"]
    assert [e.event_id for e in await store.inbox_pending("acme", 2)] == ["early", "middle"]
    assert await store.inbox_stats("acme") == (3, T0)
    assert await store.inbox_pending("beta", 10) == []


async def test_inbox_done_takes_events_out_and_keeps_their_ids(store: CursorStore) -> None:
    await store.load_domain("acme", 0)
    for i, event in enumerate(["e1", "e2", "e3"]):
        assert await store.inbox_add("acme", event, b"{}", T0 + i, WINDOW)
    await store.commit("acme", {"logs": [update("s1")]}, inbox_done=["e1", "e3", "unknown"])
    assert await pending_ids(store) == ["e2"]
    assert await store.inbox_stats("acme") == (1, T0 + 1)
    assert list(await store.load_cursors("acme", "logs")) == ["s1"]
    # Exported, and still remembered: Daily's retry of it is a repeat.
    assert await store.inbox_add("acme", "e1", b"{}", T0 + 10, WINDOW) is False
    assert await pending_ids(store) == ["e2"]
    # Once the window has passed, the same id is a new event.
    assert await store.inbox_add("acme", "e1", b"{}", T0 + WINDOW, WINDOW) is True
    assert await pending_ids(store) == ["e2", "e1"]
    # Discovery's commit alone takes events out too.
    await store.commit("acme", {}, discovered_until_ms=5, inbox_done=["e2", "e1"])
    assert await store.inbox_stats("acme") == (0, None)


async def test_exported_ids_are_pruned_once_their_window_passed(backend: Backend) -> None:
    async with opened(backend) as store:
        await store.load_domain("acme", 0)
        await store.inbox_add("acme", "old", b"{}", T0, WINDOW)
        await store.inbox_add("acme", "waiting", b"{}", T0 + 1, WINDOW)
        await store.commit("acme", {}, inbox_done=["old"])
        assert backend.inbox_rows() == 2
        # Later than the window and than the pruning period: the exported id goes, the
        # pending event (however old) stays.
        later = T0 + WINDOW + INBOX_PRUNE_EVERY + 1
        assert await store.inbox_add("acme", "new", b"{}", later, WINDOW) is True
        assert backend.inbox_rows() == 2
        assert await pending_ids(store) == ["waiting", "new"]


async def test_hostile_event_ids_are_stored_and_recognised(store: CursorStore) -> None:
    await store.load_domain("acme", 0)
    for event in ["nul\x00id", "lone \ud800 surrogate"]:
        assert await store.inbox_add("acme", event, b"{}", T0, WINDOW) is True
        assert await store.inbox_add("acme", event, b"{}", T0 + 1, WINDOW) is False
    assert len(await store.inbox_pending("acme", 10)) == 2
    await store.commit("acme", {}, inbox_done=["nul\x00id", "lone \ud800 surrogate"])
    assert await store.inbox_stats("acme") == (0, None)


async def test_everything_survives_a_restart(backend: Backend) -> None:
    async with opened(backend) as store:
        await store.load_domain("acme", 0)
        await store.inbox_add("acme", "e1", b"one", T0, WINDOW)
        await store.inbox_add("acme", "e2", b"two", T0 + 1, WINDOW)
        await store.commit("acme", {}, positions={"api": "log-7"}, inbox_done=["e1"])
    async with opened(backend) as store:
        assert await store.load_positions("acme") == {"api": "log-7"}
        assert await store.inbox_pending("acme", 10) == [InboxEvent("e2", b"two", T0 + 1)]
        assert await store.inbox_add("acme", "e1", b"one", T0 + 2, WINDOW) is False


async def test_reset_of_a_domain_clears_its_inbox_and_positions(backend: Backend) -> None:
    store = await backend.open()
    assert isinstance(store, SqliteStateStore | PostgresStateStore)  # a StateAdmin too
    try:
        for domain in ("acme", "beta"):
            await store.load_domain(domain, 0)
            await store.inbox_add(domain, "e1", b"{}", T0, WINDOW)
            await store.commit(domain, {"logs": [update("s1")]}, positions={"api": "p"})
        # One session: cursors only.
        assert await store.reset("acme", "s1") == 1
        assert await store.load_positions("acme") == {"api": "p"}
        assert await store.inbox_stats("acme") == (1, T0)
        # The domain: positions and inbox too (counted in the rows removed).
        assert await store.reset("acme") == 2
        assert await store.load_positions("acme") == {}
        assert await store.inbox_stats("acme") == (0, None)
        assert await store.inbox_add("acme", "e1", b"{}", T0 + 1, WINDOW) is True
        assert await store.load_positions("beta") == {"api": "p"}
        assert await store.inbox_stats("beta") == (1, T0)
    finally:
        await store.close()


# -- speed --------------------------------------------------------------------------------


async def accept_latencies(
    store: CursorStore, rate: float, seconds: float, busy: Callable[[], Awaitable[None]]
) -> list[float]:
    """Accept `rate` events/s for `seconds` while `busy` commits alongside; each latency
    from when the event was due (so time spent behind a commit counts) to its answer."""
    latencies: list[float] = []
    start = time.perf_counter()

    async def accept(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await store.inbox_add("acme", f"evt-{i}", b'{"type": "x"}' * 20, T0 + i / rate, WINDOW)
        latencies.append(time.perf_counter() - due)

    stop = asyncio.Event()

    async def committer() -> None:
        while not stop.is_set():
            await busy()
            await asyncio.sleep(0.05)

    background = asyncio.create_task(committer())
    try:
        await asyncio.gather(*(accept(i) for i in range(int(rate * seconds))))
    finally:
        stop.set()
        await background
    return sorted(latencies)


async def test_accepting_goes_on_while_the_pipeline_commits(backend: Backend) -> None:
    """Events accepted at 200/s beside a commit every 50 ms are all kept, once each, and
    the commits go on. How fast an accept is, is a benchmark's business
    (`bench/webhooks_accept.py`), never a timed assertion here: machines are noisy."""
    async with opened(backend) as store:
        await store.load_domain("acme", 0)
        batch = 0

        async def commit_a_batch() -> None:
            nonlocal batch
            batch += 1
            # An export of 200 records every 50 ms: busier than any real domain.
            seen = [(f"u{batch}-{i}", i) for i in range(200)]
            changes = {"logs": [CursorUpdate(SessionCursor("s", "r", 0), new_seen=seen)]}
            done = [e.event_id for e in await store.inbox_pending("acme", 100)]
            await store.commit("acme", changes, inbox_done=done)

        # Warm: the first statements of a connection are slower (plans, caches).
        for i in range(20):
            await store.inbox_add("acme", f"warm-{i}", b"{}", T0 - 1, WINDOW)
        await commit_a_batch()
        latencies = await accept_latencies(store, rate=200, seconds=3, busy=commit_a_batch)
        assert len(latencies) == 600
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"accept p99 {p99 * 1000:.1f} ms beside {batch} commits")  # for -s readers
        assert batch >= 10
        # Every accepted event is still waiting or left the inbox in a commit, once.
        pending = {e.event_id for e in await store.inbox_pending("acme", 10_000)}
        for i in range(600):
            assert not await store.inbox_add("acme", f"evt-{i}", b"{}", T0 + 1, WINDOW), (
                f"evt-{i} was forgotten"
            )
        assert pending <= {f"evt-{i}" for i in range(600)} | {f"warm-{i}" for i in range(20)}
