"""Readable renderings of export requests, for the console transport and the demo."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from daily_otel_bridge.core.encoding import decode_any_value, decode_attributes


def decode_any(value: AnyValue) -> Any:
    """`encoding.decode_any_value` with bytes as hex text, which JSON can carry."""
    return decode_any_value(value, hex_bytes=True)


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest:09d}Z"


def log_records_as_dicts(request: ExportLogsServiceRequest) -> Iterator[dict[str, Any]]:
    for resource_logs in request.resource_logs:
        resource = decode_attributes(resource_logs.resource.attributes, hex_bytes=True)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield {
                    "time": _iso(record.time_unix_nano),
                    "observed_time": _iso(record.observed_time_unix_nano),
                    "severity_number": int(record.severity_number),
                    "severity_text": record.severity_text,
                    "event_name": record.event_name,
                    "body": decode_any(record.body),
                    "attributes": decode_attributes(record.attributes, hex_bytes=True),
                    "resource": resource,
                }


def metric_points_as_dicts(request: ExportMetricsServiceRequest) -> Iterator[dict[str, Any]]:
    for resource_metrics in request.resource_metrics:
        resource = decode_attributes(resource_metrics.resource.attributes, hex_bytes=True)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.gauge.data_points:
                    kind = point.WhichOneof("value")
                    yield {
                        "metric": metric.name,
                        "unit": metric.unit,
                        "time": _iso(point.time_unix_nano),
                        "value": getattr(point, kind) if kind else None,
                        "attributes": decode_attributes(point.attributes, hex_bytes=True),
                        "resource": resource,
                    }


_COLOURS = {"ERROR": "\x1b[31m", "WARN": "\x1b[33m", "INFO": "\x1b[32m", "DEBUG": "\x1b[2m"}
_RESET = "\x1b[0m"


def pretty_line(record: dict[str, Any]) -> str:
    """One coloured line for a person at a terminal (the demo)."""
    if "metric" in record:
        attrs = record["attributes"]
        who = attrs.get("daily.user_session_id", "")[:8]
        value = f"{record['metric']}={record['value']}"
        return f"\x1b[36m{record['time'][11:23]} METRIC {value} {who}{_RESET}"
    attrs = record["attributes"]
    severity = record["severity_text"] or "-"
    colour = _COLOURS.get(severity, "")
    room = attrs.get("daily.room", "")
    user = str(attrs.get("daily.user_session_id", ""))[:8]
    code = attrs.get("daily.log.code")
    code_text = f" [{code}]" if code is not None else ""
    return (
        f"{record['time'][11:23]} {colour}{severity:<5}{_RESET} "
        f"\x1b[1m{room}\x1b[0m/{user}{code_text} {record['body']}"
    )
