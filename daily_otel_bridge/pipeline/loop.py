"""The one loop of a domain: discovery on its own timer, workers taking due sessions from the
queue, the batch timer and the progress lines, until told to stop or (`once`) until every
tracked session was read to the end of its window and every batch committed.

The daemon and `run --once` run this same code; so do the property, fault and SIGKILL tests.
A failure that concerns the domain as a whole (the key refused, an export that failed after
its retries, the state store) ends `run` with the exception; the composition root then
drops what the attempt held. A failed read of one session is not such a failure: that
session backs off alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.retry import backoff_delay
from daily_otel_bridge.daily.client import (
    AuthError,
    DailyApiError,
    DailyClient,
    PermanentError,
    TransientError,
)
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.pipeline.polling import DomainPolling
from daily_otel_bridge.pipeline.progress import DomainProgress
from daily_otel_bridge.pipeline.reader import ReadResult, SessionReader
from daily_otel_bridge.pipeline.scheduler import SessionScheduler
from daily_otel_bridge.pipeline.sessions import SessionTable, TrackedSession

# Reads in a row that fail (after the client's own retries) before a `run_once` pass gives
# up: one sick session must not stall the others, but a sick API should not be hammered.
MAX_FAILED_SESSIONS = 3
# Reads of one session in one `run_once` pass: a read the list moved under stops early and
# is read again at once; a server whose list never stops moving must not hold the pass.
MAX_READS_PER_PASS = 20
# Quick discoveries (new meetings only) between two full ones, evenly spaced.
QUICK_DISCOVERIES = 2
# Longest a worker sleeps without looking at the queue (new sessions also wake it).
IDLE_WAIT = 1.0
# A meeting's start or end pushed (a webhook) this recently says that pushed events flow:
# discovery may then run `discovery_stretch` times less often. Only `meeting.started` and
# `meeting.ended` count, the events that tell what discovery would; a hook registered for
# errors alone never stretches it.
PUSHED_HEALTHY_FOR = 600.0


class ReadLoop:
    def __init__(
        self,
        settings: DomainSettings,
        *,
        client: DailyClient,
        table: SessionTable,
        reader: SessionReader,
        batcher: Batcher,
        scheduler: SessionScheduler,
        progress: DomainProgress,
        polling: Callable[[ReadLoop], DomainPolling] | None = None,
        totals: PassReport,
        metrics: BridgeMetrics,
        succeeded: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
        discovery_stretch: float = 1.0,
    ) -> None:
        self.settings = settings
        # How many times less often discovery may run while pushed events flow (1: never).
        self.discovery_stretch = discovery_stretch
        self._last_pushed_mono: float | None = None
        self.name = settings.name
        self.client = client
        self.table = table
        self.reader = reader
        self.batcher = batcher
        self.scheduler = scheduler
        self.queue = scheduler.queue
        self.progress = progress
        # The domain sources, polled beside the reads (given this loop for their hints).
        self.polling = polling(self) if polling is not None else None
        self.totals = totals
        self.succeeded = succeeded
        self.monotonic = monotonic
        self.concurrency = settings.concurrent_reads
        self.stop_requested = False
        self.log = structlog.get_logger(__name__).bind(domain=self.name)
        self._m_reads = metrics.reads_in_flight.labels(self.name)
        self._wake = asyncio.Event()
        self._reads_in_flight = 0
        self._once = False
        self._drained = asyncio.Event()
        self._failed_in_a_row = 0
        self._reads_this_pass: dict[str, int] = {}

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Read until `stop` is set (or, `once`, until every session was read to its end);
        then finish the reads' current pages, export and commit what they hold."""
        self.stop_requested = False
        self._once = once
        self._drained = asyncio.Event()
        self._failed_in_a_row = 0
        self._reads_this_pass = {}
        background: list[asyncio.Task[Any]] = []
        workers: list[asyncio.Task[Any]] = []
        waiters: list[asyncio.Task[Any]] = []
        try:
            await self.table.load()
            for session in self.table.active():
                # A restart (or a pass) reads every session once, promptly.
                if session.read_once:
                    self.scheduler.read_now(session)
                else:
                    self.scheduler.first_read(session)
            if self.polling is not None:
                await self.polling.open()
            if once:
                # One discovery before the reads, so that the pass covers what it finds.
                await self.discover()
            self.progress.update_gauges()
            background = [
                asyncio.create_task(self.batcher.run_timer(), name=f"{self.name}:batch-timer"),
                asyncio.create_task(self.progress.run(), name=f"{self.name}:report"),
            ]
            if not once:
                background.append(
                    asyncio.create_task(self._discovery_loop(), name=f"{self.name}:discovery")
                )
                if self.polling is not None and self.polling.sources:
                    background.append(
                        asyncio.create_task(self.polling.run(), name=f"{self.name}:sources")
                    )
            workers = [
                asyncio.create_task(self._worker(stop), name=f"{self.name}:read-{i}")
                for i in range(self.concurrency)
            ]
            waiters = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(self._drained.wait()),
            ]
            waiting: set[asyncio.Task[Any]] = {*background, *workers, *waiters}
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task not in waiters and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                if any(w in done for w in waiters):
                    break
            # The reads end after their current page; what they read is exported and
            # committed (the caller bounds how long that may take).
            self.stop_requested = True
            self._wake_workers()
            await asyncio.gather(*workers)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if once and not stop.is_set() and self.polling is not None:
                # After the reads, so that what they and discovery saw is summed up too.
                await self.polling.poll_all_once()
            await self.batcher.flush()
            if once and not stop.is_set():
                self.succeeded()
            self.progress.update_gauges()
        finally:
            # Workers also leave on this flag: Python 3.11's `wait_for` may swallow a
            # cancellation that lands as its timeout fires, and a worker that lost its
            # cancellation would otherwise wait for work for ever (and the gather with it).
            self.stop_requested = True
            tasks = (*background, *workers, *waiters)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._once = False

    # -- hints from pushed events (`sources.base.SessionHints`) ------------------------------

    def pushed_events_flow(self) -> bool:
        """True when a meeting's start or end was pushed within `PUSHED_HEALTHY_FOR`."""
        last = self._last_pushed_mono
        return last is not None and self.monotonic() - last <= PUSHED_HEALTHY_FOR

    def discovery_delay(self) -> float:
        """Seconds between two healthy discoveries: `poll_interval` spread over the quick
        ones, times `discovery_stretch` while webhooks announce meetings as they start and
        end. Discovery stays the truth (a lost webhook loses nothing), only later."""
        delay = self.settings.poll_interval / (QUICK_DISCOVERIES + 1)
        if self.pushed_events_flow():
            delay *= self.discovery_stretch
        return delay

    async def meeting_started(self, session_id: str, room: str, start_ms: int | None) -> None:
        self._last_pushed_mono = self.monotonic()
        session = await self.table.track_hinted(session_id, room, start_ms)
        if session is not None:
            self.scheduler.first_read(session)
            self._wake_workers()
            self.progress.update_gauges()

    async def meeting_ended(self, session_id: str, end_ms: int | None) -> None:
        self._last_pushed_mono = self.monotonic()
        session = self.table.sessions.get(session_id)
        if session is None:
            return
        end = end_ms if end_ms is not None else int(self.table.clock() * 1000)
        mono = self.monotonic()
        for cursor in session.cursors.values():
            if not cursor.retired and cursor.ended_at_ms is None:
                cursor.ended_at_ms = end
                cursor.end_seen_mono = mono

    async def meeting_busy(self, session_id: str | None, room: str | None) -> None:
        soon = self.monotonic() + 1.0
        for session in self.table.active():
            if session_id is not None:
                matches = session.session_id == session_id
            else:
                matches = session.ongoing and any(c.room == room for c in session.cursors.values())
            if not matches:
                continue
            session.busy = True
            if not session.reading and session.read_once and session.due_at > soon:
                session.due_at = soon
                self.scheduler.requeue(session)
        self._wake_workers()

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
            result = await self.read_session(session)
            if self._once:
                self._after_pass_read(session, result)
            elif not session.retired:
                self.scheduler.requeue(session)
            self._wake_workers()

    async def read_session(self, session: TrackedSession) -> ReadResult | None:
        """Read one session and schedule its next read; None when the read failed (the
        session backs off alone).

        Raises what concerns the whole domain: the key refused, a failed export, the store.
        """
        started = self.monotonic()
        self.progress.read_started(session, started)
        session.last_read_at = started
        session.reading = True
        self._reads_in_flight += 1
        self._m_reads.set(self._reads_in_flight)
        totals = self.totals
        try:
            result = await self.reader.read(session, soft_end=not self._once)
        except AuthError:
            raise
        except (TransientError, PermanentError) as exc:
            delay = self.scheduler.failed(session)
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
        if not session.read_once:
            session.read_once = True
            totals.first_reads += 1
        totals.count_read(
            session.session_id,
            fetched=result.fetched,
            reread=result.reread,
            requests=result.requests,
            not_found=result.not_found,
        )
        self.scheduler.succeeded(session, started, complete=result.complete or result.soft)
        return result

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
            self.scheduler.read_now(session)

    async def discover(self, *, quick: bool = False) -> None:
        """One discovery: new sessions join the queue as first reads; a meeting seen ended
        starts its grace period on the monotonic clock now (not at its next read)."""
        new = await self.table.discover(self.client, quick=quick)
        mono = self.monotonic()
        for session in self.table.active():
            for cursor in session.cursors.values():
                if cursor.ended_at_ms is not None and cursor.end_seen_mono is None:
                    cursor.end_seen_mono = mono
        for session in new:
            self.scheduler.first_read(session)
        if new:
            self._wake_workers()
        if not self.table.sessions:
            self.succeeded()  # nothing to read is a healthy state too
        self.progress.update_gauges()

    async def _discovery_loop(self) -> None:
        """Discovery on its own timer: never blocks reads; its failures back off alone.

        A full discovery every `poll_interval` (every meeting started since the last one,
        and the ongoing list, which tells which tracked meetings ended); between two, quick
        ones (`QUICK_DISCOVERIES` of them, meetings started since the last listing: one
        small request) find a new meeting a few seconds after Daily lists it, so that its
        first minute is read while it is fresh."""
        failures = 0
        tick = 0
        while True:
            quick = tick % (QUICK_DISCOVERIES + 1) != 0
            tick += 1
            try:
                await self.discover(quick=quick)
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
                delay = self.discovery_delay()
            await asyncio.sleep(delay)
