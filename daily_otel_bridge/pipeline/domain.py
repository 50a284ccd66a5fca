"""One domain, wired together: the composition root of its parts.

Each part has one job and takes what it needs in its constructor: `sessions.SessionTable`
(what is tracked), `reader.SessionReader` (one read of one session), `records.RecordPath`
(one record), `batcher.Batcher` (batches, exports in flight, ordered commits),
`scheduler.SessionScheduler` (when each session is read next), `progress.DomainProgress`
(lag, gauges, progress lines) and `loop.ReadLoop` (the one loop the daemon and `run --once`
run). Backfill lives in `backfill`.

The parts of an *attempt* are built here and rebuilt after a failure that concerns the
domain as a whole (the key refused, an export that failed after its retries, the state
store): everything in memory is dropped and the next attempt starts from what was
committed. The Daily client, the exporter, the store and the running totals outlive
attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.core.mapping import SeverityTable
from daily_otel_bridge.core.trouble import AttemptObserver
from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.resource import domain_resource
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.batcher import Batcher, ExportSink, Sealed
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.pipeline.loop import ReadLoop
from daily_otel_bridge.pipeline.polling import DomainPolling
from daily_otel_bridge.pipeline.progress import DomainProgress
from daily_otel_bridge.pipeline.reader import SessionReader
from daily_otel_bridge.pipeline.records import RecordPath
from daily_otel_bridge.pipeline.scheduler import SessionScheduler
from daily_otel_bridge.pipeline.sessions import SessionTable, room_selected
from daily_otel_bridge.sources import REGISTRY, DomainSource, Registry, Source
from daily_otel_bridge.state.base import CursorStore
from daily_otel_bridge.state.sqlite import as_cursor_store


class DomainPipeline:
    """Everything one domain needs; one instance per domain."""

    def __init__(
        self,
        settings: DomainSettings,
        *,
        client: DailyClient,
        exporter: ExportSink,
        store: CursorStore,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        persist: bool = True,
        guard: Callable[[], object] | None = None,
        registry: Registry = REGISTRY,
        discovery_stretch: float = 1.0,
    ) -> None:
        self.settings = settings
        # `webhooks.discovery_stretch` when the receiver runs (see `ReadLoop`), else 1.
        self.discovery_stretch = discovery_stretch
        self.name = settings.name
        self.client = client
        self.exporter = exporter
        self.store = as_cursor_store(store)
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        # False for a backfill: records are exported but no cursor is written.
        self.persist = persist
        self.guard = guard
        self.sources: tuple[Source, ...] = registry.enabled_for(settings)
        self.streams = tuple(source.name for source in self.sources)
        # A backfill (persist=False) reads sessions only: no domain source has a position
        # to keep there.
        self.domain_sources: tuple[DomainSource, ...] = (
            registry.domain_sources_for(settings) if persist else ()
        )
        self.severity = SeverityTable.from_names(settings.severity_map)
        self.resource = domain_resource(settings.name, settings.resource_attributes)
        self.log = structlog.get_logger(__name__).bind(domain=self.name)
        self.last_success: float | None = None
        # Called after each commit (and each healthy discovery with nothing to read).
        self.on_success: Callable[[], None] | None = None
        self.totals = PassReport()  # what the pipeline did since it was built
        self._build()

    def _build(self) -> None:
        """The parts of one attempt: at start, and after a failure (from what was committed)."""
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
            participants=self._summarised(),
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
            counts=self.totals,
            on_commit=self._committed,
            guard=self.guard,
        )
        self.records = RecordPath(
            s,
            batcher=self.batcher,
            store=self.store,
            metrics=self.metrics,
            counts=self.totals,
            severity=self.severity,
            clock=self.clock,
        )
        self.reader = SessionReader(
            s,
            sources=self.sources,
            client=self.client,
            records=self.records,
            batcher=self.batcher,
            metrics=self.metrics,
            clock=self.clock,
            monotonic=self.monotonic,
            should_stop=lambda: self.loop.stop_requested,
        )
        self.scheduler = SessionScheduler(s, clock=self.clock, monotonic=self.monotonic)
        self.progress = DomainProgress(
            s,
            streams=self.streams,
            table=self.table,
            batcher=self.batcher,
            totals=self.totals,
            metrics=self.metrics,
            requests_made=lambda: self.client.requests_made,
            last_success=lambda: self.last_success,
            clock=self.clock,
            monotonic=self.monotonic,
        )
        self.loop = ReadLoop(
            s,
            client=self.client,
            table=self.table,
            reader=self.reader,
            batcher=self.batcher,
            scheduler=self.scheduler,
            progress=self.progress,
            polling=self._polling,
            totals=self.totals,
            metrics=self.metrics,
            succeeded=self._succeeded,
            monotonic=self.monotonic,
            discovery_stretch=self.discovery_stretch,
        )

    def _polling(self, loop: ReadLoop) -> DomainPolling:
        return DomainPolling(
            self.settings,
            sources=self.domain_sources,
            batcher=self.batcher,
            records=self.records,
            daily=self.client,
            store=self.store,
            hints=loop,
            meetings=loop.table,
            metrics=self.metrics,
        )

    def _summarised(self) -> bool:
        """Whether a domain source reads what discovery saw of ended meetings (the
        summaries): only then does discovery ask for the participants."""
        return any(source.needs_participants for source in self.domain_sources)

    async def reset(self) -> None:
        """Drop everything in memory (after a failure); the next run reloads the store."""
        await self.batcher.abort()
        self._build()
        self.metrics.reads_in_flight.labels(self.name).set(0)

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

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> PassReport:
        """Run the domain's loop until `stop` (or, `once`, until every session was read to
        the end of its window and committed); returns what it did. A domain failure drops
        the attempt's memory and is raised."""
        before = self.progress.snapshot()
        try:
            await self.loop.run(stop, once=once)
        except BaseException:
            await self.reset()
            raise
        return self.progress.snapshot().since(before)

    async def run_once(self) -> PassReport:
        """`run --once`: the daemon's loop until every tracked session has been read to the
        end of its window and every batch is committed; returns what the pass did."""
        return await self.run(asyncio.Event(), once=True)

    def wake_source(self, name: str) -> None:
        """Poll domain source `name` now (the webhook inbox, when this process stored an
        event for the domain); nothing when the domain does not poll it."""
        polling = self.loop.polling
        if polling is not None:
            polling.wake(name)

    def request_stop(self) -> None:
        """Reads end after their current page (the loop then exports and commits)."""
        self.loop.stop_requested = True

    def observe(self, *, daily: AttemptObserver, export: AttemptObserver) -> None:
        """Who hears of every failed attempt (and recovery) of Daily requests and exports,
        at once, before the retries run out (the runner's alarms)."""
        self.client.observer = daily
        if isinstance(self.exporter, Exporter):
            self.exporter.observer = export

    async def close(self) -> None:
        """Close the Daily client and the exporter (after the last run)."""
        await self.exporter.close()
        await self.client.close()

    # -- what the rest of the bridge asks --------------------------------------------------

    def active_cursors(self) -> list[SessionCursor]:
        """The primary cursor of every session still being read."""
        return [t.primary(self.streams) for t in self.table.active()]

    def cursor_lag_seconds(self) -> float | None:
        return self.progress.cursor_lag_seconds()

    def snapshot(self) -> PassReport:
        return self.progress.snapshot()


def build_pipeline(
    domain: DomainSettings,
    *,
    store: CursorStore,
    metrics: BridgeMetrics,
    persist: bool = True,
    user_agent: str | None = None,
    guard: Callable[[], object] | None = None,
    discovery_stretch: float = 1.0,
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
        discovery_stretch=discovery_stretch,
    )


__all__ = [
    "DomainPipeline",
    "PassReport",
    "build_pipeline",
    "room_selected",
]
