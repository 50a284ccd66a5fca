"""GET /v1/presence and GET /v1/meetings/{id}/participants: consistent with /meetings and
with the sessions that produce logs; counted like every API request."""

from __future__ import annotations

from typing import Any

import pytest

from daily_otel_bridge.testing.simulator.presence import snapshot_time

from ._helpers import AUTH, BASE, ClientFactory, cfg, get_json, make_client


@pytest.mark.parametrize(
    ("now", "lag", "expected"),
    [
        (100.0, 15.0, 90.0),  # lags up to 15 s, as Daily says presence does
        (105.0, 15.0, 105.0),
        (119.9, 15.0, 105.0),
        (100.0, 0.0, 100.0),
    ],
)
def test_presence_snapshot_time(now: float, lag: float, expected: float) -> None:
    assert snapshot_time(now, lag) == expected


async def test_presence_lists_the_participants_of_ongoing_meetings(
    aiohttp_client: ClientFactory,
) -> None:
    config = cfg(meetings_per_domain=2, live=True, live_meetings=2, presence_lag=0.0)
    client, clock = await make_client(aiohttp_client, config, now=BASE)
    clock.now += 60
    body = await get_json(client, "/v1/presence")
    listing = await get_json(client, "/v1/meetings", ongoing="true")
    ongoing = {m["id"]: m for m in listing["data"]}
    entries = [e for room in body.values() for e in room]
    assert {e["mtgSessionId"] for e in entries} == set(ongoing)
    for room, people in body.items():
        for e in people:
            assert set(e) == {
                "room",
                "id",
                "userId",
                "userName",
                "joinTime",
                "duration",
                "mtgSessionId",
            }
            assert e["room"] == room == ongoing[e["mtgSessionId"]]["room"]
            ids = {p["participant_id"] for p in ongoing[e["mtgSessionId"]]["participants"]}
            assert e["id"] in ids
            assert e["joinTime"].endswith("Z")
            assert isinstance(e["duration"], int)
    # The ids are the userSessionIds of the records /logs serves.
    mtg = entries[0]["mtgSessionId"]
    logs = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=1000)
    assert {r["userSessionId"] for r in logs["logs"]} <= {
        e["id"] for e in entries if e["mtgSessionId"] == mtg
    }
    stats = await (await client.get("/_sim/stats")).json()
    assert stats["requests"]["presence"] == 1


async def test_presence_is_empty_without_ongoing_meetings(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    assert await get_json(client, "/v1/presence") == {}


async def test_presence_is_rate_limited_like_every_request(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(rate_limit_per_second=1.0))
    statuses = [(await client.get("/v1/presence", headers=AUTH)).status for _ in range(3)]
    assert statuses[0] == 200
    assert 429 in statuses
    assert (await client.get("/v1/presence")).status == 401


async def test_meeting_participants_pages_by_participant(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(participants_per_meeting=5))
    meeting: dict[str, Any] = (await get_json(client, "/v1/meetings"))["data"][0]
    path = f"/v1/meetings/{meeting['id']}/participants"
    everyone = (await get_json(client, path))["data"]
    assert len(everyone) == meeting["max_participants"] == 5
    assert sorted(everyone, key=lambda p: p["participant_id"]) == sorted(
        meeting["participants"], key=lambda p: p["participant_id"]
    )
    assert [p["join_time"] for p in everyone] == sorted(p["join_time"] for p in everyone)
    paged: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after is not None:
            params["joined_after"] = after
        rows = (await get_json(client, path, **params))["data"]
        if not rows:
            break
        paged.extend(rows)
        after = rows[-1]["participant_id"]
    assert paged == everyone
    before = (await get_json(client, path, joined_before=everyone[2]["participant_id"]))["data"]
    assert before == everyone[:2]
    await get_json(client, path, expect=400, joined_after="nobody")
    await get_json(client, "/v1/meetings/no-such-meeting/participants", expect=404)
