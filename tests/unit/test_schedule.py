"""The scheduler's choice and intervals: plain tables, and the heap agreeing with the rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_otel_bridge.core.schedule import (
    QUIET_SHARE_EVERY,
    Candidate,
    DueQueue,
    PacingWindow,
    active_lately,
    choose,
    failure_delay,
    quiet_delay,
)

B = True  # busy
Q = False  # quiet


@pytest.mark.parametrize(
    ("entries", "now", "streak", "picked"),
    [
        ([], 10, 0, None),
        ([("a", 11, B)], 10, 0, None),  # not due yet
        ([("a", 10, B)], 10, 0, "a"),  # due exactly now
        ([("a", 5, Q), ("b", 9, B)], 10, 0, "b"),  # news first, although less overdue
        ([("a", 5, B), ("b", 3, B)], 10, 0, "b"),  # then the longest overdue
        ([("a", 5, Q), ("b", 3, Q)], 10, 0, "b"),
        ([("a", 5, Q), ("b", 20, B)], 10, 0, "a"),  # a busy one not due does not block
        # Under saturation one pick in QUIET_SHARE_EVERY goes to a quiet session.
        ([("a", 5, Q), ("b", 9, B)], 10, QUIET_SHARE_EVERY - 2, "b"),
        ([("a", 5, Q), ("b", 9, B)], 10, QUIET_SHARE_EVERY - 1, "a"),
        ([("b", 9, B)], 10, QUIET_SHARE_EVERY + 3, "b"),  # no quiet one due: busy goes on
        ([("a", 5, B), ("b", 5, B)], 10, 0, "a"),  # ties by key: deterministic
        # A session never read (due at FIRST_READ_DUE) is not held back by the quiet share.
        ([("a", 5, Q), ("n", 0, B)], 10, QUIET_SHARE_EVERY + 1, "n"),
    ],
)
def test_choose(
    entries: list[tuple[str, float, bool]], now: float, streak: int, picked: str | None
) -> None:
    chosen = choose([Candidate(k, d, b) for k, d, b in entries], now, streak)
    assert (chosen.key if chosen else None) == picked


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
    ops=st.lists(
        st.tuples(
            st.sampled_from(["push", "pop", "remove"]),
            st.sampled_from("abcdef"),
            st.integers(0, 20),
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_the_due_queue_picks_what_the_rule_picks(ops: list[tuple[str, str, int, bool]]) -> None:
    queue = DueQueue()
    entries: dict[str, Candidate] = {}
    streak = 0
    for op, key, t, busy in ops:
        if op == "push":
            queue.push(key, t, busy)
            entries[key] = Candidate(key, t, busy)
        elif op == "remove":
            queue.remove(key)
            entries.pop(key, None)
        else:
            expected = choose(entries.values(), now=t, busy_streak=streak)
            got = queue.pop_due(t)
            assert got == (expected.key if expected else None)
            if expected is not None:
                streak = streak + 1 if expected.busy else 0
                del entries[expected.key]
        assert len(queue) == len(entries)


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
