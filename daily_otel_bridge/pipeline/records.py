"""The per-record path: validate, map into the open batch, keep what cannot ship.

Called once per record new to a read, synchronously (no coroutine per record on the hot
path). A record that cannot be mapped becomes a dead letter: queued here and written to the
store by `flush_dead_letters`, which the read awaits after each page.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import (
    MalformedRecord,
    SeverityTable,
    checked_time_ns,
    encode_log_record,
)
from daily_otel_bridge.core.metrics_mapping import (
    fill_sample_log_record,
    map_sample,
    validate_sample,
)
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import LOGS, METRICS, Batcher
from daily_otel_bridge.state.base import CursorStore, DeadLetter


@dataclass(slots=True)
class PageContext:
    """What every record of one page shares."""

    observed_ns: int = 0  # when the page was fetched


@dataclass(slots=True)
class RecordCounts:
    malformed: int = 0
    skipped_before_start: int = 0  # older than this stream's own window start


class RecordPath:
    def __init__(
        self,
        *,
        domain: str,
        batcher: Batcher,
        store: CursorStore,
        metrics: BridgeMetrics,
        severity: SeverityTable,
        include_metrics: bool,
        metrics_as_logs: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.domain = domain
        self.batcher = batcher
        self.store = store
        self.metrics = metrics
        self.severity = severity
        self.include_metrics = include_metrics
        self.metrics_as_logs = metrics_as_logs
        self.clock = clock
        self.counts = RecordCounts()
        self._letters: list[DeadLetter] = []
        self.log = structlog.get_logger(__name__).bind(domain=domain)

    def deliverer(
        self, stream: str, read: SessionRead, page: PageContext
    ) -> Callable[[Any, str], bool]:
        # A partial, not a lambda: called once per record, it adds no Python frame.
        if stream == LOGS:
            return functools.partial(self.deliver_log, read, page)
        return functools.partial(self.deliver_sample, read, page)

    def deliver_log(self, read: SessionRead, page: PageContext, record: Any, uid: str) -> bool:
        try:
            time_ns = checked_time_ns(record)  # `mapping.validate`, without the object
        except MalformedRecord as exc:
            self._dead_letter(LOGS, read, uid, str(exc), record)
            return False
        if time_ns < read.own_start_ns:
            self.counts.skipped_before_start += 1
            read.note_time(time_ns)
            return False
        cursor = read.cursor
        try:
            data = encode_log_record(
                record,
                time_ns=time_ns,
                observed_ns=page.observed_ns,
                uid=uid,
                room=cursor.room or None,
                severity=self.severity,
            )
        except (ValueError, TypeError) as exc:  # e.g. an int beyond int64 for `code`
            self._dead_letter(LOGS, read, uid, f"cannot encode: {exc}", record)
            return False
        self.batcher.add_encoded_log(data, cursor, uid, time_ns)
        read.mark(uid, time_ns)
        return True

    def deliver_sample(self, read: SessionRead, page: PageContext, sample: Any, uid: str) -> bool:
        room = read.cursor.room or None
        try:
            valid = validate_sample(sample)
        except MalformedRecord as exc:
            self._dead_letter(METRICS, read, uid, str(exc), sample)
            return False
        if valid.time_ns < read.own_start_ns:
            self.counts.skipped_before_start += 1
            read.note_time(valid.time_ns)
            return False
        mapped = map_sample(sample, room=room) if self.include_metrics else None
        if mapped is not None:
            self.batcher.samples().add(mapped)
            if mapped.ignored_non_numeric:
                self.metrics.metric_fields_ignored.labels(self.domain).inc(
                    mapped.ignored_non_numeric
                )
        if self.metrics_as_logs:
            fill_sample_log_record(
                self.batcher.sample_log().add(),
                sample,
                time_ns=valid.time_ns,
                observed_ns=page.observed_ns,
                uid=uid,
                room=room,
            )
        read.mark(uid, valid.time_ns)
        self.batcher.note_time(valid.time_ns)
        self.batcher.update_for(METRICS, read.cursor).new_seen.append((uid, valid.time_ns))
        return True

    def _dead_letter(
        self, stream: str, read: SessionRead, uid: str, reason: str, record: Any
    ) -> None:
        raw = json.dumps(record, ensure_ascii=False, default=str)
        self._letters.append(
            DeadLetter(self.domain, stream, read.cursor.session_id, uid, reason, raw, self.clock())
        )

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
