"""Words for trouble: error texts cut at a word, and a hint for each common cause. No I/O.

The hints name the setting to look at; they are matched on the error *text* the transports
and the Daily client produce (which never carries a secret), so they stay testable as a
table.
"""

from __future__ import annotations

import re
from typing import Protocol

ELLIPSIS = "…"


def clip(text: str, limit: int = 200) -> str:
    """`text` shortened to about `limit` characters at a word boundary, never mid-word."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + ELLIPSIS


_EXPORT_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), hint)
    for pattern, hint in (
        (
            r"WRONG_VERSION_NUMBER|tls handshake|ssl handshake|ClientConnectorSSLError|"
            r"ClientSSLError|record layer failure|packet length too long",
            "TLS handshake failed: an https:// endpoint towards a plaintext receiver? use "
            "http:// for a receiver without TLS (or https:// for one with it)",
        ),
        (
            r"certificate",
            "the receiver's certificate is not trusted: set export.certificate_file to the CA "
            "bundle that signed it",
        ),
        (
            r"UNAUTHENTICATED|PERMISSION_DENIED|HTTP 401|HTTP 403",
            "the backend refused the credentials: check export.headers (API key, Authorization)",
        ),
        (
            r"HTTP 404|UNIMPLEMENTED",
            "nothing serves OTLP at that path: check export.endpoint (the HTTP exporter "
            "appends /v1/logs) and export.protocol (grpc on 4317, http/protobuf on 4318)",
        ),
        (
            r"refused|failed to connect|ClientConnectorError|Connect call failed|"
            r"UNAVAILABLE|ServerDisconnected|No route",
            "nothing answers at export.endpoint: check the host and port (gRPC 4317, "
            "HTTP 4318) and that the receiver is running",
        ),
        (
            r"DEADLINE_EXCEEDED|Timeout",
            "the backend did not answer within export.timeout: is it overloaded, or "
            "the endpoint behind a firewall that drops packets?",
        ),
        (
            r"HTTP 413|RESOURCE_EXHAUSTED",
            "the backend refuses requests this large: lower export.batch_size",
        ),
    )
)

_DAILY_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), hint)
    for pattern, hint in (
        (r"HTTP 401|HTTP 403|refused the API key", "check the domain's api_key / api_key_file"),
        (r"certificate", "set the domain's ca_file to the CA bundle that signed it"),
        (r"HTTP 429", "Daily asks to slow down: lower requests_per_second"),
        (
            r"ClientConnectorError|refused|Connect call failed|TimeoutError|ServerDisconnected",
            "Daily is not reachable: check api_url and the network path to it",
        ),
        (r"HTTP 5\d\d", "Daily answered with a server error: it is retried with backoff"),
    )
)


def export_hint(message: str) -> str | None:
    """What to check for an export error text, or None when no common cause matches."""
    return _first_hint(_EXPORT_HINTS, message)


def daily_hint(message: str) -> str | None:
    """What to check for a Daily API error text."""
    return _first_hint(_DAILY_HINTS, message)


def _first_hint(table: tuple[tuple[re.Pattern[str], str], ...], message: str) -> str | None:
    for pattern, hint in table:
        if pattern.search(message):
            return hint
    return None


class AttemptObserver(Protocol):
    """Told of every failed attempt of a retried call, and of the next success
    (`pipeline.alarm.Alarm`)."""

    def attempt_failed(self, error_type: str, message: str, retry_in: float | None) -> None: ...

    def succeeded(self) -> None: ...
