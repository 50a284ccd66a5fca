"""deploy/prometheus/alerts.yaml: valid for Prometheus (`promtool check rules`), each alert fires
on the series meant to fire it (`promtool test rules` with alerts.test.yaml), and every metric
and label it names is one the bridge exposes."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy._bridge_metrics import TARGET_LABELS, exposed_series
from tests.deploy._helpers import DEPLOY, find_tool
from tests.deploy.test_grafana_dashboard import labels_and_metrics

RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
# Binary operators the dashboard's PromQL reader (which has no use for them) reads as names.
SET_OPERATORS = {"and", "or", "unless"}
HOW = "Debian's `prometheus` package ships it (apt-get install prometheus); .ci/run does that"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("promtool", HOW), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULES.parent,
    )


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_fires_it() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert {r["alert"] for r in rules()} == fired


@pytest.mark.parametrize("rule", rules(), ids=lambda r: str(r["alert"]))
def test_rules_use_what_the_bridge_exposes(rule: dict[str, Any]) -> None:
    series = exposed_series()
    labels, metrics = labels_and_metrics(rule["expr"])
    metrics -= SET_OPERATORS
    assert metrics, rule["expr"]
    assert metrics <= set(series), metrics - set(series)
    known = set().union(*(series[m] for m in metrics)) | TARGET_LABELS
    assert labels <= known, labels - known
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]
