"""GET /v1/meetings and the meetings that appear with the clock (live, silent, future)."""

from __future__ import annotations

from ._helpers import (
    BASE,
    ClientFactory,
    cfg,
    get_json,
    make_client,
    truth,
)


async def test_live_meeting_produces_records_over_time(aiohttp_client: ClientFactory) -> None:
    config = cfg(meetings_per_domain=1, live=True, live_records_per_second=10.0, live_duration=60.0)
    client, clock = await make_client(aiohttp_client, config, now=BASE + 5)
    live = await get_json(client, "/v1/meetings", ongoing="true")
    assert live["total_count"] == 1
    mtg = live["data"][0]["id"]
    assert live["data"][0]["start_time"] == int(BASE + 5)
    first = await truth(client, mtg)
    assert len(first) == 1
    clock.now += 10
    second = await truth(client, mtg)
    assert len(second) == 101
    assert second[: len(first)] == first
    body = await get_json(client, "/v1/logs", mtgSessionId=mtg, order="ASC", limit=1000)
    assert body["logs"] == second
    clock.now += 100
    assert len(await truth(client, mtg)) == 600
    ended = await get_json(client, "/v1/meetings", ongoing="false")
    assert mtg in {m["id"] for m in ended["data"]}


async def test_meetings_listing(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(meetings_per_domain=12))
    body = await get_json(client, "/v1/meetings")
    data = body["data"]
    assert body["total_count"] == 12
    assert len(data) == 12
    keys = [(-m["start_time"], m["id"]) for m in data]
    assert keys == sorted(keys)
    m0 = data[0]
    assert set(m0) == {
        "id",
        "room",
        "start_time",
        "duration",
        "ongoing",
        "max_participants",
        "participants",
    }
    assert m0["ongoing"] is False
    assert m0["duration"] > 0
    assert set(m0["participants"][0]) == {
        "user_id",
        "participant_id",
        "user_name",
        "join_time",
        "duration",
    }
    # cursor paging both ways
    page1 = (await get_json(client, "/v1/meetings", limit=5))["data"]
    page2 = (await get_json(client, "/v1/meetings", limit=5, starting_after=page1[-1]["id"]))[
        "data"
    ]
    assert [m["id"] for m in page1 + page2] == [m["id"] for m in data[:10]]
    back = (await get_json(client, "/v1/meetings", limit=3, ending_before=page2[0]["id"]))["data"]
    assert [m["id"] for m in back] == [m["id"] for m in data[2:5]]
    await get_json(client, "/v1/meetings", 400, starting_after="no-such-id")
    # filters
    mid = data[6]["start_time"]
    newer = (await get_json(client, "/v1/meetings", timeframe_start=mid))["data"]
    assert newer
    assert all(m["start_time"] >= mid for m in newer)
    older = (await get_json(client, "/v1/meetings", timeframe_end=mid))["data"]
    assert older
    assert all(m["start_time"] < mid for m in older)
    assert len(newer) + len(older) == 12
    room = data[0]["room"]
    in_room = (await get_json(client, "/v1/meetings", room=room))["data"]
    assert in_room
    assert all(m["room"] == room for m in in_room)
    assert (await get_json(client, "/v1/meetings", ongoing="true"))["data"] == []
    bare = (await get_json(client, "/v1/meetings", no_participants="true"))["data"]
    assert "participants" not in bare[0]
    assert len((await get_json(client, "/v1/meetings", limit=500))["data"]) == 12


async def test_future_meetings_appear_with_time(aiohttp_client: ClientFactory) -> None:
    # base_time an hour ahead: every meeting still lies in the future
    client, clock = await make_client(aiohttp_client, cfg(), now=BASE - 3600)
    assert (await get_json(client, "/v1/meetings"))["total_count"] == 0
    assert (await client.get("/_sim/records")).status == 200
    assert await truth(client) == []
    counts = []
    for now in range(int(BASE) - 1800, int(BASE) + 1, 60):
        clock.now = now
        counts.append((await get_json(client, "/v1/meetings"))["total_count"])
        start_times = [m["start_time"] for m in (await get_json(client, "/v1/meetings"))["data"]]
        assert all(st <= now for st in start_times)
    assert counts == sorted(counts)
    assert counts[-1] == 5
    ongoing = (await get_json(client, "/v1/meetings", ongoing="true"))["data"]
    assert ongoing == []
    # some meeting was ongoing at some point, with its elapsed duration
    clock.now = BASE - 300
    seen = await get_json(client, "/v1/meetings")
    for m in seen["data"]:
        if m["ongoing"]:
            assert m["duration"] == int(BASE - 300) - m["start_time"]


async def test_silent_live_meetings(aiohttp_client: ClientFactory) -> None:
    config = cfg(meetings_per_domain=0, live=True, live_meetings=2, live_silent_meetings=3)
    client, clock = await make_client(aiohttp_client, config, now=BASE + 100)
    clock.now += 30
    listing = await (await client.get("/_sim/meetings")).json()
    visible = sorted(m["visible_records"] for m in listing["meetings"])
    assert visible[:3] == [0, 0, 0]
    assert visible[3] > 0
    assert all(m["ongoing"] and m["live"] for m in listing["meetings"])
    body = await get_json(client, "/v1/meetings", ongoing="true")
    assert body["total_count"] == 5
