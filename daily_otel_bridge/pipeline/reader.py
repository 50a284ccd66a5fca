"""One read of one session: the window, resuming after the last read, paging, 404.

A read covers `[watermark - lookback, now - settle_lag]`, frozen for its whole length, and
pages through it with the anchor-overlapping requests of `core.cursor.drain_streams`. The
domain's sources that arrive by `GET /logs` (a cursor each: `sources/`) share the
requests. After each page the read gives the batcher a chance to seal a full batch; it
waits there while the backend is behind (backpressure) and learns there that an export
failed.
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
    boundary_free_start,
    drain_streams,
    prune_seen,
    resume_from,
    window_start_ms,
)
from daily_otel_bridge.core.mapping import digest_any
from daily_otel_bridge.daily.client import DailyClient, NotFoundError
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.pipeline.records import RecordPath
from daily_otel_bridge.pipeline.sessions import TrackedSession
from daily_otel_bridge.sources import PageContext, Source


@dataclass(slots=True)
class ReadResult:
    delivered: int = 0
    fetched: int = 0
    reread: int = 0  # records of the overlap (or a moved list) read again and dropped
    requests: int = 0
    complete: bool = False
    soft: bool = False  # ended on a short, recent page without the confirming request
    not_found: str | None = None  # Daily answered 404 for the session


class SessionReader:
    def __init__(
        self,
        settings: DomainSettings,
        *,
        sources: Sequence[Source],
        client: DailyClient,
        records: RecordPath,
        batcher: Batcher,
        metrics: BridgeMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.sources = {source.name: source for source in sources}
        self.streams = tuple(self.sources)
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
        # The largest page Daily answered when asked for more (None: never capped yet).
        self.page_cap: int | None = None
        self._m_page = metrics.page_size_effective.labels(self.name)
        self._m_page.set(settings.page_size)

    async def read(self, session: TrackedSession, *, soft_end: bool = False) -> ReadResult:
        """Read the session once, to the end of its window (or until told to stop).

        A read resumes after what the last complete read saw (`core.cursor.resume_from`):
        its first request asks from the last record's position, so a read whose overlap
        did not change costs `ceil(new / (page - 1)) + 1` requests (one anchor a page; the
        last request confirms the end). A quiet session costs one request."""
        s = self.settings
        result = ReadResult()
        open_streams = {n: c for n, c in session.cursors.items() if not c.retired}
        if not open_streams:
            result.complete = True
            return result
        now_ms = int(self.clock() * 1000)
        lookback_ms = int(s.lookback * 1000)
        # One window for the streams read together (see cursor.drain_streams), its start
        # kept off the millisecond of any record the last reads saw (see `resume_from`).
        start_ms = min(window_start_ms(c, lookback_ms) for c in open_streams.values())
        start_ms = boundary_free_start((c.tail for c in open_streams.values()), start_ms)
        end_ms = max(now_ms - int(s.settle_lag * 1000), start_ms)
        page = PageContext()
        drains: dict[str, StreamDrain] = {}
        for name, cursor in open_streams.items():
            read = SessionRead(cursor=cursor, start_ms=start_ms, end_ms=end_ms, limit=s.page_size)
            read.own_start_ns = window_start_ms(cursor, lookback_ms) * NS_PER_MS
            at = resume_from(cursor.tail, start_ms)
            if at is not None and cursor.tail is not None:
                read.resume(cursor.tail, at)
            if soft_end and session.ongoing and len(open_streams) == 1:
                # The daemon's reads of an ongoing meeting need not pay a request to
                # confirm an end the next read confirms anyway (`run --once` does).
                read.soft_end_after_ns = (end_ms - int(s.poll_interval * 1000)) * NS_PER_MS
            source = self.sources[name]
            drains[name] = StreamDrain(
                read=read, deliver=self.records.deliverer(source, read, page)
            )
        await self.drain(session.session_id, drains, page, result)
        complete = bool(drains) and all(d.result.complete for d in drains.values())
        for name, drain in drains.items():
            result.delivered += drain.result.delivered
            self.after_read(name, drain.read, drain.result.complete)
            # The next read may resume after this one only if this one could have seen
            # every move of the list (see `SessionRead.certain`), or if it is a second
            # complete read that found the list as long as the first left it and nothing
            # new in it: a record inserted during it would have lengthened the list, one
            # inserted before it would have been delivered. (Else a session whose page
            # ends on byte-identical twins would cost a full read every poll.)
            cursor = drain.read.cursor
            if drain.result.soft and not drain.result.complete:
                result.soft = True
                # Every record before this read's last one has been read: that much is
                # drained (for the lag), not the window's end (nothing retires on it).
                last_ms = drain.read.times_ns[-1] // NS_PER_MS - 1
                drained = min(drain.read.end_ms, last_ms)
                if cursor.drained_until_ms is None or drained > cursor.drained_until_ms:
                    cursor.drained_until_ms = drained
                cursor.tail = drain.read.tail(certain=drain.read.certain)
                cursor.last_count = None
                continue
            if not drain.result.complete:
                cursor.tail = None
                cursor.last_count = None
                continue
            counted = (start_ms, len(drain.read.times_ns))
            steady = counted == cursor.last_count and drain.result.delivered == 0
            cursor.tail = drain.read.tail(certain=drain.read.certain or steady)
            cursor.last_count = counted
        result.complete = complete
        self.metrics.requests_per_read.labels(self.name).observe(result.requests)
        return result

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

        previous: list[int] = []  # the length of the last page, once there is one

        async def fetch_page(offset: int, names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
            result.requests += 1
            answer = await self.client.fetch_logs_page(
                mtg_session_id=session_id,
                start_ms=any_read.start_ms,
                end_ms=any_read.end_ms,
                offset=offset,
                limit=s.page_size,
                log_level=s.log_level,
                include_logs=any(self.sources[n].answer == "logs" for n in names),
                include_metrics=any(self.sources[n].answer == "metrics" for n in names),
            )
            page.observed_ns = time.time_ns()
            lists = {"logs": answer.logs, "metrics": answer.metrics}
            pages = {n: lists[self.sources[n].answer] for n in names}
            for n, records in pages.items():
                self._m_fetched[n].inc(len(records))
            log.debug("page", offset=offset, **{n: len(r) for n, r in pages.items()})
            size = max((len(r) for r in pages.values()), default=0)
            if previous and size > 1:
                self._learn_page_size(previous[0])
            previous[:] = [size]
            return pages

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
                self.metrics.records_reread.labels(self.name, name).inc(r.deduplicated)
            if r.anchors:
                self.metrics.records_anchor.labels(self.name, name).inc(r.anchors)
            if r.stalled:
                log.info(
                    "read stopped early: the list moved while paging; the next read goes on",
                    stream=name,
                )

    def _learn_page_size(self, size: int) -> None:
        """A page followed by more records was as large as Daily answers: when that is less
        than `limit`, Daily caps pages (its other lists cap at 100; `/logs` names no cap).
        Said once and kept as a gauge; the cost of a read is `ceil(new / (cap - 1)) + 1`."""
        limit = self.settings.page_size
        if size >= limit or (self.page_cap is not None and size <= self.page_cap):
            return
        self.page_cap = size
        self._m_page.set(size)
        self.log.info(
            "Daily answers fewer records a page than asked",
            asked=limit,
            answered=size,
            note="reads page by this size; the anchor takes one record a page",
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
