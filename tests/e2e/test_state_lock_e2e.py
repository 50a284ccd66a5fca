"""Two daemons on one SQLite state file: the second refuses in one line, exit 3."""

from __future__ import annotations

import subprocess
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
KEY = "lock-test-key-123456"


def test_a_second_daemon_on_the_same_state_exits_3_naming_the_first(tmp_path: Path) -> None:
    with simulator(["--domain", f"acme={KEY}", "--meetings", "1", "--records", "50"]) as sim:
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "console"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        first = start_daemon(config, log_path=tmp_path / "first.log")
        try:
            lock = tmp_path / "state.db.lock"
            assert wait_until(lambda: lock.exists() and lock.read_text().strip() != "", 30)
            second = subprocess.run(
                [PYTHON, "-m", "daily_otel_bridge", "run", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                env=bridge_env(),
                check=False,
            )
            assert second.returncode == 3
            lines = [line for line in second.stderr.splitlines() if line.strip()]
            assert len(lines) == 1, second.stderr
            assert f"state store in use by pid {first.pid}" in lines[0]
            assert first.poll() is None, "the first daemon is unaffected"
        finally:
            assert stop(first) == 0
