"""One domain: discovery, concurrent session reads, batches and commits, wired together.

The parts, each with one job: `sessions.SessionTable` (what is tracked), `reader.
SessionReader` (one read of one session), `records.RecordPath` (one record), `batcher.
Batcher` (batches, exports in flight, ordered commits) and `core.schedule.DueQueue` (which
session goes next). This module only runs them:

One loop, `run(stop, once=...)`: discovery on its own timer; `max_concurrent_reads`
workers take due sessions from the queue, all sharing the domain's token bucket and its 429
pause (inside `DailyClient`); the batcher's timer seals batches; a report each minute. The
daemon runs it until told to stop. `run --once` (and the tests that step the pipeline) runs
the same loop until every tracked session has been read to the end of its window and every
batch is committed (`run_once`).

A failure that concerns the domain as a whole (the key refused, an export that failed after
its retries, the state store) ends `run` with the exception, after dropping every in-memory
cursor: the runner backs off and the next run starts from what was committed. A failed read
of one session is not such a failure: that session backs off alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
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
    ReadClass,
    busy_now,
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

# Reads in a row that fail (after the client's own retries) before a `run_once` pass gives
# up: one sick session must not stall the others, but a sick API should not be hammered.
MAX_FAILED_SESSIONS = 3
# Reads of one session in one `run_once` pass: a read the list moved under stops early and
# is read again at once; a server whose list never stops moving must not hold the pass.
MAX_READS_PER_PASS = 20
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
# A retiring read comes this long after the grace period is over on both clocks.
RETIRE_SLACK = 1.0
# Longest a worker sleeps without looking at the queue (new sessions also wake it).
IDLE_WAIT = 1.0


@dataclass(slots=True)
class PassReport:
    """What a domain did: over a `run_once` pass, or (`DomainPipeline.totals`) since start."""

    sessions_read: int = 0
    fetched: int = 0
    exported: int = 0
    reread: int = 0  # read again (the overlap, when the list changed there) and dropped
    malformed: int = 0
    rejected: int = 0
    samples_exported: int = 0
    points_exported: int = 0
    points_rejected: int = 0
    requests: int = 0  # Daily requests of session reads (discovery not counted)
    reads: int = 0
    session_errors: list[str] = field(default_factory=list)  # warnings (e.g. 404)
    session_failures: list[str] = field(default_factory=list)  # reads that failed

    @property
    def requests_per_read(self) -> float:
        return self.requests / self.reads if self.reads else 0.0

    def since(self, before: PassReport) -> PassReport:
        """The difference of two cumulative reports."""
        out = PassReport()
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(before, f.name)
            setattr(out, f.name, mine[len(theirs) :] if isinstance(mine, list) else mine - theirs)
        return out


def as_cursor_store(store: CursorStore | SqliteCursorStore) -> CursorStore:
    return SqliteStateStore(store) if isinstance(store, SqliteCursorStore) else store


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
        self.totals = PassReport()  # what the pipeline did since it was built
        self._wake = asyncio.Event()
        self._reads_in_flight = 0
        self._first_reads_done = 0
        self._once = False
        self._drained = asyncio.Event()
        self._failed_in_a_row = 0
        self._reads_this_pass: dict[str, int] = {}
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
        self.metrics.sessions_unread.labels(self.name).set(self.sessions_unread())

    # -- reading one session ---------------------------------------------------------------

    async def _read_session(self, session: TrackedSession) -> ReadResult | None:
        """Read one session and schedule its next read; None when the read failed (the
        session backs off alone).

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
        totals = self.totals
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
            if not session.read_once:
                session.busy = True  # unknown yet: its retry goes before quiet sessions
            self.log.warning(
                "session read failed; it is tried again after its own backoff",
                session=session.session_id,
                error=str(exc),
                failures=session.failures,
                retry_in_s=round(delay, 1),
            )
            totals.session_failures.append(f"{session.session_id}: {exc}")
            return None
        finally:
            session.reading = False
            self._reads_in_flight -= 1
            self._m_reads.set(self._reads_in_flight)
        session.failures = 0
        if not session.read_once:
            session.read_once = True
            self._first_reads_done += 1
        totals.reads += 1
        totals.sessions_read += 1
        totals.fetched += result.fetched
        totals.reread += result.reread
        totals.requests += result.requests
        if result.not_found is not None:
            totals.session_errors.append(f"{session.session_id}: {result.not_found}")
        self._schedule(session, started, result)
        return result

    def _schedule(self, session: TrackedSession, started: float, result: ReadResult) -> None:
        """A meeting's life: busy (every `poll_interval`) while its newest record is recent
        or while it is ongoing and young (every meeting starts empty), or when the read
        ended early (the rest of its window is waiting); else quiet, backing off to
        `max_quiet_interval` (`core.schedule.busy_now`).

        A busy interval is a promise of freshness: counted from the read's start, so a
        read's own duration (a slow Daily, a wait for the budget) does not stretch it. A
        quiet one is a cap on cost (one request per `max_quiet_interval`): counted from
        its end, so that a shorter wait for the budget cannot bring two requests closer.
        """
        s = self.settings
        newest = [c.watermark_ns for c in session.cursors.values() if c.watermark_ns is not None]
        busy = not result.complete or busy_now(
            newest_record_s=max(newest) / 1e9 if newest else None,
            started_s=session.started_ms / 1000 if session.started_ms is not None else None,
            ongoing=session.ongoing,
            now_s=self.clock(),
            max_quiet_interval=s.max_quiet_interval,
            settle_lag=s.settle_lag,
        )
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
        since = started if busy else self.monotonic()
        session.due_at = max(since + delay, self.monotonic() + MIN_GAP)
        retire_at = self._retirement_due(session)
        if retire_at is not None and retire_at < session.due_at:
            # The read that retires an ended meeting comes as soon as it can, not up to a
            # quiet interval later: no read of a meeting long after its grace period.
            session.due_at = max(retire_at, self.monotonic() + MIN_GAP)

    def _retirement_due(self, session: TrackedSession) -> float | None:
        """When (monotonic) a read of an ended session could retire it, if it ended."""
        s = self.settings
        ends = [c.ended_at_ms for c in session.cursors.values() if not c.retired]
        if not ends or any(e is None for e in ends):
            return None
        ended_ms = max(e for e in ends if e is not None)
        wall_wait = ended_ms / 1000 + s.session_grace + s.settle_lag - self.clock()
        seen = [c.end_seen_mono for c in session.cursors.values() if c.end_seen_mono is not None]
        mono_wait = (max(seen) + s.session_grace - self.monotonic()) if seen else s.session_grace
        return self.monotonic() + max(wall_wait, mono_wait, 0.0) + RETIRE_SLACK

    def _enqueue_first_read(self, session: TrackedSession) -> None:
        """Never read (new, or loaded at start): read promptly, newest meeting first."""
        session.due_at = FIRST_READ_DUE
        session.busy = False
        rank = -(session.started_ms if session.started_ms is not None else 0)
        self.queue.push(session.session_id, FIRST_READ_DUE, ReadClass.FIRST, float(rank))

    def _enqueue(self, session: TrackedSession) -> None:
        cls = ReadClass.BUSY if session.busy else ReadClass.QUIET
        self.queue.push(session.session_id, session.due_at, cls)

    # -- the loop --------------------------------------------------------------------------

    def snapshot(self) -> PassReport:
        """Everything counted so far (cumulative)."""
        out = dataclasses.replace(
            self.totals,
            session_errors=list(self.totals.session_errors),
            session_failures=list(self.totals.session_failures),
        )
        batches = self.batcher.totals
        out.exported = batches.exported
        out.rejected = batches.rejected
        out.samples_exported = batches.samples_exported
        out.points_exported = batches.points_exported
        out.points_rejected = batches.points_rejected
        out.malformed = self.records.counts.malformed
        return out

    async def run_once(self) -> PassReport:
        """`run --once`: the daemon's loop until every tracked session has been read to the
        end of its window and every batch is committed; returns what the pass did."""
        return await self.run(asyncio.Event(), once=True)

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> PassReport:
        """Read until `stop` is set (or, `once`, until every session was read to its end);
        then finish the reads' current pages, export and commit what they hold. Raises a
        domain failure (see the module)."""
        self.stop_requested = False
        self._once = once
        self._drained = asyncio.Event()
        self._failed_in_a_row = 0
        self._reads_this_pass = {}
        before = self.snapshot()
        background: list[asyncio.Task[Any]] = []
        workers: list[asyncio.Task[Any]] = []
        try:
            await self.table.load()
            for session in self.table.active():
                # A restart (or a pass) reads every session once, promptly.
                if session.read_once:
                    session.due_at = FIRST_READ_DUE
                    self.queue.push(session.session_id, FIRST_READ_DUE, ReadClass.BUSY)
                else:
                    self._enqueue_first_read(session)
            if once:
                # One discovery before the reads, so that the pass covers what it finds.
                await self._discover()
            self._update_gauges()
            background = [
                asyncio.create_task(self.batcher.run_timer(), name=f"{self.name}:batch-timer"),
                asyncio.create_task(self._report_loop(), name=f"{self.name}:report"),
            ]
            if not once:
                background.append(
                    asyncio.create_task(self._discovery_loop(), name=f"{self.name}:discovery")
                )
            workers = [
                asyncio.create_task(self._worker(stop), name=f"{self.name}:read-{i}")
                for i in range(self.concurrency)
            ]
            stopped = asyncio.create_task(stop.wait())
            drained = asyncio.create_task(self._drained.wait())
        except BaseException:
            for task in (*background, *workers):
                task.cancel()
            await asyncio.gather(*background, *workers, return_exceptions=True)
            await self.reset()
            raise
        try:
            waiting: set[asyncio.Task[Any]] = {*background, *workers, stopped, drained}
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task not in (stopped, drained) and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                if stopped in done or drained in done:
                    break
            # The reads end after their current page; what they read is exported and
            # committed (the caller bounds how long that may take).
            self.stop_requested = True
            self._wake_workers()
            await asyncio.gather(*workers)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.batcher.flush()
            if once and not stop.is_set():
                self._succeeded()
            self._update_gauges()
        except BaseException:
            for task in (*background, *workers, stopped, drained):
                task.cancel()
            await asyncio.gather(*background, *workers, stopped, drained, return_exceptions=True)
            await self.reset()
            raise
        finally:
            stopped.cancel()
            drained.cancel()
        return self.snapshot().since(before)

    def _wake_workers(self) -> None:
        self._wake.set()
        self._wake.clear()

    async def _worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self.stop_requested:
            now = self.monotonic()
            key = self.queue.pop_due(now)
            if key is None:
                if self._once and not self.queue and self._reads_in_flight == 0:
                    self._drained.set()  # every session read to the end of its window
                    return
                due = self.queue.next_due_at()
                delay = IDLE_WAIT if due is None else min(IDLE_WAIT, max(0.001, due - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                continue
            session = self.table.sessions.get(key)
            if session is None or session.retired:
                continue
            result = await self._read_session(session)
            if self._once:
                self._after_pass_read(session, result)
            elif not session.retired:
                self._enqueue(session)
            self._wake_workers()

    def _after_pass_read(self, session: TrackedSession, result: ReadResult | None) -> None:
        """`run_once`: a session is done once read to the end of its window; a read that
        failed is not tried again in the pass; too many in a row end it."""
        if result is None:
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= MAX_FAILED_SESSIONS:
                raise TransientError(
                    f"{MAX_FAILED_SESSIONS} session reads in a row failed; "
                    f"last: {self.totals.session_failures[-1]}"
                )
            return
        self._failed_in_a_row = 0
        reads = self._reads_this_pass.get(session.session_id, 0) + 1
        self._reads_this_pass[session.session_id] = reads
        if not result.complete and not session.retired and reads < MAX_READS_PER_PASS:
            self.queue.push(session.session_id, FIRST_READ_DUE, ReadClass.BUSY)

    async def _discover(self) -> None:
        """One discovery: new sessions join the queue as first reads; a meeting seen ended
        starts its grace period on the monotonic clock now (not at its next read)."""
        new = await self.table.discover(self.client)
        mono = self.monotonic()
        for session in self.table.active():
            for cursor in session.cursors.values():
                if cursor.ended_at_ms is not None and cursor.end_seen_mono is None:
                    cursor.end_seen_mono = mono
        for session in new:
            self._enqueue_first_read(session)
        if new:
            self._wake_workers()
        if not self.table.sessions:
            self._succeeded()  # nothing to read is a healthy state too
        self._update_gauges()

    async def _discovery_loop(self) -> None:
        """Discovery on its own timer: never blocks reads; its failures back off alone."""
        failures = 0
        while True:
            try:
                await self._discover()
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
            elapsed = max(current.at - last.at, 1e-9)
            unread = self.sessions_unread()
            first_rate = (current.first_reads - last.first_reads) / elapsed
            eta = unread / first_rate if first_rate > 0 else None
            self.metrics.first_reads_rate.labels(self.name).set(first_rate)
            self.metrics.catchup_eta.labels(self.name).set(
                0.0 if not unread else (eta if eta is not None else float("inf"))
            )
            behind = self.sessions_behind()
            if behind or unread:
                rate = (current.acked - last.acked) / elapsed
                self.log.info(
                    "catching up",
                    acknowledged=current.acked - last.acked,
                    sessions_never_read=unread,
                    first_reads_per_s=round(first_rate, 1),
                    eta_s=_round(eta),
                    sessions_behind=behind,
                    sessions=self.table.active_count(),
                    lag_s=_round(self.cursor_lag_seconds()),
                    records_per_s=round(rate, 1),
                )
            last = current
            if tick % ticks_per_report == 0:
                self.report()
                reads = current.reads - minute.reads
                self.log.info(
                    "domain summary",
                    acknowledged=current.acked - minute.acked,
                    reread=current.reread - minute.reread,
                    requests=current.requests - minute.requests,
                    reads=reads,
                    requests_per_read=round(
                        (current.read_requests - minute.read_requests) / reads, 2
                    )
                    if reads
                    else None,
                    sessions=self.table.active_count(),
                    busy=sum(1 for s in self.table.active() if s.busy),
                    never_read=unread,
                    lag_s=_round(self.cursor_lag_seconds()),
                    per_s=round(
                        (current.acked - minute.acked) / max(current.at - minute.at, 1e-9), 1
                    ),
                )
                minute = current

    def sessions_unread(self) -> int:
        """Tracked sessions never read yet (the catch-up)."""
        return sum(1 for s in self.table.active() if not s.read_once)

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
    ) -> PassReport:
        """Re-export one session's records in `[start_ms, end_ms]`; no cursor moves.

        Uses throwaway cursors: the uids are the same as the live ones (they depend only
        on the records), so a backend that de-duplicates on `log.record.uid` can.
        """
        before = self.snapshot()
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
        self.totals.sessions_read += 1
        self.totals.reads += 1
        self.totals.fetched += result.fetched
        self.totals.reread += result.reread
        self.totals.requests += result.requests
        if result.not_found is not None:
            self.totals.session_errors.append(f"{session_id}: {result.not_found}")
        return self.snapshot().since(before)


@dataclass(frozen=True, slots=True)
class _Progress:
    at: float
    acked: int
    reread: int
    requests: int  # every Daily request (discovery included)
    read_requests: int  # requests of session reads
    reads: int
    first_reads: int

    @classmethod
    def now(cls, pipeline: DomainPipeline) -> _Progress:
        return cls(
            at=pipeline.monotonic(),
            acked=pipeline.batcher.totals.exported + pipeline.batcher.totals.samples_exported,
            reread=pipeline.totals.reread,
            requests=pipeline.client.requests_made,
            read_requests=pipeline.totals.requests,
            reads=pipeline.totals.reads,
            first_reads=pipeline._first_reads_done,
        )


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
    "PassReport",
    "build_pipeline",
    "room_selected",
]
