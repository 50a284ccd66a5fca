"""The daemon's continuous scheduling, in process against the independent hostile Daily:
a failed read backs off alone while the other sessions flow, and a 429 pauses the domain."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from pathlib import Path

import pytest
import structlog

from daily_otel_bridge.core.schedule import failure_delay
from daily_otel_bridge.pipeline.scheduler import FAILURE_BACKOFF_BASE
from tests.faults._rig import close, rig
from tests.faults.hostile_daily import iso_ns
from tests.faults.hostile_data import good


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


async def test_the_catch_up_says_its_progress_and_reads_the_newest_meetings_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a start among many meetings, the sessions never read go newest meeting first,
    and the catch-up says how many are left, at what pace, and when it should end: in the
    log (`catching up`) and in /metrics."""
    from daily_otel_bridge.pipeline import progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL", 1.0)
    with rig(tmp_path, sessions=0) as r:
        # 12 ongoing meetings that started 10 s apart, three words each.
        rng = random.Random(3)
        now_ms = int(time.time() * 1000)
        for n in range(12):
            sid, user = str(uuid.UUID(int=rng.getrandbits(128))), "u"
            start_ms = now_ms - (30 - n) * 10_000
            r.daily.add_session("acme", sid, f"room-{n}", start_ms // 1000, None, [user])
            for i in range(3):
                body = good(rng, "acme", sid, user, start_ms + 1000 + i)
                r.daily.add_record("acme", sid, start_ms + 1000 + i, body)
        # Four requests a second: the catch-up takes a few seconds.
        pipeline = r.pipeline(r.settings(requests_per_second=4, max_concurrent_reads=2))
        stop = asyncio.Event()
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(pipeline.run(stop))
            try:
                ok = await wait_for(lambda: pipeline.table.active_count() == 12, 15)
                assert ok, [
                    (
                        s.session_id[:6],
                        s.retired,
                        s.started_ms,
                        {k: c.ended_at_ms for k, c in s.cursors.items()},
                    )
                    for s in pipeline.table.sessions.values()
                ]
                unread = r.metrics.sessions_unread.labels("acme")
                assert await wait_for(lambda: 0 < unread._value.get() < 12, 20)
                assert await wait_for(lambda: any(e["event"] == "catching up" for e in logs), 10)
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 20)
        line = next(e for e in logs if e["event"] == "catching up")
        assert line["sessions_never_read"] > 0
        assert "first_reads_per_s" in line
        assert "eta_s" in line
        assert r.metrics.catchup_eta.labels("acme")._value.get() > 0
        # Newest meeting first: the sessions read are those that started last.
        by_start = sorted(
            pipeline.table.sessions.values(), key=lambda s: s.started_ms or 0, reverse=True
        )
        read = [s.read_once for s in by_start]
        assert read == sorted(read, reverse=True), "read ones are the newest"
        await close(pipeline)


async def test_a_quick_discovery_finds_a_new_meeting_in_one_request_and_infers_nothing(
    tmp_path: Path,
) -> None:
    """Between two full discoveries, quick ones list only the meetings started since the
    last listing: a new meeting is tracked a few seconds after Daily lists it, and a quick
    listing, which does not see the ongoing list, never takes a tracked meeting for ended."""
    with rig(tmp_path, sessions=0) as r:
        rng = random.Random(5)
        now_s = int(time.time())
        old = str(uuid.UUID(int=rng.getrandbits(128)))
        r.daily.add_session("acme", old, "room-old", now_s - 3600, None, ["u"])
        pipeline = r.pipeline(r.settings())
        await pipeline.table.discover(pipeline.client)
        assert set(pipeline.table.sessions) == {old}
        new = str(uuid.UUID(int=rng.getrandbits(128)))
        r.daily.add_session("acme", new, "room-new", now_s, None, ["u"])
        before = pipeline.client.requests_made
        found = await pipeline.table.discover(pipeline.client, quick=True)
        assert [t.session_id for t in found] == [new]
        assert pipeline.client.requests_made - before == 1
        assert pipeline.table.sessions[old].ongoing, "not listed by a quick discovery: not ended"
        # Committed with the time the last full discovery covered, like any new session.
        assert pipeline.table.sessions[new].started_ms == now_s * 1000
        await close(pipeline)
