"""The receiver of Daily's webhooks: one URL per domain, `<path_prefix>/<domain>`.

A POST is answered 200 only once its event is durably stored (the state store's inbox, from
which the domain's pipeline exports it exactly once); Daily retries anything else, so a crash
between our answer and the store can never lose an event. The checks, in order, each with its
status and its `webhook_events_refused_total` reason:

1. a configured domain, else 404 (`unknown_domain`);
2. the body within `max_body_bytes`, else 413 (`size`);
3. basic auth when configured, else 401 (`auth`);
4. Daily's signature and timestamp: 400 when the headers are missing or unreadable
   (`malformed`), 401 for a wrong signature (`signature`) or one outside the tolerance
   (`stale`). Daily's verification POST (`{"test":"test"}`, sent when a hook is created) is
   answered 200, stored nowhere, when it is correctly signed *or carries no signature at
   all*: Daily's docs do not say it is signed, and refusing it would make creating a hook
   impossible; it carries nothing, so answering it gives nothing away;
5. the event parsed: 400 (`malformed`) for a body that is no Daily event (not JSON, no id, no
   type). Daily will retry it, and that is the point: the body is authentic (signed), so a
   refusal is the loud way to say "Daily sent something we cannot identify" (its dashboard and
   our counter show it); accepting it would need an id to de-duplicate its retries by, which
   it does not have;
6. stored: 200 (`stored`, or a repeat within `dedupe_window`: 200, not stored again); a store
   that fails or takes longer than `STORE_TIMEOUT` answers 503 (`unavailable`), logged
   without the body, and Daily retries (a store that did commit then sees a repeat).

Secrets (webhook secrets, the basic auth password) are registered with the log scrubber and
never put in a log line or an answer. Answers carry a reason word only, never input.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hmac
import os
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import structlog
from aiohttp import web

from daily_otel_bridge.config.errors import ConfigError
from daily_otel_bridge.config.loading import read_secret_file
from daily_otel_bridge.config.model import DomainSettings, Settings, WebhookSettings
from daily_otel_bridge.core.webhook_events import (
    MalformedEvent,
    WebhookEvent,
    is_verification,
    parse_event,
)
from daily_otel_bridge.core.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verdict,
    decode_secret,
    verify,
)
from daily_otel_bridge.instruments import UNKNOWN_DOMAIN_LABEL, BridgeMetrics
from daily_otel_bridge.service.logging import register_secrets

__all__ = [
    "STORE_TIMEOUT",
    "WebhookInbox",
    "WebhookReceiver",
    "WebhookServer",
    "start_webhook_server",
    "webhook_secrets_of",
]

log = structlog.get_logger("daily_otel_bridge.service.webhooks")

# Daily counts an answer that takes "more than a few seconds" as a failure; a store slower than
# this answers 503 rather than let Daily time out (the outcome is the same, a retry, but we
# know it and count it).
STORE_TIMEOUT: Final = 5.0
# A refusal is logged at most this often per domain and reason: anyone can POST garbage, and
# the counter has every one of them.
REFUSAL_LOG_INTERVAL: Final = 60.0
# How many keys a domain keeps while its secret file is replaced (the new one and the last).
_MAX_KEYS: Final = 2


class WebhookInbox(Protocol):
    """What the receiver needs of the state store (SQLite or PostgreSQL `CursorStore`)."""

    async def inbox_add(
        self, domain: str, event_id: str, body: bytes, received_at: float, dedupe_window: float
    ) -> bool:
        """Store the event durably and return True; or return False, storing nothing, when
        the id was stored for this domain less than `dedupe_window` seconds before."""
        ...


OnStored = Callable[[str, WebhookEvent], None]


def webhook_secrets_of(settings: Settings) -> list[str]:
    """Every webhook secret and the basic auth password, for the log scrubber (the lead adds
    these to `service.app.secrets_of`)."""
    values = [d.webhook_secret.get_secret_value() for d in settings.domains if d.webhook_secret]
    hooks = settings.webhooks
    if hooks is not None and hooks.basic_auth_password is not None:
        values.append(hooks.basic_auth_password.get_secret_value())
    return values


@dataclass
class _Domain:
    """One served domain: its accepted HMAC keys and the file they come from (if any)."""

    name: str
    keys: tuple[bytes, ...]
    secret_file: Path | None
    file_stamp: tuple[int, int] | None = None

    def refresh(self) -> bool:
        """Read the secret file again if it changed (`webhooks register` rewrote it); True
        when a new key was taken. A broken file keeps the keys we have."""
        if self.secret_file is None:
            return False
        try:
            info = os.stat(self.secret_file)
        except OSError:
            return False
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self.file_stamp:
            return False
        self.file_stamp = stamp
        try:
            secret = read_secret_file(self.secret_file)
            key = decode_secret(secret)
        except ValueError as exc:
            log.warning(
                "webhook secret file unusable; keeping the secret in use",
                domain=self.name,
                file=str(self.secret_file),
                problem=str(exc),
            )
            return False
        register_secrets([secret])
        if key in self.keys:
            return False
        self.keys = (key, *self.keys)[:_MAX_KEYS]
        log.info("webhook secret re-read from its file", domain=self.name)
        return True


def _served(domains: Sequence[DomainSettings]) -> dict[str, _Domain]:
    served: dict[str, _Domain] = {}
    for domain in domains:
        if domain.webhook_secret is None:
            continue
        entry = _Domain(
            name=domain.name,
            keys=(decode_secret(domain.webhook_secret.get_secret_value()),),
            secret_file=domain.webhook_secret_file,
        )
        if entry.secret_file is not None:
            try:
                info = os.stat(entry.secret_file)
                entry.file_stamp = (info.st_mtime_ns, info.st_size)
            except OSError:
                pass
        served[domain.name] = entry
    return served


@dataclass
class _Throttle:
    interval: float
    last: dict[tuple[str, str], float] = field(default_factory=dict)
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)

    def take(self, key: tuple[str, str], now: float) -> int | None:
        """None: do not log now; else how many were suppressed since the last line."""
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return None
        if len(self.last) > 1024:  # bounded: keys are (configured domain, reason)
            self.last.clear()
        self.last[key] = now
        return self.suppressed.pop(key, 0)


class _TooLarge(Exception):
    pass


class WebhookReceiver:
    """The aiohttp application; `WebhookServer` binds it."""

    def __init__(
        self,
        settings: WebhookSettings,
        domains: Sequence[DomainSettings],
        store: WebhookInbox,
        metrics: BridgeMetrics,
        *,
        clock: Callable[[], float] = time.time,
        on_stored: OnStored | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self._clock = clock
        self._on_stored = on_stored
        self._domains = _served(domains)
        # Matching is case-insensitive: Daily domains are DNS labels.
        self._by_lower = {name.lower(): entry for name, entry in self._domains.items()}
        self._basic = _basic_credentials(settings)
        self._throttle = _Throttle(REFUSAL_LOG_INTERVAL)
        metrics.init_webhooks(list(self._domains))

    @property
    def domains(self) -> list[str]:
        return list(self._domains)

    def update_domains(self, domains: Sequence[DomainSettings]) -> None:
        """Serve these domains from now on (a reload: domains added or removed, secrets
        changed)."""
        self._domains = _served(domains)
        self._by_lower = {name.lower(): entry for name, entry in self._domains.items()}
        self.metrics.init_webhooks(list(self._domains))

    def app(self) -> web.Application:
        app = web.Application()
        prefix = self.settings.path_prefix
        app.router.add_post(prefix + "/{domain}", self._handle)
        return app

    # -- the checks ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        received_at = self._clock()
        entry = self._by_lower.get(request.match_info["domain"].lower())
        if entry is None:
            return self._refuse(UNKNOWN_DOMAIN_LABEL, "unknown_domain", 404, "no such domain")
        domain = entry.name
        try:
            body = await self._read_body(request)
        except _TooLarge:
            return self._refuse(domain, "size", 413, f"body over {self.settings.max_body_bytes}")
        if self._basic is not None and not _basic_ok(request, self._basic):
            response = self._refuse(domain, "auth", 401, "basic auth missing or wrong")
            response.headers["WWW-Authenticate"] = 'Basic realm="daily-otel-bridge webhooks"'
            return response
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if timestamp is None and signature is None and is_verification(body):
            return self._verification(domain)
        verdict = self._verify(entry, timestamp, signature, body, received_at)
        if not verdict.ok:
            assert verdict.refusal is not None
            status = 400 if verdict.refusal == "malformed" else 401
            return self._refuse(domain, verdict.refusal, status, verdict.detail)
        if is_verification(body):
            return self._verification(domain)
        try:
            event = parse_event(body)
        except MalformedEvent as exc:
            return self._refuse(domain, "malformed", 400, str(exc), size=len(body))
        try:
            stored = await asyncio.wait_for(
                self.store.inbox_add(
                    domain, event.id, body, received_at, self.settings.dedupe_window
                ),
                timeout=STORE_TIMEOUT,
            )
        except Exception as exc:  # any store failure: Daily retries, nothing is lost
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return self._refuse(
                domain, "unavailable", 503, f"the state store failed ({reason})", event_id=event.id
            )
        self.metrics.webhook_events_accepted.labels(domain).inc()
        if stored:
            self.metrics.webhook_events_stored.labels(domain).inc()
            self._notify(domain, event)
        else:
            self.metrics.webhook_events_repeated.labels(domain).inc()
            log.debug("webhook event repeated", domain=domain, event_id=event.id, type=event.type)
        self.metrics.webhook_accept_duration.labels(domain).observe(time.perf_counter() - started)
        return web.json_response({"status": "stored" if stored else "repeat"})

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            # Never more than the limit (+1 to see that there is more) is held in memory.
            chunk = await request.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _TooLarge
        return b"".join(chunks)

    def _verify(
        self,
        entry: _Domain,
        timestamp: str | None,
        signature: str | None,
        body: bytes,
        now: float,
    ) -> Verdict:
        tolerance = self.settings.timestamp_tolerance
        verdict = verify(
            entry.keys,
            timestamp=timestamp,
            signature=signature,
            body=body,
            now=now,
            tolerance=tolerance,
        )
        if verdict.refusal == "signature" and entry.refresh():
            # The secret file changed (a hook registered since we started): try its key.
            verdict = verify(
                entry.keys,
                timestamp=timestamp,
                signature=signature,
                body=body,
                now=now,
                tolerance=tolerance,
            )
        return verdict

    def _verification(self, domain: str) -> web.Response:
        self.metrics.webhook_verifications.labels(domain).inc()
        log.info("webhook verification answered", domain=domain)
        return web.json_response({"status": "verified"})

    def _notify(self, domain: str, event: WebhookEvent) -> None:
        if self._on_stored is None:
            return
        try:
            self._on_stored(domain, event)
        except Exception as exc:  # a hint is only a hint: never fail the answer for it
            log.warning(
                "webhook hint failed", domain=domain, event_id=event.id, error=type(exc).__name__
            )

    def _refuse(
        self,
        domain: str,
        reason: str,
        status: int,
        detail: str,
        *,
        size: int | None = None,
        event_id: str | None = None,
    ) -> web.Response:
        self.metrics.webhook_events_refused.labels(domain, reason).inc()
        suppressed = self._throttle.take((domain, reason), time.monotonic())
        if suppressed is not None:
            level = log.error if reason == "unavailable" else log.warning
            level(
                "webhook refused",
                domain=domain,
                reason=reason,
                status=status,
                detail=detail,
                event_id=event_id,
                body_bytes=size,
                suppressed_since_last=suppressed or None,
            )
        return web.json_response({"error": reason}, status=status)


# -- basic auth ----------------------------------------------------------------------------------


def _basic_credentials(settings: WebhookSettings) -> bytes | None:
    if settings.basic_auth_user is None or settings.basic_auth_password is None:
        return None
    password = settings.basic_auth_password.get_secret_value()
    return f"{settings.basic_auth_user}:{password}".encode()


def _basic_ok(request: web.Request, expected: bytes) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return hmac.compare_digest(given, expected)


# -- the server ----------------------------------------------------------------------------------


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context for `webhooks.tls_cert_file` / `tls_key_file` (TLS 1.2 at least);
    ConfigError naming the key when the files cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except FileNotFoundError:
        raise ConfigError(
            [("webhooks.tls_cert_file", f"{cert_file} or {key_file} does not exist")]
        ) from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigError(
            [("webhooks.tls_cert_file", f"cannot load {cert_file} with {key_file}: {reason}")]
        ) from None
    return context


def _listen_error(listen: str, error: OSError) -> ConfigError:
    if error.errno == errno.EADDRINUSE:
        reason = "address already in use (another process listens there; pick another port)"
    elif error.errno == errno.EADDRNOTAVAIL:
        reason = "this host has no such address"
    elif error.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    else:
        reason = error.strerror or type(error).__name__
    return ConfigError([("webhooks.listen", f"cannot listen on {listen}: {reason}")])


class WebhookServer:
    """The bound receiver; `stop()` closes it (answers in flight finish first)."""

    def __init__(self, receiver: WebhookReceiver, runner: web.AppRunner, port: int, tls: bool):
        self.receiver = receiver
        self._runner: web.AppRunner | None = runner
        self.port = port
        self.tls = tls

    @property
    def address(self) -> str:
        host = self.receiver.settings.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def url(self, domain: str) -> str:
        """The URL of `domain`'s hook as this server serves it (for tests and logs)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.address}{self.receiver.settings.path_prefix}/{domain}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def start_webhook_server(
    settings: Settings,
    store: WebhookInbox,
    metrics: BridgeMetrics,
    *,
    on_stored: OnStored | None = None,
    clock: Callable[[], float] = time.time,
) -> WebhookServer:
    """Bind `webhooks.listen` and serve every domain that has a webhook secret.

    Raises ConfigError (naming the key) when the port cannot be bound or the TLS files cannot
    be loaded. `on_stored(domain, event)` is called for each newly stored event, after it is
    durable and before the 200 (for the poller's hints, `core.webhook_events.poller_hint`);
    it must not block, and what it raises is logged and ignored.
    """
    hooks = settings.webhooks
    if hooks is None or not hooks.enabled:
        raise ConfigError([("webhooks", "the webhook receiver is not enabled")])
    register_secrets(webhook_secrets_of(settings))
    receiver = WebhookReceiver(
        hooks,
        [d for d in settings.domains if d.enabled],
        store,
        metrics,
        clock=clock,
        on_stored=on_stored,
    )
    context = None
    if hooks.tls_cert_file is not None and hooks.tls_key_file is not None:
        context = server_tls_context(hooks.tls_cert_file, hooks.tls_key_file)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, hooks.host, hooks.port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise _listen_error(hooks.listen, exc) from None
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = int(sockets[0].getsockname()[1]) if sockets else hooks.port
    started = WebhookServer(receiver, runner, port, tls=context is not None)
    unserved = [d.name for d in settings.domains if d.enabled and d.webhook_secret is None]
    log.info(
        "webhook receiver listening",
        address=started.address,
        tls=context is not None,
        domains=receiver.domains,
        not_served=unserved or None,
    )
    return started
