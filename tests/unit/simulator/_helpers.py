"""Shared helpers of the simulator tests: a fixed clock, an app client, paging."""

from __future__ import annotations

import calendar
import json
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from daily_otel_bridge.testing.simulator import (
    SimulatorConfig,
    create_app,
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


def _ms(iso: str) -> int:
    head, frac = iso[:19], iso[20:23]
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


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
