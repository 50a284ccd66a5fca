"""Operating the daemon like a service: probes, self-metrics, systemd notify, backfill."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import (
    PYTHON,
    BridgeConfig,
    bridge_env,
    domain,
    run_once,
    simulator,
    start_daemon,
    stop,
    wait_until,
)

pytestmark = pytest.mark.e2e

KEY = "service-test-key-0123456789"
UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "daily-otel-bridge.service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric_value(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_readyz_follows_the_backend(tmp_path: Path) -> None:
    health_port = free_port()
    base = f"http://127.0.0.1:{health_port}"
    with (
        simulator(
            [
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "2",
                "--records",
                "50",
                "--live",
                "--live-meetings",
                "2",
                "--live-rate",
                "10",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={
                "protocol": "grpc",
                "endpoint": receiver.grpc_endpoint,
                "max_retry_time": "1s",
                "timeout": "1s",
            },
            health={"listen": f"127.0.0.1:{health_port}", "staleness": "4s"},
            domains=[domain("acme", KEY, sim.url, poll_interval="500ms", settle_lag="200ms")],
        ).write()
        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            assert wait_until(lambda: http_get(base + "/readyz")[0] == 200, timeout=30)
            assert http_get(base + "/healthz")[0] == 200
            _status, body = http_get(base + "/readyz")
            report = json.loads(body)["domains"]["acme"]
            assert report["state"] == "ok"
            assert report["sessions_tracked"] >= 2
            assert report["last_error_type"] is None

            receiver.stop_serving()
            stopped = time.monotonic()
            assert wait_until(lambda: http_get(base + "/readyz")[0] == 503, timeout=15)
            # Within the staleness bound (plus one failing export attempt and a poll).
            assert time.monotonic() - stopped <= 4 + 1 + 1 + 3
            report = json.loads(http_get(base + "/readyz")[1])["domains"]["acme"]
            assert report["last_error_type"] == "export_transient"

            before = receiver.count()
            receiver.resume_serving()
            assert wait_until(lambda: http_get(base + "/readyz")[0] == 200, timeout=40)
            assert receiver.count() > before, "delivery resumed"
        finally:
            assert stop(daemon) == 0


def test_metrics_counters_equal_received_records(tmp_path: Path) -> None:
    health_port = free_port()
    base = f"http://127.0.0.1:{health_port}"
    with (
        simulator(["--domain", f"acme={KEY}", "--meetings", "5", "--records", "400"]) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            health={"listen": f"127.0.0.1:{health_port}"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        total = len(sim.ground_truth("acme"))
        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            assert wait_until(lambda: receiver.count() >= total, timeout=60)
            assert wait_until(lambda: http_get(base + "/readyz")[0] == 200, timeout=10)
            # The daemon reads on while we look: bracket its count by the simulator's.
            sim_before = sim.stats()["requests"]["logs"]
            text = http_get(base + "/metrics")[1]
            sim_after = sim.stats()["requests"]["logs"]
        finally:
            assert stop(daemon) == 0
        labels = 'domain="acme",stream="logs"'
        assert metric_value(text, "daily_otel_bridge_records_exported_total", labels) == total
        assert receiver.count() == total
        assert metric_value(text, "daily_otel_bridge_records_fetched_total", labels) >= total
        requests = sum(
            float(v)
            for v in re.findall(
                r'^daily_otel_bridge_daily_api_requests_total\{domain="acme",endpoint="logs",'
                r'status="200"\} (\S+)$',
                text,
                re.MULTILINE,
            )
        )
        # A request is counted when its answer arrives: those in flight (at most one per
        # concurrent read) were received by the simulator but not counted yet.
        in_flight = 8
        assert sim_before - in_flight <= requests <= sim_after
        assert (
            'daily_otel_bridge_export_duration_seconds_count{domain="acme",protocol="grpc"}' in text
        )
        assert 'daily_otel_bridge_sessions_tracked{domain="acme"}' in text


def _exec_start(config: Path) -> list[str]:
    """The unit's ExecStart, pointed at this venv's script and the test's config."""
    line = next(ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    argv[0] = str(Path(sys.executable).with_name("daily-otel-bridge"))
    argv[argv.index("--config") + 1] = str(config)
    return argv


def test_systemd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(0.2)
    with simulator(["--domain", f"acme={KEY}", "--meetings", "1", "--records", "10"]) as sim:
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "console"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        env = bridge_env(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
        proc = subprocess.Popen(
            _exec_start(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        env["WATCHDOG_PID"] = str(proc.pid)
        messages: list[str] = []
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    messages.append(listener.recv(4096).decode())
                if sum("WATCHDOG=1" in m for m in messages) >= 4:
                    break
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
            end = time.monotonic() + 2
            while time.monotonic() < end:
                try:
                    messages.append(listener.recv(4096).decode())
                except TimeoutError:
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            listener.close()
    assert code == 0
    states = [line for m in messages for line in m.splitlines()]
    assert states[0] == "READY=1" or "READY=1" in states[0]
    assert states.count("WATCHDOG=1") >= 4
    assert "STOPPING=1" in states
    assert states.index("STOPPING=1") > max(i for i, s in enumerate(states) if s == "WATCHDOG=1")


def test_backfill_one_session_redelivers_and_leaves_state_alone(tmp_path: Path) -> None:
    with (
        simulator(["--domain", f"acme={KEY}", "--meetings", "3", "--records", "200"]) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        assert run_once(config).returncode == 0
        first = receiver.count()

        def state_show() -> str:
            out = subprocess.run(
                [PYTHON, "-m", "daily_otel_bridge", "state", "show", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            # The lag column moves with the clock; everything else must stay put.
            return re.sub(r"\s\d+s\s", " <lag> ", out)

        before = state_show()
        session = sim.get("/meetings?domain=acme")
        meetings: list[dict[str, Any]] = (
            session["meetings"] if isinstance(session, dict) else session
        )
        target = meetings[0]["id"]
        expected = [r for r in sim.ground_truth("acme") if r["mtgSessionId"] == target]
        result = subprocess.run(
            [
                PYTHON,
                "-m",
                "daily_otel_bridge",
                "backfill",
                "--config",
                str(config),
                "--domain",
                "acme",
                "--session",
                target,
                "--since",
                "3h",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=bridge_env(),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        again = receiver.log_records()[first:]
        assert len(again) == len(expected)
        assert {str(r.attributes["daily.mtg_session_id"]) for r in again} == {target}
        assert state_show() == before
        # The live cursor did not move: a normal sweep sends nothing new.
        assert run_once(config).returncode == 0
        assert receiver.count() == first + len(expected)


def test_self_telemetry_goes_over_otlp(tmp_path: Path) -> None:
    with (
        simulator(["--domain", f"acme={KEY}", "--meetings", "2", "--records", "50"]) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[domain("acme", KEY, sim.url)],
            extra={"self_telemetry": {"otlp": True, "interval": "500ms"}},
        ).write()
        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            assert wait_until(
                lambda: any(
                    p.metric_name == "daily_otel_bridge_records_exported" and p.value == 100
                    for p in receiver.metric_points()
                ),
                timeout=30,
            )
        finally:
            assert stop(daemon) == 0
        names = {p.metric_name for p in receiver.metric_points()}
        assert "daily_otel_bridge_export_duration_seconds" in names
        resource = receiver.metric_points()[0].resource
        assert resource["service.name"] == "daily-otel-bridge"
