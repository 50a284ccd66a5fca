"""A Daily-like REST server that misbehaves in every way Daily's API documentation leaves open.

Written apart from `daily_otel_bridge.testing.simulator` (nothing of it is imported) so that
the bridge is not only ever tested against its own authors' reading of the API. Plain
aiohttp, on its own event loop in a daemon thread, bound to 127.0.0.1 on a free port.

What it serves (`/v1/meetings`, `/v1/logs`, `Authorization: Bearer <key>`, one key per domain)
is a truth that the test builds with `add_session` / `add_record`; every record carries the
JSON value to serve verbatim (which may be malformed on purpose) and the server-clock instant
from which it is visible (late arrivals). Hostile but documented-or-undocumented behaviour:

* 429 `rate-limit-error` bursts, with `Retry-After` as delta-seconds, as an HTTP date, or absent;
* 500/502/503 (`server-error`, sometimes an HTML body from a "load balancer");
* answers that hang past the client's timeout; connections reset half-way through the body;
  200 with truncated JSON; 200 with `text/html`;
* pages shorter than asked although more exist, and a maximum `limit` below what is asked;
* `startTime`/`endTime` inclusive or exclusive (undocumented);
* a list sorted on an internal time that is not exactly the `time` field (out of order by a few
  ms), byte-identical duplicates, tie groups, records that become visible late;
* `/meetings` paged by a small `limit`, a `duration` that grows while the meeting is ongoing;
* a session that starts answering 404, a key revoked (401) and restored mid-run.

Random faults never hit the same request more than `max_consecutive_faults` times in a row, so
a client that retries a few times always gets through eventually: the test measures losses,
not luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from aiohttp import web

Clock = Callable[[], float]


def iso_ns(time_ms: int) -> str:
    """Daily's `time` format: ISO-8601 UTC with nine fractional digits."""
    second, ms = divmod(time_ms, 1000)
    stamp = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms:03d}000000Z"


@dataclass
class Record:
    sort_ms: int  # the server's internal time: what the window filters and sorts on
    body: Any  # served verbatim
    visible_from: float  # server clock, seconds
    good: bool  # a well-formed record the bridge must deliver (else: a dead letter)
    seq: int = 0  # insertion order: the tie order


@dataclass
class Session:
    id: str
    room: str
    start_time: int  # Unix seconds
    end_time: int | None  # None: ongoing
    user_ids: list[str]
    records: list[Record] = field(default_factory=list)
    gone: bool = False  # /logs answers 404 from now on


@dataclass
class Domain:
    name: str
    key: str
    revoked: bool = False
    sessions: dict[str, Session] = field(default_factory=dict)


@dataclass
class Hostility:
    """How nasty the server is. Probabilities are per API request."""

    seed: int = 1
    p_server_error: float = 0.04
    p_hang: float = 0.02
    p_reset: float = 0.02
    p_truncated: float = 0.02
    p_html: float = 0.02
    p_rate_limited: float = 0.03
    hang_seconds: float = 2.5
    max_consecutive_faults: int = 2
    # A 429 burst: every API request of every domain gets 429 for `burst_seconds`, every
    # `burst_every` seconds (0: never).
    burst_every: float = 8.0
    burst_seconds: float = 1.0
    max_limit: int = 150
    p_short_page: float = 0.3
    meetings_max_limit: int = 3
    start_inclusive: bool = True
    end_inclusive: bool = False
    # A careless server that quotes the credentials it refused in its error body.
    reflect_credentials: bool = False

    @classmethod
    def tame(cls, **overrides: Any) -> Hostility:
        """No random faults, bursts or short pages (for tests about something else)."""
        calm: dict[str, Any] = {
            "p_server_error": 0.0,
            "p_hang": 0.0,
            "p_reset": 0.0,
            "p_truncated": 0.0,
            "p_html": 0.0,
            "p_rate_limited": 0.0,
            "burst_every": 0.0,
            "p_short_page": 0.0,
        }
        calm.update(overrides)
        return cls(**calm)


class HostileDaily:
    def __init__(
        self,
        hostility: Hostility | None = None,
        clock: Clock = time.time,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.hostility = hostility or Hostility()
        self.ssl_context = ssl_context
        self.clock = clock
        self.domains: dict[str, Domain] = {}
        self._by_key: dict[str, Domain] = {}
        self._rng = random.Random(self.hostility.seed)
        self._lock = threading.Lock()
        self._streak: dict[str, int] = {}
        self._seq = 0
        self._started = clock()
        self.counts: dict[str, int] = {}
        self._forced: list[list[Any]] = []  # [fault, remaining, endpoint or None]
        self.log: list[tuple[float, str, str]] = []  # (server clock, path, answer)
        # (server clock, mtgSessionId of a /logs request, answer)
        self.session_log: list[tuple[float, str, str]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self.port = 0

    # -- the truth -------------------------------------------------------------------------

    def add_domain(self, name: str, key: str) -> Domain:
        with self._lock:
            domain = Domain(name, key)
            self.domains[name] = domain
            self._by_key[key] = domain
            return domain

    def add_session(
        self,
        domain: str,
        session_id: str,
        room: str,
        start_time: int,
        end_time: int | None,
        user_ids: list[str],
    ) -> Session:
        with self._lock:
            session = Session(session_id, room, start_time, end_time, user_ids)
            self.domains[domain].sessions[session_id] = session
            return session

    def add_record(
        self,
        domain: str,
        session_id: str,
        sort_ms: int,
        body: Any,
        *,
        good: bool = True,
        visible_from: float | None = None,
    ) -> Record:
        with self._lock:
            self._seq += 1
            record = Record(
                sort_ms=sort_ms,
                body=body,
                visible_from=self._started if visible_from is None else visible_from,
                good=good,
                seq=self._seq,
            )
            self.domains[domain].sessions[session_id].records.append(record)
            return record

    def end_session(self, domain: str, session_id: str, end_time: int) -> None:
        with self._lock:
            self.domains[domain].sessions[session_id].end_time = end_time

    def make_gone(self, domain: str, session_id: str) -> None:
        with self._lock:
            self.domains[domain].sessions[session_id].gone = True

    def revoke(self, domain: str) -> None:
        with self._lock:
            self.domains[domain].revoked = True

    def restore(self, domain: str) -> None:
        with self._lock:
            self.domains[domain].revoked = False

    def records(self, domain: str, session_id: str | None = None) -> list[Record]:
        """Every record (visible or not), in the server's list order."""
        with self._lock:
            sessions = self.domains[domain].sessions
            chosen = [sessions[session_id]] if session_id else list(sessions.values())
            out = [r for s in chosen for r in s.records]
        return sorted(out, key=lambda r: (r.sort_ms, r.seq))

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def force(
        self, fault: str, count: int = 1, endpoint: str | None = None, session: str | None = None
    ) -> None:
        """Answer the next `count` API requests (of `endpoint`, and for `session`, if given)
        with `fault`: one of 429-seconds, 429-date, 429-none, 500, 502, 503, hang, reset,
        truncated, html."""
        with self._lock:
            self._forced.append([fault, count, endpoint, session])

    # -- running ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> HostileDaily:
        self._thread = threading.Thread(target=self._run, name="hostile-daily", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or not self.port:
            raise RuntimeError("hostile Daily did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._closing.set)
        if self._thread is not None:
            self._thread.join(15)

    def __enter__(self) -> HostileDaily:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            self._loop = runner.get_loop()
            runner.run(self._main())

    async def _main(self, max_seconds: float = 600.0) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/meetings", self._api(self._meetings))
        app.router.add_get("/v1/logs", self._api(self._logs))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        for address in self._runner.addresses:
            self.port = int(address[1])
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), max_seconds)
        await self._runner.cleanup()

    # -- plumbing --------------------------------------------------------------------------

    def _api(self, handler: Callable[[web.Request, Domain], Any]) -> Callable[[web.Request], Any]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            fault = self._take_forced(request) or self._pick_fault(request)
            self.log.append((self.clock(), request.path, fault or "ok"))
            if "mtgSessionId" in request.query:
                self.session_log.append(
                    (self.clock(), request.query["mtgSessionId"], fault or "ok")
                )
            if fault is not None:
                self._count(fault.split("-")[0] if fault.startswith("429") else fault)
                return await self._serve_fault(fault, request)
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme != "Bearer" or not token:
                return _error(400, "authorization-header-error", "Bearer token required")
            domain = self._by_key.get(token)
            if domain is None or domain.revoked:
                self._count("401")
                if self.hostility.reflect_credentials:
                    return _error(401, f"authentication-error {header}", f"refused {header}")
                return _error(401, "authentication-error", "the API key is not valid")
            body = handler(request, domain)
            if isinstance(body, web.StreamResponse):
                return body
            self._count("200")
            return web.json_response(body)

        return wrapped

    def _take_forced(self, request: web.Request) -> str | None:
        with self._lock:
            for item in self._forced:
                fault, remaining, endpoint, session = item
                if (endpoint is None or request.path.endswith("/" + endpoint)) and (
                    session is None or request.query.get("mtgSessionId") == session
                ):
                    item[1] = remaining - 1
                    if item[1] <= 0:
                        self._forced.remove(item)
                    return str(fault)
        return None

    def _in_burst(self) -> bool:
        h = self.hostility
        if h.burst_every <= 0:
            return False
        return (self.clock() - self._started) % h.burst_every < h.burst_seconds

    def _pick_fault(self, request: web.Request) -> str | None:
        h = self.hostility
        if self._in_burst():
            return "429"
        key = request.path_qs
        with self._lock:
            streak = self._streak.get(key, 0)
            if streak >= h.max_consecutive_faults:
                self._streak[key] = 0
                return None
            roll = self._rng.random()
            fault = None
            for name, p in (
                ("5xx", h.p_server_error),
                ("hang", h.p_hang),
                ("reset", h.p_reset),
                ("truncated", h.p_truncated),
                ("html", h.p_html),
                ("429", h.p_rate_limited),
            ):
                if roll < p:
                    fault = name
                    break
                roll -= p
            self._streak[key] = streak + 1 if fault else 0
            return fault

    def _retry_after(self, form: str | None = None) -> dict[str, str]:
        form = form or self._rng.choice(["seconds", "date", "none"])
        if form == "seconds":
            return {"Retry-After": "1"}
        if form == "date":
            return {"Retry-After": formatdate(self.clock() + 2, usegmt=True)}
        return {}

    async def _serve_fault(self, fault: str, request: web.Request) -> web.StreamResponse:
        if fault.startswith("429"):
            form = fault.partition("-")[2] or None
            return _error(429, "rate-limit-error", "Too many requests", self._retry_after(form))
        if fault in ("5xx", "500", "502", "503"):
            status = self._rng.choice([500, 502, 503]) if fault == "5xx" else int(fault)
            if status == 502:
                return web.Response(
                    status=502,
                    text="<html><body>Bad Gateway</body></html>",
                    content_type="text/html",
                )
            headers = self._retry_after() if status == 503 else {}
            return _error(status, "server-error", "something broke", headers)
        if fault == "hang":
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hostility.hang_seconds)
            return _error(503, "server-error", "late anyway")
        if fault == "truncated":
            return web.Response(
                status=200,
                text='{"logs": [{"time": "2026-03-23T16:3',
                content_type="application/json",
            )
        if fault == "html":
            return web.Response(
                status=200,
                text="<!doctype html><title>Maintenance</title>",
                content_type="text/html",
            )
        # "reset": promise a body, send half of it, drop the connection.
        body = json.dumps({"logs": [{"message": "x" * 4000}] * 20}).encode()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            transport.abort()
        return response

    # -- endpoints -------------------------------------------------------------------------

    def _meetings(self, request: web.Request, domain: Domain) -> Any:
        q = request.query
        now = self.clock()
        try:
            timeframe_start = int(q["timeframe_start"]) if "timeframe_start" in q else None
            timeframe_end = int(q["timeframe_end"]) if "timeframe_end" in q else None
            limit = int(q.get("limit", "100"))
        except ValueError:
            return _error(400, "invalid-request-error", "bad integer")
        ongoing = q.get("ongoing")
        with self._lock:
            sessions = list(domain.sessions.values())
        rows = []
        for s in sessions:
            if s.start_time > now:
                continue
            is_ongoing = s.end_time is None or s.end_time > now
            if ongoing == "true" and not is_ongoing:
                continue
            if ongoing == "false" and is_ongoing:
                continue
            if timeframe_start is not None and s.start_time < timeframe_start:
                continue
            if timeframe_end is not None and s.start_time >= timeframe_end:
                continue
            if "room" in q and s.room != q["room"]:
                continue
            rows.append((s, is_ongoing))
        rows.sort(key=lambda item: (-item[0].start_time, item[0].id))
        if "starting_after" in q:
            ids = [s.id for s, _ in rows]
            if q["starting_after"] not in ids:
                return _error(400, "invalid-request-error", "unknown starting_after")
            rows = rows[ids.index(q["starting_after"]) + 1 :]
        total = len(rows)
        rows = rows[: max(0, min(limit, self.hostility.meetings_max_limit))]
        data = []
        for s, is_ongoing in rows:
            end = s.end_time if not is_ongoing and s.end_time is not None else now
            data.append(
                {
                    "id": s.id,
                    "room": s.room,
                    "start_time": s.start_time,
                    "duration": int(end - s.start_time),
                    "ongoing": is_ongoing,
                    "max_participants": len(s.user_ids),
                    "participants": []
                    if q.get("no_participants") == "true"
                    else [{"participant_id": u, "user_id": None} for u in s.user_ids],
                }
            )
        return {"total_count": total, "data": data}

    def _logs(self, request: web.Request, domain: Domain) -> Any:
        q = request.query
        h = self.hostility
        mtg = q.get("mtgSessionId")
        if not mtg:
            return _error(400, "invalid-request-error", "mtgSessionId or userSessionId is required")
        try:
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else int(self.clock() * 1000)
            limit = int(q.get("limit", "20"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            return _error(400, "invalid-request-error", "bad integer")
        if limit < 0 or offset < 0:
            return _error(400, "invalid-request-error", "limit and offset must be >= 0")
        with self._lock:
            session = domain.sessions.get(mtg)
            if session is not None and session.gone:
                self._count("404")
                return _error(404, "not-found", "no such session")
            records = list(session.records) if session is not None else []
        now = self.clock()
        chosen = []
        for r in records:
            if r.visible_from > now:
                continue
            if start is not None and (
                r.sort_ms < start or (r.sort_ms == start and not h.start_inclusive)
            ):
                continue
            if r.sort_ms > end or (r.sort_ms == end and not h.end_inclusive):
                continue
            chosen.append(r)
        chosen.sort(
            key=lambda r: (r.sort_ms, r.seq), reverse=q.get("order", "DESC").upper() == "DESC"
        )
        size = min(limit, h.max_limit)
        with self._lock:
            if size > 1 and self._rng.random() < h.p_short_page:
                size = self._rng.randint(1, size - 1)
        page = chosen[offset : offset + size]
        return {"logs": [r.body for r in page]}


def _error(
    status: int, error_type: str, info: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error_type, "info": info}, status=status, headers=headers)
