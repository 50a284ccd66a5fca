"""The bridge's wall clock jumping back and forward by hours, and clients whose clocks are
hours off. The system clock cannot be changed in a test, so the bridge gets a fake clock
through `DomainPipeline(clock=...)` and the independent Daily keeps its own fake clock, moved
by hand: Daily's clock is the truth (`time` of records, meeting ends), the bridge's is not."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

from daily_otel_bridge.core.mapping import parse_time_ns
from tests.expectations import expected_uids
from tests.faults import hostile_data
from tests.faults._rig import close, rig
from tests.faults._support import received_uids
from tests.faults.hostile_daily import HostileDaily

HOUR = 3600.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def live_session(
    daily: HostileDaily,
    rng: random.Random,
    *,
    start: float,
    end: float,
    late: float,
) -> list[dict[str, Any]]:
    """A meeting of Daily-time [start, end] with a record every 0.5 s, some visible `late` s
    after their time (a client uploading in batches), the last ones too."""
    sid = str(uuid.UUID(int=rng.getrandbits(128)))
    user = str(uuid.UUID(int=rng.getrandbits(128)))
    daily.add_session("acme", sid, "live", int(start), int(end), [user])
    bodies = []
    t_ms = int(start * 1000) + 500
    while t_ms <= int(end * 1000):
        body = hostile_data.good(
            rng,
            "acme",
            sid,
            user,
            t_ms,
            clock_skew_ms=rng.choice([0, -9 * 3_600_000, 7 * 3_600_000]),
        )
        delay = late if rng.random() < 0.3 or t_ms > end * 1000 - 3000 else 0.0
        daily.add_record("acme", sid, t_ms, body, visible_from=t_ms / 1000 + delay)
        bodies.append(body)
        t_ms += 500
    return bodies


async def test_wall_clock_jumping_back_and_forward_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    daily_clock = FakeClock(time.time())
    offset = {"s": 0.0}

    def bridge_clock() -> float:
        return daily_clock.now + offset["s"]

    with rig(tmp_path, clock=daily_clock, sessions=2, records=100) as r:
        rng = random.Random(8)
        t0 = daily_clock.now
        # Ends just before the bridge's clock jumps two hours ahead; its last records come in
        # late, while the bridge believes the session's grace period long over.
        r.bodies += live_session(r.daily, rng, start=t0 - 30, end=t0 + 55, late=20.0)
        # Ends while the bridge's clock is two hours ahead; its last records come in late.
        r.bodies += live_session(r.daily, rng, start=t0 - 30, end=t0 + 62, late=20.0)
        # Starts and ends after the clock came back.
        r.bodies += live_session(r.daily, rng, start=t0 + 101, end=t0 + 104, late=0.0)
        pipeline = r.pipeline(r.settings(session_grace="2m"), clock=bridge_clock)
        phases = [
            (0.0, 6),
            (-HOUR, 6),
            (2 * HOUR, 6),
            (0.0, 40),
        ]  # 5 s of Daily time each  # (bridge - Daily, sweeps)
        for skew, sweeps in phases:
            offset["s"] = skew
            for _ in range(sweeps):
                daily_clock.now += 5
                await pipeline.run_once()
        got, want = r.got(), r.want()
        assert not (want - got), f"{sum((want - got).values())} records lost"
        assert got == want, "records delivered twice"
        await close(pipeline)


async def test_client_time_hours_off_is_kept_as_given_and_changes_nothing(tmp_path: Path) -> None:
    with rig(tmp_path, sessions=1, records=0) as r:
        rng = random.Random(9)
        now = r.daily.clock()
        r.bodies += live_session(r.daily, rng, start=now - 600, end=now - 540, late=0.0)
        pipeline = r.pipeline(r.settings())
        await pipeline.run_once()
        assert received_uids(r.receiver.log_records()) == expected_uids(r.bodies)
        by_message = {b["message"]: b for b in r.bodies}
        skewed = 0
        for log in r.receiver.log_records():
            source = by_message[log.body]
            assert log.time_unix_nano == parse_time_ns(source["time"])
            assert log.attributes["daily.client_time"] == source["clientTime"]
            skewed += abs(parse_time_ns(source["clientTime"]) - log.time_unix_nano) > 3600e9
        assert skewed > 10
        await close(pipeline)
