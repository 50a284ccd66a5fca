"""The per-record path: hand each record to its source's `deliver`, keep what cannot ship.

Called once per record new to a read, synchronously (no coroutine per record on the hot
path). What a record becomes is its source's business (`sources/`); this part is the
context every source writes into (`sources.base.RecordContext`): the open batch, the
severity table, the counters, and the dead letters, queued here and written to the store
by `flush_dead_letters`, which the read awaits after each page.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import SeverityTable
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.sources import PageContext, Source
from daily_otel_bridge.state.base import CursorStore, DeadLetter


class RecordPath:
    def __init__(
        self,
        settings: DomainSettings,
        *,
        batcher: Batcher,
        store: CursorStore,
        metrics: BridgeMetrics,
        counts: PassReport,
        severity: SeverityTable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.domain = settings.name
        self.batcher = batcher
        self.store = store
        self.metrics = metrics
        self.severity = severity
        self.clock = clock
        self.counts = counts
        self._letters: list[DeadLetter] = []
        self.log = structlog.get_logger(__name__).bind(domain=self.domain)

    def deliverer(
        self, source: Source, read: SessionRead, page: PageContext
    ) -> Callable[[Any, str], bool]:
        # A partial, not a lambda: called once per record, it adds no Python frame.
        return functools.partial(source.deliver, self, read, page)

    def skipped_before_start(self, read: SessionRead, time_ns: int) -> None:
        """A record older than its stream's own window start (streams read together share
        a window): delivered before, or beyond its lookback."""
        read.note_time(time_ns)

    def dead_letter(
        self, stream: str, read: SessionRead, uid: str, reason: str, record: Any
    ) -> None:
        self.keep(stream, read.cursor.session_id, uid, reason, record)

    def keep(self, stream: str, key: str, uid: str, reason: str, record: Any) -> None:
        """A dead letter of any source; `key` is its session id (or what stands for one:
        "" for a record of the whole domain)."""
        raw = json.dumps(record, ensure_ascii=False, default=str)
        self._letters.append(DeadLetter(self.domain, stream, key, uid, reason, raw, self.clock()))

    async def flush_dead_letters(self) -> None:
        letters, self._letters = self._letters, []
        for letter in letters:
            if await self.store.add_dead_letter(letter):
                # Logged and counted once; re-reads inside the overlap find it kept already.
                self.counts.malformed += 1
                self.metrics.records_malformed.labels(self.domain, letter.stream).inc()
                self.log.warning(
                    "malformed record kept as a dead letter",
                    stream=letter.stream,
                    session=letter.session_id,
                    reason=letter.reason,
                    uid=letter.uid,
                )


__all__ = ["PageContext", "RecordPath"]
