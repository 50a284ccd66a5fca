"""The bridge's own metrics (prometheus-client), exposed on /metrics.

One registry per process object rather than the library's global one, so that tests can
run several bridges side by side and read each one's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "daily_otel_bridge"


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_fetched = Counter(
            f"{PREFIX}_records_fetched",
            "Records read from Daily.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_exported = Counter(
            f"{PREFIX}_records_exported",
            "Records acknowledged by the OTLP backend.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_deduplicated = Counter(
            f"{PREFIX}_records_deduplicated",
            "Records read again inside the overlap window and not sent twice.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_rejected = Counter(
            f"{PREFIX}_records_rejected",
            "Records the backend refused for good (OTLP partial_success).",
            ["domain", "stream"],
            registry=r,
        )
        self.records_malformed = Counter(
            f"{PREFIX}_records_malformed",
            "Records that could not be mapped; kept in the dead-letter table.",
            ["domain", "stream"],
            registry=r,
        )
        self.metric_fields_ignored = Counter(
            f"{PREFIX}_metric_fields_ignored",
            "Non-numeric fields of call-quality samples, skipped (not data points).",
            ["domain"],
            registry=r,
        )
        self.export_duration = Histogram(
            f"{PREFIX}_export_duration_seconds",
            "Time from sending an export request to its acknowledgement, retries included.",
            ["domain", "protocol"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.export_failures = Counter(
            f"{PREFIX}_export_failures",
            "Export attempts that failed, by kind (transient, permanent).",
            ["domain", "kind"],
            registry=r,
        )
        self.api_requests = Counter(
            f"{PREFIX}_daily_api_requests",
            "Requests made to Daily's REST API, by endpoint and HTTP status (or 'error').",
            ["domain", "endpoint", "status"],
            registry=r,
        )
        self.api_rate_limited = Counter(
            f"{PREFIX}_daily_api_rate_limited",
            "Responses 429 from Daily.",
            ["domain"],
            registry=r,
        )
        self.api_backoff_seconds = Counter(
            f"{PREFIX}_daily_api_backoff_seconds",
            "Seconds spent waiting before retrying Daily requests.",
            ["domain"],
            registry=r,
        )
        self.sessions_tracked = Gauge(
            f"{PREFIX}_sessions_tracked",
            "Meeting sessions whose logs are being tailed.",
            ["domain"],
            registry=r,
        )
        self.cursor_lag = Gauge(
            f"{PREFIX}_cursor_lag_seconds",
            "Now minus the end of the oldest complete read among tracked sessions.",
            ["domain"],
            registry=r,
        )
        self.records_pending = Gauge(
            f"{PREFIX}_records_pending",
            "Records mapped and waiting for the backend's acknowledgement.",
            ["domain"],
            registry=r,
        )
        self.poll_interval = Gauge(
            f"{PREFIX}_poll_interval_seconds",
            "Achieved interval between two reads of a session, mean over the last minute, by"
            " class (busy: had news on its last read; quiet: did not).",
            ["domain", "class"],
            registry=r,
        )
        self.budget_saturated = Gauge(
            f"{PREFIX}_budget_saturated",
            "1 when the domain's request budget cannot read every session as often as"
            " configured (sessions wait past their due time), else 0.",
            ["domain"],
            registry=r,
        )
        self.reads_in_flight = Gauge(
            f"{PREFIX}_reads_in_flight",
            "Session reads in progress.",
            ["domain"],
            registry=r,
        )
        self.exports_in_flight = Gauge(
            f"{PREFIX}_exports_in_flight",
            "Export requests sent and not yet committed.",
            ["domain"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the domain last completed a sweep with everything acknowledged.",
            ["domain"],
            registry=r,
        )
