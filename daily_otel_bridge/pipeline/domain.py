"""One sweep of one domain: discover -> fetch -> map -> export -> commit.

Invariants that make delivery at-least-once with harmless duplicates:

* A session's cursor (watermark, identities) is written only in `_flush`, after the backend
  acknowledged every record mapped before it, and all sessions of that export in a single
  transaction. Logs and call-quality samples have a cursor each (two "streams"), read with
  shared requests, exported in their own requests and committed after their own ack.
* At most one batch per stream and domain is held in memory; fetching waits while it is
  exported, so a slow or absent backend cannot make memory grow with the backlog.
* Any failure of a sweep throws the in-memory cursors away; the next sweep reloads them from
  the store, i.e. from what was acknowledged.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import (
    NS_PER_MS,
    SessionCursor,
    SessionRead,
    StreamDrain,
    drain_streams,
    prune_seen,
    window_start_ms,
)
from daily_otel_bridge.core.encoding import LogBatch, build_resource, resource_to_proto
from daily_otel_bridge.core.mapping import (
    MalformedRecord,
    SeverityTable,
    digest_any,
    fill_log_record,
    validate,
)
from daily_otel_bridge.core.metrics_mapping import (
    MetricsBatch,
    fill_sample_log_record,
    map_sample,
    validate_sample,
)
from daily_otel_bridge.core.records import Meeting
from daily_otel_bridge.daily.client import (
    AuthError,
    DailyClient,
    NotFoundError,
    PermanentError,
    TransientError,
)
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.service.self_metrics import BridgeMetrics
from daily_otel_bridge.state.base import CursorUpdate, DeadLetter
from daily_otel_bridge.state.sqlite import SqliteCursorStore

LOGS = "logs"
METRICS = "metrics"
# Meeting start times are accurate to about 15 s, and a client may upload its first lines a
# little before Daily records the meeting as started.
START_MARGIN_MS = 60_000
# Discovery re-lists a little more than strictly needed, for the same 15 s inaccuracy.
DISCOVERY_MARGIN_S = 120
# A metrics sample carries a few dozen data points: flush the metrics request by points.
POINTS_PER_RECORD = 10
# Sessions in a row whose reads fail (after the client's own retries) before the sweep gives
# up: one sick session must not stall the others, but a sick API should not be hammered.
MAX_FAILED_SESSIONS = 3


@dataclass(slots=True)
class SweepStats:
    sessions_polled: int = 0
    fetched: int = 0
    exported: int = 0
    deduplicated: int = 0
    malformed: int = 0
    rejected: int = 0
    samples_exported: int = 0
    points_exported: int = 0
    points_rejected: int = 0
    requests: int = 0
    session_errors: list[str] = field(default_factory=list)  # warnings (e.g. 404)
    session_failures: list[str] = field(default_factory=list)  # reads that failed

    def merge(self, other: SweepStats) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("session_errors", "session_failures"):
                getattr(self, f.name).extend(getattr(other, f.name))
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def room_selected(room: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(room, p) for p in patterns)


# session id -> stream -> cursor. The first stream's cursor also carries the session's
# polling schedule (next_poll_at, quiet_polls), which is kept in memory only.
Sessions = dict[str, dict[str, SessionCursor]]


class DomainPipeline:
    """Everything one domain needs to sweep; one instance per domain, used by one task."""

    def __init__(
        self,
        settings: DomainSettings,
        *,
        client: DailyClient,
        exporter: Exporter,
        store: SqliteCursorStore,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        persist: bool = True,
    ) -> None:
        self.settings = settings
        # False for a backfill: records are exported but no cursor is written.
        self.persist = persist
        self.name = settings.name
        self.client = client
        self.exporter = exporter
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.severity = SeverityTable.from_names(settings.severity_map)
        self.resource = resource_to_proto(
            build_resource(settings.name, settings.resource_attributes)
        )
        self.log = structlog.get_logger("daily_otel_bridge.pipeline.domain").bind(domain=self.name)
        streams = [LOGS] if settings.include_logs else []
        if settings.include_metrics or settings.metrics_as_logs:
            streams.append(METRICS)
        self.streams: tuple[str, ...] = tuple(streams) or (LOGS,)
        self.sessions: Sessions | None = None
        self.floor_ms = 0
        self.discovered_until_ms: int | None = None
        self.next_discovery_at = 0.0
        self.stop_requested = False
        self.last_success: float | None = None
        self._log_batch: LogBatch | None = None
        self._metrics_batch: MetricsBatch | None = None
        # Cursor updates waiting for the ack of the request that carries their records.
        self._pending: dict[str, dict[str, CursorUpdate]] = {s: {} for s in self.streams}
        self._observed_ns = 0  # when the page being mapped was fetched
        self._m_fetched = {s: metrics.records_fetched.labels(self.name, s) for s in self.streams}

    # -- state ---------------------------------------------------------------------------

    def _load(self) -> Sessions:
        if self.sessions is None:
            now_ms = int(self.clock() * 1000)
            state = self.store.load_domain(
                self.name, default_floor_ms=now_ms - int(self.settings.initial_lookback * 1000)
            )
            self.floor_ms = state.floor_ms
            self.discovered_until_ms = state.discovered_until_ms
            sessions: Sessions = {}
            for stream in self.streams:
                for session_id, cursor in self.store.load_cursors(self.name, stream).items():
                    sessions.setdefault(session_id, {})[stream] = cursor
            for by_stream in sessions.values():
                # A stream enabled after the session was first seen starts where it would
                # have started then; a retired session stays retired for it too.
                model = next(iter(by_stream.values()))
                for stream in self.streams:
                    if stream not in by_stream:
                        by_stream[stream] = SessionCursor(
                            session_id=model.session_id,
                            room=model.room,
                            start_floor_ms=model.start_floor_ms,
                            ended_at_ms=model.ended_at_ms,
                            retired=model.retired,
                        )
            self.sessions = sessions
        return self.sessions

    def forget_memory(self) -> None:
        """After a failure: drop in-memory cursors so the next sweep starts from the store."""
        self.sessions = None
        self._log_batch = None
        self._metrics_batch = None
        self._pending = {s: {} for s in self.streams}
        self.metrics.records_pending.labels(self.name).set(0)

    def _primary(self, by_stream: Mapping[str, SessionCursor]) -> SessionCursor:
        return by_stream[self.streams[0]]

    def active_cursors(self) -> list[SessionCursor]:
        """The primary cursor of every session still being read."""
        return [
            self._primary(by_stream)
            for by_stream in (self.sessions or {}).values()
            if not all(c.retired for c in by_stream.values())
        ]

    # -- discovery -----------------------------------------------------------------------

    async def discover(self) -> int:
        """Track every meeting that may still have logs to read; returns how many are new."""
        sessions = self._load()
        now = self.clock()
        if self.discovered_until_ms is None:
            since_s = self.floor_ms // 1000
        else:
            since_s = self.discovered_until_ms // 1000 - int(self.settings.session_grace)
            since_s = max(since_s - DISCOVERY_MARGIN_S, self.floor_ms // 1000 - DISCOVERY_MARGIN_S)
        recent = await self.client.list_meetings(timeframe_start=since_s)
        ongoing = await self.client.list_meetings(ongoing=True)
        listed: dict[str, Meeting] = {m.id: m for m in recent}
        for meeting in ongoing:
            listed[meeting.id] = meeting
        new: list[tuple[str, SessionCursor]] = []
        for meeting in listed.values():
            if not room_selected(meeting.room, self.settings.rooms):
                continue
            by_stream = sessions.get(meeting.id)
            if by_stream is None:
                start = max(meeting.start_time * 1000 - START_MARGIN_MS, self.floor_ms)
                by_stream = sessions[meeting.id] = {
                    s: SessionCursor(session_id=meeting.id, room=meeting.room, start_floor_ms=start)
                    for s in self.streams
                }
                new.extend(by_stream.items())
                self.log.info("session discovered", session=meeting.id, room=meeting.room)
            end = meeting.end_time
            for cursor in by_stream.values():
                if not cursor.retired:
                    cursor.ended_at_ms = end * 1000 if end is not None else None
        # A tracked meeting that is neither ongoing nor recent has ended since we last saw
        # it; its exact end is unknown, so the grace period counts from now.
        for session_id, by_stream in sessions.items():
            if session_id in listed:
                continue
            for cursor in by_stream.values():
                if not cursor.retired and cursor.ended_at_ms is None:
                    cursor.ended_at_ms = int(now) * 1000
        self.discovered_until_ms = int(now * 1000)
        # The sessions found and the time covered are committed together: a crash can never
        # record "discovered up to T" without the sessions found before T.
        if self.persist:
            for index, stream in enumerate(self.streams):
                self.store.commit(
                    self.name,
                    stream,
                    [
                        CursorUpdate(cursor=dataclasses.replace(c, seen={}))
                        for s, c in new
                        if s == stream
                    ],
                    discovered_until_ms=self.discovered_until_ms if index == 0 else None,
                )
            self._forget_retired(since_s * 1000)
        self.metrics.sessions_tracked.labels(self.name).set(len(self.active_cursors()))
        return len(new) // len(self.streams)

    def _forget_retired(self, listed_since_ms: int) -> None:
        """Drop retired sessions that discovery can no longer list.

        A retired row stays while its meeting could still be listed (it keeps the meeting
        from being read again from scratch); once the meeting started before what discovery
        asks for, the row has no more use.
        """
        sessions = self.sessions or {}
        gone = [
            session_id
            for session_id, by_stream in sessions.items()
            if all(
                c.retired
                and c.drained_until_ms is not None
                and c.drained_until_ms < listed_since_ms
                for c in by_stream.values()
            )
        ]
        if not gone:
            return
        for stream in self.streams:
            self.store.forget_retired(self.name, stream, listed_since_ms)
        for session_id in gone:
            del sessions[session_id]

    # -- the sweep -----------------------------------------------------------------------

    async def sweep(self, *, full: bool = False) -> SweepStats:
        """Discover (when due) and drain every session that is due (every one if `full`).

        Raises on a failure that stops the sweep (Daily unreachable or refusing the key,
        backend not acknowledging, state not writable); what was acknowledged before it is
        committed, the rest is read again next time.
        """
        stats = SweepStats()
        requests_before = self.client.requests_made
        try:
            sessions = self._load()
            mono = self.monotonic()
            if full or mono >= self.next_discovery_at:
                await self.discover()
                self.next_discovery_at = mono + self.settings.poll_interval
            due = [
                by_stream
                for by_stream in sessions.values()
                if not all(c.retired for c in by_stream.values())
                and (full or self._primary(by_stream).next_poll_at <= self.monotonic())
            ]
            # Sessions that had news last time first, then the longest waiting.
            due.sort(
                key=lambda b: (self._primary(b).quiet_polls > 0, self._primary(b).next_poll_at)
            )
            failed_in_a_row = 0
            for by_stream in due:
                if self.stop_requested:
                    break
                try:
                    stats.merge(await self._drain_session(by_stream))
                    failed_in_a_row = 0
                except (TransientError, PermanentError) as exc:
                    if isinstance(exc, AuthError):
                        raise
                    failed_in_a_row += 1
                    if failed_in_a_row >= MAX_FAILED_SESSIONS:
                        raise
                    self._session_failed(by_stream, exc, stats)
            await self._flush(stats)
        except BaseException:
            self.forget_memory()
            raise
        finally:
            stats.requests = self.client.requests_made - requests_before
        if not self.stop_requested:
            self.last_success = self.clock()
            self.metrics.last_success.labels(self.name).set(self.last_success)
        self._update_lag()
        return stats

    def _session_failed(
        self, by_stream: dict[str, SessionCursor], exc: Exception, stats: SweepStats
    ) -> None:
        """One session's read failed: the others go on; it is tried again after a backoff.

        What it delivered before the failure stays batched and is committed with the next
        acknowledged export; the rest of its window is read again next time.
        """
        primary = self._primary(by_stream)
        self.log.warning("session read failed", session=primary.session_id, error=str(exc))
        stats.session_failures.append(f"{primary.session_id}: {exc}")
        primary.quiet_polls += 1
        delay = min(self.settings.poll_interval * (2**primary.quiet_polls), 300.0)
        primary.next_poll_at = self.monotonic() + delay

    def next_due_in(self) -> float:
        """Seconds until some session or discovery is due (for the scheduler's sleep)."""
        mono = self.monotonic()
        times = [self.next_discovery_at] + [c.next_poll_at for c in self.active_cursors()]
        return max(0.0, min(times) - mono)

    async def _drain_session(self, by_stream: dict[str, SessionCursor]) -> SweepStats:
        stats = SweepStats(sessions_polled=1)
        s = self.settings
        primary = self._primary(by_stream)
        session_id = primary.session_id
        log = self.log.bind(session=session_id)
        open_streams = {name: c for name, c in by_stream.items() if not c.retired}
        now_ms = int(self.clock() * 1000)
        lookback_ms = int(s.lookback * 1000)
        # One window for the streams read together (see cursor.drain_streams).
        start_ms = min(window_start_ms(c, lookback_ms) for c in open_streams.values())
        end_ms = max(now_ms - int(s.settle_lag * 1000), start_ms)
        if len(open_streams) == 1:
            ((name, only),) = open_streams.items()
            if await self._nothing_changed(session_id, only, start_ms, end_ms):
                # As good as a complete read that found nothing new.
                quiet = SessionRead(cursor=only, start_ms=start_ms, end_ms=end_ms)
                self._after_read(name, quiet, complete=True)
                self._schedule(primary, 0)
                return stats
        drains: dict[str, StreamDrain] = {}
        for name, cursor in open_streams.items():
            read = SessionRead(cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=s.page_size)
            read.own_start_ns = window_start_ms(cursor, lookback_ms) * NS_PER_MS
            drains[name] = StreamDrain(read=read, deliver=self._deliverer(name, read, stats, log))
        await self._read(session_id, drains, stats, log)
        delivered = 0
        for name, drain in drains.items():
            delivered += drain.result.delivered
            self._after_read(name, drain.read, drain.result.complete)
            complete = drain.result.complete
            drain.read.cursor.resume = (start_ms, drain.read.consumed) if complete else None
        self._schedule(primary, delivered)
        return stats

    async def _nothing_changed(
        self, session_id: str, cursor: SessionCursor, start_ms: int, end_ms: int
    ) -> bool:
        """A quiet session in one request: nothing past where the last read ended.

        Valid only while the window starts where it started then (no record delivered
        since): the list can then only have grown, by new records at its end or late ones
        inside it, and either makes the answer non-empty, which falls back to a full read.
        """
        if cursor.resume is None or cursor.resume[0] != start_ms or cursor.retired:
            return False
        page = await self.client.fetch_logs_page(
            mtg_session_id=session_id,
            start_ms=start_ms,
            end_ms=end_ms,
            offset=cursor.resume[1],
            limit=2,
            log_level=self.settings.log_level,
            include_logs=self.streams[0] == LOGS,
            include_metrics=self.streams[0] == METRICS,
        )
        return not (page.logs or page.metrics)

    async def _read(
        self, session_id: str, drains: dict[str, StreamDrain], stats: SweepStats, log: Any
    ) -> None:
        s = self.settings
        any_read = next(iter(drains.values())).read

        async def fetch_page(offset: int, names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
            page = await self.client.fetch_logs_page(
                mtg_session_id=session_id,
                start_ms=any_read.start_ms,
                end_ms=any_read.end_ms,
                offset=offset,
                limit=s.page_size,
                log_level=s.log_level,
                include_logs=LOGS in names,
                include_metrics=METRICS in names,
            )
            self._observed_ns = time.time_ns()
            if LOGS in names:
                self._m_fetched[LOGS].inc(len(page.logs))
            if METRICS in names:
                self._m_fetched[METRICS].inc(len(page.metrics))
            return {LOGS: page.logs, METRICS: page.metrics}

        async def after_page() -> None:
            await self._flush_if_full(stats)

        try:
            await drain_streams(
                drains,
                fetch_page,
                digest_any,
                should_stop=lambda: self.stop_requested,
                after_page=after_page,
            )
        except NotFoundError as exc:
            # The session is gone at Daily (or never had logs). Others go on; it is tried
            # again after a quiet interval and retired after its grace period.
            log.warning("session not found at Daily", error=str(exc))
            stats.session_errors.append(f"{session_id}: {exc}")
            for drain in drains.values():
                if drain.read.cursor.ended_at_ms is None:
                    drain.read.cursor.ended_at_ms = int(self.clock() * 1000)
        for name, drain in drains.items():
            result = drain.result
            stats.fetched += result.fetched
            stats.deduplicated += result.deduplicated
            if result.deduplicated:
                self.metrics.records_deduplicated.labels(self.name, name).inc(result.deduplicated)
            if result.stalled:
                log.info(
                    "read stopped early: the list moved while paging; the next read goes on",
                    stream=name,
                )

    def _deliverer(
        self, stream: str, read: SessionRead, stats: SweepStats, log: Any
    ) -> Callable[[Any, str], bool]:
        if stream == LOGS:
            return lambda record, uid: self._deliver_log(read, record, uid, stats, log)
        return lambda record, uid: self._deliver_sample(read, record, uid, stats, log)

    def _deliver_log(
        self, read: SessionRead, record: Any, uid: str, stats: SweepStats, log: Any
    ) -> bool:
        try:
            valid = validate(record)
        except MalformedRecord as exc:
            self._dead_letter(LOGS, read.cursor, uid, str(exc), record, stats, log)
            return False
        if valid.time_ns < read.own_start_ns:
            stats.deduplicated += 1
            return False
        batch = self._logs()
        target = batch.add()
        try:
            fill_log_record(
                target,
                record,
                time_ns=valid.time_ns,
                observed_ns=self._observed_ns,
                uid=uid,
                room=read.cursor.room or None,
                severity=self.severity,
            )
        except (ValueError, TypeError) as exc:  # e.g. an int beyond int64 for `code`
            batch.discard_last()
            self._dead_letter(LOGS, read.cursor, uid, f"cannot encode: {exc}", record, stats, log)
            return False
        read.mark(uid, valid.time_ns)
        self._pending_update(LOGS, read.cursor).new_seen.append((uid, valid.time_ns))
        return True

    def _deliver_sample(
        self, read: SessionRead, sample: Any, uid: str, stats: SweepStats, log: Any
    ) -> bool:
        room = read.cursor.room or None
        try:
            valid = validate_sample(sample)
        except MalformedRecord as exc:
            self._dead_letter(METRICS, read.cursor, uid, str(exc), sample, stats, log)
            return False
        if valid.time_ns < read.own_start_ns:
            stats.deduplicated += 1
            return False
        mapped = map_sample(sample, room=room) if self.settings.include_metrics else None
        if mapped is not None:
            self._samples().add(mapped)
            if mapped.ignored_non_numeric:
                self.metrics.metric_fields_ignored.labels(self.name).inc(mapped.ignored_non_numeric)
        if self.settings.metrics_as_logs:
            batch = self._logs()
            fill_sample_log_record(
                batch.add(),
                sample,
                time_ns=valid.time_ns,
                observed_ns=self._observed_ns,
                uid=uid,
                room=room,
            )
        read.mark(uid, valid.time_ns)
        self._pending_update(METRICS, read.cursor).new_seen.append((uid, valid.time_ns))
        return True

    def _pending_update(self, stream: str, cursor: SessionCursor) -> CursorUpdate:
        pending = self._pending[stream]
        update = pending.get(cursor.session_id)
        if update is None:
            update = pending[cursor.session_id] = CursorUpdate(cursor=cursor)
        return update

    def _dead_letter(
        self,
        stream: str,
        cursor: SessionCursor,
        uid: str,
        reason: str,
        record: Any,
        stats: SweepStats,
        log: Any,
    ) -> None:
        stats.malformed += 1
        raw = json.dumps(record, ensure_ascii=False, default=str)
        letter = DeadLetter(self.name, stream, cursor.session_id, uid, reason, raw, self.clock())
        if self.store.add_dead_letter(letter):
            # Logged and counted once; re-reads inside the overlap find it kept already.
            self.metrics.records_malformed.labels(self.name, stream).inc()
            log.warning(
                "malformed record kept as a dead letter", stream=stream, reason=reason, uid=uid
            )

    def _after_read(self, stream: str, read: SessionRead, complete: bool) -> None:
        s = self.settings
        cursor = read.cursor
        if cursor.ended_at_ms is not None and cursor.end_seen_mono is None:
            cursor.end_seen_mono = self.monotonic()
        if complete:
            cursor.drained_until_ms = read.end_ms
            # Both clocks must agree that the grace period is over: the wall clock against
            # Daily's end time, and the monotonic one, which a wall-clock jump cannot move.
            if (
                cursor.ended_at_ms is not None
                and cursor.end_seen_mono is not None
                and read.end_ms >= cursor.ended_at_ms + int(s.session_grace * 1000)
                and self.monotonic() - cursor.end_seen_mono >= s.session_grace
            ):
                cursor.retired = True
                cursor.seen.clear()
                self.log.info("session retired", session=cursor.session_id, stream=stream)
        horizon = window_start_ms(cursor, int(s.lookback * 1000))
        prune_seen(cursor.seen, horizon)
        self._pending_update(stream, cursor).prune_before_ms = horizon

    def _schedule(self, primary: SessionCursor, delivered: int) -> None:
        """Adaptive polling: busy sessions every poll_interval, quiet ones less often."""
        s = self.settings
        now_mono = self.monotonic()
        if delivered:
            primary.quiet_polls = 0
            primary.next_poll_at = now_mono + s.poll_interval
        else:
            primary.quiet_polls += 1
            backoff = min(s.poll_interval * (2**primary.quiet_polls), s.max_quiet_interval)
            primary.next_poll_at = now_mono + max(backoff, s.poll_interval)

    def _logs(self) -> LogBatch:
        if self._log_batch is None:
            self._log_batch = LogBatch(self.resource)
        return self._log_batch

    def _samples(self) -> MetricsBatch:
        if self._metrics_batch is None:
            self._metrics_batch = MetricsBatch(self.resource)
        return self._metrics_batch

    async def _flush_if_full(self, stats: SweepStats) -> None:
        # Checked once per page rather than per record: a batch may exceed `batch_size` by
        # at most one page, and the per-record path stays free of coroutines.
        limit = self.settings.export.batch_size
        logs, samples = self._log_batch, self._metrics_batch
        if (logs is not None and logs.size >= limit) or (
            samples is not None and samples.size >= limit * POINTS_PER_RECORD
        ):
            await self._flush(stats)

    def _take_updates(self, stream: str) -> list[CursorUpdate]:
        lookback_ms = int(self.settings.lookback * 1000)
        updates = []
        for u in self._pending[stream].values():
            # Identities older than where the next read starts are never looked up again:
            # persisting them would only be deleted at the end of the read.
            horizon_ns = window_start_ms(u.cursor, lookback_ms) * NS_PER_MS
            updates.append(
                CursorUpdate(
                    cursor=dataclasses.replace(u.cursor, seen={}),
                    new_seen=[(uid, t) for uid, t in u.new_seen if t >= horizon_ns],
                    prune_before_ms=u.prune_before_ms,
                )
            )
        self._pending[stream] = {}
        return updates

    async def _flush(self, stats: SweepStats) -> None:
        """Export what is batched, then commit the cursors it covers, one transaction each.

        Samples exported as logs (`metrics_as_logs`) ride in the logs request; when they are
        also exported as metrics, the samples' cursor waits for both acknowledgements.
        """
        log_batch, self._log_batch = self._log_batch, None
        metrics_batch, self._metrics_batch = self._metrics_batch, None
        log_updates = self._take_updates(LOGS) if LOGS in self._pending else []
        sample_updates = self._take_updates(METRICS) if METRICS in self._pending else []
        if log_batch is not None and log_batch.size:
            self.metrics.records_pending.labels(self.name).set(log_batch.size)
            await self._export_logs(log_batch, stats)
        if log_updates and self.persist:
            self.store.commit(self.name, LOGS, log_updates)
        if metrics_batch is not None and metrics_batch.size:
            await self._export_samples(metrics_batch, stats)
        if sample_updates:
            stats.samples_exported += sum(len(u.new_seen) for u in sample_updates)
            if self.persist:
                self.store.commit(self.name, METRICS, sample_updates)
        self.metrics.records_pending.labels(self.name).set(0)

    async def _export_logs(self, batch: LogBatch, stats: SweepStats) -> None:
        started = self.monotonic()
        try:
            outcome = await self.exporter.export_logs(batch.request)
        except Exception:
            self.metrics.export_failures.labels(self.name, "logs").inc()
            raise
        self.metrics.export_duration.labels(self.name, self.exporter.protocol).observe(
            self.monotonic() - started
        )
        accepted = batch.size - outcome.rejected
        stats.exported += accepted
        self.metrics.records_exported.labels(self.name, LOGS).inc(accepted)
        if outcome.rejected:
            stats.rejected += outcome.rejected
            self.metrics.records_rejected.labels(self.name, LOGS).inc(outcome.rejected)
            self.log.warning(
                "backend rejected records (partial success); they are not retried",
                rejected=outcome.rejected,
                reason=outcome.error_message[:200],
            )

    async def _export_samples(self, batch: MetricsBatch, stats: SweepStats) -> None:
        started = self.monotonic()
        try:
            outcome = await self.exporter.export_metrics(batch.request)
        except Exception:
            self.metrics.export_failures.labels(self.name, "metrics").inc()
            raise
        self.metrics.export_duration.labels(self.name, self.exporter.protocol).observe(
            self.monotonic() - started
        )
        accepted = batch.size - outcome.rejected
        stats.points_exported += accepted
        self.metrics.records_exported.labels(self.name, METRICS).inc(accepted)
        if outcome.rejected:
            stats.points_rejected += outcome.rejected
            self.metrics.records_rejected.labels(self.name, METRICS).inc(outcome.rejected)
            self.log.warning(
                "backend rejected data points (partial success); they are not retried",
                rejected=outcome.rejected,
                reason=outcome.error_message[:200],
            )

    async def backfill_session(
        self, session_id: str, room: str, start_ms: int, end_ms: int
    ) -> SweepStats:
        """Re-export one session's records in `[start_ms, end_ms]`; no cursor moves.

        Uses throwaway cursors: the uids are the same as the live ones (they depend only
        on the records), so a backend that de-duplicates on `log.record.uid` can.
        """
        stats = SweepStats(sessions_polled=1)
        log = self.log.bind(session=session_id, backfill=True)
        drains: dict[str, StreamDrain] = {}
        for name in self.streams:
            cursor = SessionCursor(session_id=session_id, room=room, start_floor_ms=start_ms)
            read = SessionRead(
                cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=self.settings.page_size
            )
            drains[name] = StreamDrain(read=read, deliver=self._deliverer(name, read, stats, log))
        try:
            await self._read(session_id, drains, stats, log)
            await self._flush(stats)
        finally:
            self._log_batch = None
            self._metrics_batch = None
            self._pending = {s: {} for s in self.streams}
        return stats

    def _update_lag(self) -> None:
        lag = self.cursor_lag_seconds()
        if lag is not None:
            self.metrics.cursor_lag.labels(self.name).set(lag)
        self.metrics.sessions_tracked.labels(self.name).set(len(self.active_cursors()))

    def cursor_lag_seconds(self) -> float | None:
        drained = [c.drained_until_ms for c in self.active_cursors() if c.drained_until_ms]
        if not drained:
            return None
        return max(0.0, self.clock() - min(drained) / 1000)


def build_pipeline(
    domain: DomainSettings,
    *,
    store: SqliteCursorStore,
    metrics: BridgeMetrics,
    persist: bool = True,
) -> DomainPipeline:
    """A domain's pipeline with its own Daily client and exporter, as configured."""
    client = DailyClient(
        domain=domain.name,
        api_url=domain.api_url,
        api_key=domain.api_key.get_secret_value(),
        requests_per_second=domain.requests_per_second,
        timeout=domain.request_timeout,
        ca_file=domain.ca_file,
        metrics=metrics,
    )
    exporter = Exporter(build_transport(domain.export), max_retry_time=domain.export.max_retry_time)
    return DomainPipeline(
        domain, client=client, exporter=exporter, store=store, metrics=metrics, persist=persist
    )


__all__ = ["LOGS", "METRICS", "DomainPipeline", "SweepStats", "build_pipeline", "room_selected"]
