"""The REST API's own logs through the real pipeline, the simulator and a real OTLP receiver:
one `daily.api.request` per entry of both lists (`source=api`, `source=webhook`), uid =
Daily's id, each once across passes, processes and a refused export; bodies only when asked,
and then without any of the simulator's planted secrets; the id cursor's position as JSON."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.core.api_logs import EVENT_NAME, Key, Order, Position, Reading
from daily_otel_bridge.core.secrets import MASK
from daily_otel_bridge.sources import api_logs
from daily_otel_bridge.testing.otlp_receiver import Fault, OtlpReceiver
from daily_otel_bridge.testing.simulator import PLANTED_SECRETS
from tests.integration.test_pass import close, rig_for, sim_config


def api_uids(receiver: OtlpReceiver) -> Counter[str]:
    return Counter(
        str(r.attributes["log.record.uid"])
        for r in receiver.log_records()
        if r.event_name == EVENT_NAME
    )


def book_ids(sim: Any) -> dict[str, str]:
    """id -> source of every entry the simulator's API log holds now."""
    simulator = sim.simulator
    book = simulator.api_logs["acme"]
    now_ms = math.floor(simulator.now() * 1000)
    return {
        e.id: source
        for source in ("api", "webhook")
        for e in book.page(now_ms, source, None, None, None, 10**6)
    }


def exported_text(receiver: OtlpReceiver) -> str:
    return "\n".join(
        f"{r.body!r} {r.attributes!r}" for r in receiver.log_records() if r.event_name == EVENT_NAME
    )


async def test_every_entry_once_with_scrubbed_bodies_across_passes_and_a_refused_export(
    tmp_path: Path,
) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=20, api_log_history=150)
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings(api_logs=True, api_logs_bodies=True)
        pipeline = rig.pipeline(settings)
        ids = book_ids(rig.sim)
        assert len(ids) == 150 + config.webhook_log_history

        rig.receiver.set_fault(Fault(grpc_status="INVALID_ARGUMENT", count=1))
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await pipeline.run_once()
        assert not any(
            k.startswith("api_logs") for k in await pipeline.store.load_positions("acme")
        )
        await pipeline.reset()

        await pipeline.run_once()
        assert api_uids(rig.receiver) == Counter(ids.keys())
        positions = await pipeline.store.load_positions("acme")
        assert set(positions) >= {"api_logs.api", "api_logs.webhook"}
        assert api_logs.decode_position(positions["api_logs.api"]).newest_ns is not None

        # Bodies were asked for, and none carries a planted secret (nor does anything else).
        records = [r for r in rig.receiver.log_records() if r.event_name == EVENT_NAME]
        assert all("daily.api.request_body" in r.attributes for r in records)
        text = exported_text(rig.receiver)
        leaked = [s for s in PLANTED_SECRETS if s in text]
        assert not leaked, f"{len(leaked)} planted secrets reached the backend"
        assert MASK in text  # the bodies were there, masked

        # Entries are counted once, when committed: by route and status class, and the
        # failed webhook deliveries.
        m = rig.metrics.registry
        api_total = sum(
            s.value
            for metric in rig.metrics.domain_api_requests.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        )
        assert api_total == sum(1 for src in ids.values() if src == "api")
        assert m.get_sample_value("daily_otel_bridge_source_polls_failed_total") is None

        # New entries, one of them late (inside the overlap window): those alone, once.
        simulator = rig.sim.simulator
        book = simulator.api_logs["acme"]
        now_ms = math.floor(simulator.now() * 1000)
        fresh = book.add(now_ms, "api", "DELETE", "/v1/rooms/standup", 200, {}, {"deleted": True})
        late = book.add(now_ms - 30_000, "webhook", "POST", "https://hooks.invalid/d", 500, {}, {})
        await pipeline.run_once()
        await close(pipeline)
        again = rig.pipeline(settings)
        await again.run_once()
        assert api_uids(rig.receiver) == Counter([*ids, fresh.id, late.id])
        failed = rig.metrics.webhook_deliveries_failed.labels("acme", "5xx")._value.get()
        assert failed >= 1
        await close(again)


async def test_without_api_logs_bodies_no_body_leaves(tmp_path: Path) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=10)
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(api_logs=True))
        await pipeline.run_once()
        records = [r for r in rig.receiver.log_records() if r.event_name == EVENT_NAME]
        assert len(records) == len(book_ids(rig.sim))
        for r in records:
            assert "daily.api.request_body" not in r.attributes
            assert "daily.api.response_body" not in r.attributes
        assert {r.attributes["daily.api.source"] for r in records} == {"api", "webhook"}
        await close(pipeline)


POSITIONS = [
    Position(),
    Position(newest_ns=5, seen={"a": 5, "b": 4}, order=Order.DESC, reading=Reading.TIME),
    Position(newest_ns=9, seen={"x": 9}, order=Order.ASC, reading=Reading.LIST, anchor=Key("w", 1)),
    Position(anchor=Key("w", None)),
]


@pytest.mark.parametrize("position", POSITIONS)
def test_the_position_round_trips_as_json(position: Position) -> None:
    text = api_logs.encode_position(position)
    json.loads(text)
    assert api_logs.decode_position(text) == position


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "not an object"),
        ('{"seen": {"a": "x"}}', "seen"),
        ('{"anchor": 3}', "anchor"),
        ('{"order": "sideways"}', "order"),
        ('{"newest_ns": 1.5}', "newest_ns"),
    ],
)
def test_a_position_that_is_not_ours_is_refused_by_name(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        api_logs.decode_position(text)
