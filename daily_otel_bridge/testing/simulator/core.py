"""The simulator's state and request plumbing: clock, world, record store, and the path
every API request takes (fault queue, authentication, rate limit, random errors, latency).

The handlers themselves live in ``api.py`` (Daily's endpoints) and ``control.py``
(``/_sim``); ``app.py`` wires them into an aiohttp app.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from .api_logs import ApiLogBook
from .config import Clock, SimulatorConfig
from .delivery import Webhooks
from .errors import ApiError, error_type
from .faults import Faults
from .limits import Limits
from .model import Meeting
from .records import MetricSamples, Records
from .render import render_log, render_metric
from .stats import DomainStats, RequestLog
from .store import RecordStore
from .truth import ground_truth
from .world import World

Handler = Callable[[web.Request, str], Awaitable[web.Response]]


class Simulator:
    """State and request plumbing behind one app; tests may read it via ``app[SIM_KEY]``."""

    def __init__(self, config: SimulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._clock: Clock = clock or time.time
        self._offset = 0.0
        created = self._clock()
        self.base_time = created if config.base_time is None else config.base_time
        self.live_start = created
        self._domain_by_key = {key: domain for domain, key in config.domains.items()}
        self.revoked: set[str] = set()
        self.faults = Faults(config.retry_after, self.now)
        self.limits = Limits(config, self.now, self.faults.retry_after_headers)
        self.closing = asyncio.Event()
        self.requests = {"meetings": 0, "logs": 0}
        self.request_log = RequestLog()
        self.status_counts: dict[str, int] = {}
        self.requests_per_domain: dict[str, int] = {}
        self.records_served = 0
        self.metrics_served = 0
        self.inflight = 0
        self.max_inflight = 0
        self.domain_stats: dict[str, DomainStats] = {d: DomainStats() for d in config.domains}
        self.world = World(config, self.base_time, self.live_start)
        self.store = RecordStore(config, self.world)
        self.api_logs: dict[str, ApiLogBook] = {}
        for domain in config.domains:
            book = ApiLogBook(config.seed, domain, config.rooms)
            end_ms = math.floor(self.base_time * 1000)
            start_ms = end_ms - math.floor(config.history * 1000)
            book.seed_history(start_ms, end_ms, config.api_log_history, config.webhook_log_history)
            self.api_logs[domain] = book
        self.webhooks = Webhooks(config, self.world, self.api_logs, self.now)

    # -- clock -------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    # -- the world and its records (kept here for the callers of the single module) ----

    def domain_meetings(self, domain: str) -> list[Meeting]:
        return self.world.domain_meetings(domain)

    def select_logs(
        self,
        meeting: Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
        level: int | None = None,
    ) -> tuple[Records, list[int]]:
        """Indices of the visible records in the window, ASC."""
        return self.store.select_logs(meeting, now_ms, start, end, participant, level)

    def select_metrics(
        self,
        meeting: Meeting,
        now_ms: int,
        start: int | None = None,
        end: int | None = None,
        participant: int | None = None,
    ) -> tuple[MetricSamples, list[int]]:
        return self.store.select_metrics(meeting, now_ms, start, end, participant)

    def render_log(self, meeting: Meeting, recs: Records, i: int) -> dict[str, Any]:
        return render_log(meeting, recs, i)

    def render_metric(self, meeting: Meeting, samples: MetricSamples, i: int) -> dict[str, Any]:
        return render_metric(meeting, samples, i)

    def visible_ms(self, recs: Records, i: int) -> int:
        """When record ``i`` became (or becomes) visible at ``/v1/logs``, ms since the epoch."""
        return self.store.visible_ms(recs, i)

    def ground_truth(
        self,
        domain: str,
        session: str | None = None,
        kind: str = "logs",
        offset: int = 0,
        limit: int | None = None,
        with_visible: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every record visible now, ASC, rendered as ``/v1/logs`` renders it (``truth.py``)."""
        now_ms = math.floor(self.now() * 1000)
        return ground_truth(
            self.world, self.store, now_ms, domain, session, kind, offset, limit, with_visible
        )

    def apply_faults(self, body: Any) -> None:
        """Apply one ``POST /_sim/faults`` body (see the package docstring)."""
        self.faults.apply(body)

    def log_call(
        self, domain: str, request: web.Request, status: int, body: object, answer: object
    ) -> None:
        """Log one REST call that changed something in the domain's API log (``source=api``).

        Only calls that change state are logged (POST, DELETE): logging reads too would make
        every read of ``/logs/api`` add an entry to it (not documented either way).
        """
        peer = request.remote or "127.0.0.1"
        self.api_logs[domain].add(
            math.floor(self.now() * 1000),
            "api",
            request.method,
            request.path,
            status,
            body,
            answer,
            peer,
        )

    def _answer_delay(self) -> float:
        return self.limits.answer_delay()

    # -- request plumbing --------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization")
        if header is None:
            raise ApiError(401, "authentication-error", "missing Authorization header")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise ApiError(
                400, "authorization-header-error", "Authorization header must be 'Bearer <key>'"
            )
        domain = self._domain_by_key.get(token)
        if domain is None or domain in self.revoked:
            raise ApiError(401, "authentication-error", "invalid or revoked API key")
        return domain

    def _domain_of(self, request: web.Request) -> str | None:
        # Counted on arrival, before authentication decides: a bad key still took a slot.
        _, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        return self._domain_by_key.get(token.strip())

    def api(
        self,
        endpoint: str,
        handler: Handler,
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
            arrived = time.time()
            domain = self._domain_of(request)
            stats = self.domain_stats[domain] if domain is not None else None
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            if stats is not None:
                stats.arrive(self.now())
            try:
                response = await self._dispatch(endpoint, handler, request)
                delay = self.limits.answer_delay()
                if delay > 0:
                    # A sleep, not a blocking wait: other requests are served meanwhile.
                    await asyncio.sleep(delay)
            finally:
                self.inflight -= 1
                if stats is not None:
                    stats.inflight -= 1
            key = str(response.status)
            self.status_counts[key] = self.status_counts.get(key, 0) + 1
            self.request_log.record(endpoint, request, response.status, arrived, time.time())
            return response

        return wrapped

    async def _dispatch(
        self,
        endpoint: str,
        handler: Handler,
        request: web.Request,
    ) -> web.Response:
        try:
            fault = self.faults.take(endpoint)
            if fault is not None:
                if fault.kind == "status":
                    headers = (
                        self.faults.retry_after_headers() if fault.status in (429, 503) else None
                    )
                    raise ApiError(
                        fault.status, error_type(fault.status), "simulated fault", headers
                    )
                if fault.kind == "invalid_json":
                    return web.Response(
                        text='{"logs": [{"time": "2026-', content_type="application/json"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), fault.hang_seconds)
            domain = self._authenticate(request)
            self.requests_per_domain[domain] = self.requests_per_domain.get(domain, 0) + 1
            stats = self.domain_stats[domain]
            self.limits.rate_limit(domain, stats)
            self.limits.random_error(stats)
            return await handler(request, domain)
        except ApiError as exc:
            return exc.response()
