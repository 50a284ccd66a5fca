"""Building OTLP export requests: resource, scope and the batch container. No I/O.

Encoding is kept apart from transport (as opentelemetry-python's exporters do) so that the
gRPC, HTTP and console transports all send the very same request object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from daily_otel_bridge import __version__

SCOPE_NAME = "daily_otel_bridge"
DEFAULT_SERVICE_NAME = "daily"
ATTR_DOMAIN = "daily.domain"


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
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(
            KeyValue(key=str(k), value=any_value(v)) for k, v in value.items()
        )
        return out
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def resource_to_proto(resource: Resource) -> ProtoResource:
    proto = ProtoResource()
    for key, value in sorted(resource.attributes.items()):
        proto.attributes.add(key=key).value.CopyFrom(any_value(value))
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
        scope_logs.scope.name = SCOPE_NAME
        scope_logs.scope.version = __version__
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
