"""Webhooks: the registry (create with Daily's verification POST, list, get, update,
delete), signed events for the meetings the simulator plays, and Daily's retry rules."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daily_otel_bridge.testing.simulator import (
    PLANTED_SECRETS,
    SIGNATURE_HEADER,
    SIM_KEY,
    TIMESTAMP_HEADER,
    Simulator,
    sign_webhook,
)
from daily_otel_bridge.testing.simulator.webhooks import EVENT_TYPES, validate_settings

from ._helpers import AUTH, BASE, ClientFactory, FakeClock, cfg, make_client

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


# -- signing (pure) --------------------------------------------------------------------------


def _reference(secret_b64: str, ts: str, body: bytes) -> str:
    # Daily's recipe, spelt out here independently of the module under test.
    mac = hmac.new(base64.b64decode(secret_b64), f"{ts}.".encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@pytest.mark.parametrize(
    ("secret", "ts", "body"),
    [
        (base64.b64encode(b"secret").decode(), "1700000000", b'{"test":"test"}'),
        (PLANTED_SECRETS[-1], "1774000000", b'{"type":"meeting.started"}'),
        (base64.b64encode(bytes(range(32))).decode(), "0", b""),
    ],
)
def test_sign_webhook_matches_daily_recipe(secret: str, ts: str, body: bytes) -> None:
    assert sign_webhook(secret, ts, body) == _reference(secret, ts, body)


def test_sign_webhook_rejects_a_secret_that_is_not_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign_webhook("not base64 !", "1", b"{}")


@pytest.mark.parametrize(
    ("body", "creating", "error"),
    [
        ({}, True, "url is required"),
        ({"url": "ftp://127.0.0.1/x"}, True, "http"),
        ({"url": "https://hooks.invalid/daily"}, True, "loopback"),
        ({"url": "http://10.0.0.1/x"}, True, "loopback"),
        ({"url": "http://[::1]:8080/x"}, True, None),
        ({"url": "http://localhost/x"}, True, None),
        ({"url": "http://127.0.0.1/x", "retryType": "never"}, True, "retryType"),
        ({"url": "http://127.0.0.1/x", "eventTypes": ["meeting.exploded"]}, True, "unknown event"),
        ({"url": "http://127.0.0.1/x", "hmac": "%%%"}, True, "hmac"),
        ({"url": "http://127.0.0.1/x", "colour": "red"}, True, "unknown fields"),
        ([], True, "JSON object"),
        ({}, False, None),
        ({"retryType": "exponential"}, False, None),
    ],
)
def test_validate_settings(body: Any, creating: bool, error: str | None) -> None:
    if error is None:
        validate_settings(body, creating)
        return
    with pytest.raises(Exception, match=error):
        validate_settings(body, creating)


# -- a receiver on 127.0.0.1 -------------------------------------------------------------------


class Receiver:
    """Records every POST; answers `test_status` to Daily's check and `status` to events."""

    def __init__(self, status: int = 200, test_status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.test_status = test_status
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if body == b'{"test":"test"}':
            return web.Response(status=self.test_status, text="ok")
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text='{"ok":true}')

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.requests if b != b'{"test":"test"}']


async def start_receiver(aiohttp_server: ServerFactory, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    assert server.host == "127.0.0.1"
    return f"http://127.0.0.1:{server.port}/hook"


def webhook_cfg(**kw: Any) -> Any:
    base: dict[str, Any] = {
        "meetings_per_domain": 0,
        "churn_meetings": 3,
        "churn_over": 10.0,
        "churn_delay": 5.0,
        "churn_min_duration": 15.0,
        "churn_max_duration": 20.0,
        "webhook_tick": 0.02,
        "webhook_backoff": 0.01,
        "webhook_timeout": 2.0,
    }
    return cfg(**{**base, **kw})


async def setup(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory, receiver: Receiver, **kw: Any
) -> tuple[TestClient[Any, Any], FakeClock, Simulator, str]:
    url = await start_receiver(aiohttp_server, receiver)
    client, clock = await make_client(aiohttp_client, webhook_cfg(**kw), now=BASE)
    assert client.app is not None
    return client, clock, client.app[SIM_KEY], url


async def create(client: TestClient[Any, Any], expect: int = 200, **body: Any) -> Any:
    resp = await client.post("/v1/webhooks", json=body, headers=AUTH)
    assert resp.status == expect, await resp.text()
    return await resp.json()


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- the registry ------------------------------------------------------------------------------


async def test_create_verifies_the_url_first(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver()
    client, _, _, url = await setup(aiohttp_client, aiohttp_server, receiver)
    hook = await create(client, url=url)
    assert receiver.requests[0][1] == b'{"test":"test"}'
    assert set(hook) == {
        "uuid", "url", "hmac", "basicAuth", "retryType", "eventTypes", "state",
        "failedCount", "lastMomentPushed", "domainId", "createdAt", "updatedAt",
    }  # fmt: skip
    assert hook["state"] == "ACTIVE"
    assert hook["retryType"] == "circuit-breaker"
    assert hook["failedCount"] == 0
    assert hook["lastMomentPushed"] is None
    assert len(base64.b64decode(hook["hmac"])) == 32
    listed = await (await client.get("/v1/webhooks", headers=AUTH)).json()
    assert listed == [hook]
    got = await (await client.get(f"/v1/webhooks/{hook['uuid']}", headers=AUTH)).json()
    assert got == hook
    # The call is in the API log (source=api), the check in source=webhook.
    api = await (await client.get("/v1/logs/api", headers=AUTH)).json()
    assert api[0]["method"] == "POST"
    assert api[0]["url"] == "/v1/webhooks"
    checks = await (
        await client.get("/v1/logs/api", params={"source": "webhook", "url": url}, headers=AUTH)
    ).json()
    assert [c["request"] for c in checks] == ['{"test":"test"}']


@pytest.mark.parametrize("test_status", [201, 404, 500])
async def test_create_fails_unless_the_check_answers_200(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory, test_status: int
) -> None:
    receiver = Receiver(test_status=test_status)
    client, _, _, url = await setup(aiohttp_client, aiohttp_server, receiver)
    body = await create(client, expect=400, url=url)
    assert body["error"] == "invalid-request-error"
    assert await (await client.get("/v1/webhooks", headers=AUTH)).json() == []


async def test_create_fails_when_nobody_listens(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, webhook_cfg())
    body = await create(client, expect=400, url="http://127.0.0.1:9/nobody")
    assert "no answer" in body["info"]


async def test_update_and_delete(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver()
    client, _, _, url = await setup(aiohttp_client, aiohttp_server, receiver)
    hook = await create(client, url=url, hmac=PLANTED_SECRETS[-1], eventTypes=["meeting.ended"])
    assert hook["hmac"] == PLANTED_SECRETS[-1]
    path = f"/v1/webhooks/{hook['uuid']}"
    resp = await client.post(path, json={"retryType": "exponential"}, headers=AUTH)
    assert (await resp.json())["retryType"] == "exponential"
    assert (await client.post(path, json={"retryType": "x"}, headers=AUTH)).status == 400
    assert (await client.delete(path, headers=AUTH)).status == 200
    assert (await client.get(path, headers=AUTH)).status == 404
    assert (await client.delete(path, headers=AUTH)).status == 404
    assert (await client.post("/v1/webhooks", data="{", headers=AUTH)).status == 400


# -- events ------------------------------------------------------------------------------------


async def test_events_are_signed_and_shaped_like_daily(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver()
    client, clock, sim, url = await setup(aiohttp_client, aiohttp_server, receiver)
    hook = await create(client, url=url)
    expected = [e for e in sim.webhooks._timeline("demo") if BASE < e.at <= BASE + 120]
    clock.now += 120
    await until(lambda: sim.webhooks.stats()["totals"].get("acknowledged", 0) == len(expected))
    events = receiver.events()
    assert sorted(e["id"] for e in events) == sorted(e.id for e in expected)
    types = {e["type"] for e in events}
    assert {"meeting.started", "meeting.ended", "participant.joined", "participant.left"} <= types
    assert types <= set(EVENT_TYPES)
    for headers, body in receiver.requests[1:]:
        assert headers[SIGNATURE_HEADER] == _reference(
            hook["hmac"], headers[TIMESTAMP_HEADER], body
        )
        event = json.loads(body)
        assert set(event) == {"version", "type", "id", "payload", "event_ts"}
    meetings = {m.id for m in sim.domain_meetings("demo")}
    started = [e["payload"] for e in events if e["type"] == "meeting.started"]
    assert {p["meeting_id"] for p in started} <= meetings
    joined = [e["payload"]["session_id"] for e in events if e["type"] == "participant.joined"]
    participants = {p.participant_id for m in sim.domain_meetings("demo") for p in m.participants}
    assert set(joined) <= participants
    stats = sim.webhooks.stats()["hooks"][hook["uuid"]]
    assert stats["sent"] == stats["acknowledged"] == stats["events"] == len(expected)
    assert stats["dropped"] == stats["retried"] == 0
    listed = await (await client.get(f"/v1/webhooks/{hook['uuid']}", headers=AUTH)).json()
    assert listed["lastMomentPushed"] is not None
    control = await (await client.get("/_sim/webhooks")).json()
    assert len(control["deliveries"]) == len(expected)


async def test_circuit_breaker_fails_the_hook_after_three_failures(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(status=500)
    client, clock, sim, url = await setup(aiohttp_client, aiohttp_server, receiver)
    hook = await create(client, url=url)
    clock.now += 120
    await until(lambda: sim.webhooks.hooks[hook["uuid"]].state == "FAILED")
    await asyncio.sleep(0.2)
    stats = sim.webhooks.stats()["hooks"][hook["uuid"]]
    assert stats["sent"] == stats["failed"] == 3
    assert stats["failedCount"] == 3
    assert stats["dropped"] == stats["events"]
    assert len(receiver.events()) == 3
    failed = await (await client.get(f"/v1/webhooks/{hook['uuid']}", headers=AUTH)).json()
    assert failed["state"] == "FAILED"
    # Re-activated, it hears only what happens from then on.
    receiver.status = 200
    resp = await client.post(f"/v1/webhooks/{hook['uuid']}", json={}, headers=AUTH)
    again = await resp.json()
    assert (again["state"], again["failedCount"]) == ("ACTIVE", 0)
    await asyncio.sleep(0.2)
    assert len(receiver.events()) == 3


async def test_exponential_retries_then_drops(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(status=503)
    client, clock, sim, url = await setup(
        aiohttp_client, aiohttp_server, receiver, webhook_max_attempts=5
    )
    hook = await create(client, url=url, retryType="exponential", eventTypes=["meeting.started"])
    clock.now += 120
    await until(lambda: sim.webhooks.hooks[hook["uuid"]].counters["dropped"] == 3)
    stats = sim.webhooks.stats()["hooks"][hook["uuid"]]
    assert stats["events"] == 3
    assert stats["sent"] == stats["failed"] == 15  # 5 tries each
    assert stats["retried"] == 12
    assert stats["state"] == "ACTIVE"
    assert {e["type"] for e in receiver.events()} == {"meeting.started"}


async def test_sending_never_blocks_the_api(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(delay=1.5)
    client, clock, _, url = await setup(aiohttp_client, aiohttp_server, receiver)
    await create(client, url=url)
    clock.now += 120
    await until(lambda: len(receiver.requests) > 1)  # a delivery is hanging in the receiver
    started = time.monotonic()
    resp = await client.get("/v1/meetings", headers=AUTH)
    assert resp.status == 200
    assert time.monotonic() - started < 0.5
