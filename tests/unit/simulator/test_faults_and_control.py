"""Fault injection and the /_sim control endpoints."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ._helpers import (
    AUTH,
    ClientFactory,
    cfg,
    make_client,
    meeting_ids,
    truth,
)


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
