"""The bridge's own metrics (prometheus-client), exposed on /metrics.

One registry per process object rather than the library's global one, so that tests can
run several bridges side by side and read each one's counters. The process and platform
collectors are registered on that registry too (`process_*`, `python_info`): the global
registry is never served.

Every labelled series a domain can produce is created at 0 by `init_domain` when the domain
starts, so that `rate()` and `increase()` see the first event (a series that appears with
value 1 has no earlier sample to subtract from) and alert rules over them are not "no data".
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from typing import Final, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from daily_otel_bridge import __version__

PREFIX: Final = "daily_otel_bridge"

# The two streams a domain reads and the two OTLP signals it sends. A stream is what Daily
# serves (log records, call-quality samples); a signal is what OTLP carries (log records, metric
# data points). Samples exported with `metrics_as_logs` are log records on the wire.
STREAMS: Final = ("logs", "metrics")
SIGNALS: Final = ("logs", "metrics")
EXPORT_FAILURE_KINDS: Final = ("transient", "permanent")
POLL_CLASSES: Final = ("busy", "quiet")
DAILY_ENDPOINTS: Final = ("meetings", "logs")

Signal = Literal["logs", "metrics"]

# Why the webhook receiver refused a POST (`webhook_events_refused_total`): unknown_domain (404),
# size (413), auth (basic auth, 401), malformed (400: headers or body not Daily's), signature
# (401), stale (401: authentic, signed outside the tolerance), unavailable (503: the store
# failed or was too slow; Daily retries).
WEBHOOK_REFUSALS: Final = (
    "unknown_domain",
    "size",
    "auth",
    "malformed",
    "signature",
    "stale",
    "unavailable",
)
# The domain label of refusals whose path named no configured domain: never the path's text,
# which anyone on the network chooses (one series per guess would be unbounded).
UNKNOWN_DOMAIN_LABEL: Final = "(unknown)"


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # What `process_*` the systemd and Kubernetes docs refer to: CPU seconds, resident
        # memory, open file descriptors, start time (Linux /proc; absent elsewhere).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the labels tell which version of the bridge runs on which Python.",
            ["version", "python_version", "python_implementation"],
            registry=r,
        )
        build = (__version__, platform.python_version(), sys.implementation.name)
        self.build_info.labels(*build).set(1)

        # -- records -------------------------------------------------------------------
        self.records_fetched = Counter(
            f"{PREFIX}_records_fetched",
            "Records read from Daily, by stream (logs: log records; metrics: call-quality "
            "samples), re-reads of the overlap window included.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_exported = Counter(
            f"{PREFIX}_records_exported",
            "Records whose export the backend acknowledged, by stream (logs: log records; "
            "metrics: call-quality samples, each counted once however many data points it "
            "became; see data_points_exported_total for the points).",
            ["domain", "stream"],
            registry=r,
        )
        self.records_reread = Counter(
            f"{PREFIX}_records_reread",
            "Records read again (the overlap window, re-read only when the list changed "
            "there) and not sent twice, by stream. Anchors (one a request) not counted.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_anchor = Counter(
            f"{PREFIX}_records_anchor",
            "Records read again as a page's anchor: each request after a read's first asks "
            "from the last record it has, to see whether the list moved under the read.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_rejected = Counter(
            f"{PREFIX}_records_rejected",
            "Log records the backend refused for good (OTLP partial_success "
            "rejected_log_records), by the stream they came from; not retried.",
            ["domain", "stream"],
            registry=r,
        )
        self.records_malformed = Counter(
            f"{PREFIX}_records_malformed",
            "Records that could not be mapped, by stream; kept in the dead-letter table.",
            ["domain", "stream"],
            registry=r,
        )
        self.data_points_exported = Counter(
            f"{PREFIX}_data_points_exported",
            "OTLP metric data points acknowledged by the backend (one call-quality sample "
            "becomes many points).",
            ["domain"],
            registry=r,
        )
        self.data_points_rejected = Counter(
            f"{PREFIX}_data_points_rejected",
            "OTLP metric data points the backend refused for good (partial_success "
            "rejected_data_points); not retried.",
            ["domain"],
            registry=r,
        )
        self.metric_fields_ignored = Counter(
            f"{PREFIX}_metric_fields_ignored",
            "Non-numeric fields of call-quality samples, skipped (not data points).",
            ["domain"],
            registry=r,
        )

        # -- export --------------------------------------------------------------------
        self.export_duration = Histogram(
            f"{PREFIX}_export_duration_seconds",
            "Time from sending an export request to its acknowledgement, retries included.",
            ["domain", "protocol"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.export_failures_by_kind = Counter(
            f"{PREFIX}_export_failures",
            "Export requests that failed after the exporter's own retries, by signal (logs, "
            "metrics) and kind (transient: the backend was unreachable or asked to retry and "
            "max_retry_time ran out, the records are sent again; permanent: the backend "
            "refused the request).",
            ["domain", "signal", "kind"],
            registry=r,
        )
        self.exports_in_flight = Gauge(
            f"{PREFIX}_exports_in_flight",
            "Export requests sent and not yet committed (at most export.max_inflight_exports).",
            ["domain"],
            registry=r,
        )
        self.records_pending = Gauge(
            f"{PREFIX}_records_pending",
            "Records mapped and waiting for the backend's acknowledgement.",
            ["domain"],
            registry=r,
        )

        # -- Daily API -----------------------------------------------------------------
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
        self.api_budget = Gauge(
            f"{PREFIX}_daily_api_budget_requests_per_second",
            "The domain's configured request budget (requests_per_second): compare with "
            "rate(daily_otel_bridge_daily_api_requests_total) for the budget in use.",
            ["domain"],
            registry=r,
        )
        self.requests_per_read = Histogram(
            f"{PREFIX}_requests_per_read",
            "Daily requests one read of one session took (1: a quiet session; a busy one "
            "ceil(new / (page - 1)) + 1 while the overlap did not change).",
            ["domain"],
            buckets=(1, 2, 3, 4, 6, 10, 20, 50, 100),
            registry=r,
        )
        self.page_size_effective = Gauge(
            f"{PREFIX}_page_size_effective",
            "Largest page of /logs Daily answered when asked for more (its cap on limit, "
            "once learned; page_size until then).",
            ["domain"],
            registry=r,
        )
        self.reads_in_flight = Gauge(
            f"{PREFIX}_reads_in_flight",
            "Session reads under way against Daily (at most max_concurrent_reads).",
            ["domain"],
            registry=r,
        )
        self.budget_saturated = Gauge(
            f"{PREFIX}_budget_saturated",
            "1 while the domain's request budget (requests_per_second) cannot poll every "
            "session at its interval, so quiet sessions are polled less often; else 0.",
            ["domain"],
            registry=r,
        )
        self.poll_interval = Gauge(
            f"{PREFIX}_poll_interval_seconds",
            "Achieved interval between two polls of a session, by class (busy: had news at "
            "its last poll; quiet: had none).",
            ["domain", "class"],
            registry=r,
        )

        # -- sessions and progress -----------------------------------------------------
        self.sessions_tracked = Gauge(
            f"{PREFIX}_sessions_tracked",
            "Meeting sessions whose logs are being tailed.",
            ["domain"],
            registry=r,
        )
        self.sessions_unread = Gauge(
            f"{PREFIX}_sessions_unread",
            "Tracked sessions never read yet (the catch-up after a start or a burst of new "
            "meetings).",
            ["domain"],
            registry=r,
        )
        self.first_reads_rate = Gauge(
            f"{PREFIX}_first_reads_per_second",
            "First reads of sessions over the last progress interval (the catch-up's pace).",
            ["domain"],
            registry=r,
        )
        self.catchup_eta = Gauge(
            f"{PREFIX}_catchup_eta_seconds",
            "Estimated seconds until every tracked session has been read once (0 when none "
            "is waiting).",
            ["domain"],
            registry=r,
        )
        self.cursor_lag = Gauge(
            f"{PREFIX}_cursor_lag_seconds",
            "Now minus the end of the oldest complete read among tracked sessions.",
            ["domain"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the domain last committed acknowledged records (or found nothing to read).",
            ["domain"],
            registry=r,
        )

        # -- webhooks (the receiver) ------------------------------------------------------
        self.webhook_events_accepted = Counter(
            f"{PREFIX}_webhook_events_accepted",
            "Webhook events answered 200: stored now, or repeats of events already stored.",
            ["domain"],
            registry=r,
        )
        self.webhook_events_stored = Counter(
            f"{PREFIX}_webhook_events_stored",
            "Webhook events stored durably in the state store (each id once per dedupe window).",
            ["domain"],
            registry=r,
        )
        self.webhook_events_repeated = Counter(
            f"{PREFIX}_webhook_events_repeated",
            "Webhook events Daily sent again under an id already stored: answered 200, not "
            "stored or exported again.",
            ["domain"],
            registry=r,
        )
        self.webhook_events_refused = Counter(
            f"{PREFIX}_webhook_events_refused",
            "Webhook POSTs refused, by reason (unknown_domain, size, auth, malformed, signature, "
            "stale, unavailable); a Daily hook in circuit-breaker mode fails after 3 in a row.",
            ["domain", "reason"],
            registry=r,
        )
        self.webhook_verifications = Counter(
            f"{PREFIX}_webhook_verifications",
            'Daily\'s verification POSTs ({"test":"test"}, sent when a hook is created), '
            "answered 200 and not stored.",
            ["domain"],
            registry=r,
        )
        self.webhook_accept_duration = Histogram(
            f"{PREFIX}_webhook_accept_duration_seconds",
            "Time from a webhook POST's arrival to its answer for events answered 200 (the "
            "durable store included).",
            ["domain"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )

    def init_webhooks(self, domains: Sequence[str]) -> None:
        """Create every webhook series of the served `domains` at 0 (and the refusals of
        unknown domains), before the first POST."""
        self.webhook_events_refused.labels(UNKNOWN_DOMAIN_LABEL, "unknown_domain")
        for domain in domains:
            for counter in (
                self.webhook_events_accepted,
                self.webhook_events_stored,
                self.webhook_events_repeated,
                self.webhook_verifications,
            ):
                counter.labels(domain)
            for reason in WEBHOOK_REFUSALS:
                if reason != "unknown_domain":
                    self.webhook_events_refused.labels(domain, reason)
            self.webhook_accept_duration.labels(domain)

    def init_domain(
        self,
        domain: str,
        streams: Sequence[str],
        protocol: str,
        *,
        requests_per_second: float | None = None,
    ) -> None:
        """Create every series of `domain` at 0, before its first event.

        `streams` are the streams the domain reads (`logs`, `metrics`); `protocol` its export
        protocol (`grpc`, `http/protobuf`, `console`); `requests_per_second` its Daily API
        budget (sets `daily_api_budget_requests_per_second`). Series whose 0 would be a lie
        are left to appear with their first real value: `cursor_lag_seconds` and
        `last_success_timestamp_seconds` (0 would read as "in 1970"), and
        `poll_interval_seconds` (0 would read as "polled constantly").
        """
        for stream in streams:
            for counter in (
                self.records_fetched,
                self.records_exported,
                self.records_reread,
                self.records_anchor,
                self.records_rejected,
                self.records_malformed,
            ):
                counter.labels(domain, stream)
        # Samples can travel as points (include_metrics) and as log records (metrics_as_logs),
        # so a domain reading samples may use both signals; one reading logs only, one.
        signals = SIGNALS if "metrics" in streams else ("logs",)
        for signal in signals:
            for kind in EXPORT_FAILURE_KINDS:
                self.export_failures_by_kind.labels(domain, signal, kind)
        if "metrics" in streams:
            self.data_points_exported.labels(domain)
            self.data_points_rejected.labels(domain)
            self.metric_fields_ignored.labels(domain)
        self.export_duration.labels(domain, protocol)
        for endpoint in DAILY_ENDPOINTS:
            # Statuses are open-ended; 200 is the one every healthy domain has, and having it
            # from the start makes error ratios (errors / all) defined from the first scrape.
            self.api_requests.labels(domain, endpoint, "200")
        self.api_rate_limited.labels(domain)
        self.api_backoff_seconds.labels(domain)
        for gauge in (
            self.exports_in_flight,
            self.records_pending,
            self.reads_in_flight,
            self.budget_saturated,
            self.sessions_tracked,
            self.sessions_unread,
            self.catchup_eta,
        ):
            gauge.labels(domain).set(0)
        if requests_per_second is not None:
            self.api_budget.labels(domain).set(requests_per_second)
        # Webhook events can arrive for any domain (any replica accepts them).
        self.init_webhooks([domain])

    def export_failed(self, domain: str, signal: Signal, *, permanent: bool) -> None:
        """Count one export request that failed for good after the exporter's retries."""
        kind = "permanent" if permanent else "transient"
        self.export_failures_by_kind.labels(domain, signal, kind).inc()
