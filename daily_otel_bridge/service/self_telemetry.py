"""`self_telemetry.otlp: true`: the /metrics registry, also pushed over OTLP.

One source of truth (the prometheus-client registry) rendered two ways, rather than a second
set of instruments that could drift from what /metrics shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as PromMetric

from daily_otel_bridge.core.encoding import fill_attributes, stamp_scope
from daily_otel_bridge.otlp.transport import Exporter

log = structlog.get_logger("daily_otel_bridge.service.self_telemetry")


def registry_to_request(
    registry: CollectorRegistry, resource: ProtoResource, *, now_ns: int, start_ns: int
) -> ExportMetricsServiceRequest:
    """Counters -> cumulative monotonic sums, gauges -> gauges, histograms -> histograms."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.CopyFrom(resource)
    scope = resource_metrics.scope_metrics.add()
    stamp_scope(scope.scope)
    for family in registry.collect():
        metric = scope.metrics.add(name=family.name, description=family.documentation)
        if family.unit:
            metric.unit = family.unit
        if family.type == "counter":
            metric.sum.aggregation_temporality = AggregationTemporality.Value(
                "AGGREGATION_TEMPORALITY_CUMULATIVE"
            )
            metric.sum.is_monotonic = True
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue  # `_created` timestamps are not data
                point = metric.sum.data_points.add(
                    time_unix_nano=now_ns, start_time_unix_nano=start_ns, as_double=sample.value
                )
                fill_attributes(point.attributes, sample.labels.items())
        elif family.type == "gauge":
            for sample in family.samples:
                point = metric.gauge.data_points.add(time_unix_nano=now_ns, as_double=sample.value)
                fill_attributes(point.attributes, sample.labels.items())
        elif family.type == "histogram":
            metric.histogram.aggregation_temporality = AggregationTemporality.Value(
                "AGGREGATION_TEMPORALITY_CUMULATIVE"
            )
            _add_histogram_points(metric, family, now_ns, start_ns)
        else:
            scope.metrics.pop()
    return request


def _add_histogram_points(metric: Metric, family: PromMetric, now_ns: int, start_ns: int) -> None:
    # Prometheus buckets are cumulative and keyed by `le`; OTLP wants per-bucket counts with
    # explicit upper bounds (the +Inf bucket implied).
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"buckets": [], "sum": 0.0, "count": 0.0})
        if sample.name.endswith("_bucket"):
            bucket_list = entry["buckets"]
            assert isinstance(bucket_list, list)
            bucket_list.append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_sum"):
            entry["sum"] = sample.value
        elif sample.name.endswith("_count"):
            entry["count"] = sample.value
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])  # type: ignore[call-overload]
        point = metric.histogram.data_points.add(
            time_unix_nano=now_ns,
            start_time_unix_nano=start_ns,
            count=int(float(entry["count"])),  # type: ignore[arg-type]
            sum=float(entry["sum"]),  # type: ignore[arg-type]
        )
        previous = 0.0
        for bound, cumulative in buckets:
            point.bucket_counts.append(int(cumulative - previous))
            previous = cumulative
            if bound != float("inf"):
                point.explicit_bounds.append(bound)
        fill_attributes(point.attributes, key)


async def push_forever(
    registry: CollectorRegistry,
    exporter: Exporter,
    resource: ProtoResource,
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Export the registry every `interval` until `stop`; failures are logged, not raised."""
    start_ns = time.time_ns()
    failing = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        request = registry_to_request(registry, resource, now_ns=time.time_ns(), start_ns=start_ns)
        try:
            await exporter.export("metrics", request)
        except Exception as exc:
            if not failing:
                log.warning("self-telemetry export failed", error=str(exc)[:200])
            failing = True
        else:
            failing = False
