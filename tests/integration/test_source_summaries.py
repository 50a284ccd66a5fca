"""Meeting summaries through the real pipeline, the simulator and a real OTLP receiver: one
`daily.meeting.summary` per ended meeting and one `daily.participant.session` per participant,
each once, the position committed only with the backend's acknowledgement; discovery's
requests carry the participants and cost nothing more; a meeting discovery never listed
ended costs one `/meetings` request of its own."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.summaries import (
    PARTICIPANT_EVENT,
    SUMMARY_EVENT,
    participant_uid,
    summary_uid,
)
from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.sources import summaries
from daily_otel_bridge.sources.base import MeetingSeen
from daily_otel_bridge.testing.otlp_receiver import Fault, OtlpReceiver
from daily_otel_bridge.testing.simulator import SimulatorConfig, start_simulator
from tests.integration.test_pass import KEY, close, rig_for, sim_config


def summary_uids(receiver: OtlpReceiver) -> Counter[str]:
    return Counter(
        str(r.attributes["log.record.uid"])
        for r in receiver.log_records()
        if r.event_name in (SUMMARY_EVENT, PARTICIPANT_EVENT)
    )


def expected(meetings: list[dict[str, Any]]) -> Counter[str]:
    want: Counter[str] = Counter()
    for m in meetings:
        if m["ongoing"]:
            continue
        want[summary_uid(m["id"])] += 1
        for p in m.get("participants") or []:
            want[participant_uid(m["id"], p["participant_id"])] += 1
    return want


async def listed_meetings(url: str) -> list[dict[str, Any]]:
    async with DailyClient(domain="acme", api_url=url, api_key=KEY, requests_per_second=50) as c:
        body = await c.get_json("meetings", {"limit": "100"})
    data: list[dict[str, Any]] = body["data"]
    return data


@pytest.mark.parametrize("room_label", [False, True])
async def test_each_ended_meeting_is_summarised_once_and_only_after_the_ack(
    tmp_path: Path, room_label: bool
) -> None:
    config = sim_config(meetings_per_domain=4, records_per_meeting=30, participants_per_meeting=3)
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings(meeting_summaries=True, room_label=room_label)
        meetings = await listed_meetings(rig.sim.url)
        want = expected(meetings)
        assert len(want) == 4 * (1 + 3)

        # The backend refuses the first export: nothing is remembered as summarised.
        rig.receiver.set_fault(Fault(grpc_status="INVALID_ARGUMENT", count=1))
        pipeline = rig.pipeline(settings)
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await pipeline.run_once()
        assert "summaries" not in await pipeline.store.load_positions("acme")
        await pipeline.reset()

        await pipeline.run_once()
        assert summary_uids(rig.receiver) == want
        done = json.loads((await pipeline.store.load_positions("acme"))["summaries"])["done"]
        assert sorted(done) == sorted(m["id"] for m in meetings)
        # The records say what Daily said.
        by_uid = {str(r.attributes["log.record.uid"]): r for r in rig.receiver.log_records()}
        first = meetings[0]
        record = by_uid[summary_uid(first["id"])]
        assert record.attributes["daily.mtg_session_id"] == first["id"]
        assert record.attributes["daily.room"] == first["room"]
        assert record.attributes["daily.meeting.duration"] == first["duration"]
        assert record.attributes["daily.meeting.participant_count"] == 3
        assert record.time_unix_nano == (first["start_time"] + first["duration"]) * 10**9

        # A second pass, and a new process on the same store: nothing twice.
        await pipeline.run_once()
        await close(pipeline)
        again = rig.pipeline(settings)
        await again.run_once()
        assert summary_uids(rig.receiver) == want
        await close(again)

        # The histograms were observed once per meeting, when committed.
        m = rig.metrics
        label = meetings[0]["room"] if room_label else ""
        rooms = [mt["room"] for mt in meetings]
        count = m.registry.get_sample_value(
            "daily_otel_bridge_meeting_duration_seconds_count", {"domain": "acme", "room": label}
        )
        assert count == (rooms.count(label) if room_label else 4)
        started = sum(
            m.registry.get_sample_value(
                "daily_otel_bridge_meetings_started_total", {"domain": "acme", "room": r}
            )
            or 0
            for r in {*rooms, ""}
        )
        assert started == 4


async def test_the_summaries_cost_no_request_beyond_discovery(tmp_path: Path) -> None:
    config = sim_config(meetings_per_domain=3, records_per_meeting=20)
    async with rig_for(config, tmp_path) as rig:
        on = rig.pipeline(rig.settings(meeting_summaries=True))
        await on.run_once()
        await close(on)
        # One discovery, two one-page listings (recent and ongoing): every meeting was listed
        # ended, with its participants, so the summaries asked nothing of their own.
        assert rig.sim.simulator.requests.get("meetings") == 2
        assert len(summary_uids(rig.receiver)) == 3 * (1 + config.participants_per_meeting)


class Recorder:
    """A `PollContext` around a real Daily client, recording what goes into the batch."""

    def __init__(self, url: str, seen: list[MeetingSeen]) -> None:
        self.domain = "acme"
        self.settings = DomainSettings.model_validate(
            {"name": "acme", "api_key": KEY, "api_url": url}
        )
        self.metrics = BridgeMetrics()
        self.daily = DailyClient(domain="acme", api_url=url, api_key=KEY, requests_per_second=50)
        self.seen = seen
        self.records: list[tuple[str, str]] = []
        self.positions_noted: dict[str, str] = {}
        self.callbacks: list[Any] = []
        self.dead: list[str] = []

    @property
    def batcher(self) -> Recorder:
        return self

    @property
    def meetings(self) -> Recorder:
        return self

    def meetings_seen(self) -> list[MeetingSeen]:
        return self.seen

    def add_domain_log(self, data: bytes, uid: str, time_ns: int, stream: str) -> None:
        self.records.append((stream, uid))

    def note_position(self, stream: str, position: str) -> None:
        self.positions_noted[stream] = position

    def after_commit(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def dead_letter(self, stream: str, key: str, uid: str, reason: str, record: Any) -> None:
        self.dead.append(reason)

    async def room(self) -> None:
        return None

    async def positions(self) -> dict[str, str]:
        return {}


async def test_a_meeting_never_listed_ended_costs_one_request_of_its_own() -> None:
    config = SimulatorConfig(seed=5, domains={"acme": KEY}, meetings_per_domain=2)
    sim = await start_simulator(config)
    try:
        meetings = await listed_meetings(sim.url)
        seen = [
            MeetingSeen(
                id=m["id"],
                room=m["room"],
                start_time=m["start_time"] + 7,  # Daily's times are ~15 s accurate
                ended=True,
                entry=None,  # left the ongoing list, or a restart
                new=False,
            )
            for m in meetings
        ]
        seen.append(
            MeetingSeen(id="ongoing", room="x", start_time=None, ended=False, entry=None, new=True)
        )
        # Ended by discovery's account, not listed ended by Daily (yet): asked once, then
        # again only after a wait.
        start = meetings[0]["start_time"]
        seen.append(
            MeetingSeen(id="late", room="x", start_time=start, ended=True, entry=None, new=False)
        )
        context = Recorder(sim.url, seen)
        before = sim.simulator.requests.get("meetings", 0)
        poller = await summaries.open_summaries(context)  # type: ignore[arg-type]
        taken = await poller.poll()
        assert sim.simulator.requests.get("meetings", 0) - before == 3
        assert taken == len(context.records) == 2 * (1 + config.participants_per_meeting)
        assert {uid for _, uid in context.records} >= {summary_uid(m["id"]) for m in meetings}
        done = json.loads(context.positions_noted["summaries"])["done"]
        assert sorted(done) == sorted(m["id"] for m in meetings)
        # The next poll has nothing to do and asks nothing (the missing one waits).
        assert await poller.poll() == 0
        assert sim.simulator.requests.get("meetings", 0) - before == 3
        await context.daily.close()
    finally:
        await sim.close()


@pytest.mark.parametrize(
    "text",
    ["", '{"done":[]}', '{"done":["a","b"]}'],
)
def test_the_position_round_trips(text: str) -> None:
    done = summaries.decode_position(text)
    assert summaries.decode_position(summaries.encode_position(done)) == done


@pytest.mark.parametrize("text", ["[", "[]", '{"done": 3}', '{"done": [1]}'])
def test_a_position_that_is_not_ours_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="summaries position"):
        summaries.decode_position(text)


def test_the_fetch_asks_for_a_window_around_the_start() -> None:
    now = int(time.time())
    seen = MeetingSeen(id="m", room="r", start_time=now, ended=True, entry=None, new=False)
    params = summaries.fetch_params(seen)
    assert params is not None
    assert params["room"] == "r"
    assert params["ongoing"] == "false"
    assert int(params["timeframe_start"]) < now < int(params["timeframe_end"])
    unknown = MeetingSeen(id="m", room="r", start_time=None, ended=True, entry=None, new=False)
    assert summaries.fetch_params(unknown) is None
