"""What the simulated Daily account holds and how its API misbehaves (one frozen config)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True)
class SimulatorConfig:
    """What the simulated Daily account holds and how its API misbehaves."""

    seed: int = 1
    domains: dict[str, str] = field(default_factory=lambda: {"demo": "demo-key"})
    meetings_per_domain: int = 5
    records_per_meeting: int = 200
    participants_per_meeting: int = 3
    rooms: list[str] = field(default_factory=lambda: ["standup", "sales-demo", "support-1"])
    tie_ratio: float = 0.3
    duplicate_ratio: float = 0.0
    late_ratio: float = 0.0
    late_delay: float = 0.0
    base_time: float | None = None
    history: float = 1800.0
    live: bool = False
    live_meetings: int = 1
    live_records_per_second: float = 5.0
    live_duration: float | None = None
    live_silent_meetings: int = 0
    live_silent_words: int = 0
    live_silent_words_ago: float = 30.0
    churn_meetings: int = 0
    churn_over: float = 150.0
    churn_delay: float = 0.0
    churn_min_duration: float = 15.0
    churn_max_duration: float = 60.0
    churn_rate: float = 2.0
    churn_late_ratio: float = 0.2
    churn_late_records: int = 20
    churn_late_delay: float = 10.0
    include_metrics_samples: bool = True
    metrics_interval: float = 15.0
    rate_limit_per_second: float | None = None
    rate_burst: float | None = None
    retry_after: bool = True
    max_limit: int = 1000
    meetings_max_limit: int = 100
    short_pages: bool = False
    end_time_inclusive: bool = True
    start_time_inclusive: bool = True
    desc_ties_reversed: bool = False
    cache_meetings: int = 2048
    latency: float = 0.0
    latency_jitter: float = 0.0
    error_429_ratio: float = 0.0
    error_5xx_ratio: float = 0.0
    error_retry_after_ratio: float = 0.5
    # Presence, API logs and webhooks (issues 16 and 17): additive, nothing above changes.
    presence_lag: float = 15.0
    api_log_history: int = 30
    webhook_log_history: int = 12
    api_logs_max_limit: int = 100
    webhook_timeout: float = 5.0
    webhook_backoff: float = 60.0
    webhook_max_attempts: int = 5
    webhook_failure_threshold: int = 3
    webhook_tick: float = 0.25

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("at least one domain is required")
        if len(set(self.domains.values())) != len(self.domains):
            raise ValueError("API keys must be unique: a key selects its domain")
        if not self.rooms:
            raise ValueError("at least one room name is required")
        ratios = ("tie_ratio", "duplicate_ratio", "late_ratio")
        for name in (*ratios, "error_429_ratio", "error_5xx_ratio", "error_retry_after_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.meetings_per_domain < 0 or self.records_per_meeting < 0:
            raise ValueError("meetings_per_domain and records_per_meeting must be >= 0")
        if not 1 <= self.participants_per_meeting <= 200:
            raise ValueError("participants_per_meeting must be within [1, 200]")
        if self.late_delay < 0 or self.history <= 0 or self.metrics_interval <= 0:
            raise ValueError("late_delay must be >= 0, history and metrics_interval > 0")
        if self.live and (self.live_meetings < 0 or self.live_records_per_second <= 0):
            raise ValueError("live_meetings must be >= 0 and live_records_per_second > 0")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be > 0")
        if self.max_limit < 1 or self.meetings_max_limit < 1 or self.cache_meetings < 1:
            raise ValueError("max_limit, meetings_max_limit and cache_meetings must be >= 1")
        if self.error_429_ratio + self.error_5xx_ratio > 1.0:
            raise ValueError("error_429_ratio + error_5xx_ratio must be <= 1")
        if not 0 <= self.latency_jitter <= self.latency:
            raise ValueError("latency must be >= 0 and latency_jitter within [0, latency]")
        if self.live_silent_meetings < 0:
            raise ValueError("live_silent_meetings must be >= 0")
        if self.live_silent_words < 0 or self.live_silent_words_ago < 0:
            raise ValueError("live_silent_words and live_silent_words_ago must be >= 0")
        if self.churn_meetings < 0 or self.churn_over < 0 or self.churn_delay < 0:
            raise ValueError("churn_meetings, churn_over and churn_delay must be >= 0")
        if not 0 < self.churn_min_duration <= self.churn_max_duration:
            raise ValueError("need 0 < churn_min_duration <= churn_max_duration")
        if self.churn_rate <= 0 or self.churn_late_records < 0 or self.churn_late_delay < 0:
            raise ValueError("churn_rate must be > 0, churn_late_records and churn_late_delay >= 0")
        if self.presence_lag < 0 or self.api_log_history < 0 or self.webhook_log_history < 0:
            raise ValueError("presence_lag, api_log_history and webhook_log_history must be >= 0")
        if self.api_logs_max_limit < 1 or self.webhook_max_attempts < 1:
            raise ValueError("api_logs_max_limit and webhook_max_attempts must be >= 1")
        if self.webhook_failure_threshold < 1:
            raise ValueError("webhook_failure_threshold must be >= 1")
        if min(self.webhook_timeout, self.webhook_backoff, self.webhook_tick) <= 0:
            raise ValueError("webhook_timeout, webhook_backoff and webhook_tick must be > 0")
        if not 0.0 <= self.churn_late_ratio <= 1.0:
            raise ValueError(f"churn_late_ratio must be within [0, 1], got {self.churn_late_ratio}")
