"""The source seam: a source declared in one module plugs into the real loop without a
change to the pipeline, the batcher or the transports.

The toy source here keeps only the ERROR lines of `GET /logs` under a stream of its own
("errors"): its cursor rows, its `records_fetched` series and its records at the receiver
show that the reader, the record path, the batcher and the store took it as they take the
built-in sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import MalformedRecord, checked_time_ns, encode_log_record
from daily_otel_bridge.sources import (
    REGISTRY,
    DomainSource,
    PageContext,
    PollContext,
    Poller,
    RecordContext,
    Registry,
    Source,
)
from daily_otel_bridge.testing.otlp_receiver import Fault
from tests.expectations import expected_uids
from tests.integration.test_pass import close, got_uids, rig_for, sim_config


def deliver_errors(
    context: RecordContext, read: SessionRead, page: PageContext, record: Any, uid: str
) -> bool:
    try:
        time_ns = checked_time_ns(record)
    except MalformedRecord as exc:
        context.dead_letter("errors", read, uid, str(exc), record)
        return False
    if record.get("level") != 0:
        read.note_time(time_ns)  # read, not delivered: its place in the list is known
        return False
    data = encode_log_record(
        record,
        time_ns=time_ns,
        observed_ns=page.observed_ns,
        uid=uid,
        room=read.cursor.room or None,
        severity=context.severity,
    )
    context.batcher.add_encoded_log(data, read.cursor, uid, time_ns, "errors")
    read.mark(uid, time_ns)
    return True


def always(settings: DomainSettings) -> bool:
    return True


TOY = Source(name="errors", answer="logs", enabled=always, deliver=deliver_errors)


def test_the_registry_lists_the_built_in_sources_and_refuses_a_name_twice() -> None:
    assert [s.name for s in REGISTRY] == ["logs", "metrics"]
    registry = Registry([TOY])
    with pytest.raises(ValueError, match="errors"):
        registry.register(TOY)


async def test_a_toy_source_plugs_in_through_the_registry_alone(tmp_path: Path) -> None:
    config = sim_config(meetings_per_domain=3, records_per_meeting=200)
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings()
        pipeline = rig.pipeline(settings, registry=Registry([TOY]))
        assert pipeline.streams == ("errors",)
        report = await pipeline.run_once()
        truth = rig.truth()
        errors = [r for r in truth if r.get("level") == 0]
        assert errors, "the simulator produced ERROR lines"
        assert got_uids(rig.receiver) == expected_uids(errors)
        assert report.exported == len(errors)
        # Its cursors are its own, under its name, committed after the acknowledgement.
        cursors = await pipeline.store.load_cursors("acme", "errors")
        assert len(cursors) == 3
        assert await pipeline.store.load_cursors("acme", "logs") == {}
        fetched = rig.metrics.records_fetched.labels("acme", "errors")._value.get()
        assert fetched >= len(truth)
        # A second pass reads nothing again and delivers nothing twice.
        again = await pipeline.run_once()
        assert again.exported == 0
        assert got_uids(rig.receiver) == expected_uids(errors)
        await close(pipeline)


# -- a toy domain source: one record per poll, its count as the position -------------------


class Ticker:
    """Polls `GET /meetings` (through the domain's paced client) and ships one record per
    poll whose uid is the poll's number; the number is its position."""

    def __init__(self, context: PollContext, start: int) -> None:
        self.context = context
        self.next = start

    async def poll(self) -> int:
        answer = await self.context.daily.get_json("meetings", {"limit": "1"})
        assert isinstance(answer, dict)
        record = LogRecord(time_unix_nano=1_700_000_000_000_000_000 + self.next)
        record.event_name = "toy.tick"
        record.attributes.add(key="log.record.uid").value.string_value = f"tick-{self.next}"
        batcher = self.context.batcher
        batcher.add_domain_log(
            record.SerializeToString(), f"tick-{self.next}", record.time_unix_nano, "ticks"
        )
        self.next += 1
        batcher.note_position("ticks", str(self.next))
        return 1


async def open_ticker(context: PollContext) -> Poller:
    positions = await context.positions()
    return Ticker(context, int(positions.get("ticks", "0")))


TICKS = DomainSource(name="ticks", enabled=always, interval=lambda s: 60.0, open=open_ticker)


def ticks(receiver: Any) -> list[str]:
    return sorted(
        str(r.attributes["log.record.uid"])
        for r in receiver.log_records()
        if str(r.attributes["log.record.uid"]).startswith("tick-")
    )


async def test_a_toy_domain_source_plugs_in_and_its_position_moves_only_with_the_ack(
    tmp_path: Path,
) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=20)
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(), registry=Registry([TOY, TICKS]))
        assert [s.name for s in pipeline.domain_sources] == ["ticks"]
        report = await pipeline.run_once()
        assert ticks(rig.receiver) == ["tick-0"]
        assert await pipeline.store.load_positions("acme") == {"ticks": "1"}
        assert report.exported >= 1
        assert rig.metrics.records_exported.labels("acme", "ticks")._value.get() == 1
        # The backend refuses the next export: nothing moves, and the same poll's record is
        # sent again, under the same uid, once the backend is back.
        rig.receiver.set_fault(Fault(grpc_status="INVALID_ARGUMENT", count=1))
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await pipeline.run_once()
        assert await pipeline.store.load_positions("acme") == {"ticks": "1"}
        await pipeline.reset()
        await pipeline.run_once()
        assert ticks(rig.receiver) == ["tick-0", "tick-1"]
        assert await pipeline.store.load_positions("acme") == {"ticks": "2"}
        await close(pipeline)


async def test_a_failing_domain_source_stops_only_itself(tmp_path: Path) -> None:
    async def broken(context: PollContext) -> Poller:
        class Broken:
            async def poll(self) -> int:
                await context.daily.get_json("no-such-endpoint", {})
                return 0

        return Broken()

    failing = DomainSource(name="broken", enabled=always, interval=lambda s: 60.0, open=broken)
    config = sim_config(meetings_per_domain=2, records_per_meeting=50)
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(), registry=Registry([TOY, failing]))
        await pipeline.run_once()
        errors = [r for r in rig.truth() if r.get("level") == 0]
        assert got_uids(rig.receiver) == expected_uids(errors)
        assert rig.metrics.source_polls_failed.labels("acme", "broken")._value.get() == 1
        await close(pipeline)
