"""When each tracked session is read next, and which due session goes first: no I/O.

Rules (README, "Running under real conditions"):

* A meeting's life. Every meeting starts empty, so a read that finds nothing is no sign of
  a quiet meeting: an ongoing session is *busy* (read every `poll_interval`) while its
  newest record is less than `max_quiet_interval` old, or while it started less than
  `max_quiet_interval` ago; an ended one for `settle_lag + poll_interval` after its end
  (`busy_now`); a read that ended early keeps it busy too.
  Otherwise it is *quiet* and backs off: `poll_interval * 2**quiet_polls`, capped at
  `max_quiet_interval`. A failed read backs off on its own counter (`failure_delay`),
  which a success resets; it never touches the quiet counter.
* Three classes share the budget, in this order: busy sessions (longest overdue first),
  then first reads of sessions never read (newest meeting first), then quiet sessions
  (longest overdue first). So that a budget saturated by a higher class cannot starve a
  lower one, a class that had a due session passed over `SHARE_EVERY - 1` picks in a row
  gets the next pick (first reads before quiet ones).

`choose` states the rule as a plain function (the unit tables test it); `DueQueue` applies
the same rule in O(log n) per pick for thousands of sessions.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Under saturation, at least one pick in this many goes to each lower class that is due.
SHARE_EVERY = 5
# When a session never read is due: at once (its order among first reads is its rank).
FIRST_READ_DUE = 0.0


class ReadClass(enum.IntEnum):
    """Budget order: a lower value goes first."""

    BUSY = 0
    FIRST = 1
    QUIET = 2


def quiet_delay(quiet_polls: int, *, poll_interval: float, max_quiet_interval: float) -> float:
    """Seconds until a session that found nothing new `quiet_polls` times in a row is read."""
    backoff = poll_interval * float(1 << min(max(quiet_polls, 0), 30))
    return max(poll_interval, min(backoff, max_quiet_interval))


def active_lately(
    newest_record_s: float | None, now_s: float, *, max_quiet_interval: float, settle_lag: float
) -> bool:
    """Whether a session's newest delivered record is less than `max_quiet_interval` old
    (beyond the `settle_lag` every read stays behind). Such a session keeps its
    `poll_interval` even after a read that fell between two records; one that delivered
    only old records (a first read of a meeting's history) is not made busy by them."""
    if newest_record_s is None:
        return False
    return now_s - newest_record_s < max_quiet_interval + settle_lag


def busy_now(
    *,
    newest_record_s: float | None,
    started_s: float | None,
    ended_s: float | None,
    now_s: float,
    poll_interval: float,
    max_quiet_interval: float,
    settle_lag: float,
) -> bool:
    """Whether a session is read every `poll_interval` (a meeting's life).

    Ongoing (`ended_s` None): while its newest record is recent, or while it started less
    than `max_quiet_interval` ago (every meeting starts empty; its first minute is when it
    is most likely to start talking). Ended: for `settle_lag + poll_interval` after its end
    (the reads that bring its last seconds and the first late uploads); then it backs off
    like a quiet one until its grace period is over: a meeting that ended says nothing new,
    and the reads of hundreds of meetings that ended in the last minute would otherwise
    take the budget from the live ones."""
    if ended_s is not None:
        return now_s - ended_s < settle_lag + poll_interval
    if active_lately(
        newest_record_s, now_s, max_quiet_interval=max_quiet_interval, settle_lag=settle_lag
    ):
        return True
    return started_s is not None and now_s - started_s < max_quiet_interval + settle_lag


def failure_delay(failures: int, *, base: float, cap: float) -> float:
    """Seconds until a session whose read failed `failures` times in a row is tried again."""
    return min(cap, base * float(1 << min(max(failures - 1, 0), 30)))


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    due_at: float
    cls: ReadClass
    # Order inside the class after the due time: for first reads minus the meeting's start
    # (they are all due at `FIRST_READ_DUE`, so newest meeting first); 0 otherwise.
    rank: float = 0.0


def _order(c: Candidate) -> tuple[float, float, str]:
    return (c.due_at, c.rank, c.key)


def pick_class(due: Iterable[ReadClass], passed_over: Mapping[ReadClass, int]) -> ReadClass | None:
    """The class that gets the next pick among those with a due session."""
    classes = sorted(set(due))
    if not classes:
        return None
    for cls in classes[1:]:
        if passed_over.get(cls, 0) >= SHARE_EVERY - 1:
            return cls
    return classes[0]


def choose(
    candidates: Iterable[Candidate], now: float, passed_over: Mapping[ReadClass, int]
) -> Candidate | None:
    """The session to read next, or None when none is due.

    `passed_over[c]` is how many picks in a row went elsewhere while class `c` had a due
    session."""
    due = [c for c in candidates if c.due_at <= now]
    cls = pick_class((c.cls for c in due), passed_over)
    if cls is None:
        return None
    return min((c for c in due if c.cls is cls), key=_order)


def after_pick(
    passed_over: dict[ReadClass, int], due: Iterable[ReadClass], picked: ReadClass
) -> None:
    """Count the pick: the picked class starts over, every other due class was passed over."""
    for cls in set(due):
        passed_over[cls] = 0 if cls is picked else passed_over.get(cls, 0) + 1
    passed_over[picked] = 0


class DueQueue:
    """The due-queue of one domain: `choose` over a heap per class, with lazy deletion.

    Every heap orders as `choose` does: due time, rank, key. First reads are pushed due at
    `FIRST_READ_DUE` (a failed first read waits its backoff in the busy class), so their
    heap gives the newest meeting first."""

    def __init__(self) -> None:
        self._heaps: dict[ReadClass, list[tuple[float, float, str, int]]] = {
            cls: [] for cls in ReadClass
        }
        self._entry: dict[str, tuple[float, ReadClass, float, int]] = {}
        self._versions = itertools.count()
        self._counts: dict[ReadClass, int] = dict.fromkeys(ReadClass, 0)
        self.passed_over: dict[ReadClass, int] = {}

    def __len__(self) -> int:
        return len(self._entry)

    def __contains__(self, key: str) -> bool:
        return key in self._entry

    def count(self, cls: ReadClass) -> int:
        """Sessions waiting in a class (due or not)."""
        return self._counts[cls]

    def push(self, key: str, due_at: float, cls: ReadClass, rank: float = 0.0) -> None:
        """Schedule `key` (again); replaces an earlier entry for it."""
        self.remove(key)
        version = next(self._versions)
        self._entry[key] = (due_at, cls, rank, version)
        self._counts[cls] += 1
        heapq.heappush(self._heaps[cls], (due_at, rank, key, version))

    def remove(self, key: str) -> None:
        entry = self._entry.pop(key, None)
        if entry is not None:
            self._counts[entry[1]] -= 1

    def _top(self, cls: ReadClass) -> Candidate | None:
        heap = self._heaps[cls]
        while heap:
            due_at, rank, key, version = heap[0]
            entry = self._entry.get(key)
            if entry is not None and entry[3] == version:
                return Candidate(key, due_at, cls, rank)
            heapq.heappop(heap)
        return None

    def next_due_at(self) -> float | None:
        tops = [t for t in (self._top(cls) for cls in ReadClass) if t is not None]
        return min(t.due_at for t in tops) if tops else None

    def pop_due(self, now: float) -> str | None:
        """Take the session to read now (it leaves the queue until pushed again)."""
        tops = [t for t in (self._top(cls) for cls in ReadClass) if t is not None]
        picked = choose(tops, now, self.passed_over)
        if picked is None:
            return None
        after_pick(self.passed_over, (t.cls for t in tops if t.due_at <= now), picked.cls)
        self.remove(picked.key)
        heapq.heappop(self._heaps[picked.cls])
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
