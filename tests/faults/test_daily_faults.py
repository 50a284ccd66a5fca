"""Daily failing or sending hostile data, one fault at a time, through the real pipeline:
every fault is retried or isolated, nothing already good is lost, and a bad record is
dead-lettered, counted and logged once with its session and reason, never blocking the
cursor."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from pathlib import Path

import pytest
import structlog

from daily_otel_bridge.daily.client import AuthError
from tests.expectations import expected_uids
from tests.faults import hostile_data
from tests.faults._rig import KEY, close, rig
from tests.faults._support import received_uids

ANSWERS = [
    "429-seconds",
    "429-date",
    "429-none",
    "500",
    "502",
    "503",
    "hang",  # longer than the client's 2 s timeout
    "reset",  # connection dropped half-way through the body
    "truncated",  # 200, application/json, cut short
    "html",  # 200, text/html
]


CASES = [pytest.param(a, "logs", id=f"logs-{a}") for a in ANSWERS] + [
    pytest.param(a, "meetings", id=f"meetings-{a}") for a in ("429-date", "503", "reset", "html")
]


@pytest.mark.parametrize(("answer", "endpoint"), CASES)
async def test_each_failed_answer_is_retried_and_loses_nothing(
    tmp_path: Path, answer: str, endpoint: str
) -> None:
    times = 1 if answer == "hang" else 2
    with rig(tmp_path) as r:
        r.daily.force(answer, count=times, endpoint=endpoint)
        pipeline = r.pipeline(r.settings())
        stats = await pipeline.run_once()
        assert r.got() == r.want()
        assert stats.exported == len(r.bodies)
        failed = [entry for entry in r.daily.log if entry[2] == answer]
        assert len(failed) == times, "the fault was not met"
        if answer.startswith("429") and answer != "429-none":
            # Retry-After honoured: the next request waited for it (seconds: 1; the date
            # form, with its one-second resolution, at least that).
            after = [t for t, _, _ in r.daily.log if t > failed[0][0]]
            assert after[0] - failed[0][0] >= 0.9
        await close(pipeline)


async def test_a_fault_outlasting_the_retries_fails_that_session_only_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with rig(tmp_path) as r:
        r.daily.force("500", count=5, endpoint="logs")  # all 5 attempts of one session's read
        # One read at a time, so that the five faults meet one session's five attempts
        # (concurrent reads would share them out and each would recover).
        pipeline = r.pipeline(r.settings(max_concurrent_reads=1))
        stats = await pipeline.run_once()
        assert len(stats.session_failures) == 1
        assert 0 < r.receiver.count() < len(r.bodies), "the other session went on"
        await pipeline.run_once()
        assert r.got() == r.want()
        await close(pipeline)


async def test_a_session_answering_404_does_not_stop_the_others(tmp_path: Path) -> None:
    with rig(tmp_path, sessions=3) as r:
        sessions = list(r.daily.domains["acme"].sessions)
        gone = sessions[1]
        r.daily.make_gone("acme", gone)
        pipeline = r.pipeline(r.settings())
        stats = await pipeline.run_once()
        assert any(gone in e for e in stats.session_errors)
        others = [b for b in r.bodies if b["mtgSessionId"] != gone]
        assert r.got() == expected_uids(others)
        # Its end is taken as now: it retires after its grace period, not polled forever.
        assert pipeline.table.sessions[gone].cursors["logs"].ended_at_ms is not None
        await close(pipeline)


async def test_a_key_revoked_mid_run_fails_with_an_auth_error_and_loses_nothing(
    tmp_path: Path,
) -> None:
    with rig(tmp_path, sessions=1, records=100) as r:
        # An ongoing meeting, so that records keep coming after the first sweep.
        rng = random.Random(3)
        now_ms = int(r.daily.clock() * 1000)
        sid, user = str(uuid.UUID(int=rng.getrandbits(128))), "user-1"
        r.daily.add_session("acme", sid, "live", now_ms // 1000 - 120, None, [user])

        def more(n: int, start_ms: int) -> None:
            for i in range(n):
                body = hostile_data.good(rng, "acme", sid, user, start_ms + i)
                r.daily.add_record("acme", sid, start_ms + i, body)
                r.bodies.append(body)

        more(200, now_ms - 100_000)
        pipeline = r.pipeline(r.settings(page_size=100))
        await pipeline.run_once()
        first = r.receiver.count()
        assert first == len(r.bodies)
        more(300, now_ms - 50_000)  # more records arrive, then the key is revoked
        r.daily.revoke("acme")
        with pytest.raises(AuthError) as info:
            await pipeline.run_once()
        assert KEY not in str(info.value)
        assert r.receiver.count() == first
        r.daily.restore("acme")
        await pipeline.run_once()
        assert not (r.want() - r.got())
        await close(pipeline)


async def test_hostile_records_are_dead_lettered_once_and_never_block_the_cursor(
    tmp_path: Path,
) -> None:
    with rig(tmp_path, sessions=1, records=50) as r:
        rng = random.Random(4)
        sid = next(iter(r.daily.domains["acme"].sessions))
        user = str(uuid.UUID(int=rng.getrandbits(128)))
        base_ms = int(r.daily.clock() * 1000) - 25 * 60_000
        planted = hostile_data.malformed(rng, "acme", sid, user, base_ms)
        for body, _ in planted:
            r.daily.add_record("acme", sid, base_ms, body, good=False)
        weird = hostile_data.weird_but_valid(rng, "acme", sid, user, base_ms + 1)
        big = hostile_data.good(
            rng, "acme", sid, user, base_ms + 2, message="\u00e9" * hostile_data.MIB
        )
        for body in [*weird, big]:
            r.daily.add_record("acme", sid, base_ms + 1, body)
            r.bodies.append(body)
        # Good records after the bad ones: the cursor must get past them.
        for i in range(30):
            body = hostile_data.good(rng, "acme", sid, user, base_ms + 10 + i)
            r.daily.add_record("acme", sid, base_ms + 10 + i, body)
            r.bodies.append(body)

        pipeline = r.pipeline(r.settings(page_size=7))
        with structlog.testing.capture_logs() as logs:
            first = await pipeline.run_once()
            second = await pipeline.run_once()
        assert received_uids(r.receiver.log_records()) == expected_uids(r.bodies)
        assert first.malformed == len(planted), "\n".join(
            x.reason for x in r.store.dead_letters("acme")
        )
        assert second.exported == 0
        letters = r.store.dead_letters("acme")
        assert len(letters) == len(planted)
        assert all(x.session_id == sid and x.reason for x in letters)
        for _, word in planted:
            assert any(word in x.reason for x in letters), word
        dead_logs = [e for e in logs if e["event"] == "malformed record kept as a dead letter"]
        assert Counter(e["uid"] for e in dead_logs) == Counter({x.uid: 1 for x in letters})
        assert all(e["session"] == sid and e["reason"] for e in dead_logs)
        assert r.metrics.records_malformed.labels("acme", "logs")._value.get() == len(planted)
        # What the receiver got is what Daily sent, to the last code point.
        bodies = {str(log.body) for log in r.receiver.log_records()}
        assert big["message"] in bodies
        assert all(w["message"] in bodies for w in weird if w.get("message"))
        await close(pipeline)
