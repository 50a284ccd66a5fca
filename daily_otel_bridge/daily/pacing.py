"""Pacing for calls to Daily (pure apart from the clock it is given).

The backoff arithmetic and `Retry-After` parsing, shared with the OTLP export, live in
`core.retry`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Spaces requests at `rate` per second with a small burst.

    One bucket per domain, shared by every request of that domain, because Daily's limit is
    per domain (and shared with the customer's own use of the key). A 429 pauses the whole
    bucket, not just the request that met it.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._sleep = sleep
        self._next_free = clock()
        self._paused_until = float("-inf")
        self._lock = asyncio.Lock()

    def reserve(self) -> float:
        """Take a token; returns how long the caller must wait before using it."""
        now = self._clock()
        earliest = now - (self.burst - 1.0) * self.interval
        start = max(self._next_free, earliest)
        self._next_free = start + self.interval
        return max(0.0, start - now)

    async def acquire(self) -> float:
        """Wait for a token; returns how long the caller waited.

        A pause that begins while the caller waits (a 429 met by a request already in
        flight) holds it back too: after its slot comes, it waits out the pause and takes a
        new slot, so no request of the domain leaves while the domain is paused.
        """
        waited = 0.0
        async with self._lock:
            while True:
                wait = self.reserve()
                if wait > 0:
                    await self._sleep(wait)  # type: ignore[misc]
                    waited += wait
                remaining = self._paused_until - self._clock()
                if remaining <= 0:
                    return waited
                await self._sleep(remaining)  # type: ignore[misc]
                waited += remaining

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        """Nobody in this domain calls Daily for `seconds` (after a 429)."""
        until = self._clock() + seconds
        self._paused_until = max(self._paused_until, until)
        self._next_free = max(self._next_free, until)
