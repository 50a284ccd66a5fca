"""Rate limits, random errors and latency, and what the stats count of them."""

from __future__ import annotations

import asyncio
from typing import Any

from daily_otel_bridge.testing.simulator import (
    SIM_KEY,
    Simulator,
    start_simulator,
)

from ._helpers import (
    AUTH,
    BASE,
    ClientFactory,
    FakeClock,
    cfg,
    make_client,
    truth,
)


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
