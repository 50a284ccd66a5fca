"""Source: Daily's log records (`GET /logs`, list `logs`), one OTel LogRecord each."""

from __future__ import annotations

from typing import Any

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import MalformedRecord, checked_time_ns, encode_log_record
from daily_otel_bridge.sources.base import PageContext, RecordContext, Source

NAME = "logs"


def deliver(
    context: RecordContext, read: SessionRead, page: PageContext, record: Any, uid: str
) -> bool:
    try:
        time_ns = checked_time_ns(record)  # `mapping.validate`, without the object
    except MalformedRecord as exc:
        context.dead_letter(NAME, read, uid, str(exc), record)
        return False
    if time_ns < read.own_start_ns:
        context.skipped_before_start(read, time_ns)
        return False
    cursor = read.cursor
    try:
        data = encode_log_record(
            record,
            time_ns=time_ns,
            observed_ns=page.observed_ns,
            uid=uid,
            room=cursor.room or None,
            severity=context.severity,
        )
    except (ValueError, TypeError) as exc:  # e.g. an int beyond int64 for `code`
        context.dead_letter(NAME, read, uid, f"cannot encode: {exc}", record)
        return False
    context.batcher.add_encoded_log(data, cursor, uid, time_ns, NAME)
    read.mark(uid, time_ns)
    return True


def _enabled(settings: DomainSettings) -> bool:
    return settings.include_logs


SOURCE = Source(
    name=NAME,
    answer="logs",
    enabled=_enabled,
    deliver=deliver,
)
