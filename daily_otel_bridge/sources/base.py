"""The seam where a source of Daily records plugs in: what a source declares, and the one
context every source writes its records into.

A *source* is one kind of record Daily serves. It declares its name (the stream: its cursor
rows, metric labels and dead letters are keyed by it), where its records come from, whether
a domain's config enables it, and how one record is validated and mapped into the open
batch (`deliver`). The reader, the record path and the domain's wiring iterate over the
registered sources (`registry`) and never name one.

Today's sources arrive in the lists of `GET /logs` (`answer`: "logs" or "metrics"): the
reader asks for the lists its enabled sources need and hands each source its list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionCursor, SessionRead
from daily_otel_bridge.core.mapping import SeverityTable
from daily_otel_bridge.core.metrics_mapping import SampleMapping
from daily_otel_bridge.instruments import BridgeMetrics

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


class Registry:
    """The sources the bridge knows, in the order their cursors are reported."""

    def __init__(self, sources: Sequence[Source] = ()) -> None:
        self._sources: list[Source] = []
        for source in sources:
            self.register(source)

    def register(self, source: Source) -> None:
        if any(s.name == source.name for s in self._sources):
            raise ValueError(f"a source named {source.name!r} is registered already")
        self._sources.append(source)

    def __iter__(self) -> Any:
        return iter(self._sources)

    def enabled_for(self, settings: DomainSettings) -> tuple[Source, ...]:
        """The sources a domain reads; the first one when the config enables none."""
        chosen = tuple(s for s in self._sources if s.enabled(settings))
        return chosen or tuple(self._sources[:1])
