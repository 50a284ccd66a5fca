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

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.cursor import SessionRead
from daily_otel_bridge.core.mapping import MalformedRecord, checked_time_ns, encode_log_record
from daily_otel_bridge.sources import REGISTRY, PageContext, RecordContext, Registry, Source
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
