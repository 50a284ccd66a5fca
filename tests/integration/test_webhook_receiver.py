"""The webhook receiver over real HTTP on 127.0.0.1, storing into a real SQLite inbox: what is
accepted is stored once, what is refused is counted and stored nowhere."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from prometheus_client import CollectorRegistry

from daily_otel_bridge.config.settings import ConfigError, Settings, parse_settings
from daily_otel_bridge.core.webhook_events import SessionStarted, WebhookEvent, poller_hint
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.service.webhooks import WebhookServer, start_webhook_server
from tests.webhook_inbox import OTHER_SECRET, SECRET, SqliteInbox, event_body, signed_headers

pytestmark = pytest.mark.timeout(60)


def settings_for(tmp_path: Path, **hooks: Any) -> Settings:
    doc: dict[str, Any] = {
        "state_path": str(tmp_path / "state.db"),
        "domains": [
            {"name": "acme", "api_key": "k-123", "webhook_secret": SECRET},
            {"name": "nohook", "api_key": "k-456"},
        ],
        "webhooks": {"listen": "127.0.0.1:0", **hooks},
    }
    return parse_settings(doc, environ={})


def value(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


class Rig:
    def __init__(self, server: WebhookServer, inbox: SqliteInbox, metrics: BridgeMetrics):
        self.server, self.inbox, self.metrics = server, inbox, metrics
        self.session = aiohttp.ClientSession()
        self.hints: list[tuple[str, WebhookEvent]] = []

    async def post(
        self, body: bytes, headers: dict[str, str] | None = None, domain: str = "acme", **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            self.server.url(domain), data=body, headers=headers or {}, **kw
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    def refused(self, reason: str, domain: str = "acme") -> float:
        return value(
            self.metrics,
            "daily_otel_bridge_webhook_events_refused_total",
            domain=domain,
            reason=reason,
        )

    def count(self, what: str, domain: str = "acme") -> float:
        return value(self.metrics, f"daily_otel_bridge_webhook_events_{what}_total", domain=domain)


@asynccontextmanager
async def make_rig(tmp_path: Path, **hooks: Any) -> AsyncIterator[Rig]:
    settings = settings_for(tmp_path, **hooks)
    inbox = SqliteInbox(tmp_path / "inbox.db")
    metrics = BridgeMetrics(CollectorRegistry())
    hints: list[tuple[str, WebhookEvent]] = []
    server = await start_webhook_server(
        settings, inbox, metrics, on_stored=lambda d, e: hints.append((d, e))
    )
    made = Rig(server, inbox, metrics)
    made.hints = hints
    try:
        yield made
    finally:
        await made.session.close()
        await server.stop()
        inbox.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as made:
        yield made


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_a_signed_event_is_stored_once(rig: Rig) -> None:
    body = event_body("evt-1")
    status, answer = await rig.post(body, signed_headers(body))
    assert (status, answer) == (200, {"status": "stored"})
    assert rig.inbox.rows() == [("acme", "evt-1", body)]
    assert rig.count("accepted") == 1
    assert rig.count("stored") == 1
    # Stored first, then the hint: the lead feeds it to the session table.
    assert [(d, poller_hint(e)) for d, e in rig.hints] == [
        ("acme", SessionStarted("mtg-1", "room-a", 1_760_000_000_000))
    ]


async def test_a_repeat_is_answered_and_not_stored_again(rig: Rig) -> None:
    body = event_body("evt-1")
    assert (await rig.post(body, signed_headers(body)))[0] == 200
    # Daily's retry: same id, signed again later (a new timestamp).
    status, answer = await rig.post(body, signed_headers(body, timestamp=time.time() + 1))
    assert (status, answer) == (200, {"status": "repeat"})
    assert len(rig.inbox.rows()) == 1
    assert rig.count("accepted") == 2
    assert rig.count("stored") == 1
    assert rig.count("repeated") == 1
    assert len(rig.hints) == 1


@pytest.mark.parametrize(
    ("case", "reason", "status"),
    [
        ("tampered body", "signature", 401),
        ("wrong secret", "signature", 401),
        ("stale timestamp", "stale", 401),
        ("timestamp in the future", "stale", 401),
        ("no signature headers", "malformed", 400),
        ("timestamp not a number", "malformed", 400),
    ],
)
async def test_refused_posts_are_counted_and_not_stored(
    rig: Rig, case: str, reason: str, status: int
) -> None:
    body = event_body("evt-x")
    headers = signed_headers(body)
    if case == "tampered body":
        body = body.replace(b"mtg-1", b"mtg-2")
    elif case == "wrong secret":
        headers = signed_headers(body, secret=OTHER_SECRET)
    elif case == "stale timestamp":
        headers = signed_headers(body, timestamp=time.time() - 301)
    elif case == "timestamp in the future":
        headers = signed_headers(body, timestamp=time.time() + 301)
    elif case == "no signature headers":
        headers = {"Content-Type": "application/json"}
    elif case == "timestamp not a number":
        headers["X-Webhook-Timestamp"] = "soon"
    assert await rig.post(body, headers) == (status, {"error": reason})
    assert rig.inbox.rows() == []
    assert rig.refused(reason) == 1
    assert rig.count("accepted") == 0
    assert rig.hints == []


async def test_unknown_domain(rig: Rig) -> None:
    body = event_body("evt-1")
    for domain in ("globex", "nohook"):  # not configured; configured without a secret
        assert await rig.post(body, signed_headers(body), domain=domain) == (
            404,
            {"error": "unknown_domain"},
        )
    assert rig.refused("unknown_domain", domain="(unknown)") == 2
    assert rig.inbox.rows() == []


async def test_domain_is_matched_case_insensitively(rig: Rig) -> None:
    body = event_body("evt-1")
    assert (await rig.post(body, signed_headers(body), domain="ACME"))[0] == 200
    assert rig.inbox.rows()[0][0] == "acme"


async def test_body_over_the_limit(tmp_path: Path) -> None:
    async with make_rig(tmp_path, max_body_bytes=2048) as rig:
        body = event_body("evt-big", note="x" * 4096)
        assert await rig.post(body, signed_headers(body)) == (413, {"error": "size"})

        # Without a Content-Length (chunked), the limit holds as well.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 1000

        assert await rig.post(chunks(), signed_headers(body)) == (413, {"error": "size"})  # type: ignore[arg-type]
        assert rig.refused("size") == 2
        assert rig.inbox.rows() == []


async def test_malformed_event_is_refused(rig: Rig) -> None:
    for body in (b"not json", b'{"type": "meeting.started"}', b'{"id": "e"}', b"[]"):
        assert await rig.post(body, signed_headers(body)) == (400, {"error": "malformed"})
    assert rig.refused("malformed") == 4
    assert rig.inbox.rows() == []


async def test_verification_is_answered_and_not_stored(rig: Rig) -> None:
    body = b'{"test":"test"}'
    # Unsigned (Daily's docs do not say the verification is signed) and signed alike.
    assert await rig.post(body) == (200, {"status": "verified"})
    assert await rig.post(body, signed_headers(body)) == (200, {"status": "verified"})
    # Signed with the wrong secret: refused, which tells `register` the secret is wrong.
    assert (await rig.post(body, signed_headers(body, secret=OTHER_SECRET)))[0] == 401
    assert value(rig.metrics, "daily_otel_bridge_webhook_verifications_total", domain="acme") == 2
    assert rig.inbox.rows() == []


async def test_basic_auth(tmp_path: Path) -> None:
    async with make_rig(tmp_path, basic_auth_user="daily", basic_auth_password="pw-123456") as rig:
        body = event_body("evt-1")
        headers = signed_headers(body)
        assert await rig.post(body, headers) == (401, {"error": "auth"})
        assert (await rig.post(body, {**headers, **basic("daily", "nope")}))[0] == 401
        assert (await rig.post(body, {**headers, **basic("daily", "pw-123456")}))[0] == 200
        assert rig.refused("auth") == 2
        assert len(rig.inbox.rows()) == 1


async def test_store_failure_answers_503_and_daily_retry_succeeds(rig: Rig) -> None:
    body = event_body("evt-1")
    rig.inbox.fail = OSError("disk full")
    assert await rig.post(body, signed_headers(body)) == (503, {"error": "unavailable"})
    assert rig.refused("unavailable") == 1
    assert rig.inbox.rows() == []
    rig.inbox.fail = None
    assert (await rig.post(body, signed_headers(body)))[0] == 200
    assert len(rig.inbox.rows()) == 1


async def test_slow_store_answers_503(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("daily_otel_bridge.service.webhooks.STORE_TIMEOUT", 0.2)
    rig.inbox.delay = 1.0
    body = event_body("evt-1")
    assert await rig.post(body, signed_headers(body)) == (503, {"error": "unavailable"})


async def test_a_burst_of_1000_events_in_one_second_is_all_stored(rig: Rig) -> None:
    bodies = [event_body(f"evt-{i}") for i in range(1000)]
    started = time.monotonic()

    async def send(i: int, body: bytes) -> int:
        # Spread over one second, as Daily would deliver a burst.
        await asyncio.sleep(i / 1000)
        return (await rig.post(body, signed_headers(body)))[0]

    statuses = await asyncio.gather(*(send(i, b) for i, b in enumerate(bodies)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 1000
    assert len(rig.inbox.rows("acme")) == 1000
    assert rig.count("stored") == 1000
    assert elapsed < 10, f"1000 events took {elapsed:.1f}s"


async def test_a_rewritten_secret_file_is_picked_up(tmp_path: Path) -> None:
    # `webhooks register` writes a new secret while the daemon runs.
    secret_file = tmp_path / "acme.secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    settings = parse_settings(
        {
            "domains": [{"name": "acme", "api_key": "k", "webhook_secret_file": str(secret_file)}],
            "webhooks": {"listen": "127.0.0.1:0"},
        },
        environ={},
    )
    inbox = SqliteInbox(tmp_path / "inbox.db")
    server = await start_webhook_server(settings, inbox, BridgeMetrics(CollectorRegistry()))
    try:
        async with aiohttp.ClientSession() as session:
            body = event_body("evt-new")
            headers = signed_headers(body, secret=OTHER_SECRET)
            async with session.post(server.url("acme"), data=body, headers=headers) as resp:
                assert resp.status == 401
            secret_file.write_text(OTHER_SECRET + "\n")
            os.utime(secret_file, ns=(time.time_ns() + 10**9,) * 2)  # a new mtime for sure
            async with session.post(server.url("acme"), data=body, headers=headers) as resp:
                assert resp.status == 200
            # The old secret still works while the old hook exists.
            old = event_body("evt-old")
            async with session.post(
                server.url("acme"), data=old, headers=signed_headers(old)
            ) as resp:
                assert resp.status == 200
    finally:
        await server.stop()
        inbox.close()


async def test_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    async with make_rig(tmp_path, tls_cert_file=str(cert_file), tls_key_file=str(key_file)) as rig:
        assert rig.server.url("acme").startswith("https://127.0.0.1:")
        client = ssl.create_default_context()
        ca.configure_trust(client)
        body = event_body("evt-1")
        assert (await rig.post(body, signed_headers(body), ssl=client))[0] == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await rig.post(body, signed_headers(body))  # the system CAs do not trust it


async def test_bad_tls_files_and_busy_port_are_config_errors(tmp_path: Path) -> None:
    inbox = SqliteInbox(tmp_path / "inbox.db")
    metrics = BridgeMetrics(CollectorRegistry())
    (tmp_path / "junk.pem").write_text("not a certificate")
    bad = settings_for(
        tmp_path, tls_cert_file=str(tmp_path / "junk.pem"), tls_key_file=str(tmp_path / "junk.pem")
    )
    with pytest.raises(ConfigError, match=r"webhooks.tls_cert_file: cannot load"):
        await start_webhook_server(bad, inbox, metrics)
    first = await start_webhook_server(settings_for(tmp_path), inbox, metrics)
    try:
        busy = settings_for(tmp_path, listen=f"127.0.0.1:{first.port}")
        with pytest.raises(ConfigError, match=r"webhooks.listen: cannot listen on .* in use"):
            await start_webhook_server(busy, inbox, metrics)
    finally:
        await first.stop()
        inbox.close()


async def test_other_paths_and_methods(rig: Rig) -> None:
    base = rig.server.url("acme").rsplit("/webhooks/", 1)[0]
    async with rig.session.get(rig.server.url("acme")) as resp:
        assert resp.status == 405
    async with rig.session.post(base + "/other/acme", data=b"{}") as resp:
        assert resp.status == 404
    assert rig.inbox.rows() == []


def test_secret_material_is_base64(tmp_path: Path) -> None:
    # Guards the fixtures: Daily's secrets are base64 and so are ours.
    assert base64.b64decode(SECRET, validate=True)
