"""The daemon's continuous scheduling, in process against the independent hostile Daily:
a failed read backs off alone while the other sessions flow, and a 429 pauses the domain."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from daily_otel_bridge.core.schedule import failure_delay
from daily_otel_bridge.pipeline.domain import FAILURE_BACKOFF_BASE
from tests.faults._rig import close, rig
from tests.faults.hostile_daily import iso_ns


async def wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_failed_read_is_tried_again_after_its_own_backoff_while_the_others_flow(
    tmp_path: Path,
) -> None:
    with rig(tmp_path, sessions=4, records=120) as r:
        sick = sorted(r.daily.domains["acme"].sessions)[1]
        # Every attempt of the sick session's first read fails (the client tries 5 times).
        r.daily.force("500", count=5, endpoint="logs", session=sick)
        # A poll interval far longer than the test: only the failure backoff can bring the
        # sick session back in time.
        pipeline = r.pipeline(r.settings(poll_interval="5m", max_quiet_interval="5m"))
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        try:
            others = [b for b in r.bodies if b["mtgSessionId"] != sick]
            assert await wait_for(lambda: r.receiver.count() >= len(others), 30)
            assert await wait_for(lambda: r.got() == r.want(), 30), "the sick session recovered"
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 20)
        log = [(t, answer) for t, s, answer in r.daily.session_log if s == sick]
        failed = [t for t, answer in log if answer != "ok"]
        assert len(failed) == 5
        retried = [t for t, answer in log if answer == "ok" and t > failed[-1]]
        step = failure_delay(1, base=FAILURE_BACKOFF_BASE, cap=300)
        # Read again one backoff step after its failure (plus scheduling slack), not a poll
        # interval later, and the other sessions were read meanwhile.
        assert retried
        assert retried[0] - failed[-1] <= step + 3
        between = [
            t for t, s, _ in r.daily.session_log if s != sick and failed[0] <= t <= failed[-1]
        ]
        assert between, "the other sessions flowed while the sick one failed"
        assert pipeline.table.sessions[sick].failures == 0, "a success resets the backoff"
        await close(pipeline)


async def test_a_429_pauses_every_request_of_the_domain(tmp_path: Path) -> None:
    with rig(tmp_path, sessions=6, records=300) as r:
        r.daily.force("429-seconds", count=1, endpoint="logs")  # Retry-After: 1
        pipeline = r.pipeline(r.settings(max_concurrent_reads=6, page_size=20))
        await pipeline.run_once()
        assert r.got() == r.want()
        (limited,) = [t for t, _, answer in r.daily.log if answer.startswith("429")]
        # Requests already on the wire may land just after it; none leaves during the pause.
        after = sorted(t for t, _, _ in r.daily.log if t > limited + 0.2)
        assert after
        assert after[0] >= limited + 0.9
        await close(pipeline)


async def test_a_quiet_session_ending_on_twins_costs_one_request_a_poll(tmp_path: Path) -> None:
    """A page ending on byte-identical twins makes a read uncertain (a record inserted
    ahead of the pair while paging could go unseen), so the one-request quiet check may
    not follow it. A second complete read that finds the list as long as the first left it
    and nothing new in it lets it: the session costs one request a poll from then on."""
    with rig(tmp_path, sessions=1, records=20) as r:
        (sid,) = r.daily.domains["acme"].sessions
        last = r.daily.domains["acme"].sessions[sid].records[-1]
        r.daily.add_record("acme", sid, last.sort_ms, dict(last.body))  # a twin at the end
        r.bodies.append(dict(last.body))
        pipeline = r.pipeline(r.settings())
        costs = []
        for _ in range(6):
            before = len(r.daily.session_log)
            await pipeline.run_once()
            costs.append(len(r.daily.session_log) - before)
        assert r.got() == r.want()
        # The first read, a full one from the watermark, a full one that agrees with it;
        # then one request each.
        assert costs[3:] == [1, 1, 1], costs
        # News still comes through: the question comes back non-empty, a full read follows.
        t = last.sort_ms + 5
        body = dict(last.body, message="news", time=iso_ns(t))
        r.daily.add_record("acme", sid, t, body)
        r.bodies.append(body)
        await pipeline.run_once()
        assert r.got() == r.want()
        await close(pipeline)
