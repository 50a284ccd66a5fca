"""Daily's `/webhooks` REST endpoints, for the operator commands (`webhooks register`,
`status`, `reactivate`): https://docs.daily.co/reference/rest-api/webhooks.

* `GET /webhooks`: the domain's hooks;
* `POST /webhooks`: create one (`url`, `retryType`, `eventTypes`, `hmac`, `basicAuth`). Daily
  first POSTs `{"test":"test"}` to the URL and refuses (400) if it is not answered 200 quickly;
* `POST /webhooks/:uuid`: update one; sending its `url` again re-activates a hook that Daily
  put in state `FAILED` (circuit-breaker mode, after 3 failed deliveries)
  (https://docs.daily.co/reference/rest-api/webhooks/update-webhook).

A few requests, run by hand: one attempt each, no retry (a create retried after a lost answer
would make a second hook), its own short-lived session rather than the daemon's paced client.
Nothing secret leaves here: the `hmac` and `basicAuth` Daily echoes back are dropped, errors
carry the endpoint, status and Daily's error type only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp

from daily_otel_bridge.daily.client import (
    AuthError,
    NotFoundError,
    PermanentError,
    TransientError,
    tls_reason,
    user_agent_for,
)
from daily_otel_bridge.tls import client_context

__all__ = ["RETRY_TYPES", "Hook", "RetryType", "WebhooksApi", "hook_state"]

RetryType = Literal["exponential", "circuit-breaker"]
RETRY_TYPES: Final = ("exponential", "circuit-breaker")
# Daily documents the state both as a name and as a number (FAILED: 0, ACTIVE: 1, STOPPED: 2).
_STATE_NUMBERS: Final = {0: "FAILED", 1: "ACTIVE", 2: "STOPPED"}


def hook_state(value: object) -> str:
    """Daily's `state` as a name (`ACTIVE`, `FAILED`, ...), whichever form it came in."""
    if isinstance(value, bool):
        return "UNKNOWN"
    if isinstance(value, int):
        return _STATE_NUMBERS.get(value, f"STATE_{value}")
    if isinstance(value, str) and value.strip():
        return value.strip().upper()
    return "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Hook:
    """One of Daily's webhooks, without its secret."""

    uuid: str
    url: str
    state: str
    failed_count: int | None
    retry_type: str | None
    event_types: tuple[str, ...]

    @classmethod
    def from_json(cls, item: object) -> Hook:
        if not isinstance(item, dict):
            raise TransientError("GET /webhooks: a webhook is not a JSON object")
        uuid = item.get("uuid") or item.get("id")
        url = item.get("url")
        if not isinstance(uuid, str) or not isinstance(url, str):
            raise TransientError("GET /webhooks: a webhook has no uuid or url")
        failed = item.get("failedCount")
        if isinstance(failed, bool) or not isinstance(failed, int):
            failed = None
        events = item.get("eventTypes")
        retry_type = item.get("retryType")
        return cls(
            uuid=uuid,
            url=url,
            state=hook_state(item.get("state")),
            failed_count=failed
            if isinstance(failed, int) and not isinstance(failed, bool)
            else None,
            retry_type=retry_type if isinstance(retry_type, str) else None,
            event_types=tuple(e for e in events if isinstance(e, str))
            if isinstance(events, list)
            else (),
        )


class WebhooksApi:
    def __init__(
        self,
        *,
        domain: str,
        api_url: str,
        api_key: str,
        timeout: float = 30.0,
        ca_file: Path | None = None,
    ) -> None:
        self.domain = domain
        self._base = api_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent_for(None),
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhooksApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            tls = client_context(self._ca_file) if self._base.startswith("https:") else False
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls),
                timeout=self._timeout,
                headers=self._headers,
            )
        return self._session

    async def list_hooks(self) -> list[Hook]:
        body = await self._request("GET", "webhooks", None)
        # A list, or (like Daily's other list endpoints) {"data": [...]}.
        items = body.get("data") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise TransientError("GET /webhooks: the answer is not a list of webhooks")
        return [Hook.from_json(item) for item in items]

    async def create(
        self,
        *,
        url: str,
        secret: str,
        retry_type: RetryType = "exponential",
        event_types: Sequence[str] = (),
        basic_auth: str | None = None,
    ) -> Hook:
        """Create a hook signing with `secret` (base64); `event_types` empty: Daily's
        default set. `basic_auth`: the credentials Daily sends, as it expects them."""
        payload: dict[str, Any] = {"url": url, "retryType": retry_type, "hmac": secret}
        if event_types:
            payload["eventTypes"] = list(event_types)
        if basic_auth is not None:
            payload["basicAuth"] = basic_auth
        return Hook.from_json(await self._request("POST", "webhooks", payload))

    async def reactivate(self, hook: Hook) -> Hook:
        """Send the hook's url again: Daily re-activates a FAILED hook."""
        body = await self._request("POST", f"webhooks/{hook.uuid}", {"url": hook.url})
        return Hook.from_json(body)

    async def _request(self, method: str, endpoint: str, payload: dict[str, Any] | None) -> Any:
        url = f"{self._base}/{endpoint}"
        where = f"{method} /{endpoint.split('/')[0]}"
        try:
            async with self._http().request(method, url, json=payload) as resp:
                raw = await resp.read()
                if resp.status == 200:
                    try:
                        return json.loads(raw)
                    except (ValueError, UnicodeDecodeError):
                        raise TransientError(f"{where}: the answer is not JSON") from None
                error_type = _error_type(raw)
                message = f"{where}: HTTP {resp.status}" + (
                    f" ({error_type})" if error_type else ""
                )
                if resp.status in (401, 403):
                    raise AuthError(
                        f"{message}: Daily refused the API key of domain {self.domain!r}",
                        status=resp.status,
                        error_type=error_type,
                    )
                if resp.status == 404:
                    raise NotFoundError(message, status=resp.status, error_type=error_type)
                if resp.status == 429 or resp.status >= 500:
                    raise TransientError(message, status=resp.status, error_type=error_type)
                raise PermanentError(message, status=resp.status, error_type=error_type)
        except aiohttp.ClientConnectorCertificateError as exc:
            raise PermanentError(
                f"{where}: TLS certificate of the Daily API not trusted "
                f"({tls_reason(exc.certificate_error)}); set ca_file"
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None


def _error_type(raw: bytes) -> str | None:
    """Daily's stable `error` type, capped; its free-text `info` may quote what we sent (the
    URL, the secret) and is not repeated."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:64]
    return None
