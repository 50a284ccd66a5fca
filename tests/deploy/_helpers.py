"""Shared by the deployment tests: locating tools, checking collector configs, check-config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def find_tool(name: str, how_to_install: str) -> str:
    """The path of a command-line tool: next to this Python first (tools installed into the
    venv by pip), then on PATH. Fails, never skips, when it is missing."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed; .ci/run must install it: {how_to_install}")
    return found


def walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, scalar) pair of a parsed YAML document."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))
    else:
        yield path, node


# --- OpenTelemetry Collector configs -------------------------------------------------------

COLLECTOR_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
SIGNALS = ("logs", "metrics", "traces", "profiles")
ENV_REF = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
SENSITIVE_KEY = re.compile(
    r"(^|_)(key|api_key|password|passwd|token|secret|authorization|username|credentials?)$",
    re.IGNORECASE,
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Shapes of real credentials: a Datadog API key (32 hex digits), a Grafana Cloud token.
CREDENTIAL_SHAPES = re.compile(
    r"\b[0-9a-f]{32}\b|\bglc_[A-Za-z0-9+/=_-]{8,}|Basic [A-Za-z0-9+/]{8,}"
)


def _host_of(endpoint: str) -> str:
    rest = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[: rest.index("]") + 1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def collector_config_problems(config: Mapping[str, Any], raw_text: str) -> list[str]:
    """What is wrong with a collector config: dangling or unused component references, literal
    secrets, non-loopback listeners or hard-coded remote endpoints. Empty when all is well."""
    problems: list[str] = []
    unknown = set(config) - {*COLLECTOR_SECTIONS, "service"}
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}")
    defined = {section: set(config.get(section) or {}) for section in COLLECTOR_SECTIONS}
    used: dict[str, set[str]] = {section: set() for section in COLLECTOR_SECTIONS}
    for section, ids in defined.items():
        for cid in ids:
            if not re.fullmatch(r"[a-z0-9_]+(/[A-Za-z0-9_.-]+)?", cid):
                problems.append(f"{section}.{cid}: not a `type` or `type/name` id")

    service = config.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines is empty")
    for name, pipeline in pipelines.items():
        if name.split("/", 1)[0] not in SIGNALS:
            problems.append(f"pipeline {name}: unknown signal")
        for role in ("receivers", "processors", "exporters"):
            members = pipeline.get(role) or []
            if role != "processors" and not members:
                problems.append(f"pipeline {name}: no {role}")
            for cid in members:
                if cid in defined[role]:
                    used[role].add(cid)
                elif role != "processors" and cid in defined["connectors"]:
                    used["connectors"].add(cid)
                else:
                    problems.append(f"pipeline {name}: {role[:-1]} {cid!r} is not defined")
    enabled_extensions = service.get("extensions") or []
    for cid in enabled_extensions:
        if cid in defined["extensions"]:
            used["extensions"].add(cid)
        else:
            problems.append(f"service.extensions: {cid!r} is not defined")
    for section in COLLECTOR_SECTIONS:
        for cid in sorted(defined[section] - used[section]):
            problems.append(f"{section}.{cid} is defined but not used")

    for path, value in walk(config):
        where = ".".join(str(part) for part in path)
        key = str(path[-1]) if path else ""
        if key == "authenticator" and value not in enabled_extensions:
            problems.append(f"{where}: {value!r} is not an enabled extension")
        if not isinstance(value, str):
            continue
        leftover = ENV_REF.sub("", value)
        if "${" in leftover or re.search(r"\$[A-Za-z_]", leftover):
            problems.append(f"{where}: use the ${{env:NAME}} form, not {value!r}")
        if SENSITIVE_KEY.search(key):
            ref = ENV_REF.fullmatch(value)
            if ref is None or ref["default"] is not None:
                problems.append(f"{where}: a secret must be exactly ${{env:NAME}}")
        if key == "endpoint":
            ref = ENV_REF.fullmatch(value)
            if ref is not None:
                if ref["default"] is not None and _host_of(ref["default"]) not in LOOPBACK_HOSTS:
                    problems.append(f"{where}: default {ref['default']!r} is not loopback")
            elif _host_of(value) not in LOOPBACK_HOSTS:
                problems.append(f"{where}: {value!r} is neither loopback nor ${{env:...}}")
    if CREDENTIAL_SHAPES.search(raw_text):
        problems.append("something shaped like a credential is written in the file")
    return problems


# --- The bridge's own check-config ---------------------------------------------------------


def run_check_config(
    config_text: str, tmp_path: Path, env: Mapping[str, str], secrets: list[str]
) -> subprocess.CompletedProcess[str]:
    """Run `python -m daily_otel_bridge check-config` on a config and assert it is accepted and
    that no secret leaks into its output. A literal state path is moved under tmp_path (one
    taken from the environment, `${STATE_DIRECTORY}`, is left to `env`)."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    text = re.sub(
        r"^state_path:\s*/.*$",
        f"state_path: {state_dir / 'state.db'}",
        config_text,
        count=1,
        flags=re.MULTILINE,
    )
    config = tmp_path / "config.yaml"
    config.write_text(text)
    clean_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "DAILY_", "GRAFANA_", "DD_", "NOTIFY_", "WATCHDOG_"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "daily_otel_bridge", "check-config", "--config", str(config)],
        env={**clean_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"check-config rejected the config:\n{output}"
    for secret in secrets:
        assert secret not in output, "check-config printed a secret"
    return result


def write_key_file(directory: Path, name: str, secret: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(secret)
    path.chmod(0o400)
    return path
