"""Against a Daily that answers slowly (150 ms), the real daemon keeps several requests in
flight yet never asks more than `requests_per_second` (counted at the simulator, whose own
limiter, set to that rate, never has to answer 429)."""

from __future__ import annotations

from pathlib import Path

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import BridgeConfig, domain, run_once, simulator
from tests.e2e.test_bridge_e2e import received_uids
from tests.expectations import expected_uids

KEY = "pacing-key-0123456789abcdef"
RATE = 20


def test_slow_daily_many_requests_in_flight_never_above_the_rate(tmp_path: Path) -> None:
    args = ["--seed", "12", "--domain", f"acme={KEY}", "--meetings", "30", "--records", "250"]
    args += ["--latency", "150ms", "--latency-jitter", "30ms", "--rate-limit", str(RATE)]
    with simulator(args) as sim, OtlpReceiver(observe_grpc_compression=False) as receiver:
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[domain("acme", KEY, sim.url, page_size=100, requests_per_second=RATE)],
        ).write()
        result = run_once(config)
        assert result.returncode == 0, result.stderr[-3000:]
        assert received_uids(receiver.log_records()) == expected_uids(sim.ground_truth("acme"))
        stats = sim.get("/stats?arrivals=1")["domains"]["acme"]
        assert stats["limiter_429"] == 0, "the simulator's own limiter had to refuse"
        # Several requests in flight: at 150 ms a strictly sequential client has one.
        assert stats["max_inflight"] >= 3
        arrivals = sorted(stats["arrivals"])
        assert len(arrivals) > 100
        span = arrivals[-1] - arrivals[0]
        # Never above the rate over the run, nor in any sliding second (a token bucket of
        # burst 1 puts at most rate + 1 arrivals in one).
        assert (len(arrivals) - 1) / span <= RATE * 1.02
        assert stats["max_per_second"] <= RATE + 1
