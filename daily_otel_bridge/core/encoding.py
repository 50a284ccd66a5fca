"""OTLP building blocks: resource, scope, AnyValue (both ways) and the batch container. No I/O.

Encoding is kept apart from transport (as opentelemetry-python's exporters do) so that the
gRPC, HTTP and console transports all send the very same request object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from daily_otel_bridge import __version__

SCOPE_NAME = "daily_otel_bridge"
DEFAULT_SERVICE_NAME = "daily"
ATTR_DOMAIN = "daily.domain"

# A structured body keeps this many levels of nesting (see `fill_any_value`).
MAX_BODY_DEPTH: Final = 20

# protobuf refuses integers outside int64 in an AnyValue: see `fill_any_value`.
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def build_resource(domain: str, configured: Mapping[str, str | int | float | bool]) -> Resource:
    """The domain's resource: SDK detection (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME),
    then the domain's configured attributes, then `daily.domain`.

    The SDK names an unnamed service `unknown_service`; ours defaults to `daily` instead.
    """
    attributes: dict[str, Any] = dict(Resource.create({}).attributes)
    if str(attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    attributes.update(configured)
    attributes[ATTR_DOMAIN] = domain
    return Resource(attributes)


def any_value(value: object) -> AnyValue:
    """`value` as a standalone AnyValue (see `fill_any_value`, which writes it in place)."""
    out = AnyValue()
    fill_any_value(out, value)
    return out


def fill_any_value(target: AnyValue, value: object, depth: int = 0) -> None:
    """Write `value` into `target` in place: the one Python -> AnyValue writer.

    Writing in place is three times faster than building standalone messages and copying
    them (a call-quality sample is a few hundred nodes). It also keeps two kinds of odd
    input from breaking the export: an integer beyond int64 (protobuf refuses it) becomes
    its decimal text, and a container nested deeper than MAX_BODY_DEPTH becomes its JSON
    text, since a receiver refuses a whole request whose messages nest deeper than 100
    (protobuf's default limit; each JSON level costs three).
    """
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif value is None:
        return
    elif isinstance(value, dict | list | tuple) and depth >= MAX_BODY_DEPTH:
        target.string_value = _json_text(value)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()  # `{}` is an empty kvlist, not an empty value
        values = target.kvlist_value.values
        for key, child in value.items():
            fill_any_value(values.add(key=str(key)).value, child, depth + 1)
    elif isinstance(value, list | tuple):
        target.array_value.SetInParent()
        items = target.array_value.values
        for child in value:
            fill_any_value(items.add(), child, depth + 1)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = str(value)


def fill_attributes(target: Any, items: Iterable[tuple[str, object]]) -> None:
    """Append `items` to a repeated KeyValue field (a resource's, a data point's attributes)."""
    for key, value in items:
        fill_any_value(target.add(key=key).value, value)


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        # Deeper than json can go, or circular (not from a JSON document): say so.
        return "<unencodable: nested too deeply>"


def decode_any_value(value: AnyValue, *, hex_bytes: bool = False) -> object:
    """An OTLP AnyValue as a Python value, the inverse of `fill_any_value`: str, bool, int,
    float, bytes (hex text with `hex_bytes`, for JSON output), list, dict (kvlist), or None
    when unset."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value.hex() if hex_bytes else value.bytes_value
    if kind == "array_value":
        return [decode_any_value(item, hex_bytes=hex_bytes) for item in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values, hex_bytes=hex_bytes)
    # Unset, or string_value_strindex, which the spec reserves for profiles and tells other
    # receivers to treat as absent.
    return None


def decode_attributes(
    attributes: Iterable[KeyValue], *, hex_bytes: bool = False
) -> dict[str, object]:
    """OTLP attributes as a dict (a repeated key keeps the last value)."""
    return {kv.key: decode_any_value(kv.value, hex_bytes=hex_bytes) for kv in attributes}


def stamp_scope(scope: InstrumentationScope) -> None:
    """Name the bridge as the instrumentation scope of what it exports (logs, call-quality
    metrics and its own metrics alike)."""
    scope.name = SCOPE_NAME
    scope.version = __version__


def resource_to_proto(resource: Resource) -> ProtoResource:
    proto = ProtoResource()
    fill_attributes(proto.attributes, sorted(resource.attributes.items()))
    return proto


class LogBatch:
    """One export request under construction: one ResourceLogs for one domain."""

    def __init__(self, resource: ProtoResource) -> None:
        self._resource = resource
        self.request = ExportLogsServiceRequest()
        self._records = self._new_scope()
        self.size = 0

    def _new_scope(self) -> Any:
        resource_logs = self.request.resource_logs.add()
        resource_logs.resource.CopyFrom(self._resource)
        scope_logs = resource_logs.scope_logs.add()
        stamp_scope(scope_logs.scope)
        return scope_logs.log_records

    def add(self) -> LogRecord:
        """A fresh record inside the request, for `mapping.fill_log_record` to write."""
        self.size += 1
        record: LogRecord = self._records.add()
        return record

    def discard_last(self) -> None:
        """Undo `add()` when filling the record failed half-way."""
        del self._records[-1]
        self.size -= 1

    def records(self) -> Any:
        return self._records
