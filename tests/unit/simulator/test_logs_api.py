"""GET /v1/logs: auth, required ids, order, filters, windows, paging and page caps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ._helpers import (
    AUTH,
    KEY,
    ClientFactory,
    _ms,
    cfg,
    get_json,
    make_client,
    meeting_ids,
    page_all,
    stable_desc,
    truth,
)


async def test_logs_requires_session_id(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    body = await get_json(client, "/v1/logs", expect=400)
    assert body == {
        "error": "invalid-request-error",
        "info": "mtgSessionId or userSessionId is required",
    }


async def test_auth_errors(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    resp = await client.get("/v1/meetings")
    assert resp.status == 401
    assert (await resp.json())["error"] == "authentication-error"
    resp = await client.get("/v1/meetings", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    resp = await client.get("/v1/meetings", headers={"Authorization": "Basic abc"})
    assert resp.status == 400
    assert (await resp.json())["error"] == "authorization-header-error"
    # revoke / restore
    assert (await client.post("/_sim/revoke", params={"domain": "demo"})).status == 200
    assert (await client.get("/v1/meetings", headers=AUTH)).status == 401
    assert (await client.post("/_sim/restore", params={"domain": "demo"})).status == 200
    assert (await client.get("/v1/meetings", headers=AUTH)).status == 200


async def test_keys_select_domains(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(domains={"demo": KEY, "other": "k2"}))
    other = await client.get("/v1/meetings", headers={"Authorization": "Bearer k2"})
    other_ids = {m["id"] for m in (await other.json())["data"]}
    mine = await meeting_ids(client)
    assert other_ids
    assert not other_ids & set(mine)
    # another domain's session id yields nothing
    body = await get_json(client, "/v1/logs", mtgSessionId=next(iter(other_ids)))
    assert body == {"logs": []}


async def test_order_asc_desc_and_defaults(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg)
    assert len(gt) == 200
    asc = await get_json(client, "/v1/logs", mtgSessionId=mtg, order="asc", limit=1000)
    assert asc["logs"] == gt
    desc = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=1000)
    assert desc["logs"] == stable_desc(gt)
    default = await get_json(client, "/v1/logs", mtgSessionId=mtg)
    assert default["logs"] == stable_desc(gt)[:20]
    assert await get_json(client, "/v1/logs", 400, mtgSessionId=mtg, order="sideways")


async def test_desc_ties_reversed_switch(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(desc_ties_reversed=True))
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg)
    desc = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=1000)
    assert desc["logs"] == gt[::-1]


async def test_user_session_and_level_filters(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    meetings = (await get_json(client, "/v1/meetings"))["data"]
    mtg = meetings[0]["id"]
    user = meetings[0]["participants"][1]["participant_id"]
    gt = await truth(client, mtg)
    mine = await get_json(client, "/v1/logs", userSessionId=user, order="ASC", limit=1000)
    assert mine["logs"] == [r for r in gt if r["userSessionId"] == user]
    both = await get_json(
        client, "/v1/logs", userSessionId=user, mtgSessionId=mtg, order="ASC", limit=1000
    )
    assert both["logs"] == mine["logs"]
    assert mine["logs"] == await truth(client, user)
    mismatch = await get_json(
        client, "/v1/logs", userSessionId=user, mtgSessionId=meetings[1]["id"]
    )
    assert mismatch["logs"] == []
    for name, level in (("ERROR", 0), ("info", 1), ("DEBUG", 2)):
        body = await get_json(
            client, "/v1/logs", mtgSessionId=mtg, logLevel=name, order="ASC", limit=1000
        )
        assert body["logs"] == [r for r in gt if r["level"] == level]
    await get_json(client, "/v1/logs", 400, mtgSessionId=mtg, logLevel="TRACE")


@pytest.mark.parametrize(("start_inc", "end_inc"), [(True, True), (False, False)])
async def test_window_inclusive_switches(
    aiohttp_client: ClientFactory, start_inc: bool, end_inc: bool
) -> None:
    config = cfg(start_time_inclusive=start_inc, end_time_inclusive=end_inc)
    client, _ = await make_client(aiohttp_client, config)
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg)
    times = [_ms(r["time"]) for r in gt]
    # a time shared by several records: the boundary case that matters
    t0 = next(t for i, t in enumerate(times[20:], 20) if times[i - 1] == t)
    t1 = next(t for i, t in enumerate(times[120:], 120) if times[i - 1] == t)
    body = await get_json(
        client, "/v1/logs", mtgSessionId=mtg, order="ASC", limit=1000, startTime=t0, endTime=t1
    )

    def inside(t: int) -> bool:
        return (t >= t0 if start_inc else t > t0) and (t <= t1 if end_inc else t < t1)

    expected = [r for r, t in zip(gt, times, strict=True) if inside(t)]
    assert body["logs"] == expected
    assert any(_ms(r["time"]) == t0 for r in body["logs"]) == start_inc
    assert any(_ms(r["time"]) == t1 for r in body["logs"]) == end_inc


async def test_invalid_numbers_and_limit_cap(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(records_per_meeting=300, max_limit=250))
    mtg = (await meeting_ids(client))[0]
    for params in ({"limit": "ten"}, {"offset": "-1"}, {"startTime": "1.5"}, {"endTime": "x"}):
        body = await get_json(client, "/v1/logs", 400, mtgSessionId=mtg, **params)
        assert body["error"] == "invalid-request-error"
    body = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=100000)
    assert len(body["logs"]) == 250
    body = await get_json(client, "/v1/logs", mtgSessionId=mtg, includeLogs="false")
    assert body == {}
    await get_json(client, "/v1/logs", 400, mtgSessionId=mtg, includeLogs="maybe")


@pytest.mark.parametrize("order", ["ASC", "DESC"])
async def test_offset_paging_reconstructs_ground_truth(
    aiohttp_client: ClientFactory, order: str
) -> None:
    config = cfg(records_per_meeting=1000, meetings_per_domain=1, duplicate_ratio=0.02)
    client, _ = await make_client(aiohttp_client, config)
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg)
    expected = gt if order == "ASC" else stable_desc(gt)
    got = await page_all(client, mtg, 100, order)
    assert got == expected
    # ties straddle page boundaries of 100
    straddling = [k for k in range(100, 1000, 100) if got[k - 1]["time"] == got[k]["time"]]
    assert straddling


async def test_short_pages_still_reconstruct(aiohttp_client: ClientFactory) -> None:
    config = cfg(records_per_meeting=600, meetings_per_domain=1, short_pages=True)
    client, _ = await make_client(aiohttp_client, config)
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg)
    sizes = []
    out: list[dict[str, Any]] = []
    while True:
        body = await get_json(
            client, "/v1/logs", mtgSessionId=mtg, order="ASC", limit=100, offset=len(out)
        )
        if not body["logs"]:
            break
        sizes.append(len(body["logs"]))
        out.extend(body["logs"])
    assert out == gt
    assert any(s < 100 for s in sizes[:-1])
    # same request, same page
    a = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=100, offset=7)
    b = await get_json(client, "/v1/logs", mtgSessionId=mtg, limit=100, offset=7)
    assert a == b


async def test_late_records_invisible_before_delay(aiohttp_client: ClientFactory) -> None:
    config = cfg(late_ratio=0.3, late_delay=7200.0, meetings_per_domain=1)
    client, _clock = await make_client(aiohttp_client, config)
    mtg = (await meeting_ids(client))[0]
    early = await truth(client, mtg)
    api = await page_all(client, mtg, 1000)
    assert api == early
    assert 100 < len(early) < 180  # about 30 % of 200 withheld
    resp = await client.post("/_sim/clock", params={"advance": "7200"})
    assert resp.status == 200
    late = await truth(client, mtg)
    assert len(late) == 200
    early_set = {json.dumps(r) for r in early}
    assert early_set < {json.dumps(r) for r in late}


@pytest.mark.parametrize(
    ("max_limit", "limit", "expected"),
    [
        (None, 5000, 1000),  # the default cap stays 1000
        (None, 300, 300),
        (200, 1000, 200),
        (200, 150, 150),
        (100, 1000, 100),
        (37, 20, 20),
        (37, None, 20),  # Daily's default limit
    ],
)
async def test_page_cap_honoured(
    aiohttp_client: ClientFactory, max_limit: int | None, limit: int | None, expected: int
) -> None:
    kw: dict[str, Any] = {"meetings_per_domain": 1, "records_per_meeting": 1500}
    if max_limit is not None:
        kw["max_limit"] = max_limit
    client, _ = await make_client(aiohttp_client, cfg(**kw))
    mtg = (await meeting_ids(client))[0]
    params: dict[str, Any] = {"mtgSessionId": mtg, "order": "ASC"}
    if limit is not None:
        params["limit"] = limit
    body = await get_json(client, "/v1/logs", **params)
    assert len(body["logs"]) == expected
    # Paged by what came back (not by what was asked), the pages still make up every record.
    got = await page_all(client, mtg, limit or 20)
    assert got == await truth(client, mtg)
