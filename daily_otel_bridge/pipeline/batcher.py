"""Batches bounded in size and time, exports in flight, and commits in order.

One `Batcher` per domain. The per-record path writes records straight into the open batch
(a logs request and a metrics request under construction) and notes, next to them, the
cursor updates those records make possible. A batch is *sealed* when it holds `batch_size`
records, `batch_timeout` after its first content, or on demand (`flush`); a sealed batch is
exported while the reads go on, up to `max_inflight_exports` at once.

Commit-after-ack stays exact under that overlap because commits are strictly ordered: the
updates of batch *k* are committed (in one transaction) only after batch *k* and every
batch before it were acknowledged and committed. An update noted in batch *k* covers only
records of batches up to *k*, so no cursor ever moves past a record that was not
acknowledged; and a batch that fails moves nothing after it: the failure is kept, every
later batch is refused, and the domain starts over from what was committed.

Memory: a sealed batch holds its export slot until it is committed, and `room()` makes the
reads wait while the open batch is full and no slot is free. A domain therefore holds at
most `(max_inflight_exports + 1) * batch_size` records in batches, plus up to one page per
read in flight that arrived while the batch was filling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from google.protobuf.message import Message
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor, window_start_ms
from daily_otel_bridge.core.encoding import LogBatch, SerializedRequest
from daily_otel_bridge.core.metrics_mapping import MetricsBatch
from daily_otel_bridge.instruments import BridgeMetrics, Signal
from daily_otel_bridge.otlp.transport import ExportError, ExportOutcome
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.state.base import CommitOptions, CursorStore, CursorUpdate

# A metrics sample carries a few dozen data points: the metrics request is bounded by points.
POINTS_PER_RECORD = 10


class RequestBuilder(Protocol):
    """One OTLP request under construction (`core.encoding.LogBatch`, `MetricsBatch`)."""

    size: int


@dataclass(frozen=True, slots=True)
class SignalBatching:
    """How the open batch builds the request of one OTLP signal."""

    signal: Signal
    new: Callable[[ProtoResource], RequestBuilder]
    request: Callable[[Any], Message | SerializedRequest]  # the finished request
    per_record: int  # items (records, data points) a request may hold per `batch_size`
    what: str  # what the backend refuses, in the partial-success warning


LOGS_BATCHING = SignalBatching(
    "logs", LogBatch, lambda b: b.serialized(), per_record=1, what="records"
)
METRICS_BATCHING = SignalBatching(
    "metrics", MetricsBatch, lambda b: b.request, per_record=POINTS_PER_RECORD, what="data points"
)
# In the order a batch's requests are exported.
BATCHING: Final = (LOGS_BATCHING, METRICS_BATCHING)


class ExportSink(Protocol):
    """What the batcher needs of an exporter (`otlp.transport.Exporter`)."""

    @property
    def protocol(self) -> str: ...

    async def export(self, signal: str, request: Message | SerializedRequest) -> ExportOutcome: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Open:
    requests: dict[Signal, Any] = field(default_factory=dict)  # signal -> RequestBuilder
    # stream -> session id -> the update the batch's records make possible
    updates: dict[str, dict[str, CursorUpdate]] = field(default_factory=dict)
    # stream -> log records it put in the logs request (to charge a partial rejection to)
    log_records: dict[str, int] = field(default_factory=dict)
    # Domain sources: records without a session cursor, positions and inbox events.
    domain_records: dict[str, int] = field(default_factory=dict)
    positions: dict[str, str] = field(default_factory=dict)
    inbox_done: list[str] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    opened_at: float | None = None  # monotonic, when the first content came in
    oldest_ns: int | None = None  # `time` of the oldest record in the batch

    @property
    def empty(self) -> bool:
        return self.opened_at is None


@dataclass(slots=True)
class Sealed:
    seq: int
    oldest_ns: int | None
    requests: dict[Signal, Any]
    updates: dict[str, list[CursorUpdate]]
    records: dict[str, int]  # stream -> records taken (one each, whatever they became)
    log_records: dict[str, int]
    positions: dict[str, str]
    inbox_done: list[str]
    committed: asyncio.Future[None]
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    previous: asyncio.Future[None] | None = None  # the batch before: commits wait for it


def _records_by_stream(opened: _Open) -> dict[str, int]:
    # Every record a session source takes is noted in its cursor's update (`read.mark`).
    records = {
        stream: sum(len(u.new_seen) for u in by_session.values())
        for stream, by_session in opened.updates.items()
    }
    for stream, taken in opened.domain_records.items():
        records[stream] = records.get(stream, 0) + taken
    return records


class Batcher:
    def __init__(
        self,
        *,
        domain: str,
        resource: ProtoResource,
        exporter: ExportSink,
        store: CursorStore,
        metrics: BridgeMetrics,
        batch_size: int,
        batch_timeout: float,
        max_inflight: int,
        lookback_ms: int,
        persist: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        counts: PassReport | None = None,
        on_commit: Callable[[Sealed], None] | None = None,
        guard: Callable[[], object] | None = None,
    ) -> None:
        self.guard = guard
        self.domain = domain
        self.resource = resource
        self.exporter = exporter
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.max_inflight = max_inflight
        self.lookback_ms = lookback_ms
        self.persist = persist
        self.monotonic = monotonic
        self.on_commit = on_commit
        self.counts = counts if counts is not None else PassReport()
        self.failure: BaseException | None = None
        self._open = _Open()
        self._slots = asyncio.Semaphore(max_inflight)
        self._seal_lock = asyncio.Lock()
        self._opened = asyncio.Event()
        self._seq = 0
        self._last: asyncio.Future[None] | None = None  # committed-future of the newest batch
        self._tasks: set[asyncio.Task[None]] = set()
        self._sealed: list[Sealed] = []  # sealed and not yet committed, in order
        self._ready: deque[Sealed] = deque()  # sealed, waiting for an export slot
        self._inflight = 0
        self.log = structlog.get_logger(__name__).bind(domain=domain)
        self._m_pending = metrics.records_pending.labels(domain)
        self._m_inflight = metrics.exports_in_flight.labels(domain)

    # -- the open batch (synchronous: the per-record path never awaits) ------------------

    def _touch(self) -> None:
        if self._open.opened_at is None:
            self._open.opened_at = self.monotonic()
            self._opened.set()

    def _request(self, batching: SignalBatching) -> Any:
        builder = self._open.requests.get(batching.signal)
        if builder is not None and builder.size >= self.batch_size * batching.per_record:
            self._rotate()  # a request never carries more than its share of batch_size
            builder = None
        self._touch()
        if builder is None:
            builder = self._open.requests[batching.signal] = batching.new(self.resource)
        return builder

    def metrics_request(self) -> MetricsBatch:
        """The open metrics request (data points are added to it)."""
        builder: MetricsBatch = self._request(METRICS_BATCHING)
        return builder

    def log_for(self, stream: str) -> LogBatch:
        """The open logs request, for one log record of `stream` filled as a message."""
        builder: LogBatch = self._request(LOGS_BATCHING)
        counted = self._open.log_records
        counted[stream] = counted.get(stream, 0) + 1
        return builder

    def add_encoded_log(
        self, data: bytes, cursor: SessionCursor, uid: str, time_ns: int, stream: str
    ) -> None:
        """The per-record path of a log record in one call: its wire form into the open
        logs request, its time noted (`note_time`), its identity added to its cursor's
        pending update (`update_for(stream, cursor)`)."""
        opened = self._open
        batch = opened.requests.get("logs")
        if batch is None or batch.size >= self.batch_size:
            batch = self._request(LOGS_BATCHING)  # opens (or rotates to) a new batch
            opened = self._open
        batch.add_encoded(data)
        counted = opened.log_records
        counted[stream] = counted.get(stream, 0) + 1
        oldest = opened.oldest_ns
        if oldest is None or time_ns < oldest:
            opened.oldest_ns = time_ns
        by_session = opened.updates.get(stream)
        if by_session is None:
            by_session = opened.updates[stream] = {}
        update = by_session.get(cursor.session_id)
        if update is None:
            update = by_session[cursor.session_id] = CursorUpdate(cursor=cursor)
        update.new_seen.append((uid, time_ns))

    def add_domain_log(self, data: bytes, uid: str, time_ns: int, stream: str) -> None:
        """A log record of a domain source (no session cursor): its position or inbox
        event is noted beside it (`note_position`, `note_inbox_done`)."""
        batch: LogBatch = self._request(LOGS_BATCHING)
        batch.add_encoded(data)
        opened = self._open
        for counted in (opened.log_records, opened.domain_records):
            counted[stream] = counted.get(stream, 0) + 1
        self.note_time(time_ns)

    def note_position(self, stream: str, position: str) -> None:
        """`stream`'s position, committed with the open batch: call it after adding the
        records it covers, which are then in this batch or an earlier one."""
        self._touch()
        self._open.positions[stream] = position

    def note_inbox_done(self, event_ids: Sequence[str]) -> None:
        """Inbox events whose records are in the open batch (or an earlier one): removed
        from the inbox in the transaction that commits it."""
        if event_ids:
            self._touch()
            self._open.inbox_done.extend(event_ids)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """`callback` runs once the open batch is committed (not at all if it fails)."""
        self._touch()
        self._open.after_commit.append(callback)

    def update_for(self, stream: str, cursor: SessionCursor) -> CursorUpdate:
        """The pending update of `cursor` in the open batch (committed with it)."""
        self._touch()
        by_session = self._open.updates.setdefault(stream, {})
        update = by_session.get(cursor.session_id)
        if update is None:
            update = by_session[cursor.session_id] = CursorUpdate(cursor=cursor)
        return update

    def note_time(self, time_ns: int) -> None:
        """A record of this `time` went into the open batch (for the lag)."""
        oldest = self._open.oldest_ns
        if oldest is None or time_ns < oldest:
            self._open.oldest_ns = time_ns

    def oldest_pending_ns(self) -> int | None:
        """`time` of the oldest record read and not yet acknowledged and committed."""
        times = [b.oldest_ns for b in self._sealed if b.oldest_ns is not None]
        if self._open.oldest_ns is not None:
            times.append(self._open.oldest_ns)
        return min(times, default=None)

    @property
    def full(self) -> bool:
        requests = self._open.requests
        return any(
            (builder := requests.get(b.signal)) is not None
            and builder.size >= self.batch_size * b.per_record
            for b in BATCHING
        )

    @property
    def in_memory(self) -> int:
        """Records held in batches not yet sent (open, or full and waiting for a slot); a
        metrics request counts its data points in records' worth (`POINTS_PER_RECORD`)."""
        held = [self._open.requests, *(b.requests for b in self._ready)]
        return sum(
            builder.size // b.per_record
            for requests in held
            for b in BATCHING
            if (builder := requests.get(b.signal)) is not None
        )

    # -- sealing, exporting, committing ----------------------------------------------------

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def room(self) -> None:
        """Called by each read after a page: sends full batches, waiting for a free export
        slot (backpressure), and raises the failure of an earlier batch."""
        self.raise_if_failed()
        if self.full:
            self._rotate()
        if self._ready:
            await self._dispatch()
        self._m_pending.set(self.in_memory)

    async def flush(self) -> None:
        """Send what is open and wait until every batch is committed; raises a failure."""
        if not self._open.empty:
            self._rotate()
        await self._dispatch()
        last = self._last
        if last is not None:
            await asyncio.shield(last)
        self.raise_if_failed()

    async def run_timer(self) -> None:
        """Send the open batch `batch_timeout` after its first content (until cancelled)."""
        while True:
            self.raise_if_failed()
            opened_at = self._open.opened_at
            if opened_at is None:
                self._opened.clear()
                await self._opened.wait()
                continue
            delay = opened_at + self.batch_timeout - self.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._rotate()
            await self._dispatch()

    def _rotate(self) -> None:
        """Close the open batch (synchronously, between two records if need be): it takes
        the next sequence number and waits, in order, for an export slot."""
        opened, self._open = self._open, _Open()
        self._seq += 1
        sealed = Sealed(
            seq=self._seq,
            oldest_ns=opened.oldest_ns,
            requests=opened.requests,
            # The cursors as they are now: every record they cover is in this batch or an
            # earlier one (the per-record path moves a cursor only after adding its record).
            updates={s: self._snapshot(u) for s, u in opened.updates.items()},
            records=_records_by_stream(opened),
            log_records=opened.log_records,
            positions=opened.positions,
            inbox_done=opened.inbox_done,
            committed=asyncio.get_running_loop().create_future(),
            after_commit=opened.after_commit,
            previous=self._last,
        )
        self._last = sealed.committed
        self._sealed.append(sealed)
        self._ready.append(sealed)

    async def _dispatch(self) -> None:
        """Send the batches waiting for a slot, in order."""
        async with self._seal_lock:
            while self._ready:
                await self._slots.acquire()
                if self.failure is not None:
                    self._slots.release()
                    raise self.failure
                sealed = self._ready.popleft()
                self._inflight += 1
                self._m_inflight.set(self._inflight)
                task = asyncio.create_task(self._export_and_commit(sealed, sealed.previous))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _snapshot(self, updates: dict[str, CursorUpdate]) -> list[CursorUpdate]:
        """Copies of the cursors as they are now: the live ones go on moving with the reads."""
        out = []
        for u in updates.values():
            # Identities older than where the next read starts are never looked up again:
            # persisting them would only have them deleted at the end of the read.
            horizon_ns = window_start_ms(u.cursor, self.lookback_ms) * NS_PER_MS
            out.append(
                CursorUpdate(
                    cursor=dataclasses.replace(u.cursor, seen={}),
                    new_seen=[(uid, t) for uid, t in u.new_seen if t >= horizon_ns],
                    prune_before_ms=u.prune_before_ms,
                )
            )
        return out

    async def _export_and_commit(
        self, batch: Sealed, previous: asyncio.Future[None] | None
    ) -> None:
        try:
            outcomes: dict[Signal, tuple[int, int]] = {}  # signal -> (accepted, rejected)
            for batching in BATCHING:
                builder = batch.requests.get(batching.signal)
                if builder is None or not builder.size:
                    continue
                outcome = await self._export(batching, batching.request(builder), builder.size)
                outcomes[batching.signal] = (builder.size - outcome.rejected, outcome.rejected)
            if previous is not None:
                # Ordered commits: wait for every earlier batch; its failure is ours too.
                await asyncio.shield(previous)
            self.raise_if_failed()
            if self.persist and (
                any(batch.updates.values()) or batch.positions or batch.inbox_done
            ):
                extra: CommitOptions = {}  # only what a domain source noted
                if batch.positions:
                    extra["positions"] = batch.positions
                if batch.inbox_done:
                    extra["inbox_done"] = batch.inbox_done
                await self.store.commit(self.domain, batch.updates, **extra)
            self._count_committed(batch, outcomes)
            for callback in batch.after_commit:
                callback()
            if self.on_commit is not None:
                self.on_commit(batch)
            batch.committed.set_result(None)
        except BaseException as exc:
            if self.failure is None and not isinstance(exc, asyncio.CancelledError):
                self.failure = exc
                self._opened.set()  # wake the timer, which raises it to the domain
            if not batch.committed.done():
                batch.committed.set_exception(self.failure or exc)
                # Nobody may be waiting on it (a failure in the last batch): mark retrieved.
                batch.committed.exception()
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            with contextlib.suppress(ValueError):
                self._sealed.remove(batch)
            self._inflight -= 1
            self._m_inflight.set(self._inflight)
            self._slots.release()

    async def _export(
        self, batching: SignalBatching, request: Message | SerializedRequest, size: int
    ) -> ExportOutcome:
        signal = batching.signal
        if self.guard is not None:
            self.guard()  # a replica that lost its lease exports nothing
        started = self.monotonic()
        try:
            outcome = await self.exporter.export(signal, request)
        except ExportError as exc:
            self.metrics.export_failed(self.domain, signal, permanent=not exc.transient)
            raise
        except Exception:
            self.metrics.export_failed(self.domain, signal, permanent=False)
            raise
        self.metrics.export_duration.labels(self.domain, self.exporter.protocol).observe(
            self.monotonic() - started
        )
        if outcome.rejected:
            self.log.warning(
                f"backend rejected {batching.what} (partial success); they are not retried",
                rejected=outcome.rejected,
                reason=outcome.error_message[:200],
            )
        return outcome

    def _count_committed(self, batch: Sealed, outcomes: dict[Signal, tuple[int, int]]) -> None:
        """Counters move when a batch is committed, so they agree with `state show`.

        Each record a source took counts once for its stream, whatever it became (a
        call-quality sample may be data points and a log record). OTLP's partial success
        says how many log records were refused, not which: they are charged to the streams
        of the logs request in the order the streams first wrote into it."""
        m, domain, counts = self.metrics, self.domain, self.counts
        refused = outcomes.get("logs", (0, 0))[1]
        for stream, taken in batch.records.items():
            charged = min(refused, batch.log_records.get(stream, 0), taken)
            refused -= charged
            if taken - charged:
                m.records_exported.labels(domain, stream).inc(taken - charged)
            if charged:
                m.records_rejected.labels(domain, stream).inc(charged)
            counts.exported += taken - charged
            counts.rejected += charged
        points, refused_points = outcomes.get("metrics", (0, 0))
        if points:
            m.data_points_exported.labels(domain).inc(points)
            counts.points_exported += points
        if refused_points:
            m.data_points_rejected.labels(domain).inc(refused_points)

    async def abort(self) -> None:
        """Drop everything not committed (after a failure or on a hard stop)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for waiting in self._ready:
            if not waiting.committed.done():
                waiting.committed.cancel()
        self._ready.clear()
        self._sealed.clear()
        self._open = _Open()
        self._m_pending.set(0)
