"""What an operator meets, with real processes: the demo against a dead endpoint, a busy
health port, backfill of an unknown session, the standalone simulator, the healthcheck and
global options after the subcommand."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.harness import (
    PYTHON,
    BridgeConfig,
    bridge_env,
    domain,
    simulator,
    start_daemon,
    stop,
    wait_until,
)

pytestmark = pytest.mark.e2e

KEY = "operator-test-key-0123456789"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "daily_otel_bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=bridge_env(),
        check=False,
    )


@contextmanager
def occupied_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_toward_a_dead_endpoint_says_so_and_exits_non_zero() -> None:
    port = closed_port()
    result = cli("demo", "--endpoint", f"http://127.0.0.1:{port}", "--duration", "2s")
    assert result.returncode == 1, result.stderr[-2000:]
    summary = [ln for ln in result.stderr.splitlines() if ln.startswith("demo summary:")]
    assert len(summary) == 1, result.stderr[-2000:]
    assert " 0 delivered to " in summary[0]
    assert "export requests failed" in summary[0]
    assert "nothing could be delivered" in result.stderr
    assert "Next:" not in result.stderr


def test_demo_on_the_console_delivers_and_exits_zero() -> None:
    # Long enough for the first sweep (well under a second when idle) on a busy machine.
    result = cli("demo", "--duration", "8s")
    assert result.returncode == 0, result.stderr[-2000:]
    (summary,) = [ln for ln in result.stderr.splitlines() if ln.startswith("demo summary:")]
    delivered = int(re.search(r"(\d+) delivered to ", summary).group(1))  # type: ignore[union-attr]
    assert delivered > 0, summary
    # The line accounts for every record read: delivered, anchors, read again.
    read = int(re.search(r"(\d+) records read from the simulator", summary).group(1))  # type: ignore[union-attr]
    anchors = int(re.search(r"(\d+) read again as page anchors", summary).group(1))  # type: ignore[union-attr]
    reread = int(re.search(r"(\d+) read again because the list changed", summary).group(1))  # type: ignore[union-attr]
    assert read >= delivered + anchors + reread - 10, summary  # the last batch may be in flight
    assert reread <= delivered, summary
    assert "0 export requests failed" in summary
    assert "daily-otel-bridge init" in result.stderr


def test_a_busy_health_port_is_one_line_naming_health_listen(tmp_path: Path) -> None:
    with occupied_port() as port:
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "console"},
            domains=[domain("acme", KEY, f"http://127.0.0.1:{closed_port()}/v1")],
            health={"enabled": True, "listen": f"127.0.0.1:{port}"},
        ).write()
        result = cli("run", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: health.listen: ")
    assert f"127.0.0.1:{port}" in lines[0]
    assert "address already in use" in lines[0]


def test_backfill_of_an_unknown_session_is_a_command_line_error(tmp_path: Path) -> None:
    with simulator(["--seed", "5", "--domain", f"acme={KEY}", "--meetings", "2"]) as sim:
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "console"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        base = ["backfill", "--config", str(config), "--domain", "acme", "--since", "2h"]
        unknown = cli(*base, "--session", "00000000-0000-0000-0000-000000000000")
        assert unknown.returncode == 2, unknown.stderr[-2000:]
        assert "command-line error: --session" in unknown.stderr
        assert "configuration error" not in unknown.stderr

        known_id = sim.get("/meetings?domain=acme")["meetings"][0]["id"]
        known = cli(*base, "--session", known_id)
        assert known.returncode == 0, known.stderr[-2000:]
        assert known.stdout.strip(), "the console export prints the backfilled records"

        other = cli(*base[:4], "nope", *base[5:], "--session", known_id)
        assert other.returncode == 2
        assert "command-line error: --domain 'nope' is not in the config" in other.stderr
        since = cli(*base[:-1], "yesterday-ish", "--session", known_id)
        assert since.returncode == 2
        assert "command-line error: --since" in since.stderr


def test_the_simulator_subcommand_serves_the_daily_api() -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "daily_otel_bridge", "simulator", "--port", "0", "--max-seconds", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bridge_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{url}/meetings", headers={"Authorization": "Bearer demo-key"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            body = json.loads(resp.read())
        assert body["data"], body
    finally:
        assert stop(proc) == 0  # type: ignore[arg-type]


def test_healthcheck_follows_the_configured_port(tmp_path: Path) -> None:
    with simulator(["--seed", "6", "--domain", f"acme={KEY}", "--meetings", "1"]) as sim:
        port = closed_port()
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "console"},
            domains=[domain("acme", KEY, sim.url)],
            health={"enabled": True, "listen": f"127.0.0.1:{port}"},
        ).write()
        before = cli("healthcheck", "--config", str(config))
        assert before.returncode == 1
        assert f"127.0.0.1:{port}/healthz" in before.stderr
        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            assert wait_until(
                lambda: cli("--config", str(config), "healthcheck").returncode == 0, 60
            ), (tmp_path / "daemon.log").read_text()[-2000:]
        finally:
            assert stop(daemon) == 0


def test_global_options_after_the_subcommand_reach_the_process(tmp_path: Path) -> None:
    config = BridgeConfig(
        path=tmp_path / "bridge.yaml",
        state_path=tmp_path / "state.db",
        export={"protocol": "console"},
        domains=[domain("acme", KEY, "http://127.0.0.1:9/v1")],
    ).write()
    result = cli("check-config", "--config", str(config), "--log-level", "debug")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # not a TTY: JSON
    assert any(e["event"] == "configuration loaded" and e["level"] == "debug" for e in events)
    assert KEY not in result.stderr
    assert KEY not in result.stdout
    console = cli("--log-format", "console", "check-config", "--config", str(config), "-h")
    assert console.returncode == 0
    bad = cli("check-config", "--config", str(config), "--log-level", "verbose")
    assert bad.returncode == 2
    assert "argument --log-level: unknown log level 'verbose'" in bad.stderr
