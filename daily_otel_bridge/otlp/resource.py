"""Resource detection at the edge: what the environment says about this process.

The OpenTelemetry SDK's `Resource.create` reads `OTEL_RESOURCE_ATTRIBUTES` and
`OTEL_SERVICE_NAME` (and adds `telemetry.sdk.*`) exactly as every other OpenTelemetry
program does, which is why the SDK is a dependency at all; `core.encoding` merges its
answer with the config, purely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.sdk.resources import Resource

from daily_otel_bridge.core.encoding import build_resource, resource_to_proto


def detected_attributes(**defaults: Any) -> dict[str, Any]:
    """The environment's resource attributes (`defaults` where it says nothing)."""
    return dict(Resource.create(defaults).attributes)


def domain_resource(
    domain: str, configured: Mapping[str, str | int | float | bool]
) -> ProtoResource:
    """The resource every request of `domain` carries."""
    return resource_to_proto(build_resource(domain, configured, detected_attributes()))


def bridge_resource() -> ProtoResource:
    """The resource of the bridge's own telemetry (self-metrics over OTLP)."""
    return resource_to_proto(detected_attributes(**{"service.name": "daily-otel-bridge"}))
