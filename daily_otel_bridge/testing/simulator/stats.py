"""What the simulator counts about the requests it receives (for ``/_sim/stats`` and
``/_sim/requests``): bounded, so a long benchmark never grows the simulator without end."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


class RequestLog:
    """Every API request's arrival, finish and User-Agent (bounded), for `/_sim/requests`."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.dropped = 0  # entries discarded from the front once LIMIT is reached

    def record(
        self, endpoint: str, request: web.Request, status: int, arrived: float, finished: float
    ) -> None:
        self.entries.append(
            {
                "endpoint": endpoint,
                "status": status,
                "arrived": arrived,
                "finished": finished,
                "user_agent": request.headers.get("User-Agent", ""),
            }
        )
        if len(self.entries) > self.LIMIT:
            cut = len(self.entries) - self.LIMIT
            del self.entries[:cut]
            self.dropped += cut

    def since(self, index: int) -> dict[str, Any]:
        start = max(0, index - self.dropped)
        return {"requests": self.entries[start:], "next": self.dropped + len(self.entries)}


ARRIVALS_KEPT = 100_000


@dataclass(slots=True)
class DomainStats:
    """What a test of the client's pacing needs to see, counted where Daily would count it."""

    requests: int = 0
    inflight: int = 0
    max_inflight: int = 0
    limiter_429: int = 0
    random_429: int = 0
    random_5xx: int = 0
    max_per_second: int = 0
    per_second: dict[int, int] = field(default_factory=dict)
    # The last second of arrivals, for the sliding-window maximum; `arrivals` keeps more for
    # in-process tests (bounded: a long benchmark must not grow the simulator without end).
    _window: deque[float] = field(default_factory=deque)
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=ARRIVALS_KEPT))

    def arrive(self, now: float) -> None:
        self.requests += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        second = math.floor(now)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        self.arrivals.append(now)
        window = self._window
        window.append(now)
        while now - window[0] >= 1.0:
            window.popleft()
        self.max_per_second = max(self.max_per_second, len(window))

    def as_json(self, with_arrivals: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "limiter_429": self.limiter_429,
            "random_429": self.random_429,
            "random_5xx": self.random_5xx,
            "max_per_second": self.max_per_second,
            "per_second": {str(k): v for k, v in sorted(self.per_second.items())},
        }
        if with_arrivals:
            out["arrivals"] = list(self.arrivals)
        return out
