"""The webhook inbox as a domain source, in process: events stored in the real SQLite store
are exported through the real pipeline to our OTLP receiver, once each, and leave the inbox
only in the commit that follows the acknowledgement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.sources import REGISTRY, webhooks
from daily_otel_bridge.state.sqlite import SqliteCursorStore
from daily_otel_bridge.testing.otlp_receiver import Fault
from tests.integration.test_pass import close, rig_for, sim_config
from tests.webhook_inbox import SECRET, event_body

WINDOW = 3600.0


def webhook_records(receiver: Any) -> dict[str, Any]:
    """uid -> record, of the records that are webhook events (they name their time's source)."""
    out: dict[str, Any] = {}
    for record in receiver.log_records():
        if "daily.webhook.time_source" in record.attributes:
            uid = str(record.attributes["log.record.uid"])
            assert uid not in out, f"{uid} exported twice"
            out[uid] = record
    return out


def test_the_registry_has_the_webhook_inbox_as_a_domain_source(tmp_path: Path) -> None:
    assert [s.name for s in REGISTRY] == ["logs", "metrics"]  # session sources unchanged
    assert webhooks.SOURCE.interval is not None


async def test_stored_events_are_exported_once_each_and_leave_the_inbox(tmp_path: Path) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=10)
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings(webhook_secret=SECRET)
        pipeline = rig.pipeline(settings)
        assert [s.name for s in pipeline.domain_sources] == ["webhooks"]
        now = rig.sim.simulator.now()
        bodies = {
            "ev-start": event_body(
                "ev-start", "meeting.started", meeting_id="hinted-1", room="r", start_ts=now - 5
            ),
            "ev-err": event_body(
                "ev-err", "recording.error", action="clourd-recording-err", error_msg="disk full"
            ),
            "ev-new": event_body("ev-new", "some.future-event", anything=1),
        }
        for event_id, body in bodies.items():
            assert rig.store.inbox_add("acme", event_id, body, now, WINDOW)
        report = await pipeline.run_once()
        got = webhook_records(rig.receiver)
        assert set(got) == set(bodies)
        assert got["ev-err"].severity_text == "ERROR"
        assert got["ev-new"].event_name == "daily.some.future-event"
        assert got["ev-start"].attributes["daily.mtg_session_id"] == "hinted-1"
        assert report.exported >= 3
        assert rig.store.inbox_pending("acme", 100) == []
        assert rig.metrics.records_exported.labels("acme", "webhooks")._value.get() == 3
        # The hint tracked the meeting the event announced, committed in the store.
        assert "hinted-1" in await pipeline.store.load_cursors("acme", "logs")
        # A repeat of an exported id within the window is refused by the store: nothing again.
        assert not rig.store.inbox_add("acme", "ev-err", bodies["ev-err"], now + 1, WINDOW)
        await pipeline.run_once()
        assert set(webhook_records(rig.receiver)) == set(bodies)
        await close(pipeline)


async def test_a_failed_export_keeps_the_events_and_the_next_attempt_sends_them(
    tmp_path: Path,
) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=5)
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(webhook_secret=SECRET))
        now = rig.sim.simulator.now()
        await pipeline.run_once()  # the session's own records first
        rig.store.inbox_add("acme", "ev-1", event_body("ev-1", "participant.joined"), now, WINDOW)
        rig.receiver.set_fault(Fault(grpc_status="INVALID_ARGUMENT", count=1))
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await pipeline.run_once()
        assert [e.event_id for e in rig.store.inbox_pending("acme", 10)] == ["ev-1"]
        await pipeline.run_once()
        assert set(webhook_records(rig.receiver)) == {"ev-1"}
        assert rig.store.inbox_pending("acme", 10) == []
        await close(pipeline)


async def test_a_malformed_stored_event_is_a_dead_letter_and_leaves_the_inbox(
    tmp_path: Path,
) -> None:
    config = sim_config(meetings_per_domain=1, records_per_meeting=5)
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(webhook_secret=SECRET))
        now = rig.sim.simulator.now()
        rig.store.inbox_add("acme", "bad", b"{not json", now, WINDOW)
        rig.store.inbox_add("acme", "good", event_body("good", "meeting.ended"), now + 1, WINDOW)
        await pipeline.run_once()
        assert set(webhook_records(rig.receiver)) == {"good"}
        assert rig.store.inbox_pending("acme", 10) == []
        letters = rig.store.dead_letters("acme")
        assert [(d.stream, d.uid) for d in letters] == [("webhooks", "bad")]
        assert "not JSON" in letters[0].reason
        await close(pipeline)


# -- the poller alone, against the real store: ids in flight are not added twice ---------------


@dataclass
class RecordingBatch:
    added: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    def add_domain_log(self, data: bytes, uid: str, time_ns: int, stream: str) -> None:
        self.added.append(uid)

    def note_position(self, stream: str, position: str) -> None:
        raise AssertionError("the inbox has no position")

    def note_inbox_done(self, event_ids: Sequence[str]) -> None:
        self.done.extend(event_ids)


@dataclass
class Hints:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def meeting_started(self, session_id: str, room: str, start_ms: int | None) -> None:
        self.calls.append(("started", session_id))

    async def meeting_ended(self, session_id: str, end_ms: int | None) -> None:
        self.calls.append(("ended", session_id))

    async def meeting_busy(self, session_id: str | None, room: str | None) -> None:
        raise RuntimeError("a hint that fails is logged, never fatal")


class Context:
    """A `PollContext` over the real store, with a batch that only records."""

    def __init__(self, store: SqliteCursorStore) -> None:
        self.store = store
        self.domain = "acme"
        self.metrics = BridgeMetrics()
        self.batcher = RecordingBatch()
        self.hints = Hints()
        self.letters: list[str] = []
        self.settings: Any = None
        self.daily: Any = None

    async def room(self) -> None:
        return None

    async def positions(self) -> dict[str, str]:
        return {}

    async def inbox_pending(self, limit: int) -> list[Any]:
        return self.store.inbox_pending(self.domain, limit)

    def dead_letter(self, stream: str, key: str, uid: str, reason: str, record: Any) -> None:
        self.letters.append(uid)


async def test_events_in_flight_are_not_added_twice_and_are_forgotten_once_committed(
    tmp_path: Path,
) -> None:
    store = SqliteCursorStore(tmp_path / "state.db")
    try:
        context = Context(store)
        poller = webhooks.InboxPoller(context, clock=lambda: 1_000.0)  # type: ignore[arg-type]
        for i in range(3):
            body = event_body(f"e{i}", "participant.joined")
            store.inbox_add("acme", f"e{i}", body, 990.0 + i, 60)
        assert await poller.poll() == 3
        assert await poller.poll() == 0  # not committed yet: still pending, not added again
        assert context.batcher.added == ["e0", "e1", "e2"]
        assert context.metrics.webhook_inbox_oldest_age.labels("acme")._value.get() == 10.0
        store.commit_streams("acme", {}, inbox_done=["e0", "e1"])
        store.inbox_add("acme", "e3", event_body("e3", "meeting.ended"), 995.0, 60)
        assert await poller.poll() == 1
        assert context.batcher.added == ["e0", "e1", "e2", "e3"]
        assert poller.in_flight == {"e2", "e3"}
        assert context.hints.calls == [("ended", "mtg-1")]
        store.commit_streams("acme", {}, inbox_done=["e2", "e3"])
        assert await poller.poll() == 0
        assert poller.in_flight == set()
        assert context.metrics.webhook_inbox_oldest_age.labels("acme")._value.get() == 0.0
    finally:
        store.close()


async def test_hints_go_to_the_poller_and_a_failing_one_is_not_fatal(tmp_path: Path) -> None:
    store = SqliteCursorStore(tmp_path / "state.db")
    try:
        context = Context(store)
        poller = webhooks.InboxPoller(context)  # type: ignore[arg-type]
        started = event_body(
            "s", "meeting.started", meeting_id="m-1", room="r", start_ts=1_760_000_000
        )
        ended = event_body("e", "meeting.ended", meeting_id="m-1", end_ts=1_760_000_100)
        joined = event_body("j", "participant.joined", meeting_id="m-1", joined_at=1_760_000_001)
        for n, body in enumerate((started, joined, ended)):
            store.inbox_add("acme", json.loads(body)["id"], body, 100.0 + n, 60)
        assert await poller.poll() == 3
        assert context.hints.calls == [("started", "m-1"), ("ended", "m-1")]
    finally:
        store.close()
