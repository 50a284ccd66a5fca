"""The seam where a source of Daily records plugs in: what a source declares, and the
contexts a source writes its records into.

A *source* is one kind of record Daily serves. It declares its name (the stream: its cursor
rows, positions, metric labels and dead letters are keyed by it), where its records come
from, whether a domain's config enables it, and how its records are mapped into the open
batch. The reader, the record path, the poller and the domain's wiring iterate over the
registered sources (`Registry`) and never name one. Two kinds:

* `Source`: read per meeting session, in the lists of `GET /logs` (`answer`: "logs" or
  "metrics"): the reader asks for the lists its enabled sources need, hands each source its
  list, and `deliver` takes one record. Its cursor is the session's (`SessionCursor`).
* `DomainSource`: one per domain, polled every `interval` (`open` gives the poller): a Daily
  endpoint that is not per session (`/presence`, `/logs/api`), what discovery saw (meeting
  summaries), or events pushed to the bridge and held in the store's inbox (webhooks). Its
  cursor is an opaque position per stream (`note_position`) or the inbox itself
  (`note_inbox_done`), committed with the batch that carries its records, after the
  backend's acknowledgement, like every session cursor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionCursor, SessionRead
from daily_otel_bridge.core.mapping import SeverityTable
from daily_otel_bridge.core.metrics_mapping import SampleMapping
from daily_otel_bridge.instruments import BridgeMetrics, Signal

# The lists of a `GET /logs` answer a source may read.
LogsAnswer = Literal["logs", "metrics"]


@dataclass(slots=True)
class PageContext:
    """What every record of one page shares."""

    observed_ns: int = 0  # when the page was fetched


class CursorUpdateSink(Protocol):
    new_seen: list[tuple[str, int]]


class LogsSink(Protocol):
    def add(self) -> LogRecord: ...


class SamplesSink(Protocol):
    def add(self, mapping: SampleMapping) -> object: ...


class BatchSink(Protocol):
    """What a source may do with the open batch (`pipeline.batcher.Batcher`)."""

    def add_encoded_log(
        self, data: bytes, cursor: SessionCursor, uid: str, time_ns: int, stream: str
    ) -> None: ...

    def metrics_request(self) -> SamplesSink: ...

    def log_for(self, stream: str) -> LogsSink: ...

    def note_time(self, time_ns: int) -> None: ...

    def update_for(self, stream: str, cursor: SessionCursor) -> CursorUpdateSink: ...


class RecordContext(Protocol):
    """What a source's `deliver` is given (`pipeline.records.RecordPath`)."""

    @property
    def domain(self) -> str: ...

    @property
    def settings(self) -> DomainSettings: ...

    @property
    def severity(self) -> SeverityTable: ...

    @property
    def metrics(self) -> BridgeMetrics: ...

    @property
    def batcher(self) -> BatchSink: ...

    def dead_letter(
        self, stream: str, read: SessionRead, uid: str, reason: str, record: Any
    ) -> None: ...

    def skipped_before_start(self, read: SessionRead, time_ns: int) -> None: ...


# deliver(context, read, page, record, uid) -> whether the record was taken (False for a
# dead letter or a record before the stream's own window start). Synchronous: called once
# per record on the hot path. It must call `read.mark(uid, time_ns)` for what it takes.
Deliver = Callable[[RecordContext, SessionRead, PageContext, Any, str], bool]


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    answer: LogsAnswer
    enabled: Callable[[DomainSettings], bool]
    deliver: Deliver
    signals: tuple[Signal, ...] = ("logs",)  # the OTLP signals its records may become


# -- sources polled once per domain ------------------------------------------------------


class DomainBatch(Protocol):
    """What a domain source may do with the open batch (`pipeline.batcher.Batcher`)."""

    def add_domain_log(self, data: bytes, uid: str, time_ns: int, stream: str) -> None:
        """One encoded LogRecord (`core.log_records`/`core.mapping`) into the open batch."""
        ...

    def note_position(self, stream: str, position: str) -> None:
        """Where `stream` has read up to, committed with the batch (after what it covers)."""
        ...

    def note_inbox_done(self, event_ids: Sequence[str]) -> None:
        """Inbox events whose records are in the open batch: removed when it commits."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the open batch is acknowledged and committed (never if it
        fails): for what must count a record once, such as a metric observed per record."""
        ...


@dataclass(frozen=True, slots=True)
class MeetingSeen:
    """A meeting discovery tracks (`pipeline.sessions.SessionTable.meetings_seen`)."""

    id: str  # the mtgSessionId
    room: str
    start_time: int | None  # Unix seconds, Daily's (about 15 s accurate)
    ended: bool
    # The raw `GET /meetings` entry, with its participants, when discovery listed the
    # meeting ended (None: it saw the meeting leave the ongoing list, or was restarted).
    entry: Mapping[str, Any] | None
    new: bool  # first tracked by this process, not loaded from the store


class MeetingsSeen(Protocol):
    """What discovery tracks, for the sources built on it (meeting summaries)."""

    def meetings_seen(self) -> Sequence[MeetingSeen]: ...


class DailyGet(Protocol):
    """One paced, retried GET of a Daily endpoint (`daily.client.DailyClient.get_json`)."""

    async def get_json(self, endpoint: str, params: Mapping[str, str]) -> Any: ...


class SessionHints(Protocol):
    """What a pushed event may tell the poller (`pipeline.sessions.SessionTable`): never
    the truth, which stays with discovery and the reads, only sooner."""

    async def meeting_started(self, session_id: str, room: str, start_ms: int | None) -> None:
        """Track the session now (if its room is selected) and read it promptly."""
        ...

    async def meeting_ended(self, session_id: str, end_ms: int | None) -> None:
        """The meeting ended (at `end_ms`, else now): its grace period starts."""
        ...

    async def meeting_busy(self, session_id: str | None, room: str | None) -> None:
        """Someone joined or left: read the session (or the room's ongoing sessions) at
        the busy pace."""
        ...


class PollContext(Protocol):
    """What a domain source's poller is given (`pipeline.polling.DomainPolling`)."""

    @property
    def domain(self) -> str: ...

    @property
    def settings(self) -> DomainSettings: ...

    @property
    def metrics(self) -> BridgeMetrics: ...

    @property
    def batcher(self) -> DomainBatch: ...

    @property
    def daily(self) -> DailyGet: ...

    @property
    def hints(self) -> SessionHints: ...

    @property
    def meetings(self) -> MeetingsSeen: ...

    async def room(self) -> None:
        """Wait for room in the batch (backpressure); raises an earlier batch's failure."""
        ...

    async def positions(self) -> Mapping[str, str]:
        """The committed position of each stream of this domain."""
        ...

    async def inbox_pending(self, limit: int) -> Sequence[Any]:
        """The oldest events waiting in this domain's inbox (`state.base.InboxEvent`)."""
        ...

    def dead_letter(self, stream: str, key: str, uid: str, reason: str, record: Any) -> None:
        """Keep a record that cannot ship (written with the next batch's dead letters)."""
        ...


class Poller(Protocol):
    """One domain source, opened for one attempt of a domain (rebuilt after a failure,
    from what was committed)."""

    async def poll(self) -> int:
        """One poll: read, map into the batch, note the position; returns records taken.
        Raises on failure (the poller is retried at its next interval; nothing else stops)."""
        ...


@dataclass(frozen=True, slots=True)
class DomainSource:
    name: str
    enabled: Callable[[DomainSettings], bool]
    interval: Callable[[DomainSettings], float]  # seconds between two polls
    open: Callable[[PollContext], Awaitable[Poller]]
    signals: tuple[Signal, ...] = ("logs",)
    # Discovery lists meetings with their participants (`PollContext.meetings` then holds
    # each ended meeting's entry): larger answers, no more requests.
    needs_participants: bool = False


class Registry:
    """The sources the bridge knows, in the order their cursors are reported."""

    def __init__(self, sources: Sequence[Source | DomainSource] = ()) -> None:
        self._sources: list[Source] = []
        self._domain_sources: list[DomainSource] = []
        for source in sources:
            self.register(source)

    def register(self, source: Source | DomainSource) -> None:
        names = [s.name for s in self._sources] + [s.name for s in self._domain_sources]
        if source.name in names:
            raise ValueError(f"a source named {source.name!r} is registered already")
        if isinstance(source, DomainSource):
            self._domain_sources.append(source)
        else:
            self._sources.append(source)

    def __iter__(self) -> Any:
        return iter(self._sources)

    def enabled_for(self, settings: DomainSettings) -> tuple[Source, ...]:
        """The session sources a domain reads; the first one when the config enables none."""
        chosen = tuple(s for s in self._sources if s.enabled(settings))
        return chosen or tuple(self._sources[:1])

    @staticmethod
    def signals_of(sources: Sequence[Source | DomainSource]) -> tuple[Signal, ...]:
        """The OTLP signals these sources may send, each once, logs first."""
        wanted = {signal for source in sources for signal in source.signals}
        return tuple(signal for signal in ("logs", "metrics") if signal in wanted)

    def domain_sources_for(self, settings: DomainSettings) -> tuple[DomainSource, ...]:
        """The domain sources a domain polls (none is also fine)."""
        return tuple(s for s in self._domain_sources if s.enabled(settings))
