"""One read of one session: the window, the one-request quiet check, paging, 404.

A read covers `[watermark - lookback, now - settle_lag]`, frozen for its whole length, and
pages through it with the anchor-overlapping requests of `core.cursor.drain_streams`. Logs
and call-quality samples (two streams, a cursor each) share the requests. After each page
the read gives the batcher a chance to seal a full batch; it waits there while the backend
is behind (backpressure) and learns there that an export failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import (
    NS_PER_MS,
    SessionRead,
    StreamDrain,
    drain_streams,
    prune_seen,
    window_start_ms,
)
from daily_otel_bridge.core.mapping import digest_any
from daily_otel_bridge.daily.client import DailyClient, NotFoundError
from daily_otel_bridge.pipeline.batcher import LOGS, METRICS, Batcher
from daily_otel_bridge.pipeline.records import PageContext, RecordPath
from daily_otel_bridge.pipeline.sessions import TrackedSession
from daily_otel_bridge.service.self_metrics import BridgeMetrics


@dataclass(slots=True)
class ReadResult:
    delivered: int = 0
    fetched: int = 0
    reread: int = 0  # records of the overlap (or a moved list) read again and dropped
    requests: int = 0
    complete: bool = False
    not_found: str | None = None  # Daily answered 404 for the session


class SessionReader:
    def __init__(
        self,
        settings: DomainSettings,
        *,
        streams: Sequence[str],
        client: DailyClient,
        records: RecordPath,
        batcher: Batcher,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.streams = tuple(streams)
        self.client = client
        self.records = records
        self.batcher = batcher
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.should_stop = should_stop
        self.name = settings.name
        self.log = structlog.get_logger(__name__).bind(domain=self.name)
        self._m_fetched = {s: metrics.records_fetched.labels(self.name, s) for s in self.streams}

    async def read(self, session: TrackedSession) -> ReadResult:
        """Read the session once, to the end of its window (or until told to stop)."""
        s = self.settings
        result = ReadResult()
        open_streams = {n: c for n, c in session.cursors.items() if not c.retired}
        if not open_streams:
            result.complete = True
            return result
        now_ms = int(self.clock() * 1000)
        lookback_ms = int(s.lookback * 1000)
        # One window for the streams read together (see cursor.drain_streams).
        start_ms = min(window_start_ms(c, lookback_ms) for c in open_streams.values())
        end_ms = max(now_ms - int(s.settle_lag * 1000), start_ms)
        if len(open_streams) == 1:
            ((name, only),) = open_streams.items()
            if await self._nothing_changed(name, only, start_ms, end_ms, result):
                # As good as a complete read that found nothing new.
                self.after_read(
                    name, SessionRead(cursor=only, start_ms=start_ms, end_ms=end_ms), True
                )
                result.complete = True
                return result
        page = PageContext()
        drains: dict[str, StreamDrain] = {}
        for name, cursor in open_streams.items():
            read = SessionRead(cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=s.page_size)
            read.own_start_ns = window_start_ms(cursor, lookback_ms) * NS_PER_MS
            drains[name] = StreamDrain(read=read, deliver=self.records.deliverer(name, read, page))
        await self.drain(session.session_id, drains, page, result)
        complete = bool(drains) and all(d.result.complete for d in drains.values())
        for name, drain in drains.items():
            result.delivered += drain.result.delivered
            self.after_read(name, drain.read, drain.result.complete)
            # The quiet check may stand in for the next read only after a read that could
            # have seen every move of the list (see `SessionRead.certain`), or after a
            # second complete read that found the list as long as the first left it and
            # nothing new in it: a record inserted during it would have lengthened the
            # list, one inserted before it would have been delivered. (Else a session whose
            # page ends on byte-identical twins would cost a full read every poll.)
            cursor = drain.read.cursor
            counted = (start_ms, drain.read.consumed) if drain.result.complete else None
            steady = (
                counted is not None and counted == cursor.last_count and drain.result.delivered == 0
            )
            certain = drain.result.complete and drain.read.certain
            cursor.resume = counted if certain or steady else None
            cursor.last_count = counted
        result.complete = complete
        return result

    async def _nothing_changed(
        self, stream: str, cursor: Any, start_ms: int, end_ms: int, result: ReadResult
    ) -> bool:
        """A quiet session in one request: nothing past where the last read ended.

        Valid only while the window starts where it started then (no record delivered
        since): the list can then only have grown, by new records at its end or late ones
        inside it, and either makes the answer non-empty, which falls back to a full read.
        """
        if cursor.resume is None or cursor.resume[0] != start_ms or cursor.retired:
            return False
        result.requests += 1
        page = await self.client.fetch_logs_page(
            mtg_session_id=cursor.session_id,
            start_ms=start_ms,
            end_ms=end_ms,
            offset=cursor.resume[1],
            limit=2,
            log_level=self.settings.log_level,
            include_logs=stream == LOGS,
            include_metrics=stream == METRICS,
        )
        return not (page.logs or page.metrics)

    async def drain(
        self,
        session_id: str,
        drains: dict[str, StreamDrain],
        page: PageContext,
        result: ReadResult,
    ) -> None:
        s = self.settings
        any_read = next(iter(drains.values())).read
        log = self.log.bind(session=session_id)

        async def fetch_page(offset: int, names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
            result.requests += 1
            answer = await self.client.fetch_logs_page(
                mtg_session_id=session_id,
                start_ms=any_read.start_ms,
                end_ms=any_read.end_ms,
                offset=offset,
                limit=s.page_size,
                log_level=s.log_level,
                include_logs=LOGS in names,
                include_metrics=METRICS in names,
            )
            page.observed_ns = time.time_ns()
            if LOGS in names:
                self._m_fetched[LOGS].inc(len(answer.logs))
            if METRICS in names:
                self._m_fetched[METRICS].inc(len(answer.metrics))
            log.debug("page", offset=offset, logs=len(answer.logs), metrics=len(answer.metrics))
            return {LOGS: answer.logs, METRICS: answer.metrics}

        async def after_page() -> None:
            await self.records.flush_dead_letters()
            await self.batcher.room()

        try:
            await drain_streams(
                drains, fetch_page, digest_any, should_stop=self.should_stop, after_page=after_page
            )
        except NotFoundError as exc:
            # The session is gone at Daily (or never had logs). Others go on; it is tried
            # again after a quiet interval and retired after its grace period.
            log.warning("session not found at Daily", error=str(exc))
            result.not_found = str(exc)
            for drain in drains.values():
                if drain.read.cursor.ended_at_ms is None:
                    drain.read.cursor.ended_at_ms = int(self.clock() * 1000)
        finally:
            await self.records.flush_dead_letters()
        for name, drain in drains.items():
            r = drain.result
            result.fetched += r.fetched
            result.reread += r.deduplicated
            if r.deduplicated:
                self.metrics.records_deduplicated.labels(self.name, name).inc(r.deduplicated)
            if r.stalled:
                log.info(
                    "read stopped early: the list moved while paging; the next read goes on",
                    stream=name,
                )

    def after_read(self, stream: str, read: SessionRead, complete: bool) -> None:
        """Retirement and pruning after a read; noted in the open batch, so committed only
        after every record of the read was acknowledged."""
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
        self.batcher.update_for(stream, cursor).prune_before_ms = horizon
