"""When each tracked session is read next: `core.schedule`'s rules applied to sessions.

The rules themselves (a meeting's life, the budget classes, backoffs) are pure functions in
`core.schedule`, tested as tables; this part holds the due-queue of one domain and writes a
session's class and due time after each read, from the clocks it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.schedule import (
    FIRST_READ_DUE,
    DueQueue,
    ReadClass,
    busy_now,
    failure_delay,
    quiet_delay,
)
from daily_otel_bridge.pipeline.sessions import TrackedSession

# The first retry of a failed read; doubles per failure up to `max_quiet_interval`.
FAILURE_BACKOFF_BASE = 2.0
# A session's next read is at least this far after the end of its last one.
MIN_GAP = 0.5
# A retiring read comes this long after the grace period is over on both clocks.
RETIRE_SLACK = 1.0


class SessionScheduler:
    def __init__(
        self,
        settings: DomainSettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self.queue = DueQueue()

    def first_read(self, session: TrackedSession) -> None:
        """Never read (new, or loaded at start): read promptly, newest meeting first."""
        session.due_at = FIRST_READ_DUE
        session.busy = False
        rank = -(session.started_ms if session.started_ms is not None else 0)
        self.queue.push(session.session_id, FIRST_READ_DUE, ReadClass.FIRST, float(rank))

    def read_now(self, session: TrackedSession) -> None:
        """Read again at once, before the first reads (a pass, a read the list moved under)."""
        session.due_at = FIRST_READ_DUE
        self.queue.push(session.session_id, FIRST_READ_DUE, ReadClass.BUSY)

    def requeue(self, session: TrackedSession) -> None:
        cls = ReadClass.BUSY if session.busy else ReadClass.QUIET
        self.queue.push(session.session_id, session.due_at, cls)

    def failed(self, session: TrackedSession) -> float:
        """A read failed after the client's retries: its own backoff, in seconds."""
        session.failures += 1
        s = self.settings
        delay = failure_delay(
            session.failures,
            base=min(FAILURE_BACKOFF_BASE, s.poll_interval),
            cap=s.max_quiet_interval,
        )
        session.due_at = self.monotonic() + delay
        if not session.read_once:
            session.busy = True  # unknown yet: its retry goes before quiet sessions
        return delay

    def succeeded(self, session: TrackedSession, started: float, *, complete: bool) -> None:
        """A meeting's life: busy (every `poll_interval`) while its newest record is recent
        or while it is ongoing and young (every meeting starts empty), or when the read
        ended early (the rest of its window is waiting); else quiet, backing off to
        `max_quiet_interval` (`core.schedule.busy_now`).

        A busy interval is a promise of freshness: counted from the read's start, so a
        read's own duration (a slow Daily, a wait for the budget) does not stretch it. A
        quiet one is a cap on cost (one request per `max_quiet_interval`): counted from
        its end, so that a shorter wait for the budget cannot bring two requests closer.
        """
        s = self.settings
        session.failures = 0
        newest = [c.watermark_ns for c in session.cursors.values() if c.watermark_ns is not None]
        ended = session.ended_at_ms
        busy = not complete or busy_now(
            newest_record_s=max(newest) / 1e9 if newest else None,
            started_s=session.started_ms / 1000 if session.started_ms is not None else None,
            ended_s=ended / 1000 if ended is not None else None,
            now_s=self.clock(),
            poll_interval=s.poll_interval,
            max_quiet_interval=s.max_quiet_interval,
            settle_lag=s.settle_lag,
        )
        if busy:
            session.busy = True
            session.quiet_polls = 0
            delay = s.poll_interval
        else:
            session.busy = False
            session.quiet_polls += 1
            delay = quiet_delay(
                session.quiet_polls,
                poll_interval=s.poll_interval,
                max_quiet_interval=s.max_quiet_interval,
            )
        now = self.monotonic()
        since = started if busy else now
        session.due_at = max(since + delay, now + MIN_GAP)
        retire_at = self.retirement_due(session)
        if retire_at is not None and retire_at < session.due_at:
            # The read that retires an ended meeting comes as soon as it can, not up to a
            # quiet interval later: no read of a meeting long after its grace period.
            session.due_at = max(retire_at, now + MIN_GAP)

    def retirement_due(self, session: TrackedSession) -> float | None:
        """When (monotonic) a read of an ended session could retire it, if it ended."""
        s = self.settings
        ended_ms = session.ended_at_ms
        if ended_ms is None:
            return None
        wall_wait = ended_ms / 1000 + s.session_grace + s.settle_lag - self.clock()
        seen = [c.end_seen_mono for c in session.cursors.values() if c.end_seen_mono is not None]
        mono_wait = (max(seen) + s.session_grace - self.monotonic()) if seen else s.session_grace
        return self.monotonic() + max(wall_wait, mono_wait, 0.0) + RETIRE_SLACK
