"""Daily's REST API: `GET /meetings` (discovery) and `GET /logs`, paced, retried, classified.

Every failure leaves this module as one of two types, so the pipeline only has to decide
"try again later" or "stop this domain / session":

* `TransientError`: 429, 5xx, time-outs, broken connections, unreadable bodies. Retried here
  with backoff first; raised once the attempts run out.
* `PermanentError`: the request itself is wrong (400), the session is gone (404), or the key
  is revoked (`AuthError`: 401/403). Never retried.

Messages carry the endpoint, status and Daily's error *type*, never the key or headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from daily_otel_bridge import __version__
from daily_otel_bridge.core.records import DailyRecord, Meeting
from daily_otel_bridge.core.retry import Failure, parse_retry_after, retry
from daily_otel_bridge.core.trouble import AttemptObserver
from daily_otel_bridge.daily.pacing import TokenBucket
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.tls import client_context

_log = structlog.get_logger(__name__)

MEETINGS_PAGE_LIMIT = 100
MAX_RETRY_AFTER = 120.0


class DailyApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, error_type: str | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class TransientError(DailyApiError):
    """Worth trying again later; `retry_after` is Daily's own wait (capped), if it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, error_type=error_type)
        self.retry_after = retry_after


class PermanentError(DailyApiError):
    """Trying again will not help."""


class AuthError(PermanentError):
    """The API key was refused (401/403): the domain stops until the key is fixed."""


class NotFoundError(PermanentError):
    """404: the session (or endpoint) does not exist any more."""


@dataclass(frozen=True, slots=True)
class LogsPage:
    logs: list[DailyRecord]
    metrics: list[DailyRecord]


def user_agent_for(replica_id: str | None) -> str:
    """`daily-otel-bridge/<version>`, plus ` (replica <id>)` with several replicas."""
    base = f"daily-otel-bridge/{__version__}"
    return base if replica_id is None else f"{base} (replica {replica_id})"


class DailyClient:
    """One aiohttp session and one token bucket per domain."""

    def __init__(
        self,
        *,
        domain: str,
        api_url: str,
        api_key: str,
        requests_per_second: float,
        timeout: float = 30.0,
        ca_file: Path | None = None,
        max_attempts: int = 5,
        metrics: BridgeMetrics | None = None,
        backoff_cap: float = 30.0,
        max_connections: int = 8,
        user_agent: str | None = None,
        guard: Callable[[], object] | None = None,
    ) -> None:
        # Runs before every attempt and raises to forbid it (a lease lost: fencing).
        self._guard = guard
        self.domain = domain
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if user_agent is not None:
            # With several replicas: `user_agent_for(replica_id)`, so that Daily's side (and
            # the simulator's request log) shows which replica read a domain.
            self._headers["User-Agent"] = user_agent
        self.bucket = TokenBucket(requests_per_second)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ca_file = ca_file
        self._max_attempts = max_attempts
        self._metrics = metrics or BridgeMetrics()
        self._backoff_cap = backoff_cap
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.requests_made = 0
        # Told of each failed attempt at once (the retries can last a while).
        self.observer: AttemptObserver | None = None

    async def __aenter__(self) -> DailyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=client_context(self._ca_file) if self._base.startswith("https:") else False,
                limit=self._max_connections,
            )
            # No cookie jar: Daily authenticates by bearer token, so a cookie an answer sets
            # (a proxy's, a load balancer's) has no business in the next request, and
            # matching the jar against every request costs ~10 % of a request's CPU.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def list_meetings(
        self,
        *,
        timeframe_start: int | None = None,
        ongoing: bool | None = None,
        room: str | None = None,
        participants: bool = False,
    ) -> list[Meeting]:
        """Every meeting matching the filters, following `starting_after` paging.

        `participants`: ask for each meeting's participant list and keep the raw entry
        (`Meeting.entry`) for the meeting summaries; the same requests, larger answers."""
        meetings: list[Meeting] = []
        seen: set[str] = set()
        starting_after: str | None = None
        while True:
            params: dict[str, str] = {"limit": str(MEETINGS_PAGE_LIMIT)}
            if not participants:
                params["no_participants"] = "true"
            if timeframe_start is not None:
                params["timeframe_start"] = str(timeframe_start)
            if ongoing is not None:
                params["ongoing"] = "true" if ongoing else "false"
            if room is not None:
                params["room"] = room
            if starting_after is not None:
                params["starting_after"] = starting_after
            body = await self.get_json("meetings", params)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise TransientError("GET /meetings: response has no 'data' list")
            fresh = 0
            for item in data:
                meeting = _parse_meeting(item, keep_entry=participants)
                if meeting is None or meeting.id in seen:
                    continue
                seen.add(meeting.id)
                meetings.append(meeting)
                fresh += 1
            # An empty page (or one that repeats what we had) ends the walk, and so does a
            # page holding as many meetings as Daily counts: Daily does not say whether
            # `total_count` counts the whole list or what is left after `starting_after`,
            # and only this test is right on both readings (on the first it costs one more
            # request, an empty page). A short page alone does not, as with /logs.
            total = body.get("total_count")
            if not data or fresh == 0 or (isinstance(total, int) and total <= len(data)):
                return meetings
            last = data[-1]
            starting_after = str(last.get("id")) if isinstance(last, dict) else None
            if starting_after is None:
                return meetings

    async def fetch_logs_page(
        self,
        *,
        mtg_session_id: str,
        start_ms: int,
        end_ms: int,
        offset: int,
        limit: int,
        log_level: str | None = None,
        include_logs: bool = True,
        include_metrics: bool = False,
    ) -> LogsPage:
        params = {
            "mtgSessionId": mtg_session_id,
            "order": "ASC",
            "startTime": str(start_ms),
            "endTime": str(end_ms),
            "offset": str(offset),
            "limit": str(limit),
        }
        if log_level is not None:
            params["logLevel"] = log_level
        if not include_logs:
            params["includeLogs"] = "false"
        if include_metrics:
            params["includeMetrics"] = "true"
        body = await self.get_json("logs", params)
        if not isinstance(body, dict):
            raise TransientError("GET /logs: response is not a JSON object")
        logs = body.get("logs", [])
        metrics = body.get("metrics", [])
        if not isinstance(logs, list) or not isinstance(metrics, list):
            raise TransientError("GET /logs: 'logs' or 'metrics' is not a list")
        return LogsPage(logs=logs if include_logs else [], metrics=metrics)

    async def get_json(self, endpoint: str, params: Mapping[str, str]) -> Any:
        """One GET of a Daily endpoint (`endpoint` is the path after the API base, e.g.
        "presence"): paced by the domain's token bucket, retried like every request, and
        decoded; raises `DailyApiError`. Sources of other endpoints build on this."""
        url = f"{self._base}/{endpoint}"
        return await retry(
            lambda _attempt: self._get_once(url, endpoint, params),
            _classify,
            max_attempts=self._max_attempts,
            backoff_cap=self._backoff_cap,
            observer=self.observer,
            on_retry=self._before_retry,
        )

    async def _get_once(self, url: str, endpoint: str, params: Mapping[str, str]) -> Any:
        """One paced request: the decoded body, or a `TransientError` for `retry` to retry,
        or another `DailyApiError` that ends the call."""
        await self.bucket.acquire()
        if self._guard is not None:
            self._guard()  # a replica that lost its lease asks Daily nothing more
        self.requests_made += 1
        try:
            async with self._http().get(url, params=params) as resp:
                status = resp.status
                self._metrics.api_requests.labels(self.domain, endpoint, str(status)).inc()
                _log.debug("request", domain=self.domain, endpoint=endpoint, status=status)
                if status == 200:
                    return await self._decode(resp, endpoint)
                error_type = await _error_type(resp)
                message = f"GET /{endpoint}: HTTP {status}" + (
                    f" ({error_type})" if error_type else ""
                )
                if status in (401, 403):
                    self._observe_failure("daily_auth", message, None)
                    raise AuthError(
                        f"{message}: Daily refused the API key of domain {self.domain!r}",
                        status=status,
                        error_type=error_type,
                    )
                if status == 404:
                    self._observe_success()  # the API answers; the session is gone
                    raise NotFoundError(message, status=status, error_type=error_type)
                if status == 429 or status >= 500 or status == 408:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    if retry_after is not None:
                        retry_after = min(retry_after, MAX_RETRY_AFTER)
                    if status == 429:
                        self._metrics.api_rate_limited.labels(self.domain).inc()
                    raise TransientError(
                        message, status=status, error_type=error_type, retry_after=retry_after
                    )
                raise PermanentError(message, status=status, error_type=error_type)
        except aiohttp.ClientConnectorCertificateError as exc:
            # Not worth five quick retries: nothing changes until the CA bundle does.
            self._metrics.api_requests.labels(self.domain, endpoint, "error").inc()
            raise PermanentError(
                f"GET /{endpoint}: TLS certificate of {urlsplit(self._base).netloc} not trusted"
                f" ({tls_reason(exc.certificate_error)}); set ca_file to the CA bundle"
                " that signed it"
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._metrics.api_requests.labels(self.domain, endpoint, "error").inc()
            raise TransientError(f"GET /{endpoint}: {type(exc).__name__}") from None

    def _before_retry(self, error: Exception, wait: float) -> None:
        # A 429 holds back every request of the domain, not just this one.
        if isinstance(error, DailyApiError) and error.status == 429:
            self.bucket.pause(wait)
        self._metrics.api_backoff_seconds.labels(self.domain).inc(wait)

    def _observe_failure(self, error_type: str, message: str, retry_in: float | None) -> None:
        if self.observer is not None:
            self.observer.attempt_failed(error_type, message, retry_in)

    def _observe_success(self) -> None:
        if self.observer is not None:
            self.observer.succeeded()

    async def _decode(self, resp: aiohttp.ClientResponse, endpoint: str) -> Any:
        content_type = resp.headers.get("Content-Type", "")
        raw = await resp.read()
        if "json" not in content_type:
            raise TransientError(
                f"GET /{endpoint}: expected JSON, got content type {content_type[:60]!r}"
            )
        return _loads(raw, endpoint)


# A run of 19 or more digits not inside a float's fraction or exponent: an integer that may
# not fit 64 bits. orjson turns such an integer into a float without a word (losing digits);
# the standard parser keeps it exact.
_BIG_INTEGER = re.compile(rb"(?<![0-9.eE+])[0-9]{19,}")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_ZEROS = b"0" * 19


def _loads(raw: bytes, endpoint: str) -> Any:
    """JSON -> Python, the same value for the same bytes whatever else the page holds.

    The parser is chosen by what the text contains, never by whether orjson happened to
    fail on a neighbour (a lone surrogate, say): otherwise one record could decode to an
    int on one page and to a float on the next, get two different identities, and be
    delivered (or dead-lettered) twice.
    """
    # The regex can only match where 19 digits stand together; mapping every digit to "0"
    # and looking for nineteen zeros is a C-speed test that spares most bodies the regex.
    if _NINETEEN_ZEROS not in raw.translate(_DIGITS_TO_ZERO) or _BIG_INTEGER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # lone surrogates, NaN, ...: the standard parser decides
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransientError(f"GET /{endpoint}: invalid JSON ({exc.__class__.__name__})") from None


def tls_reason(error: BaseException) -> str:
    """The verifier's reason (`self-signed certificate`, `hostname mismatch`, ...)."""
    reason = getattr(error, "verify_message", None) or getattr(error, "reason", None)
    return str(reason or type(error).__name__)[:120]


async def _error_type(resp: aiohttp.ClientResponse) -> str | None:
    try:
        body = json.loads(await resp.read())
    except (TimeoutError, ValueError, UnicodeDecodeError, aiohttp.ClientError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        # Only the stable `error` type, capped; `info` is free text we don't echo.
        return str(body["error"])[:64]
    return None


def _classify(error: Exception) -> Failure | None:
    # Only transient errors are retried; the others were observed (or not) where raised.
    if isinstance(error, TransientError):
        return Failure("daily_api", retry_after=error.retry_after)
    return None


def _parse_meeting(item: object, *, keep_entry: bool = False) -> Meeting | None:
    if not isinstance(item, dict):
        return None
    mid = item.get("id")
    start = item.get("start_time")
    if not isinstance(mid, str) or not mid or not isinstance(start, int | float):
        return None
    duration = item.get("duration")
    room = item.get("room")
    return Meeting(
        id=mid,
        room=room if isinstance(room, str) else "",
        start_time=int(start),
        duration=int(duration) if isinstance(duration, int | float) else None,
        ongoing=bool(item.get("ongoing", False)),
        entry=item if keep_entry else None,
    )
