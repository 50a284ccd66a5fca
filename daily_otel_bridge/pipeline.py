"""One sweep of one domain: discover -> fetch -> map -> export -> commit.

Invariants that make delivery at-least-once with harmless duplicates:

* A session's cursor (watermark, identities) is written only in `_flush`, after the backend
  acknowledged every record mapped before it, and all sessions of that export in a single
  transaction.
* At most one batch per domain is held in memory; fetching waits while it is exported, so a
  slow or absent backend cannot make memory grow with the backlog.
* Any failure of a sweep throws the in-memory cursors away; the next sweep reloads them from
  the store, i.e. from what was acknowledged.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from daily_otel_bridge.cursor import (
    NS_PER_MS,
    SessionCursor,
    SessionRead,
    drain,
    prune_seen,
    window_start_ms,
)
from daily_otel_bridge.cursor_store import CursorUpdate, DeadLetter, SqliteCursorStore
from daily_otel_bridge.daily_client import DailyClient, NotFoundError
from daily_otel_bridge.encoding import LogBatch, build_resource, resource_to_proto
from daily_otel_bridge.mapping import (
    MalformedRecord,
    SeverityTable,
    fill_log_record,
    record_digest,
    validate,
)
from daily_otel_bridge.otlp import Exporter
from daily_otel_bridge.records import Meeting
from daily_otel_bridge.self_metrics import BridgeMetrics
from daily_otel_bridge.settings import DomainSettings

LOGS = "logs"
# Meeting start times are accurate to about 15 s, and a client may upload its first lines a
# little before Daily records the meeting as started.
START_MARGIN_MS = 60_000
# Discovery re-lists a little more than strictly needed, for the same 15 s inaccuracy.
DISCOVERY_MARGIN_S = 120


@dataclass(slots=True)
class SweepStats:
    sessions_polled: int = 0
    fetched: int = 0
    exported: int = 0
    deduplicated: int = 0
    malformed: int = 0
    rejected: int = 0
    requests: int = 0
    session_errors: list[str] = field(default_factory=list)

    def merge(self, other: SweepStats) -> None:
        for f in dataclasses.fields(self):
            if f.name == "session_errors":
                self.session_errors.extend(other.session_errors)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def room_selected(room: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(room, p) for p in patterns)


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
        self.log = structlog.get_logger("daily_otel_bridge.pipeline").bind(domain=self.name)
        self.cursors: dict[str, SessionCursor] | None = None
        self.floor_ms = 0
        self.discovered_until_ms: int | None = None
        self.next_discovery_at = 0.0
        self.stop_requested = False
        self.last_success: float | None = None
        self._batch: LogBatch | None = None
        self._pending: dict[str, CursorUpdate] = {}
        self._observed_ns = 0  # when the page being mapped was fetched

    # -- state ---------------------------------------------------------------------------

    def _load(self) -> dict[str, SessionCursor]:
        if self.cursors is None:
            now_ms = int(self.clock() * 1000)
            state = self.store.load_domain(
                self.name, default_floor_ms=now_ms - int(self.settings.initial_lookback * 1000)
            )
            self.floor_ms = state.floor_ms
            self.discovered_until_ms = state.discovered_until_ms
            self.cursors = self.store.load_cursors(self.name, LOGS)
        return self.cursors

    def forget_memory(self) -> None:
        """After a failure: drop in-memory cursors so the next sweep starts from the store."""
        self.cursors = None
        self._batch = None
        self._pending = {}
        self.metrics.records_pending.labels(self.name).set(0)

    def active_cursors(self) -> list[SessionCursor]:
        return [c for c in (self.cursors or {}).values() if not c.retired]

    # -- discovery -----------------------------------------------------------------------

    async def discover(self) -> int:
        """Track every meeting that may still have logs to read; returns how many are new."""
        cursors = self._load()
        now = self.clock()
        now_s = int(now)
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
        new: list[SessionCursor] = []
        for meeting in listed.values():
            if not room_selected(meeting.room, self.settings.rooms):
                continue
            cursor = cursors.get(meeting.id)
            if cursor is None:
                cursor = SessionCursor(
                    session_id=meeting.id,
                    room=meeting.room,
                    start_floor_ms=max(meeting.start_time * 1000 - START_MARGIN_MS, self.floor_ms),
                )
                cursors[meeting.id] = cursor
                new.append(cursor)
                self.log.info("session discovered", session=meeting.id, room=meeting.room)
            if cursor.retired:
                continue
            end = meeting.end_time
            cursor.ended_at_ms = end * 1000 if end is not None else None
        # A tracked meeting that is neither ongoing nor recent has ended since we last saw
        # it; its exact end is unknown, so the grace period counts from now.
        for cursor in cursors.values():
            if (
                not cursor.retired
                and cursor.ended_at_ms is None
                and cursor.session_id not in listed
            ):
                cursor.ended_at_ms = now_s * 1000
        self.discovered_until_ms = int(now * 1000)
        self.store.commit(
            self.name,
            LOGS,
            [CursorUpdate(cursor=dataclasses.replace(c, seen={})) for c in new],
            discovered_until_ms=self.discovered_until_ms,
        )
        self.metrics.sessions_tracked.labels(self.name).set(len(self.active_cursors()))
        return len(new)

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
            self._load()
            mono = self.monotonic()
            if full or mono >= self.next_discovery_at:
                await self.discover()
                self.next_discovery_at = mono + self.settings.poll_interval
            due = [c for c in self.active_cursors() if full or c.next_poll_at <= self.monotonic()]
            due.sort(key=lambda c: c.next_poll_at)
            for cursor in due:
                if self.stop_requested:
                    break
                stats.merge(await self._drain_session(cursor))
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

    def next_due_in(self) -> float:
        """Seconds until some session or discovery is due (for the scheduler's sleep)."""
        mono = self.monotonic()
        times = [self.next_discovery_at] + [c.next_poll_at for c in self.active_cursors()]
        return max(0.0, min(times) - mono)

    async def _drain_session(self, cursor: SessionCursor) -> SweepStats:
        stats = SweepStats(sessions_polled=1)
        s = self.settings
        read = SessionRead.begin(
            cursor,
            now_ms=int(self.clock() * 1000),
            lookback_ms=int(s.lookback * 1000),
            settle_lag_ms=int(s.settle_lag * 1000),
        )
        log = self.log.bind(session=cursor.session_id)

        async def fetch_page(offset: int) -> list[Any]:
            page = await self.client.fetch_logs_page(
                mtg_session_id=cursor.session_id,
                start_ms=read.start_ms,
                end_ms=read.end_ms,
                offset=offset,
                limit=s.page_size,
                log_level=s.log_level,
            )
            self.metrics.records_fetched.labels(self.name, LOGS).inc(len(page.logs))
            self._observed_ns = time.time_ns()
            return page.logs

        def deliver(record: Any, uid: str) -> bool:
            return self._deliver(read, record, uid, stats, log)

        async def after_page() -> None:
            await self._flush_if_full(stats)

        complete = False
        try:
            result = await drain(
                read,
                fetch_page,
                _digest,
                deliver,
                should_stop=lambda: self.stop_requested,
                after_page=after_page,
            )
            complete = result.complete
            stats.fetched += result.fetched
            stats.deduplicated += result.deduplicated
            if result.deduplicated:
                self.metrics.records_deduplicated.labels(self.name, LOGS).inc(result.deduplicated)
            if result.stalled:
                log.warning("read stopped: the server does not page consistently")
        except NotFoundError as exc:
            # The session is gone at Daily (or never had logs). Others go on; it is tried
            # again after a quiet interval and retired after its grace period.
            log.warning("session not found at Daily", error=str(exc))
            stats.session_errors.append(f"{cursor.session_id}: {exc}")
            if cursor.ended_at_ms is None:
                cursor.ended_at_ms = int(self.clock() * 1000)
        self._after_read(cursor, read, complete)
        return stats

    def _deliver(
        self, read: SessionRead, record: Any, uid: str, stats: SweepStats, log: Any
    ) -> bool:
        try:
            valid = validate(record)
        except MalformedRecord as exc:
            self._dead_letter(read.cursor, uid, str(exc), record, stats, log)
            return False
        batch = self._current_batch()
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
            self._dead_letter(read.cursor, uid, f"cannot encode: {exc}", record, stats, log)
            return False
        read.mark(uid, valid.time_ns)
        update = self._pending.get(read.cursor.session_id)
        if update is None:
            update = self._pending[read.cursor.session_id] = CursorUpdate(cursor=read.cursor)
        update.new_seen.append((uid, valid.time_ns))
        return True

    async def _flush_if_full(self, stats: SweepStats) -> None:
        # Checked once per page rather than per record: a batch may exceed `batch_size` by
        # at most one page, and the per-record path stays free of coroutines.
        if self._batch is not None and self._batch.size >= self.settings.export.batch_size:
            await self._flush(stats)

    def _dead_letter(
        self, cursor: SessionCursor, uid: str, reason: str, record: Any, stats: SweepStats, log: Any
    ) -> None:
        stats.malformed += 1
        raw = json.dumps(record, ensure_ascii=False, default=str)
        letter = DeadLetter(self.name, LOGS, cursor.session_id, uid, reason, raw, self.clock())
        if self.store.add_dead_letter(letter):
            # Logged and counted once; re-reads inside the overlap find it kept already.
            self.metrics.records_malformed.labels(self.name, LOGS).inc()
            log.warning("malformed record kept as a dead letter", reason=reason, uid=uid)

    def _after_read(self, cursor: SessionCursor, read: SessionRead, complete: bool) -> None:
        s = self.settings
        now_mono = self.monotonic()
        if read.delivered:
            cursor.quiet_polls = 0
            cursor.next_poll_at = now_mono + s.poll_interval
        else:
            cursor.quiet_polls += 1
            backoff = min(s.poll_interval * (2**cursor.quiet_polls), s.max_quiet_interval)
            cursor.next_poll_at = now_mono + max(backoff, s.poll_interval)
        if complete:
            cursor.drained_until_ms = read.end_ms
            if cursor.ended_at_ms is not None and read.end_ms >= cursor.ended_at_ms + int(
                s.session_grace * 1000
            ):
                cursor.retired = True
                cursor.seen.clear()
                self.log.info("session retired", session=cursor.session_id)
        horizon = window_start_ms(cursor, int(s.lookback * 1000))
        prune_seen(cursor.seen, horizon)
        update = self._pending.get(cursor.session_id)
        if update is None:
            update = self._pending[cursor.session_id] = CursorUpdate(cursor=cursor)
        update.prune_before_ms = horizon

    def _current_batch(self) -> LogBatch:
        if self._batch is None:
            self._batch = LogBatch(self.resource)
        return self._batch

    async def _flush(self, stats: SweepStats) -> None:
        """Export the batch, then commit every touched session's cursor in one transaction."""
        batch, self._batch = self._batch, None
        updates = [
            CursorUpdate(
                cursor=dataclasses.replace(u.cursor, seen={}),
                new_seen=u.new_seen,
                prune_before_ms=u.prune_before_ms,
            )
            for u in self._pending.values()
        ]
        self._pending = {}
        if batch is not None and batch.size:
            started = self.monotonic()
            try:
                outcome = await self.exporter.export_logs(batch.request)
            except Exception:
                self.metrics.export_failures.labels(self.name, "export").inc()
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
        if updates and self.persist:
            self.store.commit(self.name, LOGS, updates)
        self.metrics.records_pending.labels(self.name).set(0)

    async def backfill_session(
        self, session_id: str, room: str, start_ms: int, end_ms: int
    ) -> SweepStats:
        """Re-export one session's records in `[start_ms, end_ms]`; no cursor moves.

        Uses a throwaway cursor: the uids are the same as the live ones (they depend only
        on the records), so a backend that de-duplicates on `log.record.uid` can.
        """
        stats = SweepStats(sessions_polled=1)
        cursor = SessionCursor(session_id=session_id, room=room, start_floor_ms=start_ms)
        read = SessionRead(cursor=cursor, start_ms=start_ms, end_ms=end_ms)
        log = self.log.bind(session=session_id, backfill=True)

        async def fetch_page(offset: int) -> list[Any]:
            page = await self.client.fetch_logs_page(
                mtg_session_id=session_id,
                start_ms=start_ms,
                end_ms=end_ms,
                offset=offset,
                limit=self.settings.page_size,
                log_level=self.settings.log_level,
            )
            self._observed_ns = time.time_ns()
            return page.logs

        def deliver(record: Any, uid: str) -> bool:
            return self._deliver(read, record, uid, stats, log)

        async def after_page() -> None:
            await self._flush_if_full(stats)

        try:
            result = await drain(read, fetch_page, _digest, deliver, after_page=after_page)
            stats.fetched += result.fetched
            await self._flush(stats)
        finally:
            self._batch = None
            self._pending = {}
        return stats

    def _update_lag(self) -> None:
        drained = [c.drained_until_ms for c in self.active_cursors() if c.drained_until_ms]
        if drained:
            self.metrics.cursor_lag.labels(self.name).set(
                max(0.0, self.clock() - min(drained) / 1000)
            )
        self.metrics.sessions_tracked.labels(self.name).set(len(self.active_cursors()))

    def cursor_lag_seconds(self) -> float | None:
        drained = [c.drained_until_ms for c in self.active_cursors() if c.drained_until_ms]
        if not drained:
            return None
        return max(0.0, self.clock() - min(drained) / 1000)


def _digest(record: Any) -> bytes:
    if isinstance(record, dict):
        try:
            return record_digest(record)
        except (TypeError, ValueError):
            pass
    return record_digest({"__raw__": repr(record)})


__all__ = ["LOGS", "NS_PER_MS", "DomainPipeline", "SweepStats", "room_selected"]
