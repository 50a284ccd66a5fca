"""What a read costs, on the loop that runs in production, against the bundled simulator with
its clock stepped by hand: a read costs what is new whatever the page cap, the overlap is read
again only when the list changed there, and a meeting's life decides when it is read next."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from daily_otel_bridge.core.mapping import parse_time_ns
from daily_otel_bridge.pipeline.domain import DomainPipeline
from tests.expectations import expected_uids
from tests.integration.test_pass import Rig, close, got_uids, rig_for, sim_config

POLL = 15.0
SETTLE = 5.0


def read_so_far(rig: Rig, pipeline: DomainPipeline) -> Counter[str]:
    """The uids of every record up to where the last complete read ended."""
    (tracked,) = pipeline.table.sessions.values()
    end_ms = tracked.cursors["logs"].drained_until_ms
    assert end_ms is not None
    return expected_uids(r for r in rig.truth() if parse_time_ns(r["time"]) < end_ms * 1e6)


@pytest.mark.parametrize("cap", [200, 100, 20])
async def test_a_busy_read_costs_what_is_new_whatever_the_page_cap(
    tmp_path: Path, cap: int
) -> None:
    """A meeting talking 2 records/s, read every 15 s with a 2 min lookback: after the first
    read, every read asks from the last record it saw (the anchor) instead of re-reading
    the ~240 records of the overlap: ceil(new / (cap - 1)) + 1 requests, nothing read again."""
    config = sim_config(
        meetings_per_domain=0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
        tie_ratio=0.3,
        duplicate_ratio=0.0,
        max_limit=cap,
    )
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(
            rig.settings(page_size=500, lookback="2m", settle_lag=f"{SETTLE:g}s")
        )
        rig.sim.simulator.advance(POLL)
        await pipeline.run_once()  # the first read: from the meeting's start
        for _ in range(12):  # three minutes: the overlap window is full
            rig.sim.simulator.advance(POLL)
            report = await pipeline.run_once()
            new = report.exported
            assert report.reads == 1
            assert report.reread == 0, "the overlap was not read again"
            assert new > 0
            assert report.requests <= math.ceil(new / (cap - 1)) + 1
            if cap >= 100:
                assert report.requests <= 2
        assert got_uids(rig.receiver) == read_so_far(rig, pipeline)
        if cap < 30:  # a page was capped (the first read had 30 records): cap learned
            assert pipeline.reader.page_cap == cap
            assert rig.metrics.page_size_effective.labels("acme")._value.get() == cap
        await close(pipeline)


async def test_a_late_record_makes_one_read_of_the_overlap_and_is_delivered_once(
    tmp_path: Path,
) -> None:
    """Records that become visible 20 s after their own time land inside the overlap, before
    the anchor: the answer shows the list moved, that read starts again from the window's
    beginning (the only time the overlap is read again), and every record arrives once."""
    config = sim_config(
        meetings_per_domain=0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
        tie_ratio=0.3,
        duplicate_ratio=0.05,
        late_ratio=0.02,
        late_delay=20.0,
        max_limit=100,
    )
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(
            rig.settings(page_size=500, lookback="2m", settle_lag=f"{SETTLE:g}s")
        )
        restarts = cheap = 0
        for _ in range(16):
            rig.sim.simulator.advance(POLL)
            report = await pipeline.run_once()
            if report.reread:
                restarts += 1
            else:
                cheap += 1
                assert report.requests <= 2
        rig.sim.simulator.advance(60)
        await pipeline.run_once()
        assert got_uids(rig.receiver) == read_so_far(rig, pipeline), "each record once"
        assert restarts >= 1, "late records made some reads start again"
        assert cheap >= 1, "reads whose overlap did not change stayed cheap"
        await close(pipeline)


async def test_a_young_meeting_is_read_every_poll_interval_until_silent_for_max_quiet(
    tmp_path: Path,
) -> None:
    """Every meeting starts empty: a first read that finds nothing is no sign of a quiet
    meeting. An ongoing meeting is read every poll_interval from its discovery until it has
    been silent for max_quiet_interval (counted from its start while it has said nothing);
    only then does it back off."""
    config = sim_config(
        meetings_per_domain=0, live=True, live_meetings=1, live_records_per_second=0.0005
    )
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings(
            poll_interval="15s", max_quiet_interval="60s", settle_lag=f"{SETTLE:g}s"
        )
        pipeline = rig.pipeline(settings)
        intervals: list[float] = []
        busy: list[bool] = []
        for _ in range(8):
            await pipeline.run_once()
            (tracked,) = list(pipeline.table.active())
            busy.append(tracked.busy)
            intervals.append(round(tracked.due_at - rig.sim.simulator.now(), 1))
            rig.sim.simulator.advance(POLL)
        # The meeting's one record is at its start; nothing since. Busy (15 s) while it
        # started less than max_quiet_interval (+ settle_lag) ago, then backing off.
        assert busy[:4] == [True] * 4
        assert all(abs(i - POLL) < 1 for i in intervals[:4])  # the simulator's clock runs too
        assert busy[5:] == [False] * 3
        assert all(i > POLL for i in intervals[5:])
        await close(pipeline)


async def test_an_ended_meeting_is_read_once_more_when_its_grace_is_over_and_retires(
    tmp_path: Path,
) -> None:
    """An ended meeting keeps its final reads (late uploads), backing off like a quiet one;
    the read that retires it comes as soon as session_grace (+ settle_lag) is over on both
    clocks, not up to a quiet interval later."""
    config = sim_config(
        meetings_per_domain=0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
        live_duration=20.0,
    )
    async with rig_for(config, tmp_path) as rig:
        settings = rig.settings(
            session_grace="2m", max_quiet_interval="60s", settle_lag=f"{SETTLE:g}s"
        )
        pipeline = rig.pipeline(settings)
        await pipeline.run_once()
        rig.sim.simulator.advance(30)  # the meeting ended at 20 s
        await pipeline.run_once()
        (tracked,) = pipeline.table.active()
        assert not tracked.ongoing
        ended_at = tracked.cursors["logs"].ended_at_ms
        assert ended_at is not None
        # Passes every 30 s until less than 20 s before the grace period ends.
        while rig.sim.simulator.now() + 30 < ended_at / 1000 + 120 + SETTLE - 20:
            rig.sim.simulator.advance(30)
            await pipeline.run_once()
        while rig.sim.simulator.now() < ended_at / 1000 + 120 + SETTLE - 20:
            rig.sim.simulator.advance(5)
            await pipeline.run_once()
        (tracked,) = pipeline.table.active()
        now = rig.sim.simulator.now()
        retire_in = ended_at / 1000 + 120 + SETTLE - now
        assert 0 < retire_in <= 20
        # Quiet, its next read would be up to 60 s away; it comes when it can retire: the
        # grace period over on Daily's clock (its end) and on the monotonic one (counted
        # from the discovery that saw it ended).
        seen = tracked.cursors["logs"].end_seen_mono
        assert seen is not None
        can_retire = max(ended_at / 1000 + 120 + SETTLE, seen + 120)
        assert tracked.due_at - now < 60
        assert tracked.due_at == pytest.approx(can_retire + 1.0, abs=1.0)
        rig.sim.simulator.advance(tracked.due_at - now + 0.5)
        await pipeline.run_once()
        assert not list(pipeline.table.active()), "retired"
        await close(pipeline)


async def test_the_daemons_busy_read_costs_one_request_and_the_next_read_confirms_it(
    tmp_path: Path,
) -> None:
    """In the daemon's loop a short page that reached the last poll interval ends the read
    of an ongoing meeting: the request that would confirm the end is the next read's first
    (it asks from this one's last record). Nothing is lost or doubled; nothing retires on
    such a read; `run --once` still confirms every end."""
    config = sim_config(
        meetings_per_domain=0,
        live=True,
        live_meetings=1,
        live_records_per_second=2.0,
        tie_ratio=0.3,
        duplicate_ratio=0.0,  # a page ending on twins makes the next read a full one
        max_limit=200,
    )
    async with rig_for(config, tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(page_size=500, lookback="2m", settle_lag="5s"))
        rig.sim.simulator.advance(POLL)
        await pipeline.run_once()
        (tracked,) = pipeline.table.active()
        pipeline.loop.stop_requested = False  # as while the daemon's loop runs
        for _ in range(8):
            rig.sim.simulator.advance(POLL)
            result = await pipeline.loop.read_session(tracked)
            assert result is not None
            assert result.requests == 1
            assert result.soft
            assert not result.complete
            assert result.reread == 0
            await pipeline.batcher.flush()
            drained = tracked.cursors["logs"].drained_until_ms
            assert drained is not None
            assert drained < int(rig.sim.simulator.now() * 1000)
        rig.sim.simulator.advance(POLL)
        report = await pipeline.run_once()
        assert report.requests == 2, "run --once confirms the end"
        assert got_uids(rig.receiver) == read_so_far(rig, pipeline)
        await close(pipeline)
