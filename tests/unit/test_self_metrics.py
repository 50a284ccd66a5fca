"""The bridge's own metrics: labels as HELP says, every series at 0 from a domain's start,
build_info and the process collector on the bridge's registry."""

from __future__ import annotations

import platform
import sys
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daily_otel_bridge import __version__
from daily_otel_bridge.instruments import BridgeMetrics


def scrape(metrics: BridgeMetrics) -> dict[str, Any]:
    """family name -> family, read back from the exposition text (what a scraper sees)."""
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(metrics: BridgeMetrics, sample: str, **labels: str) -> float | None:
    for family in scrape(metrics).values():
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def test_every_counter_of_a_started_domain_is_present_at_zero() -> None:
    metrics = BridgeMetrics()
    metrics.init_domain(
        "acme",
        ["logs", "metrics"],
        "grpc",
        requests_per_second=5,
        signals=("logs", "metrics"),
        domain_sources=["presence"],  # a domain source: its per-source series too
    )
    counters = [
        f
        for name, f in scrape(metrics).items()
        if name.startswith("daily_otel_bridge_") and f.type == "counter"
    ]
    assert len(counters) >= 12
    for family in counters:
        totals = [
            s
            for s in family.samples
            if s.name.endswith("_total") and s.labels.get("domain") == "acme"
        ]
        assert totals, f"{family.name} has no series for domain acme"
        assert all(s.value == 0 for s in totals), family.name
    for stream in ("logs", "metrics"):
        for name in ("fetched", "exported", "reread", "rejected", "malformed"):
            sample = f"daily_otel_bridge_records_{name}_total"
            assert value(metrics, sample, domain="acme", stream=stream) == 0
    for signal in ("logs", "metrics"):
        for kind in ("transient", "permanent"):
            sample = "daily_otel_bridge_export_failures_total"
            assert value(metrics, sample, domain="acme", signal=signal, kind=kind) == 0
    histogram = "daily_otel_bridge_export_duration_seconds_count"
    assert value(metrics, histogram, domain="acme", protocol="grpc") == 0
    budget = "daily_otel_bridge_daily_api_budget_requests_per_second"
    assert value(metrics, budget, domain="acme") == 5
    for gauge in ("reads_in_flight", "exports_in_flight", "budget_saturated", "sessions_tracked"):
        assert value(metrics, f"daily_otel_bridge_{gauge}", domain="acme") == 0, gauge


def test_zero_would_lie_for_lag_last_success_and_poll_interval() -> None:
    metrics = BridgeMetrics()
    metrics.init_domain("acme", ["logs"], "grpc")
    found = scrape(metrics)
    for name in ("cursor_lag_seconds", "last_success_timestamp_seconds", "poll_interval_seconds"):
        assert not found[f"daily_otel_bridge_{name}"].samples, name


def test_a_logs_only_domain_has_no_metrics_series() -> None:
    metrics = BridgeMetrics()
    metrics.init_domain("acme", ["logs"], "http/protobuf")
    for family in scrape(metrics).values():
        for s in family.samples:
            assert s.labels.get("stream") != "metrics", s
            assert s.labels.get("signal") != "metrics", s
    assert value(metrics, "daily_otel_bridge_data_points_exported_total", domain="acme") is None


def test_help_names_the_label_values_it_promises() -> None:
    metrics = BridgeMetrics()
    metrics.init_domain("acme", ["logs", "metrics"], "grpc", signals=("logs", "metrics"))
    failures = scrape(metrics)["daily_otel_bridge_export_failures"]
    totals = [s for s in failures.samples if s.name.endswith("_total")]
    assert {k for s in totals for k in s.labels} == {"domain", "signal", "kind"}
    for word in {s.labels["kind"] for s in totals} | {s.labels["signal"] for s in totals}:
        assert word in failures.documentation
    # Points and samples are told apart: a sample is a record, its points have their own name.
    exported = scrape(metrics)["daily_otel_bridge_records_exported"]
    assert "samples" in exported.documentation
    assert "data_points_exported_total" in exported.documentation


def test_export_failed_counts_by_signal_and_kind() -> None:
    metrics = BridgeMetrics()
    metrics.export_failed("acme", "logs", permanent=True)
    metrics.export_failed("acme", "metrics", permanent=False)
    sample = "daily_otel_bridge_export_failures_total"
    assert value(metrics, sample, domain="acme", signal="logs", kind="permanent") == 1
    assert value(metrics, sample, domain="acme", signal="metrics", kind="transient") == 1
    assert value(metrics, sample, domain="acme", signal="logs", kind="transient") is None


def test_build_info_and_process_metrics_are_on_the_bridges_registry() -> None:
    metrics = BridgeMetrics()
    build = {
        "version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": sys.implementation.name,
    }
    assert value(metrics, "daily_otel_bridge_build_info", **build) == 1
    assert "python_info" in scrape(metrics)
    if sys.platform.startswith("linux"):
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes"):
            assert value(metrics, name) is not None, name
        assert (value(metrics, "process_open_fds") or 0) > 0


@pytest.mark.parametrize("streams", [["logs"], ["metrics"], ["logs", "metrics"]])
def test_init_domain_keeps_what_was_counted(streams: list[str]) -> None:
    metrics = BridgeMetrics()
    metrics.records_exported.labels("acme", streams[0]).inc(3)
    metrics.init_domain("acme", streams, "grpc")
    metrics.init_domain("acme", streams, "grpc")
    sample = "daily_otel_bridge_records_exported_total"
    assert value(metrics, sample, domain="acme", stream=streams[0]) == 3
