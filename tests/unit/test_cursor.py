"""Cursor arithmetic as tables, and the read algorithm against an in-memory server.

The in-memory server keeps records sorted by (time, arrival) like Daily's `order=ASC`,
answers `[start, end]` windows with `offset`/`limit`, and can make records visible late.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from daily_otel_bridge.core.cursor import (
    NS_PER_MS,
    ListTail,
    PageCut,
    Resume,
    SessionCursor,
    SessionRead,
    boundary_free_start,
    cut_page,
    drain,
    next_page_offset,
    prune_seen,
    resume_from,
    window_start_ms,
)
from daily_otel_bridge.core.mapping import record_digest

A, B, C, D = b"a", b"b", b"c", b"d"


@pytest.mark.parametrize(
    ("anchor", "digests", "take", "finished", "shifted"),
    [
        (None, [], [], True, False),
        (None, [A, B], [0, 1], False, False),
        (A, [A], [], True, False),  # only the anchor: the end of this read
        (A, [A, B, C], [1, 2], False, False),
        (A, [], [], True, True),  # anchor vanished and nothing after
        (B, [A, B, C], [0, 2], False, True),  # A was inserted before the anchor
        (D, [A, B, C], [0, 1, 2], False, True),  # anchor not found: take all new content
        (A, [A, A, B], [1, 2], False, False),  # identical twin right after the anchor
    ],
)
def test_cut_page(
    anchor: bytes | None, digests: list[bytes], take: list[int], finished: bool, shifted: bool
) -> None:
    cut = cut_page(anchor, digests)
    assert cut == PageCut(take=cut.take, finished=finished, shifted=shifted, suspect=cut.suspect)
    assert list(cut.take) == take


@pytest.mark.parametrize(
    ("anchor", "digests", "suspect"),
    [
        (A, [A, B], set()),
        (B, [A, B, C], {0, 2}),
        (D, [A, B, C], {0, 1, 2}),
        (C, [A, B, C], {0, 1}),
    ],
)
def test_cut_page_marks_possible_rereads(
    anchor: bytes, digests: list[bytes], suspect: set[int]
) -> None:
    assert cut_page(anchor, digests).suspect == suspect


@pytest.mark.parametrize(("consumed", "offset"), [(0, 0), (1, 0), (500, 499), (1000, 999)])
def test_next_page_offset_rereads_the_anchor(consumed: int, offset: int) -> None:
    assert next_page_offset(consumed) == offset


@pytest.mark.parametrize(
    ("watermark_ns", "drained_ms", "floor_ms", "lookback_ms", "expected"),
    [
        (None, None, 1_000, 120_000, 1_000),  # nothing delivered yet: the floor
        (10_000 * NS_PER_MS + 5, None, 0, 2_000, 7_999),  # back from the watermark
        (10_000 * NS_PER_MS, None, 0, 0, 9_999),
        # The end of the last read (the bridge's clock) never moves the start.
        (10_000 * NS_PER_MS, 50_000_000, 0, 2_000, 7_999),
        (None, 50_000, 1_000, 2_000, 1_000),
    ],
)
def test_window_start(
    watermark_ns: int | None, drained_ms: int | None, floor_ms: int, lookback_ms: int, expected: int
) -> None:
    cursor = SessionCursor(
        "s", "r", start_floor_ms=floor_ms, watermark_ns=watermark_ns, drained_until_ms=drained_ms
    )
    assert window_start_ms(cursor, lookback_ms) == expected


def test_prune_keeps_the_overlap() -> None:
    seen = {"old": 5 * NS_PER_MS - 1, "edge": 5 * NS_PER_MS, "new": 9 * NS_PER_MS}
    assert prune_seen(seen, 5) == 1
    assert set(seen) == {"edge", "new"}


# -- the read algorithm against an in-memory server -------------------------------------


@dataclass
class FakeDaily:
    """Sorted by (time, arrival); `visible_after_calls` delays records like late arrivals."""

    rows: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # time_ms, seq, rec
    hidden: list[tuple[int, int, dict[str, Any], int]] = field(default_factory=list)
    calls: int = 0
    max_limit: int = 1000
    short: int | None = None  # answer at most this many per page

    def add(
        self, time_ms: int, message: str, late_after_calls: int | None = None
    ) -> dict[str, Any]:
        rec = {"time": f"t{time_ms:012d}", "message": message, "t": time_ms}
        seq = len(self.rows) + len(self.hidden)
        if late_after_calls is None:
            self.rows.append((time_ms, seq, rec))
            self.rows.sort(key=lambda r: (r[0], r[1]))
        else:
            self.hidden.append((time_ms, seq, rec, late_after_calls))
        return rec

    def page(self, start_ms: int, end_ms: int, offset: int, limit: int) -> list[dict[str, Any]]:
        self.calls += 1
        for item in list(self.hidden):
            if self.calls > item[3]:
                self.hidden.remove(item)
                self.rows.append(item[:3])
        self.rows.sort(key=lambda r: (r[0], r[1]))
        window = [r for t, _, r in self.rows if start_ms <= t <= end_ms]
        size = min(limit, self.max_limit, self.short or limit)
        return window[offset : offset + size]


async def read_all(
    server: FakeDaily,
    cursor: SessionCursor,
    now_ms: int,
    *,
    lookback_ms: int,
    limit: int,
    complete: bool = True,
) -> list[dict[str, Any]]:
    read = SessionRead.begin(cursor, now_ms=now_ms, lookback_ms=lookback_ms, settle_lag_ms=0)
    out: list[dict[str, Any]] = []

    async def fetch(offset: int) -> Sequence[Any]:
        return server.page(read.start_ms, read.end_ms, offset, limit)

    def deliver(rec: dict[str, Any], uid: str) -> bool:
        out.append(rec)
        read.mark(uid, rec["t"] * NS_PER_MS)
        return True

    result = await drain(read, fetch, record_digest, deliver)
    assert result.complete == complete
    prune_seen(cursor.seen, window_start_ms(cursor, lookback_ms))
    return out


async def test_ties_across_page_boundaries_are_delivered_once() -> None:
    server = FakeDaily()
    for i in range(50):
        for j in range(7):  # tie groups of 7 straddle pages of 5
            server.add(1000 + i, f"m{i}-{j}")
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    got = await read_all(server, cursor, 10_000, lookback_ms=100, limit=5)
    assert len(got) == 350
    assert len({(r["t"], r["message"]) for r in got}) == 350
    again = await read_all(server, cursor, 10_000, lookback_ms=100, limit=5)
    assert again == []


async def test_byte_identical_twins_are_both_kept_exactly_once() -> None:
    server = FakeDaily()
    for _ in range(3):
        server.add(1000, "same")
    server.add(1001, "other")
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    got = await read_all(server, cursor, 5_000, lookback_ms=100, limit=2)
    assert [r["message"] for r in got] == ["same", "same", "same", "other"]
    assert await read_all(server, cursor, 5_000, lookback_ms=100, limit=2) == []
    server.add(1000, "same")  # a fourth copy arrives late: it is new
    assert [
        r["message"] for r in await read_all(server, cursor, 5_000, lookback_ms=100, limit=2)
    ] == ["same"]


async def test_late_record_inside_the_lookback_is_delivered_next_sweep() -> None:
    server = FakeDaily()
    for i in range(20):
        server.add(1000 + i * 10, f"m{i}")
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    assert len(await read_all(server, cursor, 2_000, lookback_ms=500, limit=4)) == 20
    server.add(1150, "late")  # older than the watermark (1190), inside the lookback
    got = await read_all(server, cursor, 2_000, lookback_ms=500, limit=4)
    assert [r["message"] for r in got] == ["late"]


async def test_record_inserted_during_paging_shifts_nothing_into_a_duplicate() -> None:
    server = FakeDaily()
    for i in range(30):
        server.add(1000 + i, f"m{i}")
    server.add(1001, "late", late_after_calls=2)  # appears between page 2 and page 3
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    first = await read_all(server, cursor, 5_000, lookback_ms=100, limit=5, complete=False)
    assert "late" not in [r["message"] for r in first], "it appeared behind the read's offset"
    assert len(first) < 30, "the read stopped where the list moved"
    # The next read starts again from the watermark's overlap: it finds the late record and
    # the rest; nothing is delivered twice.
    second = await read_all(server, cursor, 5_000, lookback_ms=100, limit=5)
    assert "late" in [r["message"] for r in second]
    messages = [r["message"] for r in first + second]
    assert sorted(messages) == sorted([f"m{i}" for i in range(30)] + ["late"])
    assert len(messages) == len(set(messages))


@pytest.mark.parametrize("short", [2, 3])
@pytest.mark.parametrize("limit", [5, 500])
async def test_short_pages_are_not_the_end(short: int, limit: int) -> None:
    server = FakeDaily(short=short)
    for i in range(40):
        server.add(1000 + i // 3, f"m{i}")
    server.add(1005, "m15")  # a byte-identical twin
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    got = await read_all(server, cursor, 5_000, lookback_ms=100, limit=limit)
    assert sorted(r["message"] for r in got) == sorted([f"m{i}" for i in range(40)] + ["m15"])


async def test_one_record_pages_are_delayed_not_lost() -> None:
    # A server that now and then answers a single record while more follow ends that read
    # early (the page holds only the anchor); the next read starts from the watermark and
    # goes further. (One that answered a lone record at the same place on every read would
    # stall the session: the README states this limit.)
    rng = random.Random(3)

    class Flaky(FakeDaily):
        def page(self, start_ms: int, end_ms: int, offset: int, limit: int) -> list[dict[str, Any]]:
            self.short = 1 if rng.random() < 0.3 else None
            return super().page(start_ms, end_ms, offset, limit)

    server = Flaky()
    for i in range(12):
        server.add(1000 + i // 3, f"m{i}")
    server.add(1002, "m7")  # a byte-identical twin
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    got: list[str] = []
    for _ in range(30):
        got += [
            r["message"] for r in await read_all(server, cursor, 5_000, lookback_ms=100, limit=4)
        ]
    assert sorted(got) == sorted([f"m{i}" for i in range(12)] + ["m7"])


async def test_short_pages_of_three_are_not_the_end() -> None:
    server = FakeDaily(short=3)
    for i in range(40):
        server.add(1000 + i, f"m{i}")
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    got = await read_all(server, cursor, 5_000, lookback_ms=100, limit=500)
    assert len(got) == 40


async def test_a_server_that_ignores_offset_does_not_loop_forever() -> None:
    class Stuck(FakeDaily):
        def page(self, start_ms: int, end_ms: int, offset: int, limit: int) -> list[dict[str, Any]]:
            return super().page(start_ms, end_ms, 0, limit)

    server = Stuck()
    for i in range(10):
        server.add(1000 + i, f"m{i}")
    cursor = SessionCursor("s", "r", start_floor_ms=0)
    read = SessionRead.begin(cursor, now_ms=5_000, lookback_ms=100, settle_lag_ms=0)
    delivered: list[str] = []

    async def fetch(offset: int) -> Sequence[Any]:
        return server.page(read.start_ms, read.end_ms, offset, 4)

    def deliver(rec: dict[str, Any], uid: str) -> bool:
        delivered.append(rec["message"])
        read.mark(uid, rec["t"] * NS_PER_MS)
        return True

    result = await drain(read, fetch, record_digest, deliver)
    assert result.stalled
    assert not result.complete
    assert delivered == ["m0", "m1", "m2", "m3"]
    assert server.calls < 10


# -- resuming after the last read (a read costs what is new) ----------------------------

MS = 1_000_000


def _tail(times_ms: list[float], *, start_ms: int = 0, **kw: Any) -> ListTail:
    from array import array

    defaults: dict[str, Any] = {
        "anchor": b"a" if times_ms else None,
        "group": {},
        "unsure": [],
        "certain": True,
    }
    defaults.update(kw)
    return ListTail(
        start_ms=start_ms, times_ns=array("q", [int(t * MS) for t in times_ms]), **defaults
    )


@pytest.mark.parametrize(
    ("times_ms", "tail_kw", "start_ms", "expected"),
    [
        # The window did not move: everything the last read saw is still in it.
        ([10, 20, 30], {}, 0, Resume(0, 0, 3)),
        # It moved past two records (10 and 20 are more than a ms before 25).
        ([10, 20, 30], {}, 25, Resume(25, 2, 1)),
        # A record within a millisecond of the start: inclusive or not, rounded or not,
        # the count would be uncertain.
        ([10, 20, 30], {}, 20, None),
        ([10, 20.5, 30], {}, 21, None),
        ([10, 19.5, 30], {}, 19, None),
        # A whole millisecond away is far enough on every reading.
        ([10, 20, 30], {}, 21, Resume(21, 2, 1)),
        ([10, 20, 30], {}, 19, Resume(19, 1, 2)),
        # Moved past everything: nothing of the old list is in the window.
        ([10, 20, 30], {}, 40, Resume(40, 3, 0)),
        # A start before the last read's: nothing is known there.
        ([10, 20, 30], {"start_ms": 5}, 4, None),
        # A read that could not have seen every move, or an unordered list: full read.
        ([10, 20, 30], {"certain": False}, 0, None),
        ([10, 30, 20], {"ordered": False}, 0, None),
        # A record of unknown time (malformed) left out by the new start: cannot count.
        ([10, 10, 30], {"unsure": [1]}, 25, None),
        # ... kept inside the window: harmless.
        ([10, 30, 30], {"unsure": [2]}, 25, Resume(25, 1, 2)),
        (None, {}, 0, None),
    ],
)
def test_resume_counts_what_the_window_still_holds(
    times_ms: list[float] | None, tail_kw: dict[str, Any], start_ms: int, expected: Resume | None
) -> None:
    tail = None if times_ms is None else _tail(times_ms, **tail_kw)
    assert resume_from(tail, start_ms) == expected


@pytest.mark.parametrize(
    ("times_ms", "start_ms", "expected"),
    [
        ([10, 20, 30], 25, 25),  # nothing near: unchanged
        ([10, 20, 30], 20, 19),  # a record at 20: 19 is a whole ms away
        ([10, 20.5, 30], 21, 19),  # 20.5 is within a ms of 21 and of 20
        ([10, 20, 20.5, 30], 21, 19),
        ([10, 20, 30], 0, 0),  # the last read's own start: never moved
        ([], 25, 25),
    ],
)
def test_a_window_start_keeps_off_the_millisecond_of_a_record(
    times_ms: list[float], start_ms: int, expected: int
) -> None:
    assert boundary_free_start([_tail(times_ms)], start_ms) == expected
