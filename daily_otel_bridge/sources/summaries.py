"""Source: meeting summaries (`meeting_summaries: true`, on by default). When discovery sees a
meeting ended, one `daily.meeting.summary` and one `daily.participant.session` per
participant (`core.summaries`), each once, committed after the backend's acknowledgement.

What it costs: discovery lists recent meetings with their participants (larger answers, the
same requests). A meeting that outlasted discovery's window (it started before the last
listing and left the ongoing list meanwhile) was never listed ended: for it, one
`GET /meetings?room=..&timeframe_start=..&timeframe_end=..&ongoing=false` (a few seconds
around its start), at most `MAX_FETCHES` per poll, inside the domain's token bucket.

What is remembered: the position of stream `summaries`, a JSON list of the meeting ids
summarised, committed with the batch that carries their records. A crash before the commit
summarises the meeting again, under the same uids (`core.summaries`); after it, never. An id
leaves the list when discovery forgets the meeting (its retired rows are pruned once it can
no longer be listed), so the list stays as small as the table of tracked meetings.

Metrics beside the records: meetings started (first tracked by this process), meetings
ongoing (a gauge, at each poll), and the duration and participants histograms, observed when
a summary is committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import structlog

from daily_otel_bridge.config.model import DomainSettings
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.summaries import MeetingSummary, encode_summary, parse_meeting
from daily_otel_bridge.sources.base import DomainSource, MeetingSeen, PollContext, Poller

NAME: Final = "summaries"
# Meetings fetched one by one (never listed ended by discovery) in one poll: the rest wait
# for the next, so that a restart with many ended meetings spreads its cost.
MAX_FETCHES: Final = 10
# Daily's start times are accurate to about 15 s; the fetch asks for a window around it.
FETCH_MARGIN_S: Final = 120
# A meeting the fetch did not find (Daily still lists it ongoing, or its start was not
# known closely) is asked for again after a doubling wait, at most this long.
MAX_FETCH_BACKOFF_S: Final = 600.0

_log = structlog.get_logger(__name__)


def encode_position(done: set[str]) -> str:
    return json.dumps({"done": sorted(done)}, separators=(",", ":"))


def decode_position(text: str | None) -> set[str]:
    """The ids summarised; ValueError for a position that is not ours (hand-edited)."""
    if not text:
        return set()
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValueError("the summaries position is not JSON") from None
    done = doc.get("done") if isinstance(doc, dict) else None
    if not isinstance(done, list) or not all(isinstance(i, str) for i in done):
        raise ValueError("the summaries position has no 'done' list of meeting ids")
    return set(done)


def fetch_params(meeting: MeetingSeen) -> dict[str, str] | None:
    """The one `/meetings` request that lists `meeting` ended (None: its start is unknown)."""
    if meeting.start_time is None:
        return None
    params = {
        "timeframe_start": str(max(0, meeting.start_time - FETCH_MARGIN_S)),
        "timeframe_end": str(meeting.start_time + FETCH_MARGIN_S),
        "ongoing": "false",
        "limit": "100",
    }
    if meeting.room:
        params["room"] = meeting.room
    return params


def entry_in(answer: object, meeting_id: str) -> Mapping[str, Any] | None:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise MalformedRecord("GET /meetings: response has no 'data' list")
    for item in data:
        if isinstance(item, dict) and item.get("id") == meeting_id:
            return item
    return None


class SummaryPoller:
    def __init__(self, context: PollContext, done: set[str]) -> None:
        self.context = context
        self.done = done
        self.counted: set[str] = set()  # meetings counted in `meetings_started`
        # meeting id -> (fetches that found nothing, monotonic time of the next one)
        self.not_found: dict[str, tuple[int, float]] = {}
        self.log = _log.bind(domain=context.domain)

    async def poll(self) -> int:
        context = self.context
        seen = context.meetings.meetings_seen()
        self._count(seen)
        taken = 0
        fetches = 0
        changed = False
        for meeting in seen:
            if not meeting.ended or meeting.id in self.done:
                continue
            entry = meeting.entry
            if entry is None:
                params = fetch_params(meeting)
                misses, next_at = self.not_found.get(meeting.id, (0, 0.0))
                if params is None or fetches >= MAX_FETCHES or time.monotonic() < next_at:
                    continue
                fetches += 1
                answer = await context.daily.get_json("meetings", params)
                entry = entry_in(answer, meeting.id)
                if entry is None:
                    # Not listed ended (yet): asked again later, less and less often.
                    wait = min(context.settings.poll_interval * 2**misses, MAX_FETCH_BACKOFF_S)
                    self.not_found[meeting.id] = (misses + 1, time.monotonic() + wait)
                    continue
                self.not_found.pop(meeting.id, None)
            try:
                summary = parse_meeting(dict(entry))
            except MalformedRecord as exc:
                if "ongoing" in str(exc):
                    continue
                context.dead_letter(NAME, meeting.id, meeting.id, str(exc), dict(entry))
                self.done.add(meeting.id)  # nothing will make it readable: never again
                changed = True
                continue
            taken += self._deliver(summary)
            self.done.add(meeting.id)
            changed = True
            await context.room()
        # Forget what discovery forgot: it lists those meetings no more.
        tracked = {m.id for m in seen}
        for gone in set(self.not_found) - tracked:
            del self.not_found[gone]
        if self.done - tracked:
            self.done &= tracked
            changed = True
        if changed:
            context.batcher.note_position(NAME, encode_position(self.done))
        return taken

    def _deliver(self, summary: MeetingSummary) -> int:
        context = self.context
        records = encode_summary(summary, observed_ns=time.time_ns())
        for record in records:
            context.batcher.add_domain_log(record.data, record.uid, record.time_ns, NAME)
        metrics, domain = context.metrics, context.domain
        room_label = context.settings.room_label

        def observed() -> None:
            metrics.meeting_ended(
                domain,
                summary.room,
                duration=summary.duration,
                participants=len(summary.participants),
                room_label=room_label,
            )

        context.batcher.after_commit(observed)
        return len(records)

    def _count(self, seen: Sequence[MeetingSeen]) -> None:
        metrics, domain = self.context.metrics, self.context.domain
        room_label = self.context.settings.room_label
        ongoing: dict[str, int] = {}
        for meeting in seen:
            room = metrics.room_value(meeting.room, room_label=room_label)
            if meeting.new and meeting.id not in self.counted:
                self.counted.add(meeting.id)
                metrics.meetings_started.labels(domain, room).inc()
            if not meeting.ended:
                ongoing[room] = ongoing.get(room, 0) + 1
        self.counted &= {m.id for m in seen}
        metrics.set_by_room(metrics.meetings_ongoing, domain, ongoing, room_label=room_label)


async def open_summaries(context: PollContext) -> Poller:
    s = context.settings
    context.metrics.init_sources(
        context.domain,
        meeting_summaries=True,
        presence=s.presence,
        api_logs=s.api_logs,
        room_label=s.room_label,
    )
    positions = await context.positions()
    try:
        done = decode_position(positions.get(NAME))
    except ValueError as exc:
        # Not a reason to stop the domain: the summaries of the meetings still tracked are
        # sent again, under the same uids (a backend that keys on them keeps one).
        _log.warning(
            "position unreadable; starting again from the meetings tracked now",
            domain=context.domain,
            source=NAME,
            error=str(exc),
        )
        done = set()
    return SummaryPoller(context, done)


def _enabled(settings: DomainSettings) -> bool:
    return settings.meeting_summaries


def _interval(settings: DomainSettings) -> float:
    # Discovery lists meetings every poll_interval: no sooner is there news.
    return settings.poll_interval


SOURCE = DomainSource(
    name=NAME,
    enabled=_enabled,
    interval=_interval,
    open=open_summaries,
    needs_participants=True,
)
