"""What a domain says about itself: the tally, the lag, the gauges, the progress lines.

`PassReport` counts what a domain did (over one `run_once` pass, or since start); the other
parts here read the current session table and batcher and write `/metrics` gauges and the
`catching up`, `domain summary` and `request budget saturated` lines. Nothing here decides
anything: it only observes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.schedule import PacingWindow
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.batcher import Batcher
from daily_otel_bridge.pipeline.counts import PassReport
from daily_otel_bridge.pipeline.sessions import SessionTable, TrackedSession

# How often the daemon reports pacing (saturation) and a summary line.
REPORT_INTERVAL = 60.0
# Progress lines while catching up, at most this often.
PROGRESS_INTERVAL = 10.0
# A session due longer ago than this counts as behind.
BEHIND_SLACK = 2.0


class DomainProgress:
    """Lag, gauges and report lines of one attempt of one domain (rebuilt after a failure,
    like the table and batcher it reads; the `totals` it is given outlive it)."""

    def __init__(
        self,
        settings: DomainSettings,
        *,
        streams: Sequence[str],
        table: SessionTable,
        batcher: Batcher,
        totals: PassReport,
        metrics: BridgeMetrics,
        requests_made: Callable[[], int],
        last_success: Callable[[], float | None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.streams = tuple(streams)
        self.table = table
        self.batcher = batcher
        self.totals = totals
        self.metrics = metrics
        self.requests_made = requests_made
        self.last_success = last_success
        self.clock = clock
        self.monotonic = monotonic
        self.pacing = PacingWindow()
        self.log = structlog.get_logger(__name__).bind(domain=self.name)

    def snapshot(self) -> PassReport:
        """Everything counted so far (cumulative)."""
        return self.totals.copy()

    def read_started(self, session: TrackedSession, started: float) -> None:
        """Pacing: the achieved interval of a session read before (first reads have none)."""
        if session.last_read_at is not None:
            self.pacing.observe(
                busy=session.busy,
                interval=started - session.last_read_at,
                overdue=max(0.0, started - session.due_at),
            )

    def cursor_lag_seconds(self) -> float | None:
        """Age of the oldest record visible at Daily and not yet acknowledged, in seconds.

        Two sources: records read and waiting for the backend (the oldest in a batch), and
        what busy sessions have at Daily past their last acknowledged read (those sessions
        are known to be producing). A quiet session (its last read found nothing new) adds
        nothing: its next poll is not lag. One function serves `/readyz` and `/metrics`.
        None until something is known.
        """
        now = self.clock()
        ages: list[float] = []
        pending = self.batcher.oldest_pending_ns()
        if pending is not None:
            ages.append(now - pending / 1e9)
        for tracked in self.table.active():
            if not tracked.busy:
                continue
            acked = tracked.acked_until_ms
            if acked is None:
                acked = tracked.primary(self.streams).start_floor_ms
            ages.append(now - acked / 1000)
        if not ages:
            return 0.0 if self.last_success() is not None else None
        return max(0.0, max(ages))

    def sessions_unread(self) -> int:
        """Tracked sessions never read yet (the catch-up)."""
        return sum(1 for s in self.table.active() if not s.read_once)

    def sessions_behind(self) -> int:
        """Sessions not read since start, or waiting past their due time."""
        now = self.monotonic()
        return sum(
            1
            for s in self.table.active()
            if not s.reading and (s.last_read_at is None or s.due_at < now - BEHIND_SLACK)
        )

    def update_gauges(self) -> None:
        lag = self.cursor_lag_seconds()
        if lag is not None:
            self.metrics.cursor_lag.labels(self.name).set(lag)
        self.metrics.sessions_tracked.labels(self.name).set(self.table.active_count())
        self.metrics.sessions_unread.labels(self.name).set(self.sessions_unread())

    async def run(self) -> None:
        """Every PROGRESS_INTERVAL: gauges, and a progress line while catching up; every
        REPORT_INTERVAL: pacing (saturation) and one summary line."""
        ticks_per_report = max(1, round(REPORT_INTERVAL / PROGRESS_INTERVAL))
        tick = 0
        last = self._point()
        minute = last
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            tick += 1
            current = self._point()
            self.update_gauges()
            self._catching_up(last, current)
            last = current
            if tick % ticks_per_report == 0:
                self.report_pacing()
                self._summary(minute, current)
                minute = current

    def _catching_up(self, last: _Point, current: _Point) -> None:
        elapsed = max(current.at - last.at, 1e-9)
        unread = self.sessions_unread()
        first_rate = (current.first_reads - last.first_reads) / elapsed
        eta = unread / first_rate if first_rate > 0 else None
        self.metrics.first_reads_rate.labels(self.name).set(first_rate)
        self.metrics.catchup_eta.labels(self.name).set(
            0.0 if not unread else (eta if eta is not None else float("inf"))
        )
        behind = self.sessions_behind()
        if behind or unread:
            self.log.info(
                "catching up",
                acknowledged=current.acked - last.acked,
                sessions_never_read=unread,
                first_reads_per_s=round(first_rate, 1),
                eta_s=_round(eta),
                sessions_behind=behind,
                sessions=self.table.active_count(),
                lag_s=_round(self.cursor_lag_seconds()),
                records_per_s=round((current.acked - last.acked) / elapsed, 1),
            )

    def _summary(self, minute: _Point, current: _Point) -> None:
        reads = current.reads - minute.reads
        per_read = (current.read_requests - minute.read_requests) / reads if reads else None
        self.log.info(
            "domain summary",
            acknowledged=current.acked - minute.acked,
            reread=current.reread - minute.reread,
            requests=current.requests - minute.requests,
            reads=reads,
            requests_per_read=_round(per_read, 2),
            sessions=self.table.active_count(),
            busy=sum(1 for s in self.table.active() if s.busy),
            never_read=self.sessions_unread(),
            lag_s=_round(self.cursor_lag_seconds()),
            per_s=round((current.acked - minute.acked) / max(current.at - minute.at, 1e-9), 1),
        )

    def report_pacing(self) -> None:
        """Pacing over the last window: gauges, and a warning when saturated."""
        s = self.settings
        summary = self.pacing.summary(
            poll_interval=s.poll_interval, max_quiet_interval=s.max_quiet_interval
        )
        self.pacing = PacingWindow()
        for cls, value in (("busy", summary.busy_interval), ("quiet", summary.quiet_interval)):
            if value is not None:
                self.metrics.poll_interval.labels(self.name, cls).set(value)
        self.metrics.budget_saturated.labels(self.name).set(1 if summary.saturated else 0)
        self.update_gauges()
        busy = sum(1 for t in self.table.active() if t.busy)
        if summary.saturated:
            self.log.warning(
                "request budget saturated: sessions are read less often than configured",
                requests_per_second=s.requests_per_second,
                busy_sessions=busy,
                quiet_sessions=self.table.active_count() - busy,
                busy_interval_s=_round(summary.busy_interval),
                quiet_interval_s=_round(summary.quiet_interval),
                busy_overdue_s=_round(summary.busy_overdue),
                quiet_overdue_s=_round(summary.quiet_overdue),
                poll_interval_s=s.poll_interval,
                max_quiet_interval_s=s.max_quiet_interval,
            )

    def _point(self) -> _Point:
        return _Point(
            at=self.monotonic(),
            acked=self.totals.exported,
            reread=self.totals.reread,
            requests=self.requests_made(),
            read_requests=self.totals.requests,
            reads=self.totals.reads,
            first_reads=self.totals.first_reads,
        )


@dataclass(frozen=True, slots=True)
class _Point:
    at: float
    acked: int
    reread: int
    requests: int  # every Daily request (discovery included)
    read_requests: int  # requests of session reads
    reads: int
    first_reads: int


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


__all__ = ["BEHIND_SLACK", "DomainProgress"]
