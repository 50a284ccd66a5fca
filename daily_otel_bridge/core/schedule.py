"""When each tracked session is read next, and which due session goes first: no I/O.

Rules (README, "Scheduling"):

* A session whose newest record is less than `max_quiet_interval` old (`active_lately`),
  or whose read ended early, is *busy* and is due again `poll_interval` later. A quiet one
  backs off: `poll_interval * 2**quiet_polls`, capped at `max_quiet_interval`. A failed
  read backs off on its own counter (`failure_delay`), which a success resets; it never
  touches the quiet counter.
* Sessions never read yet go first (a catch-up reads each meeting once before any twice).
  Among the sessions that are due, busy ones go first, longest overdue first; then quiet
  ones, longest overdue first. So that a budget saturated by busy sessions cannot starve
  the quiet ones, at least one pick in `QUIET_SHARE_EVERY` goes to a due quiet session.

`choose` states the rule as a plain function (the unit tables test it); `DueQueue` applies
the same rule in O(log n) per pick for thousands of sessions.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

# Under saturation, one pick in this many goes to the most overdue quiet session.
QUIET_SHARE_EVERY = 5
# A session never read yet is due at this time: before every session read once, and it
# is not held back by the quiet share, so a catch-up reads each meeting once before any
# meeting twice.
FIRST_READ_DUE = 0.0


def quiet_delay(quiet_polls: int, *, poll_interval: float, max_quiet_interval: float) -> float:
    """Seconds until a session that found nothing new `quiet_polls` times in a row is read."""
    backoff = poll_interval * float(1 << min(max(quiet_polls, 0), 30))
    return max(poll_interval, min(backoff, max_quiet_interval))


def active_lately(
    newest_record_s: float | None, now_s: float, *, max_quiet_interval: float, settle_lag: float
) -> bool:
    """Whether a session is an active meeting: its newest delivered record is less than
    `max_quiet_interval` old (beyond the `settle_lag` every read stays behind). Such a
    session keeps its `poll_interval` even after a read that fell between two records;
    one that delivered only old records (a first read of a meeting's history, a late
    upload) is not made busy by them."""
    if newest_record_s is None:
        return False
    return now_s - newest_record_s < max_quiet_interval + settle_lag


def failure_delay(failures: int, *, base: float, cap: float) -> float:
    """Seconds until a session whose read failed `failures` times in a row is tried again."""
    return min(cap, base * float(1 << min(max(failures - 1, 0), 30)))


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    due_at: float
    busy: bool


def choose(candidates: Iterable[Candidate], now: float, busy_streak: int) -> Candidate | None:
    """The session to read next, or None when none is due.

    `busy_streak` is how many busy sessions were picked in a row just before.
    """
    due = [c for c in candidates if c.due_at <= now]
    busy = min((c for c in due if c.busy), key=_order, default=None)
    quiet = min((c for c in due if not c.busy), key=_order, default=None)
    if busy is not None and (
        quiet is None or busy_streak < QUIET_SHARE_EVERY - 1 or busy.due_at <= FIRST_READ_DUE
    ):
        return busy
    return quiet


def _order(c: Candidate) -> tuple[float, str]:
    return (c.due_at, c.key)


class DueQueue:
    """The due-queue of one domain: `choose` over a heap per class, with lazy deletion."""

    def __init__(self) -> None:
        self._heaps: dict[bool, list[tuple[float, str, int]]] = {True: [], False: []}
        self._entry: dict[str, tuple[float, bool, int]] = {}  # key -> (due_at, busy, version)
        self._versions = itertools.count()
        self.busy_streak = 0

    def __len__(self) -> int:
        return len(self._entry)

    def __contains__(self, key: str) -> bool:
        return key in self._entry

    def push(self, key: str, due_at: float, busy: bool) -> None:
        """Schedule `key` (again); replaces an earlier entry for it."""
        version = next(self._versions)
        self._entry[key] = (due_at, busy, version)
        heapq.heappush(self._heaps[busy], (due_at, key, version))

    def remove(self, key: str) -> None:
        self._entry.pop(key, None)

    def _top(self, busy: bool) -> tuple[float, str] | None:
        heap = self._heaps[busy]
        while heap:
            due_at, key, version = heap[0]
            entry = self._entry.get(key)
            if entry is not None and entry[2] == version:
                return due_at, key
            heapq.heappop(heap)
        return None

    def next_due_at(self) -> float | None:
        tops = [t for t in (self._top(True), self._top(False)) if t is not None]
        return min(t[0] for t in tops) if tops else None

    def pop_due(self, now: float) -> str | None:
        """Take the session to read now (it leaves the queue until pushed again)."""
        busy, quiet = self._top(True), self._top(False)
        candidates = []
        if busy is not None:
            candidates.append(Candidate(busy[1], busy[0], True))
        if quiet is not None:
            candidates.append(Candidate(quiet[1], quiet[0], False))
        picked = choose(candidates, now, self.busy_streak)
        if picked is None:
            return None
        self.busy_streak = self.busy_streak + 1 if picked.busy else 0
        del self._entry[picked.key]
        heapq.heappop(self._heaps[picked.busy])
        return picked.key


@dataclass(frozen=True, slots=True)
class PacingSummary:
    busy_interval: float | None  # mean seconds between two reads of a busy session
    quiet_interval: float | None
    busy_overdue: float | None  # mean seconds a read started after its due time
    quiet_overdue: float | None
    saturated: bool


def overdue_allowance(target: float) -> float:
    """How late a read may start before the budget counts as saturated: scheduling noise
    (a second, or a tenth of the interval) is not saturation."""
    return max(1.0, 0.1 * target)


class PacingWindow:
    """What the reads of the last report window achieved, per class (busy, quiet).

    First reads of a session are not observed (they have no interval), so a catch-up
    after a start does not read as saturation by itself.
    """

    def __init__(self) -> None:
        self._sums: dict[bool, list[float]] = {True: [0.0, 0.0, 0.0], False: [0.0, 0.0, 0.0]}

    def observe(self, *, busy: bool, interval: float, overdue: float) -> None:
        sums = self._sums[busy]
        sums[0] += 1
        sums[1] += interval
        sums[2] += overdue

    def summary(self, *, poll_interval: float, max_quiet_interval: float) -> PacingSummary:
        def mean(busy: bool, index: int) -> float | None:
            n = self._sums[busy][0]
            return self._sums[busy][index] / n if n else None

        busy_overdue, quiet_overdue = mean(True, 2), mean(False, 2)
        saturated = (
            busy_overdue is not None and busy_overdue > overdue_allowance(poll_interval)
        ) or (quiet_overdue is not None and quiet_overdue > overdue_allowance(max_quiet_interval))
        return PacingSummary(
            busy_interval=mean(True, 1),
            quiet_interval=mean(False, 1),
            busy_overdue=busy_overdue,
            quiet_overdue=quiet_overdue,
            saturated=saturated,
        )
