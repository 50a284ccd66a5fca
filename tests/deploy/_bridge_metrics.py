"""What the bridge's /metrics exposes: sample names and their label names, read from a real
`BridgeMetrics` (so that a renamed metric or label breaks the dashboard and alert tests)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daily_otel_bridge.instruments import BridgeMetrics

# What Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}


def exposed_series() -> dict[str, set[str]]:
    """sample name -> label names, for a domain reading logs and metrics with every other
    source on, every gauge set."""
    metrics = BridgeMetrics()
    metrics.init_domain(
        "acme",
        ["logs", "metrics"],
        "grpc",
        requests_per_second=5,
        signals=("logs", "metrics"),
        domain_sources=["presence"],  # a domain source: its per-source series too
    )
    # The series init_domain leaves to their first real value.
    metrics.cursor_lag.labels("acme").set(1)
    metrics.last_success.labels("acme").set(1)
    for poll_class in ("busy", "quiet"):
        metrics.poll_interval.labels("acme", poll_class).set(1)
    metrics.export_duration.labels("acme", "grpc").observe(0.1)
    # The sources beside the call logs, every one enabled (issue 17).
    metrics.init_sources(
        "acme", meeting_summaries=True, presence=True, api_logs=True, room_label=False
    )
    series: dict[str, set[str]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series
