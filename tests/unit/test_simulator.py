"""The Daily API simulator: determinism, API semantics, faults and the CLI."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import itertools
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from daily_otel_bridge.testing.simulator import (
    SIM_KEY,
    Simulator,
    SimulatorConfig,
    SimulatorThread,
    create_app,
    start_simulator,
)

BASE = 1_774_000_000.0  # a fixed base_time keeps every test deterministic
KEY = "demo-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cfg(**kw: Any) -> SimulatorConfig:
    kw.setdefault("base_time", BASE)
    return SimulatorConfig(**kw)


async def make_client(
    aiohttp_client: ClientFactory, config: SimulatorConfig, now: float = BASE
) -> tuple[TestClient[Any, Any], FakeClock]:
    clock = FakeClock(now)
    client = await aiohttp_client(create_app(config, clock=clock))
    return client, clock


async def get_json(
    client: TestClient[Any, Any], path: str, expect: int = 200, **params: Any
) -> Any:
    resp = await client.get(path, params={k: str(v) for k, v in params.items()}, headers=AUTH)
    assert resp.status == expect, await resp.text()
    return await resp.json()


async def meeting_ids(client: TestClient[Any, Any]) -> list[str]:
    body = await get_json(client, "/v1/meetings")
    return [m["id"] for m in body["data"]]


async def truth(
    client: TestClient[Any, Any], session: str | None = None, kind: str = "logs"
) -> list[dict[str, Any]]:
    params = {"domain": "demo", "kind": kind}
    if session is not None:
        params["session"] = session
    resp = await client.get("/_sim/records", params=params)
    assert resp.status == 200
    body = await resp.json()
    assert body["count"] == len(body["records"])
    return list(body["records"])


async def page_all(
    client: TestClient[Any, Any], mtg: str, limit: int, order: str = "ASC", **extra: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        body = await get_json(
            client, "/v1/logs", mtgSessionId=mtg, order=order, limit=limit, offset=len(out), **extra
        )
        if not body["logs"]:
            return out
        out.extend(body["logs"])


def http_get_json(url: str, headers: dict[str, str]) -> Any:
    assert url.startswith("http://127.0.0.1:")  # the simulator only ever binds loopback
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())


def stable_desc(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["time"], reverse=True)


# --------------------------------------------------------------------------------------


def test_determinism_from_seed() -> None:
    def dump(config: SimulatorConfig) -> list[dict[str, Any]]:
        sim = Simulator(config, clock=FakeClock(BASE))
        return list(sim.ground_truth("demo")) + list(sim.ground_truth("demo", kind="metrics"))

    a = dump(cfg(seed=7, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    b = dump(cfg(seed=7, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    c = dump(cfg(seed=8, duplicate_ratio=0.05, late_ratio=0.1, late_delay=5))
    assert a == b
    assert a != c
    assert len(a) > 5 * 200 * 0.8


def test_cache_eviction_regenerates_identically() -> None:
    sim = Simulator(cfg(meetings_per_domain=4, cache_meetings=1), clock=FakeClock(BASE))
    first = list(sim.ground_truth("demo"))
    assert first == list(sim.ground_truth("demo"))


def test_record_shape_and_layout() -> None:
    sim = Simulator(cfg(duplicate_ratio=0.05), clock=FakeClock(BASE))
    records = list(sim.ground_truth("demo"))
    assert len(records) == 5 * 200
    first = records[0]
    assert list(first) == [
        "time",
        "clientTime",
        "message",
        "mtgSessionId",
        "userSessionId",
        "peerId",
        "domainName",
        "level",
        "code",
    ]
    for r in records:
        assert ISO_RE.match(r["time"])
        assert ISO_RE.match(r["clientTime"])
        assert r["level"] in (0, 1, 2)
        assert r["code"] is None or isinstance(r["code"], int)
        assert r["domainName"] == "demo"
    assert any(r["peerId"] is None for r in records)
    assert any(r["peerId"] is not None for r in records)
    assert any(r["code"] is None for r in records)
    assert len({r["message"] for r in records}) > 10
    # byte-identical duplicates exist
    dumped = [json.dumps(r) for r in records]
    assert any(dumped[i] == dumped[i - 1] for i in range(1, len(dumped)))
    # all within [base - history, base - 30 s]
    lo = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE - 1800))
    hi = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE - 30))
    assert all(lo <= r["time"][:19] <= hi for r in records)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="tie_ratio"):
        SimulatorConfig(tie_ratio=1.5)
    with pytest.raises(ValueError, match="unique"):
        SimulatorConfig(domains={"a": "k", "b": "k"})


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


def _ms(iso: str) -> int:
    head, frac = iso[:19], iso[20:23]
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


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


async def test_rate_limit_429_with_retry_after(aiohttp_client: ClientFactory) -> None:
    client, clock = await make_client(aiohttp_client, cfg(rate_limit_per_second=2.0))
    statuses = []
    for _ in range(4):
        resp = await client.get("/v1/meetings", headers=AUTH)
        statuses.append(resp.status)
        if resp.status == 429:
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"] == "rate-limit-error"
    assert statuses == [200, 200, 429, 429]
    clock.now += 1.0
    assert (await client.get("/v1/meetings", headers=AUTH)).status == 200
    stats = await (await client.get("/_sim/stats")).json()
    assert stats["status_counts"] == {"200": 3, "429": 2}
    assert stats["requests"] == {"meetings": 5, "logs": 0}
    assert stats["requests_per_domain"] == {"demo": 5}


async def test_rate_limit_without_retry_after(aiohttp_client: ClientFactory) -> None:
    config = cfg(rate_limit_per_second=1.0, retry_after=False)
    client, _ = await make_client(aiohttp_client, config)
    await client.get("/v1/meetings", headers=AUTH)
    resp = await client.get("/v1/meetings", headers=AUTH)
    assert resp.status == 429
    assert "Retry-After" not in resp.headers


async def test_metrics_arrays(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(meetings_per_domain=1))
    mtg = (await meeting_ids(client))[0]
    gt = await truth(client, mtg, kind="metrics")
    assert len(gt) > 10
    body = await get_json(
        client, "/v1/logs", mtgSessionId=mtg, includeMetrics="true", order="ASC", limit=5
    )
    assert len(body["logs"]) == 5
    assert body["metrics"] == gt[:5]
    sample = gt[0]
    for key in (
        "time",
        "clientTime",
        "mtgSessionId",
        "userSessionId",
        "roomName",
        "domainName",
        "videoRecvPacketLoss",
        "userRecvBitsPerSecAvg",
        "userRecvBitsPerSecMax",
        "userRecvBitsPerSecMin",
        "userSentBitsPerSecAvg",
        "userSentBitsPerSecMax",
        "userSentBitsPerSecMin",
        "futureFieldScore",
        "browserName",
    ):
        assert key in sample
    assert isinstance(sample["browserName"], str)
    recv = sample["metrics"]["sfu-recv"]
    assert "rttAvg" in recv["transport"]
    audio = [k for k in recv if k.startswith("inbound-cam-audio&")]
    video = [k for k in recv if k.startswith("inbound-cam-video&")]
    assert len(audio) == len(video) == 2  # the two other participants
    assert set(recv[audio[0]]) >= {"jitterAvg", "packetsLostPct", "bitsReceivedPerSecAvg"}
    send = sample["metrics"]["sfu-send"]
    assert any(k.startswith("outbound-cam-video&") for k in send)
    # samples every 15 s per participant
    user = sample["userSessionId"]
    own = [_ms(s["time"]) for s in gt if s["userSessionId"] == user]
    gaps = [b - a for a, b in itertools.pairwise(own)]
    assert all(14_000 <= g <= 16_000 for g in gaps)
    # independent paging, DESC, logs omitted
    page = await get_json(
        client,
        "/v1/logs",
        mtgSessionId=mtg,
        includeMetrics="true",
        includeLogs="false",
        limit=4,
        offset=2,
    )
    assert "logs" not in page
    assert page["metrics"] == stable_desc(gt)[2:6]
    off = await get_json(client, "/v1/logs", mtgSessionId=mtg, includeLogs="false")
    assert off == {}


async def test_faults(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    mtg = (await meeting_ids(client))[0]

    async def post(body: dict[str, Any]) -> Any:
        resp = await client.post("/_sim/faults", json=body)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    state = await post({"status": 503, "count": 2, "endpoint": "logs"})
    assert state["queued"][0]["remaining"] == 2
    # meetings requests do not consume a logs fault
    assert (await client.get("/v1/meetings", headers=AUTH)).status == 200
    for _ in range(2):
        resp = await client.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)
        assert resp.status == 503
        assert (await resp.json())["error"] == "server-error"
        assert resp.headers["Retry-After"] == "1"
    assert (await client.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)).status == 200

    await post({"retry_after": "http-date", "status": 429})
    resp = await client.get("/v1/meetings", headers=AUTH)
    assert resp.status == 429
    assert resp.headers["Retry-After"].endswith("GMT")

    await post({"invalid_json": True})
    resp = await client.get("/v1/meetings", headers=AUTH)
    assert resp.status == 200
    with pytest.raises(json.JSONDecodeError, match="Unterminated string"):
        json.loads(await resp.text())

    await post({"hang_seconds": 0.3})
    started = time.monotonic()
    assert (await client.get("/v1/meetings", headers=AUTH)).status == 200
    assert time.monotonic() - started >= 0.25

    await post({"not_found_session": mtg})
    resp = await client.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)
    assert resp.status == 404
    state = await post({"clear": True})
    assert state == {"queued": [], "retry_after": "seconds", "not_found_sessions": []}
    assert (await client.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)).status == 200

    bad = await client.post("/_sim/faults", json={"statsu": 500})
    assert bad.status == 400


async def test_sim_meetings_and_domain_truth(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(meetings_per_domain=3))
    listing = await (await client.get("/_sim/meetings")).json()
    assert [m["visible_records"] for m in listing["meetings"]] == [200, 200, 200]
    everything = await truth(client)
    assert len(everything) == 600
    assert [r["time"] for r in everything] == sorted(r["time"] for r in everything)
    resp = await client.get("/_sim/records", params={"offset": "10", "limit": "5"})
    assert (await resp.json())["records"] == everything[10:15]


async def test_start_simulator_and_thread() -> None:
    running = await start_simulator(cfg())
    try:
        assert running.url == f"http://127.0.0.1:{running.port}/v1"
        assert running.port > 0
        assert isinstance(running.app[SIM_KEY], Simulator)
    finally:
        await running.close()


async def test_close_does_not_wait_for_hanging_requests() -> None:
    import aiohttp

    running = await start_simulator(cfg())
    running.simulator.apply_faults({"hang_seconds": 30})
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(f"{running.url}/meetings", headers=AUTH))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await running.close()
        assert time.monotonic() - started < 5
        with contextlib.suppress(aiohttp.ClientError):
            (await task).close()


def test_simulator_thread_serves_sync_clients() -> None:
    with SimulatorThread(cfg()) as sim:
        body = http_get_json(f"{sim.url}/meetings", AUTH)
        assert body["total_count"] == 5


def test_cli_prints_listening_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daily_otel_bridge.testing.simulator",
            "--port",
            "0",
            "--domain",
            "acme=KEY1",
            "--meetings",
            "2",
            "--records",
            "50",
            "--max-seconds",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        body = http_get_json(f"{match.group(1)}/meetings", {"Authorization": "Bearer KEY1"})
        assert body["total_count"] == 2
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_stops_after_max_seconds() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daily_otel_bridge.testing.simulator", "--max-seconds", "0.3"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"listening on http://127\.0\.0\.1:\d+/v1\n", proc.stdout)


def test_cli_rejects_bad_domain_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daily_otel_bridge.testing.simulator", "--domain", "nokey"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "NAME=KEY" in proc.stderr


# --------------------------------------------------------------------------------------
# Latency, pacing counters, random errors, silent meetings (issue 9)


async def test_latency_overlaps_answers_and_counts_in_flight() -> None:
    import aiohttp

    # Real clock on purpose: the delay is an asyncio.sleep, which a fake clock cannot drive.
    running = await start_simulator(cfg(latency=0.2, latency_jitter=0.05))
    try:
        async with aiohttp.ClientSession() as session:

            async def one() -> int:
                async with session.get(f"{running.url}/meetings", headers=AUTH) as resp:
                    await resp.read()
                    return resp.status

            assert await asyncio.gather(*(one() for _ in range(5))) == [200] * 5
            async with session.get(f"{running.control_url}/stats") as resp:
                stats = await resp.json()
    finally:
        await running.close()
    # All five were received before any was answered: the delay does not serialise requests.
    assert stats["max_inflight"] == 5
    assert stats["inflight"] == 0
    demo = stats["domains"]["demo"]
    assert demo["max_inflight"] == 5
    assert demo["requests"] == 5
    assert demo["max_per_second"] == 5
    assert sum(demo["per_second"].values()) == 5
    assert demo["limiter_429"] == demo["random_429"] == demo["random_5xx"] == 0


def test_answer_delays_are_seeded_and_bounded() -> None:
    def delays(seed: int) -> list[float]:
        sim = Simulator(cfg(seed=seed, latency=0.15, latency_jitter=0.03), clock=FakeClock(BASE))
        return [sim._answer_delay() for _ in range(200)]

    first = delays(1)
    assert first == delays(1)
    assert first != delays(2)
    assert all(0.12 <= d <= 0.18 for d in first)
    assert len(set(first)) > 100  # jittered, not constant
    fixed = Simulator(cfg(latency=0.15), clock=FakeClock(BASE))
    assert {fixed._answer_delay() for _ in range(10)} == {0.15}


async def test_control_endpoints_are_not_delayed(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(latency=30.0))
    # A 30 s latency would make this test hit pytest's timeout if it applied here.
    for path in ("/_sim/stats", "/_sim/meetings", "/_sim/clock", "/_sim/faults"):
        assert (await client.get(path)).status == 200


async def test_limiter_429s_are_counted_apart(aiohttp_client: ClientFactory) -> None:
    client, clock = await make_client(aiohttp_client, cfg(rate_limit_per_second=2.0))
    for _ in range(5):
        await client.get("/v1/meetings", headers=AUTH)
    clock.now += 0.5
    await client.get("/v1/meetings", headers=AUTH)
    stats = await (await client.get("/_sim/stats")).json()
    demo = stats["domains"]["demo"]
    assert demo["limiter_429"] == 3
    assert demo["random_429"] == 0
    assert demo["requests"] == 6
    # Five arrivals in the same instant, then one 0.5 s later: six within one second.
    assert demo["max_per_second"] == 6
    assert demo["per_second"] == {str(int(BASE)): 6}
    with_arrivals = await (await client.get("/_sim/stats", params={"arrivals": "1"})).json()
    assert with_arrivals["domains"]["demo"]["arrivals"] == [BASE] * 5 + [BASE + 0.5]


async def test_sliding_second_forgets_older_arrivals(aiohttp_client: ClientFactory) -> None:
    client, clock = await make_client(aiohttp_client, cfg())
    for _ in range(3):
        await client.get("/v1/meetings", headers=AUTH)
        clock.now += 0.6
    stats = await (await client.get("/_sim/stats")).json()
    # 0, 0.6, 1.2: no 1-second window holds all three.
    assert stats["domains"]["demo"]["max_per_second"] == 2


async def test_random_errors_ratios_and_retry_after(aiohttp_client: ClientFactory) -> None:
    config = cfg(error_429_ratio=0.3, error_5xx_ratio=0.2, error_retry_after_ratio=0.5)
    client, _ = await make_client(aiohttp_client, config)
    # Straight from the state: a listing would itself draw from the error stream.
    assert client.app is not None
    mtg = client.app[SIM_KEY].domain_meetings("demo")[0].id
    statuses: list[int] = []
    with_header = without_header = 0
    for _ in range(400):
        resp = await client.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)
        statuses.append(resp.status)
        body = await resp.json()
        if resp.status == 429:
            assert body["error"] == "rate-limit-error"
            if "Retry-After" in resp.headers:
                with_header += 1
            else:
                without_header += 1
        elif resp.status >= 500:
            assert body["error"] == "server-error"
            assert resp.status in (500, 502, 503, 504)
            assert "Retry-After" not in resp.headers
    n429 = statuses.count(429)
    n5xx = sum(1 for s in statuses if s >= 500)
    # 400 draws: loose bounds, the stream is seeded so this never flakes.
    assert 80 <= n429 <= 160
    assert 50 <= n5xx <= 110
    assert with_header > 20
    assert without_header > 20
    stats = await (await client.get("/_sim/stats")).json()
    demo = stats["domains"]["demo"]
    assert demo["random_429"] == n429
    assert demo["random_5xx"] == n5xx
    assert demo["limiter_429"] == 0

    # Same seed, same sequence of answers.
    again, _ = await make_client(aiohttp_client, config)
    replay = [
        (await again.get("/v1/logs", params={"mtgSessionId": mtg}, headers=AUTH)).status
        for _ in range(400)
    ]
    assert replay == statuses


async def test_page_cap_with_random_errors_still_reconstructs(
    aiohttp_client: ClientFactory,
) -> None:
    config = cfg(max_limit=37, error_429_ratio=0.15, error_5xx_ratio=0.1)
    client, _ = await make_client(aiohttp_client, config)
    for _ in range(20):  # discovery through the storm
        resp = await client.get("/v1/meetings", headers=AUTH)
        if resp.status == 200:
            mtg = (await resp.json())["data"][0]["id"]
            break
    got: list[dict[str, Any]] = []
    while True:
        params = {"mtgSessionId": mtg, "order": "ASC", "limit": "1000", "offset": str(len(got))}
        resp = await client.get("/v1/logs", params=params, headers=AUTH)
        if resp.status != 200:
            continue  # a retry gets the same page
        page = (await resp.json())["logs"]
        assert len(page) <= 37
        if not page:
            break
        got.extend(page)
    assert got == await truth(client, mtg)


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


def test_config_validation_of_new_knobs() -> None:
    with pytest.raises(ValueError, match="latency"):
        cfg(latency=0.1, latency_jitter=0.2)
    with pytest.raises(ValueError, match="error_429_ratio"):
        cfg(error_429_ratio=1.5)
    with pytest.raises(ValueError, match=r"error_429_ratio \+ error_5xx_ratio"):
        cfg(error_429_ratio=0.6, error_5xx_ratio=0.6)


def test_cli_latency_flags() -> None:
    from daily_otel_bridge.testing.simulator import _config_from_args, _parser

    args = _parser().parse_args(
        ["--latency", "150ms", "--latency-jitter", "30ms", "--error-429-ratio", "0.15"]
    )
    config = _config_from_args(args)
    assert config.latency == pytest.approx(0.15)
    assert config.latency_jitter == pytest.approx(0.03)
    assert config.error_429_ratio == 0.15
    with pytest.raises(SystemExit):
        _parser().parse_args(["--latency", "fast"])


# -- page cap, churning meetings, silent meetings that spoke (issue 14) -----------------------


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


def churn_cfg(**kw: Any) -> SimulatorConfig:
    base: dict[str, Any] = {
        "meetings_per_domain": 0,
        "churn_meetings": 4,
        "churn_over": 40.0,
        "churn_min_duration": 15.0,
        "churn_max_duration": 20.0,
        "churn_rate": 2.0,
        "churn_late_ratio": 0.5,
        "churn_late_records": 6,
        "churn_late_delay": 10.0,
        "tie_ratio": 0.0,
    }
    return cfg(**{**base, **kw})


async def sim_meetings(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    return list((await (await client.get("/_sim/meetings")).json())["meetings"])


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


def test_cli_churn_flags() -> None:
    from daily_otel_bridge.testing.simulator import _config_from_args, _parser

    args = _parser().parse_args(
        [
            *("--churn-meetings", "300", "--churn-over", "150", "--churn-delay", "5"),
            *("--churn-min-duration", "15", "--churn-max-duration", "60", "--churn-rate", "2"),
            *("--churn-late-ratio", "0.2", "--churn-late-records", "20"),
            *("--churn-late-delay", "10", "--max-limit", "200"),
            *("--live-silent-words", "3", "--live-silent-words-ago", "30"),
        ]
    )
    config = _config_from_args(args)
    assert (config.churn_meetings, config.churn_over, config.churn_delay) == (300, 150.0, 5.0)
    assert (config.churn_late_ratio, config.churn_late_records) == (0.2, 20)
    assert (config.live_silent_words, config.live_silent_words_ago) == (3, 30.0)
    assert config.max_limit == 200
    assert _config_from_args(_parser().parse_args([])).max_limit == 1000
    with pytest.raises(ValueError, match="churn_min_duration"):
        cfg(churn_meetings=1, churn_min_duration=30.0, churn_max_duration=10.0)
