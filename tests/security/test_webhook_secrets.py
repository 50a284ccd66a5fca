"""Webhook secrets (each domain's HMAC secret, the basic auth password) and the signatures made
with them appear in no log line, no answer and no error text, whatever the receiver meets."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from daily_otel_bridge.config.settings import ConfigError, parse_settings, render_effective
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.service.logging import configure_logging
from daily_otel_bridge.service.webhooks import start_webhook_server
from tests.webhook_inbox import SqliteInbox, event_body, signed_headers

pytestmark = pytest.mark.timeout(60)

# Distinctive, so that a plain substring search finds any leak.
SECRET = base64.b64encode(b"PLANTED-webhook-secret-7f3a9c2e5b").decode()
NEXT_SECRET = base64.b64encode(b"PLANTED-next-webhook-secret-0c8e6").decode()
PASSWORD = "PLANTED_basic_password_3d9f1b7e"


def assert_clean(where: str, text: str, extra: tuple[str, ...] = ()) -> None:
    for secret in (SECRET, NEXT_SECRET, PASSWORD, *extra):
        assert secret not in text, f"{where} shows a secret"
        assert secret[:16] not in text, f"{where} shows part of a secret"


async def test_no_secret_in_logs_or_answers(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, log_format="json")
    secret_file = tmp_path / "acme.secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    settings = parse_settings(
        {
            "domains": [{"name": "acme", "api_key": "k", "webhook_secret_file": str(secret_file)}],
            "webhooks": {
                "listen": "127.0.0.1:0",
                "basic_auth_user": "daily",
                "basic_auth_password": PASSWORD,
            },
        },
        environ={},
    )
    inbox = SqliteInbox(tmp_path / "inbox.db")
    server = await start_webhook_server(settings, inbox, BridgeMetrics(CollectorRegistry()))
    auth = {"Authorization": "Basic " + base64.b64encode(f"daily:{PASSWORD}".encode()).decode()}
    signatures: list[str] = []
    answers: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def post(body: bytes, headers: dict[str, str]) -> None:
                signatures.append(headers.get("X-Webhook-Signature", ""))
                async with session.post(server.url("acme"), data=body, headers=headers) as resp:
                    answers.append(f"{resp.status} {await resp.text()} {dict(resp.headers)}")

            body = event_body("evt-1")
            await post(body, {**signed_headers(body, SECRET), **auth})  # accepted
            await post(body, {**signed_headers(body, SECRET), **auth})  # a repeat
            await post(body, signed_headers(body, SECRET))  # no basic auth
            wrong = base64.b64encode(b"daily:" + PASSWORD[::-1].encode()).decode()
            wrong_auth = {"Authorization": f"Basic {wrong}"}
            await post(body, {**signed_headers(body, SECRET), **wrong_auth})
            await post(body, {**signed_headers(body, NEXT_SECRET), **auth})  # wrong secret
            stale = signed_headers(body, SECRET, timestamp=time.time() - 3600)
            await post(body, {**stale, **auth})
            await post(b"not json", {**signed_headers(b"not json", SECRET), **auth})
            # A store failure whose own text quotes the secret (a careless driver).
            inbox.fail = OSError(f"cannot write {SECRET}")
            other = event_body("evt-2")
            await post(other, {**signed_headers(other, SECRET), **auth})
            inbox.fail = None
            # The secret file replaced by an unusable one, then by a new secret.
            secret_file.write_text(f"{NEXT_SECRET} junk")
            await post(other, {**signed_headers(other, NEXT_SECRET), **auth})
            secret_file.write_text(NEXT_SECRET)
            os.utime(secret_file, ns=(time.time_ns() + 2 * 10**9,) * 2)
            await post(other, {**signed_headers(other, NEXT_SECRET), **auth})
    finally:
        await server.stop()
        inbox.close()
    log_text = stream.getvalue()
    assert "webhook refused" in log_text  # the refusals were logged ...
    assert "webhook secret re-read" in log_text
    assert_clean("the log", log_text, tuple(s for s in signatures if s))  # ... without secrets
    assert_clean("the answers", "\n".join(answers), tuple(s for s in signatures if s))
    assert answers[0].startswith("200")
    assert answers[-1].startswith("200")


def test_no_secret_in_config_errors_or_check_config(tmp_path: Path) -> None:
    bad_secret = "PLANTED not base64 secret value"
    with pytest.raises(ConfigError) as info:
        parse_settings(
            {
                "domains": [{"name": "acme", "api_key": "k", "webhook_secret": bad_secret}],
                "webhooks": {"basic_auth_user": "u:x", "basic_auth_password": PASSWORD},
            },
            environ={},
        )
    assert_clean("the config error", str(info.value), (bad_secret,))
    settings = parse_settings(
        {
            "domains": [{"name": "acme", "api_key": "k", "webhook_secret": SECRET}],
            "webhooks": {"basic_auth_user": "daily", "basic_auth_password": PASSWORD},
        },
        environ={},
    )
    assert_clean("check-config", render_effective(settings))
    assert_clean("repr of the settings", repr(settings))
