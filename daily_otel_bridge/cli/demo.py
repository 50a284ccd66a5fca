"""`daily-otel-bridge demo`: the bundled simulator, a temporary state file, console output.

A newcomer sees records flow within seconds without a Daily account; `--endpoint` sends the
same records to a real OTLP receiver instead.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

DEMO_KEY = "demo-key-not-a-secret"


def demo_config(
    api_url: str, state_path: Path, endpoint: str | None, protocol: str
) -> dict[str, Any]:
    export: dict[str, Any] = {"protocol": "console"}
    if endpoint:
        export = {"protocol": protocol, "endpoint": endpoint, "compression": "gzip"}
    return {
        "state_path": str(state_path),
        "health": {"enabled": False},
        "export": export,
        "domains": [
            {
                "name": "demo",
                "api_key": DEMO_KEY,
                "api_url": api_url,
                "poll_interval": "2s",
                "initial_lookback": "1h",
                "lookback": "30s",
                "settle_lag": "1s",
                "session_grace": "1m",
                "max_quiet_interval": "10s",
                "requests_per_second": 10,
            }
        ],
    }


async def _demo(endpoint: str | None, protocol: str, duration: float | None, seed: int) -> int:
    from daily_otel_bridge.config.settings import parse_settings
    from daily_otel_bridge.service.app import Bridge
    from daily_otel_bridge.testing.simulator import SimulatorConfig, start_simulator

    sim_config = SimulatorConfig(
        seed=seed,
        domains={"demo": DEMO_KEY},
        meetings_per_domain=3,
        records_per_meeting=40,
        history=600.0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
    )
    with tempfile.TemporaryDirectory(prefix="daily-otel-bridge-demo-") as tmp:
        simulator = await start_simulator(sim_config)
        settings = parse_settings(
            demo_config(simulator.url, Path(tmp) / "state.db", endpoint, protocol),
            environ={},
        )
        err = sys.stderr
        err.write(
            f"Daily API simulator on {simulator.url}; "
            + (f"exporting to {endpoint} ({protocol})" if endpoint else "printing records here")
            + ". Ctrl-C stops.\n"
        )
        bridge = Bridge(settings)
        try:
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, bridge.request_stop)
            await bridge.run_forever()
        finally:
            await bridge.close()
            await simulator.close()
        err.write(
            "\nNext: copy config/daily-otel-bridge.example.yaml, set DAILY_API_KEY and your OTLP "
            "endpoint, check it with `daily-otel-bridge check-config --config FILE`, then "
            "`daily-otel-bridge run --config FILE`.\n"
        )
    return 0


def run_demo(*, endpoint: str | None, protocol: str, duration: float | None, seed: int) -> int:
    try:
        return asyncio.run(_demo(endpoint, protocol, duration, seed))
    except KeyboardInterrupt:
        return 0
