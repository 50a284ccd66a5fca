"""The tie-safe cursor of one meeting session: pure arithmetic and bookkeeping, no I/O.

How a session is read (README.md, "The cursor and the delivery guarantee"):

* The query window is `[watermark - lookback, now - settle_lag]`, in milliseconds, frozen for
  the whole read and paged with `offset`, `order=ASC`. The overlap re-reads the last
  `lookback` of already delivered records so that records Daily makes visible late are not
  lost.
* Every record delivered inside that overlap is remembered by its identity: the digest of
  its content plus its occurrence number among byte-identical records of the same read.
  Two identical records at the same `time` are therefore both delivered, exactly once each.
* Each page request re-reads the last record of the previous page (`offset = consumed - 1`).
  That record, the *anchor*, shows whether the server's list moved under us between two
  requests (a late record inserted earlier in the window shifts every offset by one); we
  then skip exactly the re-read records instead of delivering them twice. A page holding
  only the anchor, or nothing, ends the read: a short page never does.
* A read costs what is new (`ListTail`, `resume_from`): after a complete read the cursor
  keeps where each record of the list stood (its time) and the last one (the anchor). The
  next read counts how many of those records its window still holds and asks from the
  anchor's position at once; the overlap is read again only when the answer shows that the
  list changed there (the anchor is not where it was: a late record came in before it).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daily_otel_bridge.core.mapping import record_uid

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class SessionCursor:
    """What is persisted per (domain, meeting session)."""

    session_id: str
    room: str
    start_floor_ms: int  # where the first read starts, before anything was delivered
    watermark_ns: int | None = None  # `time` of the latest delivered record
    drained_until_ms: int | None = None  # endTime of the last complete, acknowledged read
    ended_at_ms: int | None = None  # when the meeting ended, once known
    seen: dict[str, int] = field(default_factory=dict)  # uid -> time_ns, inside the overlap
    retired: bool = False
    # When this process first knew the meeting had ended (monotonic clock): the grace
    # period must also pass on a clock that cannot jump.
    end_seen_mono: float | None = None
    # What the last complete read saw of the server's list, so that the next read asks
    # from its end (in memory only; a restart reads the overlap once).
    tail: ListTail | None = None
    # (window start, records in the list) at the end of the last complete read, certain or
    # not (in memory only): two complete reads in a row that agree, the second delivering
    # nothing, show a list that did not move under the second (see `SessionReader`).
    last_count: tuple[int, int] | None = None


@dataclass(slots=True)
class ListTail:
    """The server's list as the last complete read left it: enough to resume after it.

    `times_ns[i]` is the `time` of the record at position `i` of the read's window (a
    record whose time could not be read, a malformed one, holds its predecessor's time and
    its position is in `unsure`). `anchor` is the digest of the last record; `group` the
    occurrence counts of the digests at the anchor's time (a new twin of one of them, after
    the anchor, continues their numbering). `certain`: every move of the list during that
    read would have been seen (see `SessionRead.certain`)."""

    start_ms: int
    times_ns: array[int]  # 8 bytes a record: a busy session's overlap holds hundreds
    anchor: bytes | None
    group: dict[bytes, int]
    unsure: list[int]
    certain: bool
    ordered: bool = True  # times never went backwards (Daily's order=ASC)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a read starts instead of the window's beginning."""

    start_ms: int  # the window start (possibly moved back off a record's millisecond)
    skip: int  # records of the tail before that start
    count: int  # records of the tail inside the window: the read asks from `count - 1`


# How far a window start may move back to keep off the millisecond of a record.
MAX_START_SHIFT_MS = 1000


def _ambiguous_at(times_ns: Sequence[int], start_ms: int) -> bool:
    """A record within a millisecond of `start_ms`: Daily does not say whether `startTime`
    is inclusive, nor how it rounds, so only a start no record is near counts the same
    records on both readings."""
    lo = bisect.bisect_right(times_ns, (start_ms - 1) * NS_PER_MS)
    return lo < len(times_ns) and times_ns[lo] < (start_ms + 1) * NS_PER_MS


def boundary_free_start(tails: Iterable[ListTail | None], start_ms: int) -> int:
    """The latest start <= `start_ms` that no record of any tail is within a ms of."""
    usable = [t for t in tails if t is not None and t.ordered and start_ms > t.start_ms]
    start = start_ms
    for _ in range(MAX_START_SHIFT_MS):
        if not any(start > t.start_ms and _ambiguous_at(t.times_ns, start) for t in usable):
            return start
        start -= 1
    return start


def resume_from(tail: ListTail | None, start_ms: int) -> Resume | None:
    """How to resume after `tail` with a window starting at `start_ms`; None for a full read.

    Pure arithmetic over what the last complete read saw: the records of its list that the
    new window no longer holds are those more than a millisecond before its start (a
    record within a millisecond of it makes the count uncertain: full read)."""
    if tail is None or not tail.certain or not tail.ordered or start_ms < tail.start_ms:
        return None
    if start_ms == tail.start_ms:
        skip = 0
    else:
        if _ambiguous_at(tail.times_ns, start_ms):
            return None
        skip = bisect.bisect_right(tail.times_ns, (start_ms - 1) * NS_PER_MS)
        if tail.unsure and tail.unsure[0] < skip:
            return None  # a record of unknown time at the edge: cannot count
    return Resume(start_ms=start_ms, skip=skip, count=len(tail.times_ns) - skip)


def window_start_ms(cursor: SessionCursor, lookback_ms: int) -> int:
    """First millisecond of the next read: `lookback` before the watermark (inclusive; one ms
    earlier than strictly needed because Daily does not document whether `startTime` is).

    Counted from the newest delivered record, never from the bridge's own clock, so that a
    read which ended early (a short page that held only the anchor) or a clock that jumped
    can only make the next read start earlier, never skip records.
    """
    if cursor.watermark_ns is None:
        return cursor.start_floor_ms
    # Never before the floor: the first read started there, nothing earlier is in scope,
    # and a window that stays put while a young meeting fills its lookback lets each read
    # resume after the last one (see `resume_from`).
    return max(cursor.start_floor_ms, cursor.watermark_ns // NS_PER_MS - lookback_ms - 1)


def prune_seen(seen: dict[str, int], horizon_ms: int) -> int:
    """Forget identities older than the next read can return; returns how many went."""
    horizon_ns = horizon_ms * NS_PER_MS
    stale = [uid for uid, t in seen.items() if t < horizon_ns]
    for uid in stale:
        del seen[uid]
    return len(stale)


def next_page_offset(consumed: int) -> int:
    """Offset of an overlapping request: re-read the last record we have as the anchor."""
    return consumed - 1 if consumed > 0 else 0


@dataclass(frozen=True, slots=True)
class PageCut:
    """Which records of a page are new to this read, and whether the read is complete."""

    take: Sequence[int]  # indices into the page, in order
    finished: bool
    shifted: bool  # the anchor was not where expected: the server's list moved
    # Indices that may be records this read already consumed (the list moved backwards
    # under us, or the server ignores `offset`): taken only if their content is new.
    suspect: frozenset[int] = frozenset()


def cut_page(anchor: bytes | None, digests: Sequence[bytes]) -> PageCut:
    """Align a page with the anchor (the digest of the last record already consumed)."""
    if anchor is None:
        return PageCut(take=range(len(digests)), finished=not digests, shifted=False)
    if not digests:
        # Even the anchor is gone: records were removed before it. Nothing to align on,
        # and nothing more to read in this window; the next read's overlap covers us.
        return PageCut(take=(), finished=True, shifted=True)
    if digests[0] == anchor:
        # A page holding only the anchor ends the read. (A server that answers one record
        # while more follow would end it early; the next read starts from the watermark,
        # before those records, so they are delayed, not lost.)
        return PageCut(take=range(1, len(digests)), finished=len(digests) == 1, shifted=False)
    try:
        at = list(digests).index(anchor)
    except ValueError:
        # The anchor moved by more than a page, or the tie order changed. Nothing can be
        # aligned: records already read in this read are skipped by content, the rest taken.
        everything = range(len(digests))
        return PageCut(take=everything, finished=False, shifted=True, suspect=frozenset(everything))
    # Records before the anchor are late arrivals inserted ahead of it, or re-reads; after
    # it, positions are uncertain too. Only content new to this read is taken.
    take = [i for i in range(len(digests)) if i != at]
    return PageCut(take=take, finished=False, shifted=True, suspect=frozenset(take))


@dataclass(slots=True)
class SessionRead:
    """The bookkeeping of one read of one session.

    Every request after the first overlaps the previous page by one record (the anchor),
    so that a list shifting under us is seen and a byte-identical twin of the anchor is
    told apart from a re-read. Only a page that brings nothing past the anchor ends a read:
    a short page never does.
    """

    cursor: SessionCursor
    start_ms: int
    end_ms: int
    limit: int = 0  # the page size asked for (a shorter page may end the read: `soft_end_after_ns`)
    consumed: int = 0  # records of the server's list read so far
    anchor: bytes | None = None
    occurrences: dict[bytes, int] = field(default_factory=dict)
    delivered: int = 0
    deduplicated: int = 0
    # When streams share a window that starts before this stream's own, records older than
    # its own start were delivered before (or are beyond its lookback) and must be skipped:
    # their identities may already be pruned.
    own_start_ns: int = 0
    # A page ended with byte-identical records: the next request's anchor could be taken
    # for its twin if the list moved (see `certain`).
    ambiguous_anchor: bool = False
    # The list as this read sees it, position by position (see `ListTail`).
    times_ns: array[int] = field(default_factory=lambda: array("q"))
    unsure: list[int] = field(default_factory=list)
    ordered: bool = True
    group_time_ns: int | None = None
    group: set[bytes] = field(default_factory=set)
    # Set by `mark`/`note_time` while a record is handed on: its time, for `times_ns`.
    noted_ns: int | None = None
    # Resumed after the last read's anchor (`resume`): until the first page confirms the
    # anchor, a mismatch restarts the read from the window's beginning.
    resumed: bool = False
    # A page shorter than asked whose last record is at least this recent (ns) ends the
    # read without the confirming request (see `_take_page`); None: never.
    soft_end_after_ns: int | None = None
    moved: bool = False  # a page showed the list moved under this read

    @classmethod
    def begin(
        cls,
        cursor: SessionCursor,
        *,
        now_ms: int,
        lookback_ms: int,
        settle_lag_ms: int,
        limit: int = 0,
    ) -> SessionRead:
        start = window_start_ms(cursor, lookback_ms)
        end = now_ms - settle_lag_ms
        return cls(cursor=cursor, start_ms=start, end_ms=max(end, start), limit=limit)

    @property
    def offset(self) -> int:
        return next_page_offset(self.consumed)

    def resume(self, tail: ListTail, at: Resume) -> None:
        """Start after the records the last read saw: ask from its anchor's position."""
        if at.count == 0 or tail.anchor is None:
            return  # nothing of the old list in the window: an ordinary read from 0
        self.consumed = at.count
        self.anchor = tail.anchor
        self.occurrences = dict(tail.group)
        self.times_ns = tail.times_ns[at.skip :]
        self.unsure = [i - at.skip for i in tail.unsure if i >= at.skip]
        self.group_time_ns = self.times_ns[-1]
        self.group = set(tail.group)
        self.resumed = True

    def restart(self) -> None:
        """The resumed read's first page showed the list changed: read it all again."""
        self.consumed = 0
        self.anchor = None
        self.occurrences = {}
        self.times_ns = array("q")
        self.unsure = []
        self.ordered = True
        self.group_time_ns = None
        self.group = set()
        self.resumed = False

    def place(self, digest: bytes, time_ns: int | None) -> None:
        """Note the time of the next position of the list (None: unknown)."""
        times = self.times_ns
        if time_ns is None:
            self.unsure.append(len(times))
            time_ns = times[-1] if times else self.start_ms * NS_PER_MS
        elif times and time_ns < times[-1]:
            self.ordered = False
        times.append(time_ns)
        if time_ns != self.group_time_ns:
            self.group_time_ns = time_ns
            self.group = set()
        self.group.add(digest)

    def tail(self, *, certain: bool) -> ListTail:
        """What this complete read leaves for the next one."""
        return ListTail(
            start_ms=self.start_ms,
            times_ns=self.times_ns,
            anchor=self.anchor,
            group={d: self.occurrences.get(d, 1) for d in self.group},
            unsure=self.unsure,
            certain=certain,
            ordered=self.ordered,
        )

    def accept_page(self, digests: Sequence[bytes]) -> PageCut:
        """Record that a page arrived; returns the indices that are new to this read."""
        cut = cut_page(self.anchor, digests)
        if len(digests) >= 2 and digests[-1] in digests[:-1]:
            self.ambiguous_anchor = True
        if digests:
            self.consumed = self.offset + len(digests)
            self.anchor = digests[-1]
        return cut

    def identify(self, digest: bytes) -> str:
        """The uid of the next occurrence of this content in the read."""
        occurrence = self.occurrences.get(digest, 0) + 1
        self.occurrences[digest] = occurrence
        return record_uid(digest, occurrence)

    def is_delivered(self, uid: str) -> bool:
        return uid in self.cursor.seen

    @property
    def certain(self) -> bool:
        """Every move of the server's list during this read would have been seen.

        The anchor (a page's last record, re-read first by the next request) shows a shift
        unless a byte-identical twin stands right before it: a late record inserted ahead of
        such a pair makes the twin look like the anchor. After a read with a page that ended
        on a twin pair, only a full read (not the one-request quiet check, which trusts the
        record count) may say nothing is missing. Twins elsewhere in a page are harmless.
        """
        return not self.ambiguous_anchor and not self.moved

    def note_time(self, time_ns: int) -> None:
        """The time of a record read but not handed on (before this stream's own start)."""
        self.noted_ns = time_ns

    def mark(self, uid: str, time_ns: int) -> None:
        """Remember a record handed to the exporter (not yet acknowledged)."""
        self.noted_ns = time_ns
        self.cursor.seen[uid] = time_ns
        if self.cursor.watermark_ns is None or time_ns > self.cursor.watermark_ns:
            self.cursor.watermark_ns = time_ns
        self.delivered += 1


@dataclass(slots=True)
class DrainResult:
    complete: bool = False
    fetched: int = 0
    delivered: int = 0
    deduplicated: int = 0
    # The server's list moved while paging (or it ignores `offset`): the read took what was
    # new on that page and stopped. The next read starts again from the watermark, with
    # fresh occurrence counts, so neither a re-read nor a twin is misnumbered.
    stalled: bool = False
    anchors: int = 0  # records read again as a page's anchor (one a request but the first)
    # Ended on a short page that brought new records, without the request that would have
    # confirmed the end: the next read, which asks from this one's last record, is that
    # request. Not `complete`: nothing may retire on it.
    soft: bool = False


@dataclass(slots=True)
class StreamDrain:
    """One stream (logs, metrics) of a combined read, with its own cursor and handler."""

    read: SessionRead
    deliver: Callable[[Any, str], bool | Awaitable[bool]]
    result: DrainResult = field(default_factory=DrainResult)

    @property
    def done(self) -> bool:
        return self.result.complete or self.result.stalled or self.result.soft


async def _take_page(
    stream: StreamDrain, records: Sequence[Any], digest: Callable[[Any], bytes]
) -> None:
    read, result = stream.read, stream.result
    result.fetched += len(records)
    digests = [digest(r) for r in records]
    if read.resumed:
        read.resumed = False
        if not digests or digests[0] != read.anchor:
            # The list changed before the anchor (a late record, most likely): this page
            # cannot be placed. Read the window from its beginning, like any first read.
            read.restart()
            result.deduplicated += len(digests)
            return
    cut = read.accept_page(digests)
    result.anchors += len(digests) - len(cut.take)
    if cut.shifted:
        read.moved = True
    fresh = 0
    seen = read.cursor.seen
    for i in cut.take:
        d = digests[i]
        if i in cut.suspect and d in read.occurrences:
            # Probably a record this read consumed already. Should it really be a late
            # byte-identical twin, the next read's overlap delivers it.
            result.deduplicated += 1
            read.deduplicated += 1
            continue
        uid = read.identify(d)
        known = seen.get(uid)
        if known is not None:
            result.deduplicated += 1
            read.deduplicated += 1
            read.place(d, known)
            continue
        read.noted_ns = None
        taken = stream.deliver(records[i], uid)
        if not isinstance(taken, bool):
            taken = await taken
        read.place(d, read.noted_ns)
        if taken:
            fresh += 1
    result.delivered += fresh
    if cut.finished:
        result.complete = True
        return
    if cut.shifted:
        result.stalled = True
        return
    if (
        read.soft_end_after_ns is not None
        and fresh
        and len(digests) < read.limit
        and read.times_ns
        and read.times_ns[-1] >= read.soft_end_after_ns
    ):
        # A short page that reached the last poll interval: the list most likely ends
        # here. Whatever follows (a capped page, a server answering short) is newer than
        # this page's last record and comes with the next read, which starts from it.
        result.soft = True


async def drain_streams(
    streams: Mapping[str, StreamDrain],
    fetch_page: Callable[[int, Sequence[str]], Awaitable[Mapping[str, Sequence[Any]]]],
    digest: Callable[[Any], bytes],
    should_stop: Callable[[], bool] = lambda: False,
    after_page: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Read several streams of one session with shared requests, each to its own end.

    Daily pages `logs` and `metrics` of one response independently with the same `offset`
    and `limit`, so one request can serve both while their positions are within a page of
    each other. Each request asks from the lowest position among the unfinished streams;
    a stream further ahead takes its slice of the page from its own position, or waits for
    a later request when the page does not reach it. Streams share one window, so they
    must have been begun with the same `start_ms`/`end_ms`.

    `fetch_page(offset, names)` returns the page of each named stream; `deliver(record,
    uid)` hands on a record not delivered before and returns whether it was taken (False
    for a malformed one); it must call `read.mark` for what it takes. It may be a plain
    function (no coroutine per record on the hot path) or a coroutine. `after_page()` runs
    once per request, e.g. to export a batch that became full. No I/O of its own, so that
    property tests can drive it with any paging they like.
    """
    while not should_stop():
        open_names = [name for name, stream in streams.items() if not stream.done]
        if not open_names:
            return
        offset = min(streams[name].read.offset for name in open_names)
        pages = await fetch_page(offset, open_names)
        for name in open_names:
            stream = streams[name]
            records = pages.get(name, ())
            ahead = stream.read.offset - offset
            if ahead > 0:
                if ahead >= len(records):
                    continue  # this page ends before the stream's position
                records = records[ahead:]
            await _take_page(stream, records, digest)
        if after_page is not None:
            await after_page()


async def drain(
    read: SessionRead,
    fetch_page: Callable[[int], Awaitable[Sequence[Any]]],
    digest: Callable[[Any], bytes],
    deliver: Callable[[Any, str], bool | Awaitable[bool]],
    should_stop: Callable[[], bool] = lambda: False,
    after_page: Callable[[], Awaitable[None]] | None = None,
) -> DrainResult:
    """Read one session's window to its end: page, align, identify, de-duplicate.

    The single-stream form of `drain_streams` (see there for the contract).
    """
    stream = StreamDrain(read=read, deliver=deliver)

    async def fetch(offset: int, names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
        return {"only": await fetch_page(offset)}

    await drain_streams({"only": stream}, fetch, digest, should_stop, after_page)
    return stream.result
