"""The table of one domain's tracked sessions: load, discover, retire, forget.

A session is tracked from the first discovery that lists it until it is retired (drained up
to `session_grace` past its end). Its cursors (one per stream) are persisted; its schedule
(when it is read next, whether it had news) lives in memory only, so a restart reads every
session once, promptly.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.core.records import Meeting
from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.sources.base import MeetingSeen
from daily_otel_bridge.state.base import CursorStore, CursorUpdate

# Meeting start times are accurate to about 15 s, and a client may upload its first lines a
# little before Daily records the meeting as started.
START_MARGIN_MS = 60_000
# Discovery re-lists a little more than strictly needed, for the same 15 s inaccuracy.
DISCOVERY_MARGIN_S = 120
# The quick discovery (new meetings only, between two full ones) re-lists this much.
QUICK_MARGIN_S = 30


def room_selected(room: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(room, p) for p in patterns)


@dataclass(slots=True)
class TrackedSession:
    """One meeting session: its cursor per stream and its place in the schedule."""

    session_id: str
    cursors: dict[str, SessionCursor]
    due_at: float = 0.0  # monotonic
    busy: bool = False  # read every poll_interval (`core.schedule.busy_now`)
    read_once: bool = False  # read successfully at least once by this process
    started_ms: int | None = None  # the meeting's start (Daily's, about 15 s accurate)
    quiet_polls: int = 0  # complete reads in a row that found nothing new
    failures: int = 0  # failed reads in a row (its own backoff, not the quiet counter)
    last_read_at: float | None = None  # monotonic, when the last read started
    reading: bool = False
    # endTime of the newest complete read all of whose records were acknowledged (the
    # committed `drained_until_ms`): everything visible at Daily before it has shipped.
    acked_until_ms: int | None = None
    # For the meeting summaries: the raw `/meetings` entry once discovery listed the meeting
    # ended (with its participants), and whether this process's discovery (or a pushed
    # event) tracked it first, rather than the store.
    entry: dict[str, Any] | None = None
    new: bool = False

    @property
    def retired(self) -> bool:
        return all(c.retired for c in self.cursors.values())

    @property
    def ongoing(self) -> bool:
        """Not yet seen ended (by discovery, or by Daily answering 404)."""
        return self.ended_at_ms is None

    @property
    def ended_at_ms(self) -> int | None:
        """When the meeting ended, once every open cursor knows it (None: ongoing)."""
        ends = [c.ended_at_ms for c in self.cursors.values() if not c.retired]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)

    def primary(self, streams: Sequence[str]) -> SessionCursor:
        return self.cursors[streams[0]]


class SessionTable:
    def __init__(
        self,
        *,
        domain: str,
        streams: Sequence[str],
        store: CursorStore,
        rooms: Sequence[str],
        initial_lookback: float,
        session_grace: float,
        persist: bool = True,
        clock: Callable[[], float] = time.time,
        participants: bool = False,
    ) -> None:
        self.domain = domain
        self.streams = tuple(streams)
        self.store = store
        self.rooms = list(rooms)
        self.initial_lookback = initial_lookback
        self.session_grace = session_grace
        self.persist = persist
        self.clock = clock
        # Ask discovery's recent listings for the participants (the meeting summaries).
        self.participants = participants
        self.sessions: dict[str, TrackedSession] = {}
        self.floor_ms = 0
        self.discovered_until_ms: int | None = None
        self.listed_at_ms: int | None = None  # when meetings were last listed (this process)
        self.loaded = False
        self.log = structlog.get_logger(__name__).bind(domain=domain)

    async def load(self) -> None:
        """Read what the store has (once; `SessionTable` is rebuilt after a failure)."""
        if self.loaded:
            return
        now_ms = int(self.clock() * 1000)
        state = await self.store.load_domain(
            self.domain, default_floor_ms=now_ms - int(self.initial_lookback * 1000)
        )
        self.floor_ms = state.floor_ms
        self.discovered_until_ms = state.discovered_until_ms
        by_session: dict[str, dict[str, SessionCursor]] = {}
        for stream in self.streams:
            for session_id, cursor in (await self.store.load_cursors(self.domain, stream)).items():
                by_session.setdefault(session_id, {})[stream] = cursor
        for session_id, cursors in by_session.items():
            # A stream enabled after the session was first seen starts where it would have
            # started then; a retired session stays retired for it too.
            model = next(iter(cursors.values()))
            for stream in self.streams:
                if stream not in cursors:
                    cursors[stream] = SessionCursor(
                        session_id=model.session_id,
                        room=model.room,
                        start_floor_ms=model.start_floor_ms,
                        ended_at_ms=model.ended_at_ms,
                        retired=model.retired,
                    )
            self.sessions[session_id] = TrackedSession(
                session_id=session_id,
                cursors=cursors,
                # The persisted floor is the meeting's start less the margin (or the floor).
                started_ms=model.start_floor_ms + START_MARGIN_MS,
                acked_until_ms=min(
                    (c.drained_until_ms or c.start_floor_ms for c in cursors.values()),
                    default=None,
                ),
            )
        self.loaded = True

    def active(self) -> Iterator[TrackedSession]:
        return (s for s in self.sessions.values() if not s.retired)

    def active_count(self) -> int:
        return sum(1 for _ in self.active())

    async def discover(self, client: DailyClient, *, quick: bool = False) -> list[TrackedSession]:
        """Track every meeting that may still have logs to read; returns the new ones.

        The sessions found and the time covered are committed together: a crash can never
        record "discovered up to T" without the sessions found before T.

        `quick`: only the meetings started since the last listing (one small request), to
        find a new meeting sooner than the full discovery's `poll_interval`; nothing is
        inferred about meetings it does not list, and the time covered stays the full
        discovery's.
        """
        await self.load()
        now = self.clock()
        if quick and self.discovered_until_ms is not None and self.listed_at_ms is not None:
            return await self._discover_new(client, now)
        if self.discovered_until_ms is None:
            since_s = self.floor_ms // 1000
        else:
            # Only meetings started since the last discovery are new: every one started
            # before was ongoing then (and is tracked) or had ended (and was listed then).
            # Listing less keeps discovery's share of the budget small with many meetings;
            # a tracked meeting missing from the ongoing list ended meanwhile (below).
            since_s = self.discovered_until_ms // 1000 - DISCOVERY_MARGIN_S
            since_s = max(since_s, self.floor_ms // 1000 - DISCOVERY_MARGIN_S)
        recent = await client.list_meetings(timeframe_start=since_s, participants=self.participants)
        # Ongoing meetings have no summary yet: their participants are not asked for.
        ongoing = await client.list_meetings(ongoing=True)
        self.listed_at_ms = int(now * 1000)
        listed: dict[str, Meeting] = {m.id: m for m in recent}
        for meeting in ongoing:
            listed[meeting.id] = meeting
        new: list[TrackedSession] = []
        for meeting in listed.values():
            if not room_selected(meeting.room, self.rooms):
                continue
            tracked = self.sessions.get(meeting.id)
            if tracked is None:
                start = max(meeting.start_time * 1000 - START_MARGIN_MS, self.floor_ms)
                tracked = TrackedSession(
                    session_id=meeting.id,
                    started_ms=meeting.start_time * 1000,
                    cursors={
                        s: SessionCursor(
                            session_id=meeting.id, room=meeting.room, start_floor_ms=start
                        )
                        for s in self.streams
                    },
                    new=True,
                )
                new.append(tracked)
                self.log.debug("session discovered", session=meeting.id, room=meeting.room)
            tracked.started_ms = meeting.start_time * 1000
            if meeting.entry is not None and not meeting.ongoing:
                tracked.entry = meeting.entry
            end = meeting.end_time
            for cursor in tracked.cursors.values():
                if not cursor.retired:
                    cursor.ended_at_ms = end * 1000 if end is not None else None
        # A tracked meeting that is neither ongoing nor recent has ended since we last saw
        # it; its exact end is unknown, so the grace period counts from now.
        for session_id, tracked in self.sessions.items():
            if session_id in listed:
                continue
            for cursor in tracked.cursors.values():
                if not cursor.retired and cursor.ended_at_ms is None:
                    cursor.ended_at_ms = int(now) * 1000
        discovered_until_ms = int(now * 1000)
        await self._commit_new(new, discovered_until_ms)
        self.discovered_until_ms = discovered_until_ms
        for tracked in new:
            self.sessions[tracked.session_id] = tracked
        if new:
            self.log.info(
                "sessions discovered", new=len(new), tracked=self.active_count(), listed=len(listed)
            )
        if self.persist:
            await self._forget_retired(since_s * 1000)
        return new

    async def _discover_new(self, client: DailyClient, now: float) -> list[TrackedSession]:
        """The quick discovery: meetings started since the last listing (less a margin for
        Daily's start times, accurate to about 15 s)."""
        assert self.listed_at_ms is not None
        since_s = self.listed_at_ms // 1000 - QUICK_MARGIN_S
        recent = await client.list_meetings(timeframe_start=since_s, participants=self.participants)
        self.listed_at_ms = int(now * 1000)
        new: list[TrackedSession] = []
        for meeting in recent:
            if meeting.id in self.sessions or not room_selected(meeting.room, self.rooms):
                continue
            start = max(meeting.start_time * 1000 - START_MARGIN_MS, self.floor_ms)
            end = meeting.end_time * 1000 if meeting.end_time is not None else None
            new.append(
                TrackedSession(
                    session_id=meeting.id,
                    started_ms=meeting.start_time * 1000,
                    cursors={
                        s: SessionCursor(
                            session_id=meeting.id,
                            room=meeting.room,
                            start_floor_ms=start,
                            ended_at_ms=end,
                        )
                        for s in self.streams
                    },
                    entry=meeting.entry if not meeting.ongoing else None,
                    new=True,
                )
            )
        if not new:
            return new
        await self._commit_new(new, self.discovered_until_ms)
        for tracked in new:
            self.sessions[tracked.session_id] = tracked
        self.log.info("sessions discovered", new=len(new), tracked=self.active_count(), quick=True)
        return new

    async def track_hinted(
        self, session_id: str, room: str, start_ms: int | None
    ) -> TrackedSession | None:
        """Track a meeting a pushed event announced, before discovery lists it; None when it
        is tracked already or its room is not selected. Discovery remains the truth: it
        fills in what the event did not say, and a lost event loses nothing."""
        await self.load()
        if session_id in self.sessions or not room_selected(room, self.rooms):
            return None
        started = start_ms if start_ms is not None else int(self.clock() * 1000)
        floor = max(started - START_MARGIN_MS, self.floor_ms)
        tracked = TrackedSession(
            session_id=session_id,
            started_ms=started,
            cursors={
                s: SessionCursor(session_id=session_id, room=room, start_floor_ms=floor)
                for s in self.streams
            },
            new=True,
        )
        await self._commit_new([tracked], self.discovered_until_ms)
        self.sessions[session_id] = tracked
        self.log.info("session tracked from a pushed event", session=session_id, room=room)
        return tracked

    def meetings_seen(self) -> list[MeetingSeen]:
        """Every tracked meeting, as the meeting summaries see it (`MeetingsSeen`)."""
        seen = []
        for session in self.sessions.values():
            cursor = next(iter(session.cursors.values()), None)
            started = session.started_ms
            seen.append(
                MeetingSeen(
                    id=session.session_id,
                    room=cursor.room if cursor is not None else "",
                    start_time=started // 1000 if started is not None else None,
                    ended=session.retired or not session.ongoing,
                    entry=session.entry,
                    new=session.new,
                )
            )
        return seen

    async def _commit_new(self, new: list[TrackedSession], discovered_until_ms: int | None) -> None:
        """The sessions found, with the time discovery covered, in one transaction."""
        if not self.persist:
            return
        await self.store.commit(
            self.domain,
            {
                stream: [
                    CursorUpdate(cursor=dataclasses.replace(t.cursors[stream], seen={}))
                    for t in new
                ]
                for stream in self.streams
            },
            discovered_until_ms=discovered_until_ms,
        )

    async def _forget_retired(self, listed_since_ms: int) -> None:
        """Drop retired sessions that discovery can no longer list.

        A retired row stays while its meeting could still be listed (it keeps the meeting
        from being read again from scratch); once the meeting started before what discovery
        asks for, the row has no more use.
        """
        gone = [
            session_id
            for session_id, tracked in self.sessions.items()
            if not tracked.reading
            and all(
                c.retired
                and c.drained_until_ms is not None
                and c.drained_until_ms < listed_since_ms
                for c in tracked.cursors.values()
            )
        ]
        if not gone:
            return
        for stream in self.streams:
            await self.store.forget_retired(self.domain, stream, listed_since_ms)
        for session_id in gone:
            del self.sessions[session_id]
