"""The backend recipes: OpenTelemetry Collector configs in deploy/collector/ and the bridge
configs in config/examples/.

The collector itself is not run here (no otelcol binary on the test machine, and no network to
reach the backends): the configs are checked structurally, component by component, and for
secrets. The bridge configs go through the bridge's own `check-config`.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._helpers import (
    DEPLOY,
    ENV_REF,
    REPO,
    collector_config_problems,
    run_check_config,
    walk,
)

COLLECTOR_CONFIGS = sorted((DEPLOY / "collector").glob("*.yaml"))
EXAMPLES = REPO / "config" / "examples"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_recipes_are_there() -> None:
    names = {path.name for path in COLLECTOR_CONFIGS}
    assert {"grafana-cloud.yaml", "datadog.yaml"} <= names
    assert (EXAMPLES / "grafana-cloud-direct.yaml").is_file()
    assert (EXAMPLES / "datadog-agent.yaml").is_file()


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda path: path.name)
def test_collector_config_is_consistent_and_secret_free(path: Path) -> None:
    assert collector_config_problems(load(path), path.read_text()) == []


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda path: path.name)
def test_collector_pipelines(path: Path) -> None:
    config = load(path)
    pipelines = config["service"]["pipelines"]
    assert {"logs", "metrics"} <= set(pipelines)
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert (grpc, http) == ("127.0.0.1:4317", "127.0.0.1:4318")
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        assert "batch" in pipeline["processors"], name
        # memory_limiter must come first to protect everything after it.
        assert pipeline["processors"][0] == "memory_limiter", name


def test_grafana_cloud_collector() -> None:
    config = load(DEPLOY / "collector" / "grafana-cloud.yaml")
    auth = config["extensions"]["basicauth/grafana_cloud"]["client_auth"]
    assert auth == {
        "username": "${env:GRAFANA_CLOUD_INSTANCE_ID}",
        "password": "${env:GRAFANA_CLOUD_API_TOKEN}",
    }
    exporter = config["exporters"]["otlphttp/grafana_cloud"]
    assert exporter["endpoint"] == "${env:GRAFANA_CLOUD_OTLP_ENDPOINT}"
    assert exporter["auth"]["authenticator"] == "basicauth/grafana_cloud"
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["otlphttp/grafana_cloud"]


def test_datadog_collector() -> None:
    config = load(DEPLOY / "collector" / "datadog.yaml")
    api = config["exporters"]["datadog"]["api"]
    assert api["key"] == "${env:DD_API_KEY}"
    assert api["site"] == "${env:DD_SITE}"
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["exporters"] == ["datadog"]


def test_the_checker_catches_mistakes() -> None:
    """The structural check is not vacuous: a broken config is reported."""
    config = load(DEPLOY / "collector" / "grafana-cloud.yaml")
    config["exporters"]["otlphttp/grafana_cloud"]["endpoint"] = "https://otlp.example.test/otlp"
    config["extensions"]["basicauth/grafana_cloud"]["client_auth"]["password"] = "hunter2"
    config["service"]["pipelines"]["logs"]["processors"].append("attributes/missing")
    config["service"]["extensions"].remove("basicauth/grafana_cloud")
    problems = "\n".join(collector_config_problems(config, "api: 0123456789abcdef0123456789abcdef"))
    for fragment in (
        "neither loopback",
        "password: a secret",
        "'attributes/missing' is not defined",
        "is not an enabled extension",
        "shaped like a credential",
    ):
        assert fragment in problems


# --- bridge configs -------------------------------------------------------------------------


# The bridge expands ${VAR} and ${VAR:-default} in string values (`config.loading`).
BRIDGE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def _env_refs(config: Any) -> set[str]:
    refs: set[str] = set()
    for _, value in walk(config):
        if isinstance(value, str):
            refs.update(BRIDGE_REF.findall(value))
    return refs


def test_grafana_cloud_direct_example() -> None:
    config = load(EXAMPLES / "grafana-cloud-direct.yaml")
    assert config["export"]["protocol"] == "http/protobuf"
    assert config["export"]["endpoint"] == "${GRAFANA_CLOUD_OTLP_ENDPOINT}"
    assert config["export"]["headers"] == {"Authorization": "Basic ${GRAFANA_CLOUD_BASIC_AUTH}"}
    assert _env_refs(config) == {
        "GRAFANA_CLOUD_OTLP_ENDPOINT",
        "GRAFANA_CLOUD_BASIC_AUTH",
        "DAILY_API_KEY",
    }


def test_datadog_agent_example() -> None:
    config = load(EXAMPLES / "datadog-agent.yaml")
    assert config["export"]["protocol"] == "grpc"
    assert config["export"]["endpoint"] == "http://127.0.0.1:4317"
    assert "otlp_config" in (EXAMPLES / "datadog-agent.yaml").read_text()
    assert _env_refs(config) == {"DAILY_API_KEY"}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_example_secrets_come_from_the_environment(path: Path) -> None:
    config = load(path)
    assert not ENV_REF.search(path.read_text()), "the bridge expands ${VAR}, not ${env:VAR}"
    for domain in config["domains"]:
        if "api_key" in domain:
            assert BRIDGE_REF.fullmatch(domain["api_key"]), "literal api_key"
    for value in (config["export"].get("headers") or {}).values():
        assert BRIDGE_REF.search(value), "literal header value"


def test_grafana_cloud_direct_passes_check_config(tmp_path: Path) -> None:
    daily_key = f"daily-key-{uuid.uuid4().hex}"
    basic = base64.b64encode(f"123456:glc_{uuid.uuid4().hex}".encode()).decode()
    run_check_config(
        (EXAMPLES / "grafana-cloud-direct.yaml").read_text(),
        tmp_path,
        {
            "DAILY_API_KEY": daily_key,
            "GRAFANA_CLOUD_OTLP_ENDPOINT": "https://otlp-gateway.example.test/otlp",
            "GRAFANA_CLOUD_BASIC_AUTH": basic,
        },
        secrets=[daily_key, basic],
    )


def test_datadog_agent_passes_check_config(tmp_path: Path) -> None:
    daily_key = f"daily-key-{uuid.uuid4().hex}"
    run_check_config(
        (EXAMPLES / "datadog-agent.yaml").read_text(),
        tmp_path,
        {"DAILY_API_KEY": daily_key},
        secrets=[daily_key],
    )
