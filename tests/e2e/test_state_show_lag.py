"""`state show`, `/readyz` and `/metrics` say the same lag: one function computes it in the
running daemon, and `state show` asks the daemon for it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import (
    PYTHON,
    BridgeConfig,
    domain,
    simulator,
    start_daemon,
    stop,
    wait_until,
)
from tests.e2e.test_service import free_port, http_get, metric_value

KEY = "lag-key-0123456789abcdef"


def test_state_show_reports_the_daemons_lag(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        simulator(["--seed", "4", "--domain", f"acme={KEY}", "--meetings", "3"]) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            health={"listen": f"127.0.0.1:{port}"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()

        def state_show() -> str:
            return subprocess.run(
                [PYTHON, "-m", "daily_otel_bridge", "state", "show", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout

        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            total = len(sim.ground_truth("acme"))
            assert wait_until(lambda: receiver.count() >= total, 60)
            assert wait_until(lambda: http_get(base + "/readyz")[0] == 200, 30)
            shown = state_show()
            ready = json.loads(http_get(base + "/readyz")[1])
            metrics = http_get(base + "/metrics")[1]
        finally:
            assert stop(daemon) == 0
        assert "lag: no daemon answers on health.listen" in state_show()
        match = re.search(
            r"^lag \(the running daemon's /readyz and /metrics\): acme (\d+)s$", shown, re.MULTILINE
        )
        assert match, shown
        from_state = float(match.group(1))
        from_readyz = ready["domains"]["acme"]["cursor_lag_seconds"]
        from_metrics = metric_value(
            metrics, "daily_otel_bridge_cursor_lag_seconds", 'domain="acme"'
        )
        # Read a moment apart from a number that moves with the clock: the same within 2 s.
        assert abs(from_state - from_readyz) <= 2
        assert abs(from_metrics - from_readyz) <= 2
