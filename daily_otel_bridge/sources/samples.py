"""Source: call-quality samples (`GET /logs?includeMetrics=true`, list `metrics`): OTLP
data points (`include_metrics`) and/or one LogRecord each (`metrics_as_logs`)."""

from __future__ import annotations

from typing import Any

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.metrics_mapping import (
    fill_sample_log_record,
    map_sample,
    validate_sample,
)
from daily_otel_bridge.sources.base import PageContext, RecordContext, Source

NAME = "metrics"


def deliver(
    context: RecordContext, read: SessionRead, page: PageContext, sample: Any, uid: str
) -> bool:
    room = read.cursor.room or None
    try:
        valid = validate_sample(sample)
    except MalformedRecord as exc:
        context.dead_letter(NAME, read, uid, str(exc), sample)
        return False
    if valid.time_ns < read.own_start_ns:
        context.skipped_before_start(read, valid.time_ns)
        return False
    settings = context.settings
    batcher = context.batcher
    mapped = map_sample(sample, room=room) if settings.include_metrics else None
    if mapped is not None:
        batcher.metrics_request().add(mapped)
        if mapped.ignored_non_numeric:
            context.metrics.metric_fields_ignored.labels(context.domain).inc(
                mapped.ignored_non_numeric
            )
    if settings.metrics_as_logs:
        fill_sample_log_record(
            batcher.log_for(NAME).add(),
            sample,
            time_ns=valid.time_ns,
            observed_ns=page.observed_ns,
            uid=uid,
            room=room,
        )
    read.mark(uid, valid.time_ns)
    batcher.note_time(valid.time_ns)
    batcher.update_for(NAME, read.cursor).new_seen.append((uid, valid.time_ns))
    return True


def _enabled(settings: DomainSettings) -> bool:
    return settings.include_metrics or settings.metrics_as_logs


SOURCE = Source(
    name=NAME,
    answer="metrics",
    enabled=_enabled,
    deliver=deliver,
    # Points (include_metrics) and/or log records (metrics_as_logs).
    signals=("logs", "metrics"),
)
