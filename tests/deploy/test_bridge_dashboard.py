"""The Grafana dashboard of the bridge itself, deploy/grafana/bridge.json.

The structure checks are those of the call-quality dashboard (an importable JSON model, one
data source input, a consistent grid, legends and variables that resolve); on top, every metric
and label a query names must be one the bridge's /metrics exposes, and the panels the issue
asks for (throughput, lag, errors, budget use, saturation; meetings, presence, the domain's
API errors and failed webhook deliveries) are there.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy import test_grafana_dashboard as generic
from tests.deploy._bridge_metrics import TARGET_LABELS, exposed_series
from tests.deploy._helpers import DEPLOY
from tests.deploy.test_grafana_dashboard import labels_and_metrics, panels, queries

DASHBOARD = DEPLOY / "grafana" / "bridge.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_structure_as_for_every_dashboard(dashboard: dict[str, Any]) -> None:
    generic.test_top_level(dashboard)
    generic.test_every_data_source_reference_is_the_input(dashboard)
    generic.test_panels(dashboard)
    generic.test_legends_name_labels_the_query_keeps(dashboard)
    generic.test_every_variable_used_is_defined(dashboard)
    assert dashboard["uid"] != "daily-call-quality"  # both dashboards import side by side


def test_data_source_is_an_import_input(dashboard: dict[str, Any]) -> None:
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    text = DASHBOARD.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{(DS_[A-Z0-9_]+)\}", text)) <= set(inputs)
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    used_types = {p["type"] for p in panels(dashboard)} - {"row"}
    assert {("panel", t) for t in used_types} <= required


def test_queries_use_what_the_bridge_exposes(dashboard: dict[str, Any]) -> None:
    series = exposed_series()
    for where, expr in queries(dashboard):
        labels, metrics = labels_and_metrics(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        assert metrics <= set(series), f"{where}: {metrics - set(series)}"
        known = set().union(*(series[m] for m in metrics)) | TARGET_LABELS
        assert labels <= known, f"{where}: {labels - known}"


def test_multi_value_variables_are_matched_with_regex(dashboard: dict[str, Any]) -> None:
    for variable in dashboard["templating"]["list"]:
        assert variable.get("multi")
        exact = re.compile(rf'(?<![=!~])!?=\s*"\$\{{?{re.escape(variable["name"])}\b')
        for where, expr in queries(dashboard):
            assert not exact.search(expr), f"{where}: use =~ for ${variable['name']}"


def test_the_panels_an_operator_needs(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for _, expr in queries(dashboard):
        used |= labels_and_metrics(expr)[1]
    wanted = {
        # throughput
        "daily_otel_bridge_records_fetched_total",
        "daily_otel_bridge_records_exported_total",
        "daily_otel_bridge_data_points_exported_total",
        # lag
        "daily_otel_bridge_cursor_lag_seconds",
        "daily_otel_bridge_last_success_timestamp_seconds",
        "daily_otel_bridge_poll_interval_seconds",
        "daily_otel_bridge_export_duration_seconds_bucket",
        # errors
        "daily_otel_bridge_export_failures_total",
        "daily_otel_bridge_daily_api_requests_total",
        "daily_otel_bridge_records_rejected_total",
        "daily_otel_bridge_records_malformed_total",
        # budget use and saturation
        "daily_otel_bridge_daily_api_budget_requests_per_second",
        "daily_otel_bridge_daily_api_rate_limited_total",
        "daily_otel_bridge_budget_saturated",
        "daily_otel_bridge_reads_in_flight",
        "daily_otel_bridge_exports_in_flight",
        # meetings, presence and the domain's own API (issue 17)
        "daily_otel_bridge_meetings_started_total",
        "daily_otel_bridge_meetings_ongoing",
        "daily_otel_bridge_meeting_duration_seconds_bucket",
        "daily_otel_bridge_meeting_participants_bucket",
        "daily_otel_bridge_participants_present",
        "daily_otel_bridge_domain_api_requests_total",
        "daily_otel_bridge_webhook_deliveries_failed_total",
        # the process
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    }
    assert wanted <= used, wanted - used
