"""Presence through the real pipeline and the simulator: one `GET /presence` per poll, the
participants present per domain (or per room, opt-in) as gauges; a `/presence` answering 500
past the client's retries stops that source alone, never the log records."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.state.sqlite import SqliteCursorStore
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from daily_otel_bridge.testing.simulator import SimulatorConfig, start_simulator
from daily_otel_bridge.testing.simulator.presence import presence
from tests.expectations import expected_uids
from tests.integration.test_pass import Rig, close, got_uids, rig_for, sim_config


@asynccontextmanager
async def frozen_rig(config: SimulatorConfig, tmp_path: Path) -> AsyncIterator[Rig]:
    started = time.time()
    sim = await start_simulator(config, clock=lambda: started)
    receiver = OtlpReceiver(http=False, observe_grpc_compression=False).start()
    store = SqliteCursorStore(tmp_path / "state.db")
    try:
        yield Rig(sim, receiver, store, BridgeMetrics(), tmp_path)
    finally:
        store.close()
        receiver.stop()
        await sim.close()


def present_now(sim: object) -> dict[str, int]:
    simulator = sim.simulator  # type: ignore[attr-defined]
    answer = presence(simulator.world, "acme", simulator.now(), simulator.config.presence_lag)
    return {room: len(people) for room, people in answer.items() if people}


def gauge(metrics: object, room: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "daily_otel_bridge_participants_present", {"domain": "acme", "room": room}
    )
    return value


@pytest.mark.parametrize("room_label", [False, True])
async def test_presence_sets_the_gauges_from_one_request(tmp_path: Path, room_label: bool) -> None:
    config = sim_config(
        meetings_per_domain=1,
        records_per_meeting=20,
        live=True,
        live_meetings=2,
        live_records_per_second=1.0,
        participants_per_meeting=4,
        presence_lag=0.0,
        include_metrics_samples=False,
    )
    # A frozen simulated clock, two minutes into the live meetings: who is present does
    # not change under the test.
    async with frozen_rig(config, tmp_path) as rig:
        sim = rig.sim.simulator
        sim.advance(120)
        want = present_now(rig.sim)
        assert sum(want.values()) > 0, "the live meetings have participants present"
        settings = rig.settings(presence=True, room_label=room_label)
        pipeline = rig.pipeline(settings)
        await pipeline.run_once()
        assert sim.requests.get("presence") == 1
        if room_label:
            for room, count in want.items():
                assert gauge(rig.metrics, room) == count
            assert gauge(rig.metrics, "") is None
        else:
            assert gauge(rig.metrics, "") == sum(want.values())
        await close(pipeline)


async def test_a_failing_presence_stops_only_itself(tmp_path: Path) -> None:
    config = sim_config(meetings_per_domain=3, records_per_meeting=100)
    async with rig_for(config, tmp_path) as rig:
        # Every /presence answers 500, past the client's retries.
        rig.sim.simulator.faults.apply({"status": 500, "count": 1000, "endpoint": "presence"})
        pipeline = rig.pipeline(rig.settings(presence=True))
        await pipeline.run_once()
        assert got_uids(rig.receiver) == expected_uids(rig.truth())
        assert rig.metrics.source_polls_failed.labels("acme", "presence")._value.get() == 1
        assert rig.sim.simulator.requests.get("presence", 0) >= 2  # retried before giving up
        await close(pipeline)
