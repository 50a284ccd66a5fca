"""Properties of the real read path: whatever the stream and however it is cut, nothing is
lost, and without crashes nothing is repeated either.

No restated model: every pass runs the bridge's own `DomainPipeline` (session table, reader,
per-record path, batcher with several exports in flight and ordered commits) against paged
fake Daily sessions, an exporter that acknowledges after a drawn number of loop turns (so
acknowledgements come back out of order) and the in-memory `CursorStore`. A crash (at a
page request, between an acknowledgement and its commit, or right after a commit) drops the
pipeline; the next pass builds a new one from what the store holds.

The server keeps records sorted by (time, tie rank, arrival), answers `[start, end]` windows
with `offset`/`limit`, caps `limit`, may answer short pages, and makes records visible late
(after a given number of page requests), always inside the lookback of what was visible before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from daily_otel_bridge.config.settings import DomainSettings
from daily_otel_bridge.core.cursor import NS_PER_MS
from daily_otel_bridge.core.records import Meeting
from daily_otel_bridge.daily.client import LogsPage
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.transport import ExportOutcome
from daily_otel_bridge.pipeline.domain import DomainPipeline
from daily_otel_bridge.state.memory import MemoryCursorStore
from tests.expectations import independent_digest as record_digest
from tests.expectations import record_uid

LOOKBACK_MS = 50
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; record times are offsets from it
SESSIONS = ("s1", "s2")


def iso(ms: int) -> str:
    whole = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ms % 1000:03d}000000Z"


@dataclass(frozen=True)
class Rec:
    time_ms: int
    content: int  # records with equal (time_ms, content) are byte-identical
    arrive_call: int  # visible from the page request after this many requests
    tie_rank: int  # where it sorts among records of the same time

    def body(self, session: str) -> dict[str, Any]:
        return {
            "time": iso(BASE_MS + self.time_ms),
            "message": f"m{self.content}",
            "mtgSessionId": session,
            "userSessionId": "u",
        }


@dataclass
class PagedServer:
    session: str
    records: list[Rec]
    max_limit: int
    short: Sequence[int]  # page i is cut to short[i % len] records when that is > 0
    start_inclusive: bool = True
    end_inclusive: bool = True
    calls: int = 0

    def page(self, start_ms: int, end_ms: int, offset: int, limit: int) -> list[dict[str, Any]]:
        start_ms, end_ms = start_ms - BASE_MS, end_ms - BASE_MS
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
        return [row[3].body(self.session) for row in rows[offset : offset + size]]

    def all_arrived(self) -> bool:
        return all(r.arrive_call < self.calls for r in self.records)


class Crash(Exception):
    pass


class FakeDaily:
    """What the pipeline asks of `DailyClient`, answered by the paged servers."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.requests_made = 0

    async def list_meetings(self, **_: Any) -> list[Meeting]:
        start = (BASE_MS - 10_000) // 1000
        return [Meeting(s, "r", start, None, True) for s in self.model.servers]

    async def fetch_logs_page(
        self, *, mtg_session_id: str, start_ms: int, end_ms: int, offset: int, limit: int, **_: Any
    ) -> LogsPage:
        self.requests_made += 1
        self.model.tick("fetch")
        await asyncio.sleep(0)  # let the other session's read and the exports run
        server = self.model.servers[mtg_session_id]
        return LogsPage(logs=server.page(start_ms, end_ms, offset, limit), metrics=[])


class FakeExporter:
    """A backend that takes each request and acknowledges it a drawn number of turns later."""

    protocol = "memory"

    def __init__(self, model: Model) -> None:
        self.model = model
        self.delays = itertools.cycle(model.ack_delays or [0])

    async def export(self, signal: str, request: Any) -> ExportOutcome:
        for _ in range(next(self.delays)):
            await asyncio.sleep(0)
        uids = [
            next(a.value.string_value for a in r.attributes if a.key == "log.record.uid")
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
        ]
        self.model.largest_batch = max(self.model.largest_batch, len(uids))
        self.model.received.extend(uids)
        self.model.tick("acked")  # a crash here: the backend has them, no cursor moved
        return ExportOutcome(rejected=0, error_message="")

    async def close(self) -> None:
        return None


@dataclass
class Model:
    servers: dict[str, PagedServer]
    limit: int
    batch_size: int
    inflight: int = 2
    ack_delays: list[int] = field(default_factory=list)
    crash_at: frozenset[int] = frozenset()  # event numbers at which the process dies
    store: MemoryCursorStore = field(default_factory=MemoryCursorStore)
    received: list[str] = field(default_factory=list)
    events: int = 0
    crashes: int = 0
    largest_batch: int = 0
    now_ms: int = 0
    pipeline: DomainPipeline | None = None
    # per session: (first page request of the pass, committed watermark in ms, completed)
    sweeps: dict[str, list[tuple[int, int | None, bool]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store.after_commit = lambda: self.tick("committed")

    def tick(self, where: str) -> None:
        self.events += 1
        if self.events in self.crash_at:
            self.crashes += 1
            raise Crash(where)

    def settings(self) -> DomainSettings:
        return DomainSettings.model_validate(
            {
                "name": "acme",
                "api_key": "k",
                "lookback": LOOKBACK_MS / 1000,
                "settle_lag": 0,
                "initial_lookback": 3600,
                "session_grace": 3600,
                # /logs alone, counted exactly (the summaries have their own tests).
                "meeting_summaries": False,
                "page_size": self.limit,
                "max_concurrent_reads": 2,
                "export": {
                    "batch_size": self.batch_size,
                    "max_inflight_exports": self.inflight,
                    "batch_timeout": 3600,  # batches leave by size or at the end of a pass
                },
            }
        )

    def _pipeline(self) -> DomainPipeline:
        if self.pipeline is None:
            self.pipeline = DomainPipeline(
                self.settings(),
                client=FakeDaily(self),  # type: ignore[arg-type]
                exporter=FakeExporter(self),
                store=self.store,
                metrics=BridgeMetrics(),
                clock=lambda: (BASE_MS + self.now_ms) / 1000,
            )
        return self.pipeline

    def _watermark_ms(self, session: str) -> int | None:
        cursor = self.store.cursors.get(("acme", "logs"), {}).get(session)
        if cursor is None or cursor.watermark_ns is None:
            return None
        return cursor.watermark_ns // NS_PER_MS - BASE_MS

    async def sweep(self, now_ms: int) -> bool:
        """One pass over both sessions; False when the process "crashed" during it."""
        self.now_ms = now_ms
        starts = {s: (srv.calls + 1, self._watermark_ms(s)) for s, srv in self.servers.items()}
        try:
            await self._pipeline().run_once()
            completed = True
        except Crash:
            self.pipeline = None  # everything in memory is gone; the next pass reloads
            completed = False
        for s, (first, watermark) in starts.items():
            self.sweeps.setdefault(s, []).append((first, watermark, completed))
        return completed


def expected(records: Sequence[Rec]) -> Counter[str]:
    out: Counter[str] = Counter()
    for session in SESSIONS:
        counts: Counter[bytes] = Counter()
        for r in records:
            digest = record_digest(r.body(session))
            counts[digest] += 1
            out[record_uid(digest, counts[digest])] += 1
    return out


def required(model: Model, records: Sequence[Rec], session: str) -> list[Rec]:
    """The records the bridge promises to deliver: those inside the lookback, i.e. not older
    than `lookback` before the watermark of the first complete read begun after they became
    visible. (A record that shows up later than that is beyond what the overlap re-reads.)"""
    out = []
    for r in records:
        visible_from = r.arrive_call + 1
        later = [w for first, w, done in model.sweeps[session] if first > visible_from and done]
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
    for session in SESSIONS:
        for digest, n in Counter(
            record_digest(r.body(session)).hex() for r in required(model, records, session)
        ).items():
            assert len(got.get(digest, set())) >= n, f"lost: {n} copies of {digest}"


def servers(
    records: Sequence[Rec],
    max_limit: int,
    short: Sequence[int],
    start_inclusive: bool,
    end_inclusive: bool,
) -> dict[str, PagedServer]:
    return {
        s: PagedServer(s, list(records), max_limit, short, start_inclusive, end_inclusive)
        for s in SESSIONS
    }


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
        arrived = all(s.all_arrived() for s in model.servers.values())
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
    "inflight": st.integers(1, 3),
    "ack_delays": st.lists(st.integers(0, 4), max_size=5),
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
    inflight: int,
    ack_delays: list[int],
) -> None:
    if len({(r.time_ms, r.content) for r in records}) < len(records):
        # Byte-identical twins are read exactly once when nothing shifts the list while the
        # bridge pages across their run; a late record inserted ahead of such a run at that
        # very moment cannot be told from a twin by content, and may be delivered once more
        # under a new uid (README, "Not promised (limits)"). So twins are tested here
        # without late records, late records without twins; the crash property below
        # tests them together for loss.
        records = [dataclasses.replace(r, arrive_call=0) for r in records]
    model = Model(
        servers(records, max_limit, short, start_inclusive, end_inclusive),
        limit=limit,
        batch_size=batch_size,
        inflight=inflight,
        ack_delays=ack_delays,
    )
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
    inflight: int,
    ack_delays: list[int],
) -> None:
    model = Model(
        servers(records, max_limit, short, start_inclusive, end_inclusive),
        limit=limit,
        batch_size=batch_size,
        inflight=inflight,
        ack_delays=ack_delays,
        crash_at=crash_at,
    )
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
    model = Model(servers(records, 2, [], True, True), limit=3, batch_size=1)
    asyncio.run(run(model, records, []))
    assert Counter(model.received) == expected(records)


def test_a_late_record_ahead_of_the_anchor_makes_no_phantom_twin() -> None:
    # A is read alone (a short page); B, one ms older, becomes visible before the next
    # request, which therefore returns A again: it is a re-read, not a twin of A.
    records = [Rec(1000, 0, 0, 0), Rec(999, 1, 1, 0)]
    model = Model(servers(records, 2, [], True, True), limit=2, batch_size=1)
    asyncio.run(run(model, records, []))
    assert Counter(model.received) == expected(records)
