"""Serving the simulator (in a loop, in a thread) and its command line."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time

import pytest

from daily_otel_bridge.testing.simulator import (
    SIM_KEY,
    Simulator,
    SimulatorThread,
    start_simulator,
)

from ._helpers import (
    AUTH,
    cfg,
    http_get_json,
)


async def test_start_simulator_and_thread() -> None:
    running = await start_simulator(cfg())
    try:
        assert running.url == f"http://127.0.0.1:{running.port}/v1"
        assert running.port > 0
        assert isinstance(running.app[SIM_KEY], Simulator)
    finally:
        await running.close()


async def test_close_does_not_wait_for_hanging_requests() -> None:
    import aiohttp

    running = await start_simulator(cfg())
    running.simulator.apply_faults({"hang_seconds": 30})
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(f"{running.url}/meetings", headers=AUTH))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await running.close()
        assert time.monotonic() - started < 5
        with contextlib.suppress(aiohttp.ClientError):
            (await task).close()


def test_simulator_thread_serves_sync_clients() -> None:
    with SimulatorThread(cfg()) as sim:
        body = http_get_json(f"{sim.url}/meetings", AUTH)
        assert body["total_count"] == 5


def test_cli_prints_listening_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daily_otel_bridge.testing.simulator",
            "--port",
            "0",
            "--domain",
            "acme=KEY1",
            "--meetings",
            "2",
            "--records",
            "50",
            "--max-seconds",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        body = http_get_json(f"{match.group(1)}/meetings", {"Authorization": "Bearer KEY1"})
        assert body["total_count"] == 2
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_stops_after_max_seconds() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daily_otel_bridge.testing.simulator", "--max-seconds", "0.3"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+/v1\n", proc.stdout)


def test_cli_rejects_bad_domain_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daily_otel_bridge.testing.simulator", "--domain", "nokey"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "NAME=KEY" in proc.stderr


def test_cli_latency_flags() -> None:
    from daily_otel_bridge.testing.simulator import _config_from_args, _parser

    args = _parser().parse_args(
        ["--latency", "150ms", "--latency-jitter", "30ms", "--error-429-ratio", "0.15"]
    )
    config = _config_from_args(args)
    assert config.latency == pytest.approx(0.15)
    assert config.latency_jitter == pytest.approx(0.03)
    assert config.error_429_ratio == 0.15
    with pytest.raises(SystemExit):
        _parser().parse_args(["--latency", "fast"])


def test_cli_churn_flags() -> None:
    from daily_otel_bridge.testing.simulator import _config_from_args, _parser

    args = _parser().parse_args(
        [
            *("--churn-meetings", "300", "--churn-over", "150", "--churn-delay", "5"),
            *("--churn-min-duration", "15", "--churn-max-duration", "60", "--churn-rate", "2"),
            *("--churn-late-ratio", "0.2", "--churn-late-records", "20"),
            *("--churn-late-delay", "10", "--max-limit", "200"),
            *("--live-silent-words", "3", "--live-silent-words-ago", "30"),
        ]
    )
    config = _config_from_args(args)
    assert (config.churn_meetings, config.churn_over, config.churn_delay) == (300, 150.0, 5.0)
    assert (config.churn_late_ratio, config.churn_late_records) == (0.2, 20)
    assert (config.live_silent_words, config.live_silent_words_ago) == (3, 30.0)
    assert config.max_limit == 200
    assert _config_from_args(_parser().parse_args([])).max_limit == 1000
    with pytest.raises(ValueError, match="churn_min_duration"):
        cfg(churn_meetings=1, churn_min_duration=30.0, churn_max_duration=10.0)
