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
from collections.abc import Mapping, Sequence
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
from daily_otel_bridge.core.api_logs import ApiLogEntry, status_class
from daily_otel_bridge.core.presence import gauge_values, rooms_to_forget

PREFIX: Final = "daily_otel_bridge"

# A stream is what a source reads (its name: `sources/`); a signal is what OTLP carries (log
# records, metric data points). Each source says which signals its records may become.
EXPORT_FAILURE_KINDS: Final = ("transient", "permanent")
POLL_CLASSES: Final = ("busy", "quiet")
DAILY_ENDPOINTS: Final = ("meetings", "logs")
# The endpoints of the sources beside the call logs (`init_sources`), as `get_json` names them.
PRESENCE_ENDPOINT: Final = "presence"
API_LOGS_ENDPOINT: Final = "logs/api"
# Status classes a failed webhook delivery can have (`api_logs.status_class`, 2xx excepted).
FAILED_DELIVERY_CLASSES: Final = ("3xx", "4xx", "5xx", "other")
# Meetings last minutes to hours; the last buckets catch rooms left open all day.
MEETING_DURATION_BUCKETS: Final = (
    60, 300, 600, 900, 1800, 2700, 3600, 5400, 7200, 14400, 28800, 86400,
)  # fmt: skip
# Most calls are one to one or small groups; a few are webinars of hundreds.
MEETING_PARTICIPANT_BUCKETS: Final = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200, 500, 1000)

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
        self.source_polls_failed = Counter(
            f"{PREFIX}_source_polls_failed",
            "Polls of a domain source (presence, API logs, webhook inbox, ...) that failed; "
            "the source is polled again at its next interval, nothing else stops.",
            ["domain", "source"],
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

        # -- the sources beside the call logs (issue 17) ----------------------------------
        # The `room` label is always there, so each is one family whatever the config: the
        # room's name with `room_label: true` (one series per room: unbounded, so opt-in),
        # "" otherwise (one series per domain). `room_value` picks it.
        self.meetings_started = Counter(
            f"{PREFIX}_meetings_started",
            "Meetings discovered for the first time (GET /meetings), by room when room_label "
            "is on.",
            ["domain", "room"],
            registry=r,
        )
        self.meeting_duration = Histogram(
            f"{PREFIX}_meeting_duration_seconds",
            "Length of ended meetings (their summary's duration).",
            ["domain", "room"],
            buckets=MEETING_DURATION_BUCKETS,
            registry=r,
        )
        self.meeting_participants = Histogram(
            f"{PREFIX}_meeting_participants",
            "Participant sessions of ended meetings (their summary's participant count).",
            ["domain", "room"],
            buckets=MEETING_PARTICIPANT_BUCKETS,
            registry=r,
        )
        self.meetings_ongoing = Gauge(
            f"{PREFIX}_meetings_ongoing",
            "Meetings tracked as ongoing (of the rooms selected), set at each meeting-summaries "
            "poll.",
            ["domain", "room"],
            registry=r,
        )
        self.participants_present = Gauge(
            f"{PREFIX}_participants_present",
            "Participants in a call at the last GET /presence (up to 15 s behind).",
            ["domain", "room"],
            registry=r,
        )
        self.domain_api_requests = Counter(
            f"{PREFIX}_domain_api_requests",
            "The domain's own REST API requests as GET /logs/api lists them (source=api), "
            "by route (ids replaced by placeholders) and status class (2xx..5xx, other).",
            ["domain", "route", "status_class"],
            registry=r,
        )
        self.webhook_deliveries_failed = Counter(
            f"{PREFIX}_webhook_deliveries_failed",
            "Webhook deliveries Daily made without a 2xx answer (GET /logs/api, "
            "source=webhook), by status class (other: no answer at all).",
            ["domain", "status_class"],
            registry=r,
        )
        # (gauge, domain) -> the rooms its last update set, to remove the ones emptied.
        self._rooms_set: dict[tuple[int, str], set[str]] = {}
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
        self.webhook_inbox_oldest_age = Gauge(
            f"{PREFIX}_webhook_inbox_oldest_age_seconds",
            "Age of the oldest webhook event stored and not yet exported (0: none waits), as "
            "the replica that owns the domain saw it at its last look at the inbox.",
            ["domain"],
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
            self.webhook_inbox_oldest_age.labels(domain)

    def init_domain(
        self,
        domain: str,
        streams: Sequence[str],
        protocol: str,
        *,
        requests_per_second: float | None = None,
        signals: Sequence[Signal] = ("logs",),
        domain_sources: Sequence[str] = (),
    ) -> None:
        """Create every series of `domain` at 0, before its first event.

        `streams` are the streams the domain reads (`logs`, `metrics`); `protocol` its export
        protocol (`grpc`, `http/protobuf`, `console`); `requests_per_second` its Daily API
        budget (sets `daily_api_budget_requests_per_second`). Series whose 0 would be a lie
        are left to appear with their first real value: `cursor_lag_seconds` and
        `last_success_timestamp_seconds` (0 would read as "in 1970"), and
        `poll_interval_seconds` (0 would read as "polled constantly").
        """
        for source in domain_sources:
            self.source_polls_failed.labels(domain, source)
            self.records_exported.labels(domain, source)
            self.records_rejected.labels(domain, source)
            self.records_malformed.labels(domain, source)
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
        # `signals`: those the domain's sources may send (`Source.signals`).
        for signal in signals:
            for kind in EXPORT_FAILURE_KINDS:
                self.export_failures_by_kind.labels(domain, signal, kind)
        if "metrics" in signals:
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
        # The counters of the sources beside the call logs, domain-wide, whether or not the
        # domain enables them (a 0 is true of a source that is off): `increase()` and alert
        # rules then see their first event. Route "" is no route: the series that makes a
        # domain's request rate defined before its first request, as status 200 above.
        self.meetings_started.labels(domain, "")
        self.domain_api_requests.labels(domain, "", "2xx")
        for klass in FAILED_DELIVERY_CLASSES:
            self.webhook_deliveries_failed.labels(domain, klass)
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

    # -- the sources beside the call logs --------------------------------------------------

    def init_sources(
        self,
        domain: str,
        *,
        meeting_summaries: bool,
        presence: bool,
        api_logs: bool,
        room_label: bool,
    ) -> None:
        """Create the gauges, histograms and request series of the enabled sources at 0
        (`init_domain` made their counters). With `room_label` the per-room series appear
        with their room's first event."""
        if not room_label:
            self.meetings_ongoing.labels(domain, "").set(0)
            if meeting_summaries:
                self.meeting_duration.labels(domain, "")
                self.meeting_participants.labels(domain, "")
            if presence:
                self.participants_present.labels(domain, "").set(0)
        if presence:
            self.api_requests.labels(domain, PRESENCE_ENDPOINT, "200")
        if api_logs:
            self.api_requests.labels(domain, API_LOGS_ENDPOINT, "200")

    @staticmethod
    def room_value(room: str | None, *, room_label: bool) -> str:
        """The `room` label's value: the room with `room_label`, "" otherwise."""
        return (room or "") if room_label else ""

    def meeting_ended(
        self, domain: str, room: str, *, duration: float, participants: int, room_label: bool
    ) -> None:
        """Observe one meeting summary (once per meeting: when its records are delivered)."""
        label = self.room_value(room, room_label=room_label)
        self.meeting_duration.labels(domain, label).observe(duration)
        self.meeting_participants.labels(domain, label).observe(participants)

    def set_by_room(
        self, gauge: Gauge, domain: str, counts: Mapping[str, int], *, room_label: bool
    ) -> None:
        """Set a gauge with a `room` label (`meetings_ongoing`, `participants_present`) to
        the counts of one update; the series of rooms that emptied are removed."""
        values = gauge_values(counts, room_label=room_label)
        key = (id(gauge), domain)
        for room in rooms_to_forget(self._rooms_set.get(key, set()), values):
            gauge.remove(domain, room)
        for room, value in values.items():
            gauge.labels(domain, room).set(value)
        self._rooms_set[key] = set(values)

    def api_log_entry(self, domain: str, entry: ApiLogEntry) -> None:
        """Count one /logs/api entry delivered (once: when its record is acknowledged)."""
        klass = status_class(entry.status)
        if entry.source == "webhook":
            if entry.delivery_failed:
                self.webhook_deliveries_failed.labels(domain, klass).inc()
        else:
            self.domain_api_requests.labels(domain, entry.route, klass).inc()
