"""Leases, heartbeats and fencing against a real PostgreSQL (state/leases.py, postgres.py).

Short leases (about a second) keep these tests quick; every rule is the same at 30 s.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state.base import CursorUpdate, DeadLetter, LeaseLost, StateError
from daily_otel_bridge.state.leases import (
    CLAIM_LOCK_TIMEOUT,
    DomainTasks,
    LeaseManager,
    LeaseMetrics,
    OwnershipListener,
    ReplicaIdInUse,
    ownership_readiness,
)
from daily_otel_bridge.state.postgres import SCHEMA_VERSION, PostgresStateStore
from daily_otel_bridge.testing.pg_server import pg_server

DOMAINS = ["a", "b", "c", "d"]
StoreFactory = Callable[[], Awaitable[PostgresStateStore]]
LEASE = 1.5


@dataclass
class Recorder:
    """The pipeline side: which domains run where, and when."""

    name: str
    running: dict[str, int] = field(default_factory=dict)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    drain_delay: float = 0.0

    async def acquired(self, domain: str, epoch: int) -> None:
        self.running[domain] = epoch
        self.events.append((time.monotonic(), self.name, domain, "start"))

    async def lost(self, domain: str, reason: str) -> None:
        self.running.pop(domain, None)
        self.events.append((time.monotonic(), self.name, domain, "lost"))

    async def drain(self, domain: str) -> None:
        await asyncio.sleep(self.drain_delay)
        self.running.pop(domain, None)
        self.events.append((time.monotonic(), self.name, domain, "drained"))


async def wait_for(predicate: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def no_overlap(*recorders: Recorder) -> None:
    """Never two replicas running one domain at the same time."""
    events = sorted(e for r in recorders for e in r.events)
    runner: dict[str, str] = {}
    for _, who, domain, what in events:
        if what == "start":
            assert domain not in runner, f"{domain} started on {who} while on {runner[domain]}"
            runner[domain] = who
        elif runner.get(domain) == who:
            del runner[domain]


@pytest.fixture
async def stores(pg_dsn: str) -> AsyncIterator[StoreFactory]:
    opened: list[PostgresStateStore] = []

    async def make() -> PostgresStateStore:
        store = await PostgresStateStore.open(pg_dsn)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def manager(
    make: StoreFactory,
    name: str,
    listener: OwnershipListener,
    *,
    lease: float = LEASE,
    scan_interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LeaseManager:
    return LeaseManager(
        await make(), name, DOMAINS, lease, listener, scan_interval=scan_interval, clock=clock
    )


async def test_concurrent_start_ups_migrate_once(pg_dsn: str) -> None:
    stores = await asyncio.gather(*(PostgresStateStore.open(pg_dsn) for _ in range(6)))
    try:
        assert {await s.schema_version() for s in stores} == {SCHEMA_VERSION}
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert await stores[0].migrate() == 0  # idempotent
    finally:
        for s in stores:
            await s.close()


async def test_a_newer_schema_is_refused(pg_dsn: str) -> None:
    store = await PostgresStateStore.open(pg_dsn)
    await store.close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (999, 'x')")
    with pytest.raises(StateError, match="newer than this program"):
        await PostgresStateStore.open(pg_dsn)


async def test_alone_a_replica_owns_everything_then_shares_with_a_second(
    stores: StoreFactory,
) -> None:
    ra, rb = Recorder("A"), Recorder("B")
    a = await manager(stores, "A", ra)
    b = await manager(stores, "B", rb)
    try:
        await a.start(settle=0)
        assert sorted(ra.running) == DOMAINS
        assert a.status().owned.keys() == set(DOMAINS)
        await b.start(settle=0)
        assert await wait_for(lambda: len(ra.running) == 2 and len(rb.running) == 2, 10)
        assert set(ra.running).isdisjoint(rb.running)
        # The handed-over domains were drained first, then claimed with a higher epoch.
        assert {e[2] for e in ra.events if e[3] == "drained"} == set(rb.running)
        assert all(epoch == 2 for epoch in rb.running.values())
        leases = await a.store.leases()
        assert {d: lease.owner for d, lease in leases.items()} == {
            **{d: "A" for d in ra.running},
            **{d: "B" for d in rb.running},
        }
        ready, body = ownership_readiness(b.status())
        assert ready
        assert body["standby"] is False
        assert body["live_replicas"] == 2
    finally:
        await a.close()
        await b.close()
    no_overlap(ra, rb)


async def test_sigkill_like_stop_then_takeover_after_expiry_with_a_new_epoch(
    stores: StoreFactory,
) -> None:
    ra, rb = Recorder("A"), Recorder("B")
    a = await manager(stores, "A", ra)
    b = await manager(stores, "B", rb, scan_interval=0.2)
    await a.start(settle=0)
    await b.start(settle=0)
    assert await wait_for(lambda: len(rb.running) == 2, 10)
    epochs_a = dict(ra.running)
    killed_at = time.monotonic()
    await a.close()  # no release: the leases stay until they expire
    ra.events += [(killed_at, "A", d, "killed") for d in ra.running]
    try:
        assert await wait_for(lambda: len(rb.running) == 4, LEASE + 5)
        took = time.monotonic() - killed_at
        assert took <= LEASE + 0.2 + 1.0, took
        for domain, epoch in epochs_a.items():
            assert rb.running[domain] == epoch + 1
    finally:
        await b.close()
    no_overlap(ra, rb)


async def test_sigterm_releases_after_the_drain_and_a_peer_takes_over_at_once(
    stores: StoreFactory,
) -> None:
    ra, rb = Recorder("A", drain_delay=0.3), Recorder("B")
    a = await manager(stores, "A", ra, lease=30.0)
    b = await manager(stores, "B", rb, lease=30.0, scan_interval=0.2)
    await a.start(settle=0)
    await b.start(settle=0)
    assert await wait_for(lambda: len(rb.running) == 2, 10)
    stopped_at = time.monotonic()
    await a.shutdown()
    try:
        # A 30 s lease, yet the takeover takes a scan, not an expiry.
        assert await wait_for(lambda: len(rb.running) == 4, 5)
        assert time.monotonic() - stopped_at < 0.3 + 2.0
        assert not ra.running
        with psycopg.connect(b.store._url) as conn:
            live = conn.execute("SELECT replica_id FROM replicas").fetchall()
        assert live == [("B",)]
    finally:
        await b.close()
    no_overlap(ra, rb)


async def test_a_commit_with_a_stale_epoch_raises_lease_lost_and_writes_nothing(
    stores: StoreFactory, pg_dsn: str
) -> None:
    ra = Recorder("A")
    a = await manager(stores, "A", ra, lease=30.0)
    await a.start(settle=0)
    try:
        store = a.store
        await store.load_domain("a", 0)
        update = CursorUpdate(SessionCursor("s1", "room", 0), new_seen=[("u", 1)])
        await store.commit("a", {"logs": [update]})
        # A peer took the domain over (A was paused): epoch bumped, another owner.
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE leases SET owner='B', epoch=epoch+1 WHERE domain='a'")
        late = CursorUpdate(SessionCursor("s2", "room", 0), new_seen=[("v", 2)])
        with pytest.raises(LeaseLost, match="nothing was written"):
            await store.commit("a", {"logs": [late]}, discovered_until_ms=99)
        assert "a" not in ra.running, "the domain was stopped"
        assert a.epoch_of("a") is None
        assert sorted(await store.load_cursors("a", "logs")) == ["s1"]
        assert (await store.load_domain("a", 0)).discovered_until_ms is None
        # Every write of that domain is fenced, not only commits.
        with pytest.raises(LeaseLost):
            await store.add_dead_letter(DeadLetter("a", "logs", "s", "u", "r", "{}", 1.0))
        with pytest.raises(LeaseLost):
            await store.forget_retired("a", "logs", 10)
        assert await store.dead_letters() == []
        # Other domains are unaffected.
        await store.commit("b", {"logs": [update]})
    finally:
        await a.close()


async def test_inbox_done_is_fenced_while_accepting_needs_no_lease(
    stores: StoreFactory, pg_dsn: str
) -> None:
    ra = Recorder("A")
    a = await manager(stores, "A", ra, lease=30.0)
    await a.start(settle=0)
    try:
        store = a.store
        assert isinstance(store, PostgresStateStore)
        # Any replica accepts for any domain: this one owns no "elsewhere".
        assert await store.inbox_add("elsewhere", "w1", b"{}", 1.0, 60.0) is True
        await store.load_domain("a", 0)
        for event in ("e1", "e2"):
            assert await store.inbox_add("a", event, b"{}", 1.0, 60.0) is True
        await store.commit("a", {}, positions={"api": "p1"}, inbox_done=["e1"])
        assert [e.event_id for e in await store.inbox_pending("a", 10)] == ["e2"]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE leases SET owner='B', epoch=epoch+1 WHERE domain='a'")
        with pytest.raises(LeaseLost, match="nothing was written"):
            await store.commit("a", {}, positions={"api": "p2"}, inbox_done=["e2"])
        assert [e.event_id for e in await store.inbox_pending("a", 10)] == ["e2"]
        assert await store.load_positions("a") == {"api": "p1"}
        # Still accepting for the domain it lost: the new owner exports it.
        assert await store.inbox_add("a", "e3", b"{}", 2.0, 60.0) is True
        assert await store.inbox_stats("a") == (2, 1.0)
    finally:
        await a.close()


async def test_same_owner_but_an_older_epoch_is_fenced_too(
    stores: StoreFactory, pg_dsn: str
) -> None:
    """A replica restarted under the same id (same host name and pid in a container) must
    not commit with the epoch of its previous life."""
    ra = Recorder("A")
    a = await manager(stores, "A", ra, lease=30.0)
    await a.start(settle=0)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE leases SET epoch=epoch+1 WHERE domain='c'")
        with pytest.raises(LeaseLost, match="epoch moved"):
            await a.store.commit("c", {"logs": []}, discovered_until_ms=1)
    finally:
        await a.close()


async def test_a_frozen_replica_commits_nothing_after_its_local_deadline(
    stores: StoreFactory,
) -> None:
    """SIGSTOP past the deadline: on waking, the monotonic clock has jumped; the commit is
    refused before any round trip, and the domains are reported lost. (PostgreSQL did not
    move here, so the leases are still this replica's: it takes them back at a new epoch,
    restarting the domains from the committed cursors. With a real freeze past the lease a
    peer has them: tests/e2e/test_replicas_e2e.py.)"""
    now = [1000.0]
    ra = Recorder("A")
    a = await manager(stores, "A", ra, lease=30.0, clock=lambda: now[0])
    await a.start(settle=0)
    try:
        assert a.epoch_of("a") == 1
        now[0] += 30.0  # the freeze
        with pytest.raises(LeaseLost):
            await a.store.commit("a", {"logs": []}, discovered_until_ms=1)
        with pytest.raises(LeaseLost):
            a.check("b")
        assert await wait_for(lambda: any(e[3] == "lost" for e in ra.events), 2)
        assert await wait_for(lambda: ra.running == {d: 2 for d in DOMAINS}, 5)
        assert (await a.store.load_domain("a", 0)).discovered_until_ms is None
    finally:
        await a.close()
    metrics = a.metrics.registry.get_sample_value(
        "daily_otel_bridge_lease_losses_total", {"replica": "A", "reason": "deadline"}
    )
    assert metrics == 4


async def test_a_replica_frozen_inside_a_commit_does_not_block_the_takeover(pg_dsn: str) -> None:
    """Frozen between two statements of a fenced commit, a replica holds its lease row's
    lock. PostgreSQL ends that idle transaction (the store's idle_transaction_timeout), so a
    peer claims the expired lease within lease + timeout + a scan, not when the frozen
    process wakes."""
    ra, rb = Recorder("A"), Recorder("B")
    store_a = await PostgresStateStore.open(pg_dsn, idle_transaction_timeout=LEASE / 4)
    store_b = await PostgresStateStore.open(pg_dsn, idle_transaction_timeout=LEASE / 4)
    a = LeaseManager(store_a, "A", DOMAINS, LEASE, ra)
    b = LeaseManager(store_b, "B", DOMAINS, LEASE, rb, scan_interval=0.2)
    frozen = asyncio.Event()

    async def freeze_mid_transaction(conn: psycopg.AsyncConnection[Any]) -> None:
        frozen.set()
        await asyncio.sleep(3600)  # never resumes within the test

    try:
        await a.start(settle=0)
        assert a.epoch_of("a") == 1
        hung = asyncio.create_task(store_a._fenced_write("a", freeze_mid_transaction))
        await asyncio.wait_for(frozen.wait(), 5)
        frozen_at = time.monotonic()
        await a.close()  # no heartbeat, no renewal: as SIGSTOP
        await b.start(settle=0)
        assert await wait_for(lambda: "a" in rb.running, LEASE + 5)
        took = time.monotonic() - frozen_at
        assert took <= LEASE + LEASE / 4 + 0.2 + 1.5, took
        hung.cancel()
        await asyncio.gather(hung, return_exceptions=True)
    finally:
        await b.close()
        await store_a.close()
        await store_b.close()


async def test_a_lock_no_server_timeout_ends_is_ended_by_the_claimant(pg_dsn: str) -> None:
    """Frozen in the middle of a pipelined statement, a replica's transaction is 'active'
    for PostgreSQL, which then applies no timeout. The peer claiming the expired lease
    ends the transactions its expired owner began before the expiry, and takes over.
    (Here: a connection under A's application_name holding the row, with no timeout.)"""
    ra, rb = Recorder("A"), Recorder("B")
    a = LeaseManager(await PostgresStateStore.open(pg_dsn), "A", DOMAINS, LEASE, ra)
    b = LeaseManager(await PostgresStateStore.open(pg_dsn), "B", DOMAINS, LEASE, rb)
    stuck = await psycopg.AsyncConnection.connect(pg_dsn, application_name="daily-otel-bridge A")
    try:
        await a.start(settle=0)
        await stuck.execute("BEGIN")
        await stuck.execute("SELECT 1 FROM leases WHERE domain='a' FOR UPDATE")
        frozen_at = time.monotonic()
        await a.close()
        await b.start(settle=0)
        assert await wait_for(lambda: "a" in rb.running, LEASE + 8)
        took = time.monotonic() - frozen_at
        assert took <= LEASE + CLAIM_LOCK_TIMEOUT + 2 * b.scan_interval + 1.0, took
        with pytest.raises(psycopg.OperationalError):
            await stuck.execute("SELECT 1")  # its backend was ended
    finally:
        await b.close()
        await stuck.close()
        await a.store.close()
        await b.store.close()


async def test_unreachable_postgres_stops_domains_before_expiry_and_recovers(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Its own server, stopped and started again: the deadline fires before PostgreSQL's
    expiry could, readiness turns false, and the replica claims its domains back."""
    lease = 3.0
    with pg_server(max_seconds=300) as server:
        dsn = server.create_database("outage")
        store = await PostgresStateStore.open(dsn)
        ra = Recorder("A")
        metrics = LeaseMetrics()
        a = LeaseManager(store, "A", DOMAINS, lease, ra, metrics=metrics, scan_interval=0.3)
        await a.start(settle=0)
        try:
            assert sorted(ra.running) == DOMAINS
            await asyncio.to_thread(server.stop)
            down_at = time.monotonic()
            assert await wait_for(lambda: not ra.running, lease + 2)
            stopped_after = time.monotonic() - down_at
            assert stopped_after < lease, stopped_after  # before any expiry
            assert await wait_for(lambda: not a.status().state_store_reachable, 5)
            assert ownership_readiness(a.status())[0] is False
            await asyncio.sleep(lease)  # well past expiry: the server's leases are void
            await asyncio.to_thread(server.start)
            assert await wait_for(lambda: sorted(ra.running) == DOMAINS, 20)
            assert all(epoch == 2 for epoch in ra.running.values())
            assert ownership_readiness(a.status())[0] is True
            await store.commit("a", {"logs": []}, discovered_until_ms=5)
        finally:
            await a.close()
            await store.close()
    no_overlap(ra)
    # Everything logged meanwhile (ours, and the pool's own warnings): no password.
    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert "state store unreachable" in logged
    assert server.password not in logged


async def test_a_commit_rides_out_a_short_postgres_restart() -> None:
    with pg_server(max_seconds=300) as server:
        dsn = server.create_database("restart")
        store = await PostgresStateStore.open(dsn)
        ra = Recorder("A")
        a = LeaseManager(store, "A", DOMAINS, 30.0, ra, scan_interval=0.5)
        await a.start(settle=0)
        try:
            await store.load_domain("a", 0)
            await asyncio.to_thread(server.restart, down_for=1.0)
            # Pooled connections are dead now; the write is retried on fresh ones.
            update = CursorUpdate(SessionCursor("s1", "room", 0), new_seen=[("u", 1)])
            await store.commit("a", {"logs": [update]}, discovered_until_ms=7)
            assert list(await store.load_cursors("a", "logs")) == ["s1"]
            assert "a" in ra.running
            # Reads too (a domain acquired right after a restart loads its cursors).
            await asyncio.to_thread(server.restart, down_for=1.0)
            assert list(await store.load_cursors("a", "logs")) == ["s1"]
            assert (await store.load_domain("a", 0)).discovered_until_ms == 7
        finally:
            await a.close()
            await store.close()


async def test_connection_errors_never_show_the_password(pg_server_session: object) -> None:
    from daily_otel_bridge.testing.pg_server import PgServer

    assert isinstance(pg_server_session, PgServer)
    wrong = pg_server_session.dsn("postgres").replace(
        pg_server_session.password, "Wr0ngPassw0rdSecret"
    )
    with pytest.raises(StateError) as info:
        await PostgresStateStore.open(wrong, connect_timeout=3)
    assert "Wr0ngPassw0rdSecret" not in str(info.value)
    assert pg_server_session.password not in str(info.value)
    assert f"127.0.0.1:{pg_server_session.port}/postgres" in str(info.value)


async def test_domain_tasks_drain_on_rebalance_and_never_overlap(stores: StoreFactory) -> None:
    """DomainTasks between the manager and a fake domain loop that 'reads' in steps and
    finishes its step when asked to stop: hand-overs wait for the step, losses cancel."""
    reads: list[tuple[str, str, float, float]] = []

    def main_for(who: str) -> Callable[[str, int, asyncio.Event], Awaitable[None]]:
        async def main(domain: str, epoch: int, stop: asyncio.Event) -> None:
            while not stop.is_set():
                started = time.monotonic()
                await asyncio.sleep(0.05)  # a request, an export: not interrupted by drain
                reads.append((domain, who, started, time.monotonic()))

        return main

    tasks_a, tasks_b = DomainTasks(main_for("A")), DomainTasks(main_for("B"))
    a = await manager(stores, "A", tasks_a)
    b = await manager(stores, "B", tasks_b, scan_interval=0.2)
    await a.start(settle=0)
    assert tasks_a.running == DOMAINS
    await b.start(settle=0)
    try:
        assert await wait_for(lambda: len(tasks_b.running) == 2, 10)
        assert len(tasks_a.running) == 2
        await asyncio.sleep(0.5)
        await a.shutdown()
        assert await wait_for(lambda: tasks_b.running == DOMAINS, 5)
        assert tasks_a.running == []
    finally:
        await a.close()
        await b.close()
        await tasks_a.close()
        await tasks_b.close()
    for d in DOMAINS:
        steps = sorted((s, e, who) for dom, who, s, e in reads if dom == d)
        for (_s1, e1, w1), (s2, _, w2) in itertools.pairwise(steps):
            if w1 != w2:
                assert s2 >= e1, f"{d}: {w2} read at {s2} while {w1} read until {e1}"


async def test_open_state_picks_the_backend_from_the_settings(tmp_path: Path, pg_dsn: str) -> None:
    from daily_otel_bridge.config.settings import parse_settings
    from daily_otel_bridge.state.factory import open_state
    from daily_otel_bridge.state.sqlite import SqliteStateStore

    domains = [{"name": d, "api_key": "k-123456789"} for d in DOMAINS]
    sqlite = await open_state(
        parse_settings({"state_path": str(tmp_path / "s.db"), "domains": domains}, environ={})
    )
    assert isinstance(sqlite.store, SqliteStateStore)
    assert (sqlite.leases, sqlite.replica_id) == (None, None)
    await sqlite.close()

    settings = parse_settings(
        {"state_url": pg_dsn, "replica_id": "pod-1", "lease_duration": "9s", "domains": domains},
        environ={},
    )
    with pytest.raises(ValueError, match="OwnershipListener"):
        await open_state(settings)
    from daily_otel_bridge.instruments import BridgeMetrics

    bridge_metrics = BridgeMetrics()  # the lease metrics join the bridge's registry
    backend = await open_state(settings, Recorder("pod-1"), registry=bridge_metrics.registry)
    try:
        assert isinstance(backend.store, PostgresStateStore)
        assert backend.leases is not None
        assert backend.replica_id == backend.leases.replica_id == "pod-1"
        assert backend.leases.lease_duration == 9.0
        assert backend.leases.domains == DOMAINS
        assert backend.store.fence is backend.leases
        await backend.leases.start(settle=0)
        registry = bridge_metrics.registry
        assert (
            registry.get_sample_value("daily_otel_bridge_domains_owned", {"replica": "pod-1"}) == 4
        )
    finally:
        await backend.close()


async def test_a_second_process_with_the_same_replica_id_is_refused(stores: StoreFactory) -> None:
    first = await manager(stores, "dup", Recorder("dup-1"))
    second = await manager(stores, "dup", Recorder("dup-2"), lease=1.5)
    await first.start(settle=0)
    try:
        started = time.monotonic()
        with pytest.raises(ReplicaIdInUse, match="give each replica its own replica_id"):
            await second.start(settle=0)
        # It waited for a previous life's heartbeat to expire first, then gave up.
        assert time.monotonic() - started >= 1.5
    finally:
        await first.close()
        await second.close()


async def test_a_restart_under_the_same_id_takes_over_once_the_old_heartbeat_expires(
    stores: StoreFactory,
) -> None:
    old = Recorder("old")
    before = await manager(stores, "pod-0", old)
    await before.start(settle=0)
    epochs = {d: e for d, e in old.running.items()}
    await before.close()  # killed: heartbeat and leases stay until they expire
    new = Recorder("new")
    after = await manager(stores, "pod-0", new, scan_interval=0.2)
    try:
        await after.start(settle=0)
        assert await wait_for(lambda: sorted(new.running) == DOMAINS, LEASE + 5)
        for d, epoch in new.running.items():
            assert epoch == epochs[d] + 1
    finally:
        await after.close()


async def test_an_orphaned_lease_of_ours_is_taken_back_at_a_new_epoch(stores: StoreFactory) -> None:
    """The local deadline passed but PostgreSQL still holds the lease for us (an outage
    shorter than the margin): claimed back at once, not after expiry."""
    now = [1000.0]
    rec = Recorder("A")
    a = await manager(stores, "A", rec, lease=30.0, scan_interval=0.2, clock=lambda: now[0])
    await a.start(settle=0)
    try:
        assert rec.running == {d: 1 for d in DOMAINS}
        now[0] += 25.0  # past the local deadline (24 s), not past PostgreSQL's expiry
        assert a.epoch_of("a") is None
        assert await wait_for(lambda: rec.running == {d: 2 for d in DOMAINS}, 5)
    finally:
        await a.close()


@pytest.mark.parametrize("seed", [7, 8])
async def test_random_kills_stops_and_joins_never_overlap_and_end_balanced(
    stores: StoreFactory, seed: int
) -> None:
    """Three to four replicas come and go at random (SIGKILL-like stops, graceful stops,
    new replicas); every domain's reads never overlap, and at the end every domain runs on
    exactly one live replica, shares balanced."""
    rng = random.Random(seed)
    reads: list[tuple[str, str, float, float]] = []

    def main_for(who: str) -> Callable[[str, int, asyncio.Event], Awaitable[None]]:
        async def main(domain: str, epoch: int, stop: asyncio.Event) -> None:
            while not stop.is_set():
                started = time.monotonic()
                await asyncio.sleep(0.03)
                reads.append((domain, who, started, time.monotonic()))

        return main

    live: dict[str, tuple[LeaseManager, DomainTasks]] = {}
    counter = 0

    async def join() -> None:
        nonlocal counter
        counter += 1
        name = f"r{counter}"
        tasks = DomainTasks(main_for(name))
        m = await manager(stores, name, tasks, lease=1.5, scan_interval=0.2)
        await m.start(settle=0.2)
        live[name] = (m, tasks)

    try:
        for _ in range(3):
            await join()
        for _ in range(8):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            action = rng.choice(["kill", "stop", "join"]) if len(live) > 1 else "join"
            if action == "join" or len(live) < 2:
                await join()
                continue
            name = rng.choice(sorted(live))
            m, tasks = live.pop(name)
            if action == "kill":
                # The process is gone: its domain loops with it, its leases stay.
                await m.close()
                await tasks.close()
            else:
                await m.shutdown()

        # Settle: expiries, rebalancing.
        def balanced() -> bool:
            owners = [n for n, (_, t) in live.items() for _ in t.running]
            running = sorted(d for _, t in live.values() for d in t.running)
            counts = sorted(owners.count(n) for n in live)
            return running == DOMAINS and counts[-1] - counts[0] <= 1

        assert await wait_for(balanced, 15), {n: t.running for n, (_, t) in live.items()}
    finally:
        for m, tasks in live.values():
            await m.close()
            await tasks.close()
    for d in DOMAINS:
        steps = sorted((s, e, who) for dom, who, s, e in reads if dom == d)
        assert steps
        for (_s1, e1, w1), (s2, _, w2) in itertools.pairwise(steps):
            if w1 != w2:
                assert s2 >= e1, f"{d}: {w2} read at {s2:.3f} while {w1} read until {e1:.3f}"
