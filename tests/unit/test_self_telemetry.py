"""`self_telemetry.registry_to_request`: the /metrics registry as one OTLP metrics request,
under the bridge's scope, labels as attributes."""

from __future__ import annotations

from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from daily_otel_bridge import __version__
from daily_otel_bridge.core.encoding import SCOPE_NAME, decode_attributes
from daily_otel_bridge.service.self_telemetry import registry_to_request


def test_registry_becomes_one_scoped_request() -> None:
    registry = CollectorRegistry()
    Counter("sent", "Sent.", ["domain"], registry=registry).labels("acme").inc(3)
    Gauge("busy", "Busy.", ["domain", "kind"], registry=registry).labels("acme", "x").set(2)
    histogram = Histogram("took", "Took.", ["domain"], buckets=(1.0, 5.0), registry=registry)
    for seconds in (0.5, 2.0, 9.0):
        histogram.labels("acme").observe(seconds)
    resource = ProtoResource()
    resource.attributes.add(key="service.name").value.string_value = "bridge"

    request = registry_to_request(registry, resource, now_ns=2_000, start_ns=1_000)

    (resource_metrics,) = request.resource_metrics
    assert resource_metrics.resource == resource
    (scope_metrics,) = resource_metrics.scope_metrics
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == (SCOPE_NAME, __version__)
    by_name = {m.name: m for m in scope_metrics.metrics}
    assert set(by_name) == {"sent", "busy", "took"}

    (point,) = by_name["sent"].sum.data_points  # `_created` is not a data point
    assert by_name["sent"].sum.is_monotonic
    assert (point.as_double, point.start_time_unix_nano, point.time_unix_nano) == (3, 1_000, 2_000)
    assert decode_attributes(point.attributes) == {"domain": "acme"}

    (point,) = by_name["busy"].gauge.data_points
    assert point.as_double == 2
    assert decode_attributes(point.attributes) == {"domain": "acme", "kind": "x"}

    (point,) = by_name["took"].histogram.data_points
    assert (point.count, point.sum) == (3, 11.5)
    assert list(point.bucket_counts) == [1, 1, 1]
    assert list(point.explicit_bounds) == [1.0, 5.0]
    assert decode_attributes(point.attributes) == {"domain": "acme"}
