"""The scheduler's choice and intervals: plain tables, and the heap agreeing with the rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_otel_bridge.core.schedule import (
    SHARE_EVERY,
    Candidate,
    DueQueue,
    PacingWindow,
    ReadClass,
    active_lately,
    after_pick,
    busy_now,
    choose,
    failure_delay,
    quiet_delay,
)

B = ReadClass.BUSY
F = ReadClass.FIRST
Q = ReadClass.QUIET
N = SHARE_EVERY - 1  # picks passed over after which a lower class gets its share


@pytest.mark.parametrize(
    ("entries", "now", "passed", "picked"),
    [
        ([], 10, {}, None),
        ([("a", 11, B, 0)], 10, {}, None),  # not due yet
        ([("a", 10, B, 0)], 10, {}, "a"),  # due exactly now
        ([("a", 5, Q, 0), ("b", 9, B, 0)], 10, {}, "b"),  # busy first, although less overdue
        ([("a", 5, B, 0), ("b", 3, B, 0)], 10, {}, "b"),  # then the longest overdue
        ([("a", 5, Q, 0), ("b", 3, Q, 0)], 10, {}, "b"),
        ([("a", 5, Q, 0), ("b", 20, B, 0)], 10, {}, "a"),  # a busy one not due does not block
        # First reads go after busy sessions and before quiet ones, newest meeting first.
        ([("q", 1, Q, 0), ("f", 0, F, -100), ("b", 9, B, 0)], 10, {}, "b"),
        ([("q", 1, Q, 0), ("f", 0, F, -100)], 10, {}, "f"),
        ([("old", 0, F, -100), ("new", 0, F, -200)], 10, {}, "new"),
        # Under saturation a lower class that was passed over N picks gets the next one.
        ([("a", 5, Q, 0), ("b", 9, B, 0)], 10, {Q: N - 1}, "b"),
        ([("a", 5, Q, 0), ("b", 9, B, 0)], 10, {Q: N}, "a"),
        ([("f", 0, F, -1), ("b", 9, B, 0)], 10, {F: N}, "f"),
        ([("q", 5, Q, 0), ("f", 0, F, -1), ("b", 9, B, 0)], 10, {F: N, Q: N}, "f"),
        ([("b", 9, B, 0)], 10, {Q: N + 3}, "b"),  # no quiet one due: busy goes on
        ([("a", 5, B, 0), ("b", 5, B, 0)], 10, {}, "a"),  # ties by key: deterministic
    ],
)
def test_choose(
    entries: list[tuple[str, float, ReadClass, float]],
    now: float,
    passed: dict[ReadClass, int],
    picked: str | None,
) -> None:
    chosen = choose([Candidate(k, d, c, r) for k, d, c, r in entries], now, passed)
    assert (chosen.key if chosen else None) == picked


def test_a_saturated_budget_still_gives_each_lower_class_one_pick_in_share_every() -> None:
    queue = DueQueue()
    for i in range(100):
        queue.push(f"b{i}", 0.0, B)
        queue.push(f"f{i}", 0.0, F, float(-i))
        queue.push(f"q{i}", 0.0, Q)
    picks = [queue.pop_due(1.0) or "" for _ in range(50)]
    counts = {c: sum(1 for p in picks if p.startswith(c)) for c in "bfq"}
    # Each lower class gets a pick once passed over SHARE_EVERY - 1 times; when both are
    # due at once, first reads go first and quiet ones one pick later.
    assert counts["f"] >= 50 // SHARE_EVERY
    assert counts["q"] >= 50 // (SHARE_EVERY + 1)
    assert counts["b"] > counts["f"]
    # First reads come newest meeting first (the highest start, the lowest rank).
    firsts = [p for p in picks if p.startswith("f")]
    assert firsts == [f"f{i}" for i in range(99, 99 - len(firsts), -1)]


@pytest.mark.parametrize(
    ("quiet_polls", "expected"),
    [(0, 15), (1, 30), (2, 60), (3, 60), (50, 60)],
)
def test_quiet_sessions_back_off_to_max_quiet_interval(quiet_polls: int, expected: float) -> None:
    assert quiet_delay(quiet_polls, poll_interval=15, max_quiet_interval=60) == expected


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (40, 60)],
)
def test_failed_reads_back_off_on_their_own_counter(failures: int, expected: float) -> None:
    assert failure_delay(failures, base=2, cap=60) == expected


@pytest.mark.parametrize(
    ("busy", "quiet", "saturated"),
    [
        ([], [], False),
        ([(15, 0.2)], [(60, 0.5)], False),  # on time
        ([(16, 1.4)], [], False),  # 1.4 s late: within max(1 s, 10 % of 15 s)
        ([(17, 2.0)], [], True),
        ([], [(80, 7.0)], True),  # quiet: allowance 6 s of a 60 s interval
        ([(15, 0.0)], [(64, 4.0)], False),
    ],
)
def test_pacing_window_says_when_the_budget_is_saturated(
    busy: list[tuple[float, float]], quiet: list[tuple[float, float]], saturated: bool
) -> None:
    window = PacingWindow()
    for interval, overdue in busy:
        window.observe(busy=True, interval=interval, overdue=overdue)
    for interval, overdue in quiet:
        window.observe(busy=False, interval=interval, overdue=overdue)
    summary = window.summary(poll_interval=15, max_quiet_interval=60)
    assert summary.saturated is saturated
    if busy:
        assert summary.busy_interval == sum(i for i, _ in busy) / len(busy)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["push", "pop", "remove"]),
            st.sampled_from("abcdef"),
            st.integers(0, 20),
            st.sampled_from(list(ReadClass)),
        ),
        max_size=60,
    )
)
def test_the_due_queue_picks_what_the_rule_picks(
    ops: list[tuple[str, str, int, ReadClass]],
) -> None:
    queue = DueQueue()
    entries: dict[str, Candidate] = {}
    passed: dict[ReadClass, int] = {}
    for op, key, t, cls in ops:
        if op == "push":
            rank = float(-t) if cls is F else 0.0
            due = 0.0 if cls is F else float(t)
            queue.push(key, due, cls, rank)
            entries[key] = Candidate(key, due, cls, rank)
        elif op == "remove":
            queue.remove(key)
            entries.pop(key, None)
        else:
            tops = [
                min(
                    (c for c in entries.values() if c.cls is k),
                    key=lambda c: (c.due_at, c.rank, c.key),
                )
                for k in ReadClass
                if any(c.cls is k for c in entries.values())
            ]
            expected = choose(tops, now=t, passed_over=passed)
            got = queue.pop_due(t)
            assert got == (expected.key if expected else None)
            if expected is not None:
                after_pick(passed, (c.cls for c in tops if c.due_at <= t), expected.cls)
                del entries[expected.key]
        assert len(queue) == len(entries)
        assert sum(queue.count(k) for k in ReadClass) == len(entries)


@pytest.mark.parametrize(
    ("newest", "now", "active"),
    [
        (None, 100.0, False),  # nothing delivered yet
        (95.0, 100.0, True),  # a record 5 s old: the settle lag
        (40.0, 100.0, True),  # one read fell between two records: still active
        (35.1, 100.0, True),
        (35.0, 100.0, False),  # nothing for max_quiet_interval (+ settle lag): quiet
        (-140.0, 100.0, False),  # a first read of history four minutes old
    ],
)
def test_a_session_is_active_while_its_newest_record_is_recent(
    newest: float | None, now: float, active: bool
) -> None:
    assert active_lately(newest, now, max_quiet_interval=60.0, settle_lag=5.0) is active


@pytest.mark.parametrize(
    ("newest", "started", "ended", "now", "busy"),
    [
        # Every meeting starts empty: a young ongoing meeting is busy before it says a word.
        (None, 95.0, None, 100.0, True),
        (None, 35.1, None, 100.0, True),
        (None, 35.0, None, 100.0, False),  # silent for max_quiet_interval since its start
        (None, None, None, 100.0, False),  # start unknown, nothing read: not busy
        (20.0, 10.0, None, 100.0, False),  # old history, old start: quiet
        (40.0, -3600.0, None, 100.0, True),  # an old meeting that talks
        # Ended: busy for settle_lag + poll_interval after its end (its last seconds and
        # the first late uploads), whatever its records; then quiet until it retires.
        (99.0, 10.0, 90.0, 100.0, True),
        (None, 95.0, 81.0, 100.0, True),
        (99.0, 10.0, 80.0, 100.0, False),
        (None, 95.0, 10.0, 100.0, False),
    ],
)
def test_a_meetings_life_decides_whether_it_is_busy(
    newest: float | None, started: float | None, ended: float | None, now: float, busy: bool
) -> None:
    assert (
        busy_now(
            newest_record_s=newest,
            started_s=started,
            ended_s=ended,
            now_s=now,
            poll_interval=15.0,
            max_quiet_interval=60.0,
            settle_lag=5.0,
        )
        is busy
    )
