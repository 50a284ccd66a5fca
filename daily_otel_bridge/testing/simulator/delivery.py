"""Webhooks, the moving part: the hooks of each domain, their verification on creation, and
the background sender that pushes signed events to them with Daily's retry rules.

* On creation (and when the URL changes) Daily POSTs ``{"test":"test"}`` to the URL and
  requires a 200 within ``webhook_timeout``; anything else is a 400 and no hook.
* Events happen on the simulator's clock (``webhooks.timeline``); a scan every
  ``webhook_tick`` seconds queues, for each ACTIVE hook, those that happened since it last
  looked. Each hook has its own worker, so a slow receiver never holds up another hook, and
  nothing here runs inside an API request except the creation check: the API stays free.
* ``circuit-breaker`` (the default): each event is tried once; ``webhook_failure_threshold``
  (3) consecutive failures put the hook in FAILED, its queue is dropped and nothing more is
  sent until ``POST /webhooks/{uuid}`` re-activates it (then only new events are sent).
* ``exponential``: a failed event is tried again after ``webhook_backoff`` x 2^(n-1)
  seconds (real time; a test sets a small scale), up to ``webhook_max_attempts`` tries in
  all, then dropped; the hook stays ACTIVE. Later events do not wait for a retrying one, so
  deliveries can arrive out of order (the less convenient reading of the docs).
* A delivery succeeds on any 2xx; a timeout or a refused connection is a failure.
Every attempt is logged in the domain's API log (``source=webhook``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import heapq
import itertools
import json
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from .api_logs import ApiLogBook
from .config import SimulatorConfig
from .errors import ApiError
from .signing import signed_headers
from .webhooks import Event, Hook, new_hmac, timeline, validate_settings
from .world import World

_KEPT_DELIVERIES = 10_000
_REPLY_LOGGED = 2000  # characters of a receiver's answer kept in the API log


class _Queue:
    """One hook's pending deliveries, earliest due first (loop time)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Event, int]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Webhooks:
    """Every domain's hooks and the sender behind them."""

    def __init__(
        self,
        config: SimulatorConfig,
        world: World,
        books: dict[str, ApiLogBook],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._world = world
        self._books = books
        self._clock = clock
        self.hooks: dict[str, Hook] = {}
        self._queues: dict[str, _Queue] = {}
        self._timelines: dict[str, list[Event]] = {}
        self._seq = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._scanner: asyncio.Task[None] | None = None
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=_KEPT_DELIVERIES)

    # -- the registry (called by the API handlers) -------------------------------------

    def of_domain(self, domain: str) -> list[Hook]:
        return [h for h in self.hooks.values() if h.domain == domain]

    def get(self, domain: str, uuid: str) -> Hook:
        hook = self.hooks.get(uuid)
        if hook is None or hook.domain != domain:
            raise ApiError(404, "not-found", f"webhook {uuid} not found")
        return hook

    async def create(self, domain: str, body: Any) -> Hook:
        settings = validate_settings(body, creating=True)
        book = self._books[domain]
        now = self._clock()
        hook = Hook(
            uuid=book.new_id(),
            domain=domain,
            domain_id=book.domain_id,
            url=settings["url"],
            hmac=settings.get("hmac") or new_hmac(),
            basic_auth=settings.get("basicAuth"),
            retry_type=settings.get("retryType", "circuit-breaker"),
            event_types=settings.get("eventTypes", []),
            created=now,
            updated=now,
            cursor=now,
        )
        await self._verify(hook)
        self.hooks[hook.uuid] = hook
        self._start()
        return hook

    async def update(self, domain: str, uuid: str, body: Any) -> Hook:
        hook = self.get(domain, uuid)
        settings = validate_settings(body, creating=False)
        if "url" in settings and settings["url"] != hook.url:
            probe = dataclasses.replace(hook, url=settings["url"])
            await self._verify(probe)
        hook.url = settings.get("url", hook.url)
        hook.hmac = settings.get("hmac", hook.hmac)
        hook.basic_auth = settings.get("basicAuth", hook.basic_auth)
        hook.retry_type = settings.get("retryType", hook.retry_type)
        hook.event_types = settings.get("eventTypes", hook.event_types)
        now = self._clock()
        hook.updated = now
        if hook.state != "ACTIVE":
            # Re-activation: counts start again, and only what happens from now on is sent.
            hook.state = "ACTIVE"
            hook.failed_count = 0
            hook.cursor = now
        self._start()
        return hook

    def delete(self, domain: str, uuid: str) -> None:
        hook = self.get(domain, uuid)
        del self.hooks[hook.uuid]
        queue = self._queues.pop(hook.uuid, None)
        if queue is not None and queue.task is not None:
            queue.task.cancel()

    def stats(self) -> dict[str, Any]:
        """Per hook: state, failedCount, events queued, sent (attempts), acknowledged,
        failed (attempts), retried, dropped; plus the totals."""
        hooks = {uuid: h.stats() for uuid, h in self.hooks.items()}
        totals: dict[str, int] = {}
        for h in self.hooks.values():
            for k, v in h.counters.items():
                totals[k] = totals.get(k, 0) + v
        return {"hooks": hooks, "totals": totals}

    # -- sending -----------------------------------------------------------------------

    def _start(self) -> None:
        if self._scanner is None or self._scanner.done():
            self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())

    async def close(self) -> None:
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        if self._scanner is not None:
            tasks.append(self._scanner)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeline(self, domain: str) -> list[Event]:
        events = self._timelines.get(domain)
        if events is None:
            meetings = self._world.domain_meetings(domain)
            book = self._books[domain]
            events = timeline(meetings, self.config.seed, domain, book.domain_id)
            self._timelines[domain] = events
        return events

    async def _scan_forever(self) -> None:
        while self.hooks:
            self.scan()
            await asyncio.sleep(self.config.webhook_tick)

    def scan(self) -> None:
        """Queue, for every ACTIVE hook, the events that happened since it last looked."""
        now = self._clock()
        loop_now = asyncio.get_running_loop().time()
        for hook in list(self.hooks.values()):
            if hook.state != "ACTIVE" or now <= hook.cursor:
                continue
            events = self._timeline(hook.domain)
            lo = _bisect_after(events, hook.cursor)
            hi = _bisect_after(events, now)
            hook.cursor = now
            queue = self._queues.setdefault(hook.uuid, _Queue())
            for event in events[lo:hi]:
                if hook.wants(event.type):
                    hook.counters["events"] += 1
                    heapq.heappush(queue.heap, (loop_now, next(self._seq), event, 1))
            if queue.heap:
                queue.wake.set()
                if queue.task is None or queue.task.done():
                    queue.task = asyncio.get_running_loop().create_task(self._work(hook, queue))

    async def _work(self, hook: Hook, queue: _Queue) -> None:
        loop = asyncio.get_running_loop()
        while queue.heap and hook.uuid in self.hooks:
            due, _, event, attempt = queue.heap[0]
            wait = due - loop.time()
            if wait > 0:
                queue.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.wake.wait(), wait)
                continue
            heapq.heappop(queue.heap)
            if hook.state != "ACTIVE":
                hook.counters["dropped"] += 1
                continue
            ok = await self._deliver(hook, event.body())
            if ok:
                continue
            if hook.retry_type == "exponential":
                if attempt < self.config.webhook_max_attempts:
                    hook.counters["retried"] += 1
                    delay = self.config.webhook_backoff * 2 ** (attempt - 1)
                    heapq.heappush(
                        queue.heap, (loop.time() + delay, next(self._seq), event, attempt + 1)
                    )
                else:
                    hook.counters["dropped"] += 1
            else:
                hook.counters["dropped"] += 1
                if hook.failed_count >= self.config.webhook_failure_threshold:
                    hook.state = "FAILED"
                    hook.counters["dropped"] += len(queue.heap)
                    queue.heap.clear()

    async def _post(self, hook: Hook, body: bytes) -> tuple[int, str]:
        """One POST to the hook's URL: (status, answer); status 0 when none came."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timestamp = str(math.floor(self._clock()))
        headers = signed_headers(hook.hmac, timestamp, body)
        if hook.basic_auth:
            token = base64.b64encode(hook.basic_auth.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        timeout = aiohttp.ClientTimeout(total=self.config.webhook_timeout)
        try:
            async with self._session.post(
                hook.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                return resp.status, (await resp.text(errors="replace"))[:_REPLY_LOGGED]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, type(exc).__name__

    async def _deliver(self, hook: Hook, event: dict[str, Any]) -> bool:
        body = json.dumps(event, separators=(",", ":")).encode()
        status, reply = await self._post(hook, body)
        now = self._clock()
        ok = 200 <= status < 300
        hook.counters["sent"] += 1
        if ok:
            hook.counters["acknowledged"] += 1
            hook.failed_count = 0
            hook.last_pushed = now
        else:
            hook.counters["failed"] += 1
            hook.failed_count += 1
        self.deliveries.append(
            {
                "hook": hook.uuid,
                "event": event["id"],
                "type": event["type"],
                "status": status,
                "at": now,
            }
        )
        book = self._books[hook.domain]
        book.add(math.floor(now * 1000), "webhook", "POST", hook.url, status, body.decode(), reply)
        return ok

    async def _verify(self, hook: Hook) -> None:
        status, reply = await self._post(hook, b'{"test":"test"}')
        book = self._books[hook.domain]
        now_ms = math.floor(self._clock() * 1000)
        book.add(now_ms, "webhook", "POST", hook.url, status, '{"test":"test"}', reply)
        if status != 200:
            got = f"status {status}" if status else "no answer"
            raise ApiError(
                400,
                "invalid-request-error",
                f"webhook verification failed: the URL answered {got}, 200 required",
            )


def _bisect_after(events: list[Event], at: float) -> int:
    """The index of the first event strictly after ``at``."""
    lo, hi = 0, len(events)
    while lo < hi:
        mid = (lo + hi) // 2
        if events[mid].at <= at:
            lo = mid + 1
        else:
            hi = mid
    return lo
