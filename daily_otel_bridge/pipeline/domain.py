"""One domain: discovery, concurrent session reads, batches and commits, wired together.

The parts, each with one job: `sessions.SessionTable` (what is tracked), `reader.
SessionReader` (one read of one session), `records.RecordPath` (one record), `batcher.
Batcher` (batches, exports in flight, ordered commits) and `core.schedule.DueQueue` (which
session goes next). This module only runs them:

* `run(stop)`: the daemon. Discovery on its own timer; `max_concurrent_reads` workers take
  due sessions from the queue, all sharing the domain's token bucket and its 429 pause
  (inside `DailyClient`); the batcher's timer seals batches; a report each minute.
* `sweep(full=True)`: `run --once`, backfill and the tests: discover, read every tracked
  session to its end (concurrently), export, commit, return what happened.

A failure that concerns the domain as a whole (the key refused, an export that failed after
its retries, the state store) ends `run`/`sweep` with the exception, after dropping every
in-memory cursor: the runner backs off and the next run starts from what was committed.
A failed read of one session is not such a failure: that session backs off alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import SessionCursor, SessionRead, StreamDrain
from daily_otel_bridge.core.encoding import build_resource, resource_to_proto
from daily_otel_bridge.core.mapping import SeverityTable
from daily_otel_bridge.core.retry import backoff_delay
from daily_otel_bridge.core.schedule import (
    FIRST_READ_DUE,
    DueQueue,
    PacingWindow,
    active_lately,
    failure_delay,
    quiet_delay,
)
from daily_otel_bridge.daily.client import (
    AuthError,
    DailyApiError,
    DailyClient,
    PermanentError,
    TransientError,
)
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.batcher import LOGS, METRICS, Batcher, ExportSink, Sealed
from daily_otel_bridge.pipeline.reader import ReadResult, SessionReader
from daily_otel_bridge.pipeline.records import PageContext, RecordPath
from daily_otel_bridge.pipeline.sessions import SessionTable, TrackedSession, room_selected
from daily_otel_bridge.service.self_metrics import BridgeMetrics
from daily_otel_bridge.state.base import CursorStore
from daily_otel_bridge.state.sqlite import SqliteCursorStore, SqliteStateStore

# Reads in a row that fail (after the client's own retries) before a `sweep` gives up: one
# sick session must not stall the others, but a sick API should not be hammered.
MAX_FAILED_SESSIONS = 3
# The first retry of a failed read; doubles per failure up to `max_quiet_interval`.
FAILURE_BACKOFF_BASE = 2.0
# How often the daemon reports pacing (saturation) and a summary line.
REPORT_INTERVAL = 60.0
# Progress lines while catching up, at most this often.
PROGRESS_INTERVAL = 10.0
# A session due longer ago than this counts as behind.
BEHIND_SLACK = 2.0
# A session's next read is at least this far after the end of its last one.
MIN_GAP = 0.5
# Longest a worker sleeps without looking at the queue (new sessions also wake it).
IDLE_WAIT = 1.0


@dataclass(slots=True)
class SweepStats:
    sessions_polled: int = 0
    fetched: int = 0
    exported: int = 0
    reread: int = 0  # overlap re-reads dropped (expected, not Daily sending duplicates)
    malformed: int = 0
    rejected: int = 0
    samples_exported: int = 0
    points_exported: int = 0
    points_rejected: int = 0
    requests: int = 0
    session_errors: list[str] = field(default_factory=list)  # warnings (e.g. 404)
    session_failures: list[str] = field(default_factory=list)  # reads that failed

    @property
    def deduplicated(self) -> int:
        return self.reread

    def merge(self, other: SweepStats) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("session_errors", "session_failures"):
                getattr(self, f.name).extend(getattr(other, f.name))
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def as_cursor_store(store: CursorStore | SqliteCursorStore) -> CursorStore:
    return SqliteStateStore(store) if isinstance(store, SqliteCursorStore) else store


def _first_error(exc: BaseException) -> BaseException:
    """The exception that ended a task group, not the group itself."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class DomainPipeline:
    """Everything one domain needs; one instance per domain."""

    def __init__(
        self,
        settings: DomainSettings,
        *,
        client: DailyClient,
        exporter: ExportSink,
        store: CursorStore | SqliteCursorStore,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        persist: bool = True,
        guard: Callable[[], object] | None = None,
    ) -> None:
        self.guard = guard
        self.settings = settings
        # False for a backfill: records are exported but no cursor is written.
        self.persist = persist
        self.name = settings.name
        self.client = client
        self.exporter = exporter
        self.store = as_cursor_store(store)
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.severity = SeverityTable.from_names(settings.severity_map)
        self.resource = resource_to_proto(
            build_resource(settings.name, settings.resource_attributes)
        )
        self.log = structlog.get_logger(__name__).bind(domain=self.name)
        streams = [LOGS] if settings.include_logs else []
        if settings.include_metrics or settings.metrics_as_logs:
            streams.append(METRICS)
        self.streams: tuple[str, ...] = tuple(streams) or (LOGS,)
        self.concurrency = settings.concurrent_reads
        self.stop_requested = False
        self.last_success: float | None = None
        # Called after each commit (and each healthy discovery with nothing to read).
        self.on_success: Callable[[], None] | None = None
        self.next_discovery_at = 0.0
        self.totals = SweepStats()  # what the daemon did since start
        self._wake = asyncio.Event()
        self._reads_in_flight = 0
        self._m_reads = metrics.reads_in_flight.labels(self.name)
        self._build()

    def _build(self) -> None:
        """Fresh in-memory state: at start and after a failure (from what was committed)."""
        s = self.settings
        self.table = SessionTable(
            domain=self.name,
            streams=self.streams,
            store=self.store,
            rooms=s.rooms,
            initial_lookback=s.initial_lookback,
            session_grace=s.session_grace,
            persist=self.persist,
            clock=self.clock,
        )
        self.batcher = Batcher(
            domain=self.name,
            resource=self.resource,
            exporter=self.exporter,
            store=self.store,
            metrics=self.metrics,
            batch_size=s.export.batch_size,
            batch_timeout=s.export.batch_timeout,
            max_inflight=s.export.max_inflight_exports,
            lookback_ms=int(s.lookback * 1000),
            persist=self.persist,
            monotonic=self.monotonic,
            on_commit=self._committed,
            guard=self.guard,
        )
        self.records = RecordPath(
            domain=self.name,
            batcher=self.batcher,
            store=self.store,
            metrics=self.metrics,
            severity=self.severity,
            include_metrics=s.include_metrics,
            metrics_as_logs=s.metrics_as_logs,
            clock=self.clock,
        )
        self.reader = SessionReader(
            s,
            streams=self.streams,
            client=self.client,
            records=self.records,
            batcher=self.batcher,
            metrics=self.metrics,
            clock=self.clock,
            monotonic=self.monotonic,
            should_stop=lambda: self.stop_requested,
        )
        self.queue = DueQueue()
        self.pacing = PacingWindow()
        self.next_discovery_at = 0.0

    async def reset(self) -> None:
        """Drop everything in memory (after a failure); the next run reloads the store."""
        await self.batcher.abort()
        self._build()
        self._reads_in_flight = 0
        self._m_reads.set(0)

    def _committed(self, batch: Sealed) -> None:
        """A batch was acknowledged and its cursors written."""
        for updates in batch.updates.values():
            for update in updates:
                tracked = self.table.sessions.get(update.cursor.session_id)
                drained = update.cursor.drained_until_ms
                if tracked is not None and drained is not None:
                    previous = tracked.acked_until_ms
                    tracked.acked_until_ms = drained if previous is None else max(previous, drained)
        self.log.debug(
            "committed",
            batch=batch.seq,
            sessions=sum(len(u) for u in batch.updates.values()),
        )
        self._succeeded()

    def _succeeded(self) -> None:
        self.last_success = self.clock()
        self.metrics.last_success.labels(self.name).set(self.last_success)
        if self.on_success is not None:
            self.on_success()

    # -- what the rest of the bridge asks --------------------------------------------------

    def active_cursors(self) -> list[SessionCursor]:
        """The primary cursor of every session still being read."""
        return [t.primary(self.streams) for t in self.table.active()]

    def cursor_lag_seconds(self) -> float | None:
        """Age of the oldest record visible at Daily and not yet acknowledged, in seconds.

        Two sources: records read and waiting for the backend (the oldest in a batch), and
        what busy sessions have at Daily past their last acknowledged read (those sessions
        are known to be producing). A quiet session (its last read found nothing new) adds
        nothing: its next poll is not lag. One function serves `/readyz` and `/metrics`.
        None until something is known.
        """
        now = self.clock()
        ages: list[float] = []
        pending = self.batcher.oldest_pending_ns()
        if pending is not None:
            ages.append(now - pending / 1e9)
        for tracked in self.table.active():
            if not tracked.busy:
                continue
            acked = tracked.acked_until_ms
            if acked is None:
                acked = tracked.primary(self.streams).start_floor_ms
            ages.append(now - acked / 1000)
        if not ages:
            return 0.0 if self.last_success is not None else None
        return max(0.0, max(ages))

    def _update_gauges(self) -> None:
        lag = self.cursor_lag_seconds()
        if lag is not None:
            self.metrics.cursor_lag.labels(self.name).set(lag)
        self.metrics.sessions_tracked.labels(self.name).set(self.table.active_count())

    # -- reading one session ---------------------------------------------------------------

    async def _read_session(self, session: TrackedSession, stats: SweepStats) -> bool:
        """Read one session; False when the read failed (the session backs off alone).

        Raises what concerns the whole domain: the key refused, a failed export, the store.
        """
        started = self.monotonic()
        if session.last_read_at is not None:
            self.pacing.observe(
                busy=session.busy,
                interval=started - session.last_read_at,
                overdue=max(0.0, started - session.due_at),
            )
        session.last_read_at = started
        session.reading = True
        self._reads_in_flight += 1
        self._m_reads.set(self._reads_in_flight)
        try:
            result = await self.reader.read(session)
        except AuthError:
            raise
        except (TransientError, PermanentError) as exc:
            session.failures += 1
            delay = failure_delay(
                session.failures,
                base=min(FAILURE_BACKOFF_BASE, self.settings.poll_interval),
                cap=self.settings.max_quiet_interval,
            )
            session.due_at = self.monotonic() + delay
            self.log.warning(
                "session read failed; it is tried again after its own backoff",
                session=session.session_id,
                error=str(exc),
                failures=session.failures,
                retry_in_s=round(delay, 1),
            )
            stats.session_failures.append(f"{session.session_id}: {exc}")
            return False
        finally:
            session.reading = False
            self._reads_in_flight -= 1
            self._m_reads.set(self._reads_in_flight)
        session.failures = 0
        self._count(result, stats)
        if result.not_found is not None:
            stats.session_errors.append(f"{session.session_id}: {result.not_found}")
        newest = [c.watermark_ns for c in session.cursors.values() if c.watermark_ns is not None]
        active = active_lately(
            max(newest) / 1e9 if newest else None,
            self.clock(),
            max_quiet_interval=self.settings.max_quiet_interval,
            settle_lag=self.settings.settle_lag,
        )
        self._schedule(session, started, busy=active or not result.complete)
        return True

    def _count(self, result: ReadResult, stats: SweepStats) -> None:
        stats.sessions_polled += 1
        stats.fetched += result.fetched
        stats.reread += result.reread

    def _schedule(self, session: TrackedSession, started: float, *, busy: bool) -> None:
        """Busy sessions every poll_interval; quiet ones back off to max_quiet_interval.

        Busy: an active meeting (its newest record is less than `max_quiet_interval` old),
        or a read that ended early (the list moved: the rest of its window is waiting).
        Counted from when the read started, so a read's own duration (a slow Daily, a wait
        for the budget) does not stretch the interval.
        """
        s = self.settings
        if busy:
            session.busy = True
            session.quiet_polls = 0
            delay = s.poll_interval
        else:
            session.busy = False
            session.quiet_polls += 1
            delay = quiet_delay(
                session.quiet_polls,
                poll_interval=s.poll_interval,
                max_quiet_interval=s.max_quiet_interval,
            )
        # A busy interval is a promise of freshness: counted from the read's start. A quiet
        # one is a cap on cost (one request per max_quiet_interval): counted from its end,
        # so that a shorter wait for the budget this time cannot bring two requests closer.
        since = started if busy else self.monotonic()
        session.due_at = max(since + delay, self.monotonic() + MIN_GAP)

    # -- one pass (run --once, backfill, tests) --------------------------------------------

    async def sweep(self, *, full: bool = False) -> SweepStats:
        """Discover (when due) and read every session that is due (every one if `full`),
        concurrently, each to the end of its window; then export and commit everything.

        Raises on a failure that stops the domain (Daily refusing the key, the backend not
        acknowledging, the state not writable) after dropping what was not committed.
        """
        stats = SweepStats()
        requests_before = self.client.requests_made
        totals_before = dataclasses.replace(self.batcher.totals)
        malformed_before = self.records.counts.malformed
        try:
            await self.table.load()
            mono = self.monotonic()
            if full or mono >= self.next_discovery_at:
                await self.table.discover(self.client)
                self.next_discovery_at = mono + self.settings.poll_interval
            due = [s for s in self.table.active() if full or s.due_at <= self.monotonic()]
            # Sessions that had news last time first, then the longest waiting.
            due.sort(key=lambda s: (not s.busy, s.due_at))
            timer = asyncio.create_task(self.batcher.run_timer())
            try:
                await self._read_all(due, stats)
            finally:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await timer
            await self.batcher.flush()
        except BaseException:
            await self.reset()
            raise
        finally:
            stats.requests = self.client.requests_made - requests_before
        self._fold_batches(stats, totals_before, malformed_before)
        if not self.stop_requested:
            self._succeeded()
        self._update_gauges()
        return stats

    def _fold_batches(self, stats: SweepStats, before: Any, malformed_before: int) -> None:
        after = self.batcher.totals
        stats.exported = after.exported - before.exported
        stats.rejected = after.rejected - before.rejected
        stats.samples_exported = after.samples_exported - before.samples_exported
        stats.points_exported = after.points_exported - before.points_exported
        stats.points_rejected = after.points_rejected - before.points_rejected
        stats.malformed = self.records.counts.malformed - malformed_before

    async def _read_all(self, sessions: Iterable[TrackedSession], stats: SweepStats) -> None:
        pending = deque(sessions)
        failed_in_a_row = 0

        async def worker() -> None:
            nonlocal failed_in_a_row
            while pending and not self.stop_requested:
                session = pending.popleft()
                if await self._read_session(session, stats):
                    failed_in_a_row = 0
                    continue
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_FAILED_SESSIONS:
                    raise _SweepAborted(stats.session_failures[-1])

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(pending))):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:
            error = _first_error(group_error)
            if isinstance(error, _SweepAborted):
                raise TransientError(
                    f"{MAX_FAILED_SESSIONS} session reads in a row failed; last: {error}"
                ) from None
            raise error from None

    # -- the daemon ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Read continuously until `stop` is set; then finish the reads' current pages,
        export and commit what they hold. Raises a domain failure (see the module)."""
        try:
            await self.table.load()
            for session in self.table.active():
                # A restart reads every session once, promptly.
                session.due_at = FIRST_READ_DUE
                session.busy = True
                self.queue.push(session.session_id, FIRST_READ_DUE, True)
            self._update_gauges()
            background = [
                asyncio.create_task(self._discovery_loop(), name=f"{self.name}:discovery"),
                asyncio.create_task(self.batcher.run_timer(), name=f"{self.name}:batch-timer"),
                asyncio.create_task(self._report_loop(), name=f"{self.name}:report"),
            ]
            workers = [
                asyncio.create_task(self._worker(stop), name=f"{self.name}:read-{i}")
                for i in range(self.concurrency)
            ]
            stopped = asyncio.create_task(stop.wait())
        except BaseException:
            await self.reset()
            raise
        try:
            waiting: set[asyncio.Task[Any]] = {*background, *workers, stopped}
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopped and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                if stopped in done:
                    break
            # Graceful stop: the reads end after their current page; what they read is
            # exported and committed (the caller bounds how long that may take).
            self.stop_requested = True
            self._wake.set()
            self._wake.clear()
            await asyncio.gather(*workers)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.batcher.flush()
            self._update_gauges()
        except BaseException:
            for task in (*background, *workers, stopped):
                task.cancel()
            await asyncio.gather(*background, *workers, stopped, return_exceptions=True)
            await self.reset()
            raise
        finally:
            stopped.cancel()

    def _wake_workers(self) -> None:
        self._wake.set()
        self._wake.clear()

    async def _worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.stop_requested:
            now = self.monotonic()
            key = self.queue.pop_due(now)
            if key is None:
                due = self.queue.next_due_at()
                delay = IDLE_WAIT if due is None else min(IDLE_WAIT, max(0.001, due - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                continue
            session = self.table.sessions.get(key)
            if session is None or session.retired:
                continue
            await self._read_session(session, self.totals)
            if not session.retired:
                self.queue.push(key, session.due_at, session.busy)

    async def _discovery_loop(self) -> None:
        """Discovery on its own timer: never blocks reads; its failures back off alone."""
        failures = 0
        while True:
            try:
                new = await self.table.discover(self.client)
            except AuthError:
                raise
            except DailyApiError as exc:
                failures += 1
                delay = backoff_delay(failures, base=1.0, cap=self.settings.poll_interval)
                if failures == 1 or failures % 10 == 0:
                    self.log.warning(
                        "discovery failed; reads of known sessions go on",
                        error=str(exc),
                        failures=failures,
                        retry_in_s=round(delay, 1),
                    )
            else:
                failures = 0
                delay = self.settings.poll_interval
                for session in new:
                    session.due_at = FIRST_READ_DUE
                    session.busy = True  # unknown yet: read promptly, before second reads
                    self.queue.push(session.session_id, FIRST_READ_DUE, True)
                if new:
                    self._wake_workers()
                if not self.table.sessions:
                    self._succeeded()  # nothing to read is a healthy state too
                self._update_gauges()
            await asyncio.sleep(delay)

    async def _report_loop(self) -> None:
        """Every PROGRESS_INTERVAL: gauges, and a progress line while catching up; every
        REPORT_INTERVAL: pacing (saturation) and one summary line."""
        ticks_per_report = max(1, round(REPORT_INTERVAL / PROGRESS_INTERVAL))
        tick = 0
        last = _Progress.now(self)
        minute = last
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            tick += 1
            current = _Progress.now(self)
            self._update_gauges()
            behind = self.sessions_behind()
            if behind:
                rate = (current.acked - last.acked) / max(current.at - last.at, 1e-9)
                self.log.info(
                    "catching up",
                    acknowledged=current.acked - last.acked,
                    sessions_behind=behind,
                    sessions=self.table.active_count(),
                    lag_s=_round(self.cursor_lag_seconds()),
                    records_per_s=round(rate, 1),
                )
            last = current
            if tick % ticks_per_report == 0:
                self.report()
                self.log.info(
                    "domain summary",
                    acknowledged=current.acked - minute.acked,
                    reread=current.reread - minute.reread,
                    requests=current.requests - minute.requests,
                    sessions=self.table.active_count(),
                    busy=sum(1 for s in self.table.active() if s.busy),
                    lag_s=_round(self.cursor_lag_seconds()),
                    per_s=round(
                        (current.acked - minute.acked) / max(current.at - minute.at, 1e-9), 1
                    ),
                )
                minute = current

    def sessions_behind(self) -> int:
        """Sessions not read since start, or waiting past their due time."""
        now = self.monotonic()
        return sum(
            1
            for s in self.table.active()
            if not s.reading and (s.last_read_at is None or s.due_at < now - BEHIND_SLACK)
        )

    def report(self) -> None:
        """Pacing over the last window: gauges, and a warning when saturated."""
        s = self.settings
        summary = self.pacing.summary(
            poll_interval=s.poll_interval, max_quiet_interval=s.max_quiet_interval
        )
        self.pacing = PacingWindow()
        for cls, value in (("busy", summary.busy_interval), ("quiet", summary.quiet_interval)):
            if value is not None:
                self.metrics.poll_interval.labels(self.name, cls).set(value)
        self.metrics.budget_saturated.labels(self.name).set(1 if summary.saturated else 0)
        self._update_gauges()
        busy = sum(1 for t in self.table.active() if t.busy)
        if summary.saturated:
            self.log.warning(
                "request budget saturated: sessions are read less often than configured",
                requests_per_second=s.requests_per_second,
                busy_sessions=busy,
                quiet_sessions=self.table.active_count() - busy,
                busy_interval_s=_round(summary.busy_interval),
                quiet_interval_s=_round(summary.quiet_interval),
                busy_overdue_s=_round(summary.busy_overdue),
                quiet_overdue_s=_round(summary.quiet_overdue),
                poll_interval_s=s.poll_interval,
                max_quiet_interval_s=s.max_quiet_interval,
            )

    # -- backfill --------------------------------------------------------------------------

    async def backfill_session(
        self, session_id: str, room: str, start_ms: int, end_ms: int
    ) -> SweepStats:
        """Re-export one session's records in `[start_ms, end_ms]`; no cursor moves.

        Uses throwaway cursors: the uids are the same as the live ones (they depend only
        on the records), so a backend that de-duplicates on `log.record.uid` can.
        """
        stats = SweepStats(sessions_polled=1)
        totals_before = dataclasses.replace(self.batcher.totals)
        page = PageContext()
        drains: dict[str, StreamDrain] = {}
        for name in self.streams:
            cursor = SessionCursor(session_id=session_id, room=room, start_floor_ms=start_ms)
            read = SessionRead(
                cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=self.settings.page_size
            )
            drains[name] = StreamDrain(read=read, deliver=self.records.deliverer(name, read, page))
        result = ReadResult()
        try:
            await self.reader.drain(session_id, drains, page, result)
            await self.batcher.flush()
        except BaseException:
            await self.reset()
            raise
        self._count(result, stats)
        stats.sessions_polled = 1
        if result.not_found is not None:
            stats.session_errors.append(f"{session_id}: {result.not_found}")
        self._fold_batches(stats, totals_before, 0)
        return stats


@dataclass(frozen=True, slots=True)
class _Progress:
    at: float
    acked: int
    reread: int
    requests: int

    @classmethod
    def now(cls, pipeline: DomainPipeline) -> _Progress:
        return cls(
            at=pipeline.monotonic(),
            acked=pipeline.batcher.totals.exported + pipeline.batcher.totals.samples_exported,
            reread=pipeline.totals.reread,
            requests=pipeline.client.requests_made,
        )


class _SweepAborted(Exception):
    pass


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def build_pipeline(
    domain: DomainSettings,
    *,
    store: CursorStore | SqliteCursorStore,
    metrics: BridgeMetrics,
    persist: bool = True,
    user_agent: str | None = None,
    guard: Callable[[], object] | None = None,
) -> DomainPipeline:
    """A domain's pipeline with its own Daily client and exporter, as configured.

    `guard` runs before every Daily request and every export and raises to forbid them
    (with several replicas: the lease check, `LeaseManager.check`)."""
    client = DailyClient(
        domain=domain.name,
        api_url=domain.api_url,
        api_key=domain.api_key.get_secret_value(),
        requests_per_second=domain.requests_per_second,
        timeout=domain.request_timeout,
        ca_file=domain.ca_file,
        metrics=metrics,
        max_connections=domain.concurrent_reads + 2,
        user_agent=user_agent,
        guard=guard,
    )
    exporter = Exporter(build_transport(domain.export), max_retry_time=domain.export.max_retry_time)
    return DomainPipeline(
        domain,
        client=client,
        exporter=exporter,
        store=store,
        metrics=metrics,
        persist=persist,
        guard=guard,
    )


__all__ = [
    "LOGS",
    "METRICS",
    "DomainPipeline",
    "SweepStats",
    "build_pipeline",
    "room_selected",
]
