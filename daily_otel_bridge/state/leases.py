"""One owner per domain across replicas: leases with an epoch (fencing token) in PostgreSQL.

The `LeaseManager` keeps a heartbeat row for this replica, claims free or expired domains up
to its fair share (`core.ownership.plan`), renews its leases every `lease_duration / 3` and
gives back what a rebalance or a shutdown asks for, after the domain's in-flight export is
acknowledged. It is also the `Fence` of the PostgreSQL store: `epoch_of(domain)` says which
epoch a commit must still find in the lease row.

Time: expiry is decided by PostgreSQL's clock alone (`clock_timestamp()`), so the replicas'
clocks never need to agree. Locally, each lease has a *deadline* on the monotonic clock:
the start of its last successful renewal + `lease_duration` - a safety margin. The lease in
PostgreSQL cannot expire before that deadline (it was extended after the request was sent),
so a replica that stops a domain at its deadline, without being able to ask PostgreSQL,
has stopped before any peer could take it over. The deadline also covers a replica frozen
(SIGSTOP, a long GC or VM pause): on waking, `epoch_of` already answers None.

The manager calls its `OwnershipListener` (the pipeline side):

* `acquired(domain, epoch)`: start the domain (load its cursors from the store *now*: the
  previous owner's last commit is in, the row lock of the fenced commit sees to that).
* `lost(domain, reason)`: stop the domain at once and return once it is stopped; nothing of
  it may be read, exported or committed any more (a commit would raise `LeaseLost`).
* `drain(domain)`: finish the in-flight export and its commit, start nothing new, stop, and
  return; the lease is released right after (rebalance, SIGTERM), so a peer takes over at
  once instead of after expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg_pool import PoolTimeout

from daily_otel_bridge import __version__
from daily_otel_bridge.core.ownership import LeaseView, plan
from daily_otel_bridge.state.base import LeaseLost, LeaseStore, StateError

log = structlog.get_logger("daily_otel_bridge.state.leases")

PREFIX = "daily_otel_bridge"


class ReplicaIdInUse(StateError):
    """Another live process heartbeats under this replica_id."""


class LeaseRowLocked(Exception):
    """A claim waited too long for a lease row another transaction holds."""


# A claim waits at most this long for a lease row's lock (a commit holds it for
# milliseconds), and never longer than half the statement timeout, so that PostgreSQL's
# answer, not the client's timeout, says why.
CLAIM_LOCK_TIMEOUT = 1.0


def application_name(replica_id: str) -> str:
    """What the replica's connections show in pg_stat_activity (63 bytes at most)."""
    return f"daily-otel-bridge {replica_id}"[:63]


class OwnershipListener(Protocol):
    async def acquired(self, domain: str, epoch: int) -> None: ...

    async def lost(self, domain: str, reason: str) -> None: ...

    async def drain(self, domain: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OwnershipStatus:
    replica_id: str
    owned: dict[str, int]  # domain -> epoch
    state_store_reachable: bool
    live_replicas: int
    last_error_type: str | None

    @property
    def standby(self) -> bool:
        return not self.owned


def ownership_readiness(status: OwnershipStatus) -> tuple[bool, dict[str, Any]]:
    """The replica part of /readyz: ready while PostgreSQL answers, owning domains or not
    (a healthy replica that owns nothing is a standby, ready to take over)."""
    ready = status.state_store_reachable
    return ready, {
        "replica_id": status.replica_id,
        "standby": status.standby,
        "owned_domains": sorted(status.owned),
        "state_store_reachable": status.state_store_reachable,
        "live_replicas": status.live_replicas,
        "last_error_type": status.last_error_type,
    }


DomainMain = Callable[[str, int, asyncio.Event], Awaitable[None]]


class DomainTasks:
    """An `OwnershipListener` that runs one task per owned domain: the glue between the
    `LeaseManager` and whatever runs a domain.

    `main(domain, epoch, stop)` runs the domain until `stop` is set, then returns after its
    in-flight export is acknowledged and committed (`DomainRunner.run(stop)` does exactly
    that). Build a *fresh* pipeline inside it each time: a domain acquired again must load
    the cursors the previous owner committed, not reuse what this replica had in memory.

    * acquired: start `main` in a task;
    * drain (rebalance, SIGTERM): set `stop`, wait for the task;
    * lost: cancel the task at once and wait for it (its commit would be refused anyway).

    `LeaseLost` raised inside `main` (a fenced commit) ends only that domain's task.
    """

    def __init__(self, main: DomainMain) -> None:
        self._main = main
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    @property
    def running(self) -> list[str]:
        return sorted(d for d, (task, _) in self._tasks.items() if not task.done())

    async def acquired(self, domain: str, epoch: int) -> None:
        await self._stop(domain, cancel=True)  # a leftover of an earlier ownership
        stop = asyncio.Event()
        task = asyncio.create_task(self._guarded(domain, epoch, stop), name=f"domain-{domain}")
        self._tasks[domain] = (task, stop)

    async def _guarded(self, domain: str, epoch: int, stop: asyncio.Event) -> None:
        try:
            await self._main(domain, epoch, stop)
        except LeaseLost as exc:
            log.warning("domain stopped: lease lost", domain=domain, epoch=epoch, error=str(exc))

    async def lost(self, domain: str, reason: str) -> None:
        await self._stop(domain, cancel=True)

    async def drain(self, domain: str) -> None:
        await self._stop(domain, cancel=False)

    async def _stop(self, domain: str, *, cancel: bool) -> None:
        entry = self._tasks.pop(domain, None)
        if entry is None:
            return
        task, stop = entry
        stop.set()
        if cancel:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for domain in list(self._tasks):
            await self._stop(domain, cancel=True)


class LeaseMetrics:
    """The replica's coordination metrics, each labelled with its replica id."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, ["replica"], registry=r)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, ["replica", *labels], registry=r)

        self.owned = gauge("domains_owned", "Domains this replica holds the lease of.")
        self.live_replicas = gauge(
            "replicas_live", "Replicas with a fresh heartbeat, as last seen."
        )
        self.reachable = gauge(
            "state_store_reachable",
            "1 while the last coordination round trip to PostgreSQL succeeded.",
        )
        self.renewals = counter("lease_renewals", "Successful lease renewals (one per domain).")
        self.acquisitions = counter("lease_acquisitions", "Leases claimed.")
        self.releases = counter("lease_releases", "Leases given back (rebalance, shutdown).")
        self.losses = counter(
            "lease_losses",
            "Leases lost: deadline (not renewed in time), taken (found taken over at "
            "renewal), fenced (a commit found it gone).",
            "reason",
        )
        self.queries = counter(
            "coordination_queries",
            "Statements sent to PostgreSQL for heartbeats and leases (not cursor commits).",
        )


@dataclass(slots=True)
class _Held:
    epoch: int
    deadline: float  # monotonic
    releasing: bool = False


@dataclass(slots=True)
class _Snapshot:
    leases: dict[str, LeaseView] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)


class LeaseManager:
    """See the module docstring. Build it with the store it fences::

    store = await PostgresStateStore.open(url)
    manager = LeaseManager(store, replica_id, domains, lease_duration, listener)
    await manager.start()          # heartbeat, first claims (acquired callbacks)
    ...
    await manager.shutdown()       # SIGTERM: drain, release, heartbeat removed
    """

    def __init__(
        self,
        store: LeaseStore,
        replica_id: str,
        domains: Collection[str],
        lease_duration: float,
        listener: OwnershipListener,
        *,
        metrics: LeaseMetrics | None = None,
        scan_interval: float | None = None,
        safety_margin: float | None = None,
        drain_timeout: float | None = None,
        statement_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_duration <= 0:
            raise ValueError("lease_duration must be positive")
        self.store = store
        store.fence = self
        self._replica_id = replica_id
        # Tells this process from another one that uses the same replica_id (a copied
        # config, a container restarted with the same host name and pid 1).
        self._instance = uuid.uuid4().hex
        self.domains = sorted(set(domains))
        self.lease_duration = lease_duration
        self.listener = listener
        self.metrics = metrics or LeaseMetrics()
        self.renew_interval = lease_duration / 3
        # Free domains are looked for more often than leases are renewed: that is what
        # bounds a takeover to lease_duration + a scan after SIGKILL, and to a scan after a
        # release. One scan is two small SELECTs.
        self.scan_interval = scan_interval or min(self.renew_interval, 2.0)
        self.margin = safety_margin if safety_margin is not None else max(0.5, lease_duration * 0.2)
        if self.margin >= lease_duration:
            raise ValueError("safety_margin must be shorter than lease_duration")
        self.drain_timeout = drain_timeout or max(lease_duration, 30.0)
        # No single statement may outlast the margin: the deadline watchdog does not depend
        # on it, but renewals arriving late are renewals wasted.
        self.statement_timeout = statement_timeout or max(0.5, min(5.0, self.margin / 2))
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._reachable = False
        self._live = 1
        self._last_error_type: str | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._next_renew = 0.0
        self._lock = asyncio.Lock()  # one coordination round at a time
        labels = self.metrics
        self._m_owned = labels.owned.labels(replica_id)
        self._m_live = labels.live_replicas.labels(replica_id)
        self._m_reachable = labels.reachable.labels(replica_id)
        self._m_renewals = labels.renewals.labels(replica_id)
        self._m_acquired = labels.acquisitions.labels(replica_id)
        self._m_released = labels.releases.labels(replica_id)
        self._m_queries = labels.queries.labels(replica_id)

    # -- Fence ----------------------------------------------------------------------------

    @property
    def replica_id(self) -> str:
        return self._replica_id

    def epoch_of(self, domain: str) -> int | None:
        held = self._held.get(domain)
        if held is None:
            return None
        if self._clock() >= held.deadline:
            # Checked here too, not only by the watchdog: after a freeze this call may run
            # before the watchdog's task does.
            self._drop(domain, "deadline", "lease not renewed in time")
            return None
        return held.epoch

    def fenced_out(self, domain: str, reason: str) -> None:
        self._drop(domain, "fenced", reason)

    def check(self, domain: str) -> int:
        """The epoch, or `LeaseLost`: call before every Daily request and every export."""
        epoch = self.epoch_of(domain)
        if epoch is None:
            raise LeaseLost(f"this replica does not hold the lease of domain {domain}")
        return epoch

    # -- status ---------------------------------------------------------------------------

    def status(self) -> OwnershipStatus:
        owned = {d: h.epoch for d, h in self._held.items() if self._clock() < h.deadline}
        return OwnershipStatus(
            replica_id=self._replica_id,
            owned=owned,
            state_store_reachable=self._reachable,
            live_replicas=self._live,
            last_error_type=self._last_error_type,
        )

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, settle: float | None = None) -> None:
        """Heartbeat, then (after `settle`, so that replicas started together see each
        other and do not all claim everything first) the first claims. Raises StateError
        when PostgreSQL cannot be reached at all."""
        waited_since = self._clock()
        while True:
            try:
                await self._round(renew=True, claim=False)
                break
            except ReplicaIdInUse:
                # Most often our own previous life (a restart within lease_duration): its
                # heartbeat expires soon. A second live process with this id never does.
                if self._clock() - waited_since > self.lease_duration + 5:
                    raise
                if self._clock() - waited_since < 1.5:
                    log.warning(
                        "replica_id in use by a live heartbeat, waiting for it to expire",
                        replica=self._replica_id,
                    )
                await asyncio.sleep(1.0)
        with contextlib.suppress(StateError):
            # Rows of replicas long gone (each restart under host name + pid adds one).
            await self._execute(
                "DELETE FROM replicas WHERE expires_at < clock_timestamp() - interval '1 day'",
                (),
            )
        await asyncio.sleep(self.scan_interval if settle is None else settle)
        with contextlib.suppress(StateError):
            await self._round(renew=False, claim=True)
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"leases-{self._replica_id}"),
            asyncio.create_task(self._watchdog(), name=f"lease-deadlines-{self._replica_id}"),
        ]

    async def shutdown(self) -> None:
        """SIGTERM: stop claiming, drain every owned domain (leases still renewed meanwhile),
        release them, remove the heartbeat so that peers recompute their share at once."""
        self._stopping = True
        owned = [d for d, h in self._held.items() if not h.releasing]
        await asyncio.gather(*(self.release(d) for d in owned), return_exceptions=True)
        await self._cancel_tasks()
        with contextlib.suppress(StateError):
            await self._execute(
                "DELETE FROM replicas WHERE replica_id=%s AND instance=%s",
                (self._replica_id, self._instance),
            )

    async def close(self) -> None:
        """Stop without releasing anything (the leases expire by themselves)."""
        self._stopping = True
        await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        tasks = [*self._tasks, *self._side_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def release(self, domain: str) -> None:
        """Graceful hand-over of `domain`: drain it, then clear the lease row."""
        held = self._held.get(domain)
        if held is None or held.releasing:
            return
        held.releasing = True
        try:
            await asyncio.wait_for(self.listener.drain(domain), self.drain_timeout)
        except (TimeoutError, Exception) as exc:
            # A drain that hangs (a backend that never answers) must not keep the domain
            # from a peer forever: stop it hard; the fenced commit covers what was in flight.
            log.warning(
                "drain failed, stopping the domain", domain=domain, error_type=type(exc).__name__
            )
            await self._notify_lost(domain, "drain did not finish")
        epoch = held.epoch
        try:
            await self._execute(
                "UPDATE leases SET owner=NULL, expires_at=NULL"
                " WHERE domain=%s AND owner=%s AND epoch=%s",
                (domain, self._replica_id, epoch),
            )
            self._m_released.inc()
            log.info("lease released", domain=domain, epoch=epoch, replica=self._replica_id)
        except StateError as exc:
            # It expires by itself; the peer just waits for that.
            log.warning("lease release failed", domain=domain, error=str(exc))
        finally:
            # Only now: until the row is cleared a scan must not take the domain for an
            # orphan of ours and claim it back.
            current = self._held.get(domain)
            if current is not None and current.epoch == epoch:
                del self._held[domain]
            self._m_owned.set(len(self._held))

    # -- the coordination loop ------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_for())
            self._wake.clear()
            now = self._clock()
            renew = now >= self._next_renew
            # A failure is logged and shown in the status already; the next round is soon.
            with contextlib.suppress(StateError):
                await self._round(renew=renew, claim=not self._stopping)

    def _sleep_for(self) -> float:
        if not self._reachable:
            return min(1.0, self.scan_interval)
        until_renew = max(0.0, self._next_renew - self._clock())
        return min(self.scan_interval, until_renew)

    async def _watchdog(self) -> None:
        while True:
            now = self._clock()
            for domain, held in list(self._held.items()):
                if now >= held.deadline:
                    self._drop(domain, "deadline", "lease not renewed in time")
            deadlines = [h.deadline for h in self._held.values()]
            await asyncio.sleep(min([1.0, *(d - now for d in deadlines)]) if deadlines else 1.0)

    async def _round(self, *, renew: bool, claim: bool) -> None:
        async with self._lock:
            started = self._clock()
            try:
                if renew:
                    await self._renew(started)
                snapshot = await self._snapshot()
                self._set_reachable(True, None)
            except StateError as exc:
                self._set_reachable(False, exc)
                raise
            self._live = max(1, len(snapshot.live))
            self._m_live.set(self._live)
            if not claim:
                return
            decision = plan(self._replica_id, snapshot.live, snapshot.leases, self.domains)
            # Leases PostgreSQL still gives us that we stopped treating as ours (a deadline
            # passed during an outage shorter than the margin): take them back at a new
            # epoch now instead of waiting for them to expire. Safe: the heartbeat makes us
            # the only live process with this replica_id, and the domain task was stopped.
            orphans = [
                d
                for d in self.domains
                if (lease := snapshot.leases.get(d)) is not None
                and lease.held
                and lease.owner == self._replica_id
                and d not in self._held
            ]
            for domain in [*orphans, *decision.claim]:
                lease = snapshot.leases.get(domain)
                await self._claim(domain, None if lease is None else lease.owner)
            for domain in decision.release:
                held = self._held.get(domain)
                if held is not None and not held.releasing:
                    self._spawn(self.release(domain))

    def _set_reachable(self, ok: bool, exc: BaseException | None) -> None:
        if ok != self._reachable:
            if ok:
                log.info("state store reachable", replica=self._replica_id)
            else:
                log.warning(
                    "state store unreachable: domains stop before their leases can expire",
                    replica=self._replica_id,
                    error=str(exc),
                )
        self._reachable = ok
        self._last_error_type = None if exc is None else type(exc).__name__
        self._m_reachable.set(1 if ok else 0)

    async def _renew(self, started: float) -> None:
        """Heartbeat and every held lease in one statement (coordination costs round
        trips, so each round is one): the leases are only extended when the heartbeat row
        is ours (see `ReplicaIdInUse`)."""
        self._next_renew = started + self.renew_interval
        held = {d: h.epoch for d, h in self._held.items()}
        rows = await self._query(
            "WITH hb AS ("
            " INSERT INTO replicas AS r (replica_id, instance, started_at, heartbeat_at,"
            " expires_at, version) VALUES (%(id)s, %(instance)s, clock_timestamp(),"
            " clock_timestamp(), clock_timestamp() + make_interval(secs => %(lease)s),"
            " %(version)s)"
            " ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at=excluded.heartbeat_at,"
            " expires_at=excluded.expires_at, version=excluded.version,"
            " started_at = CASE WHEN r.instance = excluded.instance THEN r.started_at"
            " ELSE excluded.started_at END, instance=excluded.instance"
            " WHERE r.instance = excluded.instance OR r.expires_at <= clock_timestamp()"
            " RETURNING 1),"
            " renewed AS ("
            " UPDATE leases l SET expires_at = clock_timestamp()"
            " + make_interval(secs => %(lease)s), renewed_at = clock_timestamp()"
            " FROM unnest(%(domains)s::text[], %(epochs)s::bigint[]) AS u(domain, epoch)"
            " WHERE l.domain = u.domain AND l.epoch = u.epoch AND l.owner = %(id)s"
            " AND l.expires_at > clock_timestamp() AND EXISTS (SELECT 1 FROM hb)"
            " RETURNING l.domain)"
            " SELECT 'heartbeat', NULL::text FROM hb"
            " UNION ALL SELECT 'lease', domain FROM renewed",
            {
                "id": self._replica_id,
                "instance": self._instance,
                "lease": self.lease_duration,
                "version": __version__,
                "domains": list(held),
                "epochs": list(held.values()),
            },
        )
        if not any(r[0] == "heartbeat" for r in rows):
            for domain in list(self._held):
                self._drop(domain, "taken", "replica_id in use by another process")
            self._next_renew = started  # try again at the next round
            raise ReplicaIdInUse(
                f"replica_id {self._replica_id} is in use by another live process; give "
                "each replica its own replica_id"
            )
        renewed = {r[1] for r in rows if r[0] == "lease"}
        for domain, epoch in held.items():
            current = self._held.get(domain)
            if current is None or current.epoch != epoch:
                continue
            if domain in renewed:
                current.deadline = max(
                    current.deadline, started + self.lease_duration - self.margin
                )
                self._m_renewals.inc()
            else:
                self._drop(domain, "taken", "lease found taken over or expired at renewal")

    async def _snapshot(self) -> _Snapshot:
        """The lease table and the live replicas, in one statement."""
        rows = await self._query(
            "SELECT false, domain, owner, epoch,"
            " EXTRACT(EPOCH FROM (expires_at - clock_timestamp()))::float8 FROM leases"
            " UNION ALL SELECT true, replica_id, NULL::text, 0::bigint, NULL::float8"
            " FROM replicas WHERE expires_at > clock_timestamp()",
            (),
        )
        return _Snapshot(
            leases={r[1]: LeaseView(r[1], r[2], int(r[3]), r[4]) for r in rows if not r[0]},
            live=[r[1] for r in rows if r[0]],
        )

    async def _claim(self, domain: str, previous_owner: str | None) -> None:
        started = self._clock()
        await self._execute(
            "INSERT INTO leases (domain, epoch) VALUES (%s, 0) ON CONFLICT (domain) DO NOTHING",
            (domain,),
        )
        try:
            rows = await self._query(
                "UPDATE leases SET owner=%s, epoch=epoch+1,"
                " expires_at = clock_timestamp() + make_interval(secs => %s),"
                " acquired_at = clock_timestamp(), renewed_at = clock_timestamp()"
                " WHERE domain=%s AND (owner IS NULL OR owner = %s OR expires_at IS NULL"
                " OR expires_at <= clock_timestamp()) RETURNING epoch",
                (self._replica_id, self.lease_duration, domain, self._replica_id),
                lock_timeout=min(CLAIM_LOCK_TIMEOUT, self.statement_timeout / 2),
            )
        except LeaseRowLocked:
            if previous_owner is not None and previous_owner != self._replica_id:
                await self._evict(domain, previous_owner)
            return  # tried again next round
        if not rows:
            return  # a peer was quicker
        epoch = int(rows[0][0])
        self._held[domain] = _Held(
            epoch=epoch, deadline=started + self.lease_duration - self.margin
        )
        self._m_owned.set(len(self._held))
        self._m_acquired.inc()
        log.info("lease acquired", domain=domain, epoch=epoch, replica=self._replica_id)
        try:
            await self.listener.acquired(domain, epoch)
        except Exception as exc:
            log.error("starting the domain failed", domain=domain, error_type=type(exc).__name__)

    async def _evict(self, domain: str, owner: str) -> None:
        """End the transactions the expired owner of `domain` began before its lease ran
        out. A replica frozen (SIGSTOP, VM pause) in the middle of a commit holds the lease
        row's lock, and while PostgreSQL waits for the rest of a pipelined statement from
        it, no server timeout applies: the claim would wait until the process wakes,
        however long that is. Its lease has expired, so it may commit nothing any more;
        its connections break and its pool opens new ones, should it wake."""
        try:
            rows = await self._query(
                "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a, leases l"
                " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
                " AND a.application_name = %s AND a.xact_start IS NOT NULL"
                " AND l.domain = %s AND l.owner = %s AND l.expires_at <= clock_timestamp()"
                " AND a.xact_start <= l.expires_at",
                (application_name(owner), domain, owner),
            )
        except StateError as exc:
            # Not allowed to (another role without pg_signal_backend): it waits for expiry
            # of the transaction instead.
            log.warning(
                "cannot end the expired owner's transaction",
                domain=domain,
                owner=owner,
                error=str(exc),
            )
            return
        if rows:
            log.warning(
                "ended the transactions of a replica whose lease expired in the middle of a commit",
                domain=domain,
                owner=owner,
                ended=sum(1 for r in rows if r[0]),
            )

    # -- losses ---------------------------------------------------------------------------

    def _drop(self, domain: str, kind: str, reason: str) -> None:
        held = self._held.pop(domain, None)
        if held is None:
            return
        self._m_owned.set(len(self._held))
        self.metrics.losses.labels(self._replica_id, kind).inc()
        log.warning(
            "lease lost: the domain stops now",
            domain=domain,
            epoch=held.epoch,
            replica=self._replica_id,
            reason=reason,
        )
        self._spawn(self._notify_lost(domain, reason))

    async def _notify_lost(self, domain: str, reason: str) -> None:
        try:
            await self.listener.lost(domain, reason)
        except Exception as exc:
            log.error("stopping the domain failed", domain=domain, error_type=type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- SQL ------------------------------------------------------------------------------

    async def _query(
        self,
        sql: str,
        args: Sequence[object] | Mapping[str, object],
        *,
        lock_timeout: float | None = None,
    ) -> list[Any]:
        """One statement; with `lock_timeout`, it gives up waiting for a row lock after that
        long and raises `LeaseRowLocked`."""
        self._m_queries.inc()
        try:
            async with asyncio.timeout(self.statement_timeout):
                async with self.store.pool.connection(timeout=self.statement_timeout) as conn:
                    if lock_timeout is None:
                        cur = await conn.execute(sql, args)
                        return await cur.fetchall()
                    # set_config(..., true): for this transaction only, the pool's
                    # connection keeps no trace of it.
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT set_config('lock_timeout', %s, true)",
                            (f"{int(lock_timeout * 1000)}ms",),
                        )
                        cur = await conn.execute(sql, args)
                        return await cur.fetchall()
        except psycopg.errors.LockNotAvailable:
            raise LeaseRowLocked() from None
        except (TimeoutError, PoolTimeout, psycopg.Error) as exc:
            raise self.store.error("cannot reach", exc) from None

    async def _execute(self, sql: str, args: Sequence[object]) -> None:
        self._m_queries.inc()
        try:
            async with asyncio.timeout(self.statement_timeout):
                async with self.store.pool.connection(timeout=self.statement_timeout) as conn:
                    await conn.execute(sql, args)
        except (TimeoutError, PoolTimeout, psycopg.Error) as exc:
            raise self.store.error("cannot reach", exc) from None
