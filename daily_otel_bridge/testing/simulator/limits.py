"""Rate limiting and the seeded misbehaviour of a busy API: the per-domain token bucket
(429 ``rate-limit-error``), random 429s/5xx at configured ratios, and the answer latency."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .config import SimulatorConfig
from .errors import ApiError
from .stats import DomainStats


@dataclass(slots=True)
class Bucket:
    tokens: float
    last: float


class Limits:
    """Decides, request by request, whether the API answers 429/5xx and how late."""

    def __init__(
        self,
        config: SimulatorConfig,
        clock: Callable[[], float],
        retry_after_headers: Callable[[], dict[str, str]],
    ) -> None:
        self.config = config
        self._clock = clock
        self._retry_after_headers = retry_after_headers
        self._buckets: dict[str, Bucket] = {}
        # Separate streams, so that turning latency on does not change which requests fail.
        self._latency_rng = random.Random(f"{config.seed}:latency")
        self._error_rng = random.Random(f"{config.seed}:errors")

    def rate_limit(self, domain: str, stats: DomainStats) -> None:
        rate = self.config.rate_limit_per_second
        if rate is None:
            return
        burst = self.config.rate_burst if self.config.rate_burst is not None else rate
        now = self._clock()
        bucket = self._buckets.get(domain)
        if bucket is None:
            bucket = self._buckets[domain] = Bucket(tokens=burst, last=now)
        bucket.tokens = min(burst, bucket.tokens + max(0.0, now - bucket.last) * rate)
        bucket.last = now
        if bucket.tokens < 1.0:
            stats.limiter_429 += 1
            raise ApiError(
                429,
                "rate-limit-error",
                "Too many requests, please slow down",
                self._retry_after_headers(),
            )
        bucket.tokens -= 1.0

    def random_error(self, stats: DomainStats) -> None:
        cfg = self.config
        if not (cfg.error_429_ratio or cfg.error_5xx_ratio):
            return
        rng = self._error_rng
        u = rng.random()
        if u < cfg.error_429_ratio:
            stats.random_429 += 1
            # Daily's own 429s do not always say when to come back: both must be handled.
            with_header = rng.random() < cfg.error_retry_after_ratio
            headers = self._retry_after_headers() if with_header else {}
            raise ApiError(429, "rate-limit-error", "simulated rate limit", headers)
        if u < cfg.error_429_ratio + cfg.error_5xx_ratio:
            stats.random_5xx += 1
            status = (500, 502, 503, 504)[rng.randrange(4)]
            raise ApiError(status, "server-error", "simulated server error")

    def answer_delay(self) -> float:
        cfg = self.config
        if cfg.latency <= 0:
            return 0.0
        if cfg.latency_jitter <= 0:
            return cfg.latency
        return max(0.0, cfg.latency + self._latency_rng.uniform(-1.0, 1.0) * cfg.latency_jitter)
