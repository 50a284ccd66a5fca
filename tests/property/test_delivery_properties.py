"""Properties of the read algorithm: whatever the stream and however it is cut, nothing is
lost, and without crashes nothing is repeated either.

The model is the pipeline's own discipline, restated in memory: `cursor.SessionRead` and
`cursor.drain()` read a paged server; delivered records go into a batch; a batch is "acked"
(handed to the receiver) once it is full and at the end of each read, and only then committed
(watermark + identities) to a store that survives crashes. A crash drops everything in memory
and the next sweep starts again from the committed state.

The server keeps records sorted by (time, tie rank, arrival), answers `[start, end]` windows
with `offset`/`limit`, caps `limit`, may answer short pages, and makes records visible late
(after a given number of page requests), always inside the lookback of what was visible before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from daily_otel_bridge.core.cursor import (
    NS_PER_MS,
    SessionCursor,
    SessionRead,
    drain,
    prune_seen,
    window_start_ms,
)
from daily_otel_bridge.core.mapping import record_digest, record_uid

LOOKBACK_MS = 50


@dataclass(frozen=True)
class Rec:
    time_ms: int
    content: int  # records with equal (time_ms, content) are byte-identical
    arrive_call: int  # visible from the page request after this many requests
    tie_rank: int  # where it sorts among records of the same time

    def body(self) -> dict[str, Any]:
        return {"time": f"{self.time_ms:015d}", "message": f"m{self.content}"}


@dataclass
class PagedServer:
    records: list[Rec]
    max_limit: int
    short: Sequence[int]  # page i is cut to short[i % len] records when that is > 0
    start_inclusive: bool = True
    end_inclusive: bool = True
    calls: int = 0

    def page(self, start_ms: int, end_ms: int, offset: int, limit: int) -> list[dict[str, Any]]:
        cut = self.short[self.calls % len(self.short)] if self.short else 0
        self.calls += 1
        rows = [
            (r.time_ms, r.tie_rank, i, r)
            for i, r in enumerate(self.records)
            if r.arrive_call < self.calls
            and (r.time_ms > start_ms or (self.start_inclusive and r.time_ms == start_ms))
            and (r.time_ms < end_ms or (self.end_inclusive and r.time_ms == end_ms))
        ]
        rows.sort(key=lambda row: row[:3])
        size = min(limit, self.max_limit, cut or limit)
        return [row[3].body() for row in rows[offset : offset + size]]

    def all_arrived(self) -> bool:
        return all(r.arrive_call < self.calls for r in self.records)


class Crash(Exception):
    pass


@dataclass
class Committed:
    """The store: only what was acknowledged and then committed."""

    watermark_ns: int | None = None
    seen: dict[str, int] = field(default_factory=dict)


@dataclass
class Model:
    server: PagedServer
    limit: int
    batch_size: int
    crash_at: frozenset[int] = frozenset()  # event numbers at which the process dies
    store: Committed = field(default_factory=Committed)
    received: list[str] = field(default_factory=list)
    events: int = 0
    crashes: int = 0
    crashes_between_ack_and_commit: int = 0
    largest_batch: int = 0
    # (first page request of the sweep, committed watermark in ms when it began, completed)
    sweeps: list[tuple[int, int | None, bool]] = field(default_factory=list)

    def _tick(self, where: str) -> None:
        self.events += 1
        if self.events in self.crash_at:
            self.crashes += 1
            if where == "acked":
                self.crashes_between_ack_and_commit += 1
            raise Crash(where)

    async def sweep(self, now_ms: int) -> bool:
        """One read of the session; False when the process "crashed" during it."""
        first_call = self.server.calls + 1
        watermark = self.store.watermark_ns
        completed = await self._sweep(now_ms)
        self.sweeps.append(
            (first_call, None if watermark is None else watermark // NS_PER_MS, completed)
        )
        return completed

    async def _sweep(self, now_ms: int) -> bool:
        cursor = SessionCursor(
            "s",
            "r",
            start_floor_ms=0,
            watermark_ns=self.store.watermark_ns,
            seen=dict(self.store.seen),
        )
        read = SessionRead.begin(
            cursor, now_ms=now_ms, lookback_ms=LOOKBACK_MS, settle_lag_ms=0, limit=self.limit
        )
        batch: list[tuple[str, int]] = []

        def ack() -> None:
            if not batch:
                return
            self.largest_batch = max(self.largest_batch, len(batch))
            self.received.extend(uid for uid, _ in batch)
            self._tick("acked")
            self.store.watermark_ns = cursor.watermark_ns
            self.store.seen.update(batch)
            batch.clear()
            self._tick("committed")

        async def fetch(offset: int) -> list[dict[str, Any]]:
            self._tick("fetch")
            return self.server.page(read.start_ms, read.end_ms, offset, self.limit)

        def deliver(record: dict[str, Any], uid: str) -> bool:
            time_ns = int(record["time"]) * NS_PER_MS
            read.mark(uid, time_ns)
            batch.append((uid, time_ns))
            return True

        async def after_page() -> None:
            if len(batch) >= self.batch_size:
                ack()

        try:
            await drain(read, fetch, record_digest, deliver, after_page=after_page)
            ack()
            horizon = window_start_ms(cursor, LOOKBACK_MS)
            prune_seen(cursor.seen, horizon)
            prune_seen(self.store.seen, horizon)  # committed with the pruning, as the store does
        except Crash:
            return False  # everything in memory is gone; the next sweep reloads `store`
        return True


def expected(records: Sequence[Rec]) -> Counter[str]:
    counts: Counter[bytes] = Counter()
    out: Counter[str] = Counter()
    for r in records:
        digest = record_digest(r.body())
        counts[digest] += 1
        out[record_uid(digest, counts[digest])] += 1
    return out


def required(model: Model, records: Sequence[Rec]) -> list[Rec]:
    """The records the bridge promises to deliver: those inside the lookback, i.e. not older
    than `lookback` before the watermark of the first complete read begun after they became
    visible. (A record that shows up later than that is beyond what the overlap re-reads.)"""
    out = []
    for r in records:
        visible_from = r.arrive_call + 1
        later = [w for first, w, done in model.sweeps if first > visible_from and done]
        if not later or later[0] is None or r.time_ms >= later[0] - LOOKBACK_MS:
            out.append(r)
    return out


def occurrences_by_digest(uids: Counter[str]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for uid in uids:
        digest, _, n = uid.partition("-")
        out.setdefault(digest, set()).add(int(n or 1))
    return out


def check_nothing_required_lost(model: Model, records: Sequence[Rec]) -> None:
    got = occurrences_by_digest(Counter(model.received))
    for digest, n in Counter(
        record_digest(r.body()).hex() for r in required(model, records)
    ).items():
        assert len(got.get(digest, set())) >= n, f"lost: {n} copies of {digest}"


@st.composite
def streams(draw: st.DrawFn) -> list[Rec]:
    """Records in arrival order; each one's time within LOOKBACK of everything seen before."""
    n = draw(st.integers(0, 40))
    out: list[Rec] = []
    arrive = 0
    high = 1_000
    for _ in range(n):
        arrive += draw(st.sampled_from([0, 0, 0, 1, 2, 5]))
        if out and draw(st.booleans()) and draw(st.booleans()):
            twin = draw(st.sampled_from(out))  # a byte-identical duplicate, maybe late
            time_ms, content = twin.time_ms, twin.content
            if time_ms < high - LOOKBACK_MS + 1:
                time_ms = high  # too late for the lookback: make it a fresh record instead
        else:
            time_ms = high + draw(st.integers(-(LOOKBACK_MS - 1), 3))
            content = draw(st.integers(0, 3))
        high = max(high, time_ms)
        out.append(Rec(time_ms, content, arrive, draw(st.integers(0, 2))))
    # "Inside the lookback" means: no more than LOOKBACK behind the newest record visible by
    # the time it becomes visible, including those that become visible at the same moment.
    newest = 0
    fixed: list[Rec] = []
    for call in sorted({r.arrive_call for r in out}):
        group = [r for r in out if r.arrive_call == call]
        newest = max([newest, *(r.time_ms for r in group)])
        floor = newest - (LOOKBACK_MS - 1)
        fixed += [dataclasses.replace(r, time_ms=max(r.time_ms, floor)) for r in group]
    return fixed


async def run(model: Model, records: Sequence[Rec], nows: Sequence[int]) -> None:
    final_now = max((r.time_ms for r in records), default=0) + 10
    sweeps = 0
    for now in nows:
        await model.sweep(now)
        sweeps += 1
    # Then sweep until everything arrived, plus three more complete sweeps for late records.
    quiet = 0
    while quiet < 3 and sweeps < 400:
        arrived = model.server.all_arrived()
        completed = await model.sweep(final_now)
        sweeps += 1
        quiet = quiet + 1 if arrived and completed else 0


PAGING = {
    "limit": st.integers(2, 6),
    "max_limit": st.integers(2, 6),
    # Short pages of 2 or more records. A page of one record while more follow ends a read
    # early (it holds only the anchor); answered at the same place on every read it would
    # stall the session, a limit the README states (Daily caps `limit`, it does not do that).
    "short": st.lists(st.sampled_from([0, 2, 3, 4]), max_size=4),
    "start_inclusive": st.booleans(),
    "end_inclusive": st.booleans(),
    "batch_size": st.integers(1, 7),
}


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI results do not depend on luck
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    records=streams(),
    nows=st.lists(st.integers(900, 1200), max_size=4).map(sorted),
    **PAGING,
)
def test_without_crashes_every_record_arrives_exactly_once(
    records: list[Rec],
    nows: list[int],
    limit: int,
    max_limit: int,
    short: list[int],
    start_inclusive: bool,
    end_inclusive: bool,
    batch_size: int,
) -> None:
    if len({(r.time_ms, r.content) for r in records}) < len(records):
        # Byte-identical twins are read exactly once when nothing shifts the list while the
        # bridge pages across their run; a late record inserted ahead of such a run at that
        # very moment cannot be told from a twin by content, and may be delivered once more
        # under a new uid (README, "Limits"). So twins are tested here without late records,
        # late records without twins; the crash property below tests them together for loss.
        records = [dataclasses.replace(r, arrive_call=0) for r in records]
    server = PagedServer(records, max_limit, short, start_inclusive, end_inclusive)
    model = Model(server, limit=limit, batch_size=batch_size)
    asyncio.run(run(model, records, nows))
    check_nothing_required_lost(model, records)
    got = Counter(model.received)
    assert max(got.values(), default=1) == 1, "delivered twice without a crash"
    assert set(got) <= set(expected(records)), "a uid that names no source record"


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    # Shrinking a failure with crash points takes minutes; the plain tests at the end of the
    # file hold the smallest cases found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    records=streams(),
    nows=st.lists(st.integers(900, 1200), max_size=4).map(sorted),
    crash_at=st.frozensets(st.integers(1, 120), max_size=8),
    **PAGING,
)
def test_with_crashes_every_record_still_arrives(
    records: list[Rec],
    nows: list[int],
    crash_at: frozenset[int],
    limit: int,
    max_limit: int,
    short: list[int],
    start_inclusive: bool,
    end_inclusive: bool,
    batch_size: int,
) -> None:
    server = PagedServer(records, max_limit, short, start_inclusive, end_inclusive)
    model = Model(server, limit=limit, batch_size=batch_size, crash_at=crash_at)
    asyncio.run(run(model, records, nows))
    check_nothing_required_lost(model, records)
    # Duplicates come only from batches acknowledged but not yet committed at a crash (and
    # from what the first property catches); the e2e SIGKILL loop bounds them per kill.


# -- the smallest cases hypothesis found, kept as plain tests ------------------------------


def test_interleaved_identical_pairs_under_a_capped_limit_are_all_delivered() -> None:
    # Four records in one millisecond, two byte-identical pairs interleaved (A B A B), and a
    # server whose maximum `limit` (2) is below the bridge's page size (3): every page is
    # "short", and a page repeating the last page's content is taken for a shifted list.
    a, b = Rec(1000, 0, 0, 0), Rec(1000, 1, 0, 0)
    records = [a, b, a, b]
    model = Model(PagedServer(records, max_limit=2, short=[]), limit=3, batch_size=1)
    asyncio.run(run(model, records, []))
    assert Counter(model.received) == expected(records)


def test_a_late_record_ahead_of_the_anchor_makes_no_phantom_twin() -> None:
    # A is read alone (a short page); B, one ms older, becomes visible before the next
    # request, which therefore returns A again: it is a re-read, not a twin of A.
    records = [Rec(1000, 0, 0, 0), Rec(999, 1, 1, 0)]
    model = Model(PagedServer(records, max_limit=2, short=[]), limit=2, batch_size=1)
    asyncio.run(run(model, records, []))
    assert Counter(model.received) == expected(records)
