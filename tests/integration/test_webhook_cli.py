"""`webhooks register | status | reactivate` against a small Daily `/webhooks` of this test's own
(it verifies the URL the way Daily does: a signed `{"test":"test"}` POST that must get a 200)
and the bridge's real receiver, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from daily_otel_bridge.cli.main import main
from daily_otel_bridge.config.settings import load_settings
from daily_otel_bridge.core.webhook_signature import decode_secret, sign
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.service.webhooks import WebhookServer, start_webhook_server
from tests.webhook_inbox import SECRET, SqliteInbox, event_body, signed_headers

pytestmark = pytest.mark.timeout(60)

API_KEY = "dk_test_key_for_webhooks_cli"
T = TypeVar("T")


class Loop:
    """An event loop in a thread, for servers the (synchronous) CLI talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=20)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class FakeDaily:
    """Daily's `/webhooks`, as far as the commands use it."""

    def __init__(self) -> None:
        self.hooks: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/webhooks", self.list_hooks)
        app.router.add_post("/v1/webhooks", self.create)
        app.router.add_post("/v1/webhooks/{uuid}", self.update)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {API_KEY}"

    def _public(self, hook: dict[str, Any]) -> dict[str, Any]:
        # Daily echoes the hmac back; the CLI must not print it.
        return dict(hook)

    async def list_hooks(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path, None))
        if not self._authorized(request):
            return web.json_response({"error": "authentication-error"}, status=401)
        return web.json_response([self._public(h) for h in self.hooks.values()])

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("POST", request.path, body))
        if not self._authorized(request):
            return web.json_response({"error": "authentication-error"}, status=401)
        # Daily checks the URL first: a signed verification POST that must be answered 200.
        test = b'{"test":"test"}'
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": sign(decode_secret(body["hmac"]), stamp, test),
        }
        if body.get("basicAuth"):
            headers["Authorization"] = f"Basic {body['basicAuth']}"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(body["url"], data=test, headers=headers) as resp,
            ):
                ok = resp.status == 200
        except aiohttp.ClientError:
            ok = False
        if not ok:
            return web.json_response(
                {"error": "invalid-request-error", "info": f"{body['url']} did not answer"},
                status=400,
            )
        hook = {
            "uuid": str(uuid.uuid4()),
            "url": body["url"],
            "hmac": body["hmac"],
            "retryType": body.get("retryType", "circuit-breaker"),
            "eventTypes": body.get("eventTypes", ["meeting.started", "meeting.ended"]),
            "state": "ACTIVE",
            "failedCount": 0,
        }
        self.hooks[hook["uuid"]] = hook
        return web.json_response(self._public(hook))

    async def update(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("POST", request.path, body))
        hook = self.hooks.get(request.match_info["uuid"])
        if hook is None:
            return web.json_response({"error": "not-found"}, status=404)
        if body.get("url") == hook["url"]:
            hook.update(state="ACTIVE", failedCount=0)  # Daily re-activates a FAILED hook
        return web.json_response(self._public(hook))


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = Loop()
        self.daily = FakeDaily()
        self.loop.run(self.daily.start())
        self.secret_file = tmp_path / "acme.secret"
        self.secret_file.write_text(SECRET + "\n")
        self.secret_file.chmod(0o600)
        self.config = tmp_path / "config.yaml"
        self.write_config()
        self.inbox = SqliteInbox(tmp_path / "inbox.db")
        self.receiver: WebhookServer = self.loop.run(
            start_webhook_server(
                load_settings(self.config), self.inbox, BridgeMetrics(CollectorRegistry())
            )
        )

    def write_config(self, **domain: Any) -> None:
        entry = {
            "name": "acme",
            "api_key": API_KEY,
            "api_url": self.daily.url,
            "webhook_secret_file": str(self.secret_file),
            **domain,
        }
        entry = {k: v for k, v in entry.items() if v is not None}
        document = {
            "state_path": str(self.tmp_path / "state.db"),
            "domains": [entry],
            "webhooks": {"listen": "127.0.0.1:0"},
        }
        self.config.write_text(yaml.safe_dump(document))

    def cli(self, *args: str) -> int:
        return main(["--config", str(self.config), "webhooks", *args])

    def post_event(self, secret: str) -> int:
        async def send() -> int:
            body = event_body(f"evt-{uuid.uuid4()}")
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    self.receiver.url("acme"), data=body, headers=signed_headers(body, secret)
                ) as resp,
            ):
                return resp.status

        return self.loop.run(send())

    def close(self) -> None:
        self.loop.run(self.receiver.stop())
        self.loop.run(self.daily.stop())
        self.loop.close()
        self.inbox.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_register_while_the_receiver_runs(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert world.cli("register", "--domain", "acme", "--url", world.receiver.url("acme")) == 0
    out = capsys.readouterr().out
    new = world.secret_file.read_text().strip()
    assert new != SECRET
    assert len(base64.b64decode(new, validate=True)) == 32
    assert stat.S_IMODE(world.secret_file.stat().st_mode) == 0o600
    assert new not in out
    assert f"written to {world.secret_file} (mode 600)" in out
    [hook] = world.daily.hooks.values()
    assert hook["retryType"] == "exponential"
    assert hook["hmac"] == new
    assert "eventTypes" not in world.daily.requests[-1][2]  # Daily's default set
    # The running receiver took the new secret (it re-read the file) and still takes the old.
    assert world.post_event(new) == 200
    assert world.post_event(SECRET) == 200
    assert len(world.inbox.rows()) == 2


def test_register_options(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = world.cli(
        "register",
        "--domain",
        "acme",
        "--url",
        world.receiver.url("acme"),
        "--events",
        "meeting.started",
        "recording.error",
        "--retry-type",
        "circuit-breaker",
        "--print-secret",
    )
    assert code == 0
    body = world.daily.requests[-1][2]
    assert body["eventTypes"] == ["meeting.started", "recording.error"]
    assert body["retryType"] == "circuit-breaker"
    assert f"secret: {body['hmac']}" in capsys.readouterr().out


def test_register_refused_by_daily_restores_the_file(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    url = world.receiver.url("acme").replace("/acme", "/globex")  # the receiver answers 404
    assert world.cli("register", "--domain", "acme", "--url", url) == 1
    err = capsys.readouterr().err
    assert "POST /webhooks: HTTP 400 (invalid-request-error)" in err
    assert url not in err  # Daily's free text is not repeated
    assert world.secret_file.read_text().strip() == SECRET
    assert world.daily.hooks == {}


def test_register_needs_a_secret_file_or_print_secret(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.write_config(webhook_secret_file=None, webhook_secret=SECRET)
    assert world.cli("register", "--domain", "acme", "--url", world.receiver.url("acme")) == 2
    err = capsys.readouterr().err
    assert "has no webhook_secret_file in the config" in err
    assert "--print-secret" in err
    assert world.daily.requests == []


def test_register_loads_a_config_whose_secret_file_does_not_exist_yet(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = world.tmp_path / "beta.secret"
    world.write_config(webhook_secret_file=str(fresh))
    # The config names a file that is not there: `register` still loads it and asks Daily.
    # (The running receiver watches another file, so Daily's verification fails: the new
    # file is removed again, as it did not exist before.)
    assert world.cli("register", "--domain", "acme", "--url", world.receiver.url("acme")) == 1
    assert "POST /webhooks: HTTP 400" in capsys.readouterr().err
    assert not fresh.exists()


def test_unknown_domain_is_a_usage_error(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert world.cli("status", "--domain", "globex") == 2
    assert "--domain 'globex' is not in the config (it has: acme)" in capsys.readouterr().err


def test_status_and_reactivate(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert world.cli("status") == 0
    assert "acme: no webhook (create one: `daily-otel-bridge webhooks register" in (
        capsys.readouterr().out
    )
    assert world.cli("register", "--domain", "acme", "--url", world.receiver.url("acme")) == 0
    capsys.readouterr()
    [hook] = world.daily.hooks.values()
    assert world.cli("status", "--domain", "acme") == 0
    out = capsys.readouterr().out
    assert f"{hook['uuid']}  ACTIVE  failedCount=0  retryType=exponential" in out
    assert hook["hmac"] not in out
    # Daily gives up on the hook (circuit breaker): said plainly, with the fix; exit 1.
    hook.update(state="FAILED", failedCount=3)
    assert world.cli("status") == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert "run `daily-otel-bridge webhooks reactivate --domain acme`" in out
    assert world.cli("reactivate", "--domain", "acme") == 0
    assert f"webhook {hook['uuid']} is now ACTIVE" in capsys.readouterr().out
    assert world.daily.requests[-1] == (
        "POST",
        f"/v1/webhooks/{hook['uuid']}",
        {"url": hook["url"]},
    )
    assert world.cli("status") == 0
    assert world.cli("reactivate", "--domain", "acme") == 0
    assert "no FAILED webhook; nothing to re-activate" in capsys.readouterr().out
    assert world.cli("reactivate", "--domain", "acme", "--uuid", "nope") == 2


def test_numeric_states_are_named(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # Daily documents the state as a number too (FAILED: 0, ACTIVE: 1, STOPPED: 2).
    world.daily.hooks["h"] = {
        "uuid": "h",
        "url": "https://x.example/webhooks/acme",
        "state": 0,
        "failedCount": 3,
        "retryType": "circuit-breaker",
        "eventTypes": [],
    }
    assert world.cli("status") == 1
    assert "h  FAILED  failedCount=3" in capsys.readouterr().out


def test_a_refused_api_key(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.write_config(api_key="dk_wrong_key_123456")
    assert world.cli("status") == 1
    err = capsys.readouterr().err
    assert "GET /webhooks: HTTP 401" in err
    assert "dk_wrong_key_123456" not in err
    assert json.dumps(err)  # one readable line
