"""Churning meetings and silent meetings that spoke before the start (issue 14)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from daily_otel_bridge.testing.simulator import (
    Simulator,
)

from ._helpers import (
    BASE,
    ClientFactory,
    FakeClock,
    _ms,
    cfg,
    churn_cfg,
    get_json,
    make_client,
    page_all,
    sim_meetings,
    truth,
)


@pytest.mark.parametrize(
    ("at", "listed", "ongoing"),
    [
        # churning meeting j starts at j x 10 s and lasts 15-20 s
        (-1.0, 0, 0),
        (0.0, 1, 1),
        (9.999, 1, 1),
        (10.0, 2, 2),
        (31.0, 4, 2),  # 0 and 1 ended (<= 30 s), 2 and 3 running
        (45.0, 4, 1),  # only the one started at 30 s
        (60.0, 4, 0),
    ],
)
async def test_churning_meetings_listed_from_their_start(
    aiohttp_client: ClientFactory, at: float, listed: int, ongoing: int
) -> None:
    client, clock = await make_client(aiohttp_client, churn_cfg())
    truth_meetings = await sim_meetings(client)
    assert [m["begins"] - BASE for m in truth_meetings] == pytest.approx([0, 10, 20, 30])
    assert all(m["churn"] and 15 <= m["ends"] - m["begins"] <= 20 for m in truth_meetings)
    clock.now = BASE + at
    body = await get_json(client, "/v1/meetings")
    assert body["total_count"] == listed
    running = await get_json(client, "/v1/meetings", ongoing="true")
    assert running["total_count"] == ongoing
    for m in body["data"]:
        exact = next(t for t in truth_meetings if t["id"] == m["id"])
        assert m["start_time"] == int(exact["begins"])
        assert m["ongoing"] == (exact["begins"] <= clock.now < exact["ends"])
        if not m["ongoing"]:
            assert m["duration"] == exact["end_time"] - exact["start_time"]


async def test_churning_records_follow_the_clock(aiohttp_client: ClientFactory) -> None:
    client, clock = await make_client(aiohttp_client, churn_cfg(churn_late_ratio=0.0))
    first = (await sim_meetings(client))[0]
    clock.now = BASE + 5.0
    records = await truth(client, first["id"])
    assert len(records) == 11  # t = 0, 0.5, ..., 5.0
    clock.now = BASE + 200.0
    records = await truth(client, first["id"])
    duration = first["ends"] - first["begins"]
    assert len(records) == math.floor(duration * 2.0)
    assert all(first["begins"] <= _ms(r["time"]) / 1000 < first["ends"] for r in records)


@pytest.mark.parametrize(
    ("after_end", "late_visible"),
    [(-0.5, False), (0.0, False), (9.999, False), (10.0, True), (100.0, True)],
)
async def test_late_batch_visible_only_after_end_plus_delay(
    aiohttp_client: ClientFactory, after_end: float, late_visible: bool
) -> None:
    client, clock = await make_client(aiohttp_client, churn_cfg())
    late = [m for m in await sim_meetings(client) if m["late_visible_at"] is not None]
    assert late, "seed 1 gives some late batches"
    m = late[0]
    assert m["late_visible_at"] == pytest.approx(m["ends"] + 10.0)
    regular = math.floor((m["ends"] - m["begins"]) * 2.0)
    clock.now = m["ends"] + after_end
    records = await truth(client, m["id"])
    expected = regular + (6 if late_visible else 0)
    if after_end < 0:
        expected = len([r for r in records if _ms(r["time"]) / 1000 <= clock.now])
    assert len(records) == expected
    api = await page_all(client, m["id"], 1000)
    assert api == records
    # Every late record's time lies in the meeting's last seconds, before its end.
    with_vis = await (
        await client.get("/_sim/records", params={"session": m["id"], "visible": "1"})
    ).json()
    late_rows = [r for r in with_vis["records"] if r["_visible"] > _ms(r["time"]) / 1000]
    assert len(late_rows) == (6 if late_visible else 0)
    for r in late_rows:
        assert m["ends"] - 5.0 <= _ms(r["time"]) / 1000 < m["ends"]
        assert r["_visible"] == pytest.approx(m["late_visible_at"])
    for r in with_vis["records"]:
        assert r["_visible"] <= clock.now


def test_churning_meetings_are_deterministic() -> None:
    def snapshot() -> list[Any]:
        sim = Simulator(churn_cfg(churn_meetings=20), clock=FakeClock(BASE))
        sim.advance(500)
        out: list[Any] = []
        for m in sorted(sim.domain_meetings("demo"), key=lambda m: m.index):
            out.append((m.id, m.begins, m.ends, m.late_visible_ms))
            out.extend(sim.ground_truth("demo", m.id, with_visible=True))
        return out

    first = snapshot()
    assert first == snapshot()
    late = sum(1 for row in first if isinstance(row, tuple) and row[3] is not None)
    assert 4 <= late <= 16  # about half of 20


@pytest.mark.parametrize(("words", "ago"), [(0, 30.0), (3, 30.0), (5, 120.0)])
async def test_silent_meetings_that_spoke_before_the_start(
    aiohttp_client: ClientFactory, words: int, ago: float
) -> None:
    config = cfg(
        meetings_per_domain=0,
        live=True,
        live_meetings=1,
        live_silent_meetings=3,
        live_silent_words=words,
        live_silent_words_ago=ago,
    )
    client, clock = await make_client(aiohttp_client, config)
    clock.now += 300
    listing = await sim_meetings(client)
    talking, silent = listing[0], listing[1:]
    assert talking["visible_records"] > 500
    body = await get_json(client, "/v1/meetings", ongoing="true")
    assert body["total_count"] == 4
    listed = {m["id"]: m for m in body["data"]}
    for m in silent:
        assert m["visible_records"] == words
        records = await truth(client, m["id"])
        assert len(records) == words
        for r in records:
            assert BASE - ago <= _ms(r["time"]) / 1000 < BASE - ago + 1
        if words:
            assert listed[m["id"]]["start_time"] <= BASE - ago
        else:
            assert listed[m["id"]]["start_time"] == int(BASE)
