"""Who is in a meeting: ``GET /v1/presence`` and ``GET /v1/meetings/{id}/participants``,
derived from the same participants that produce the logs (pure functions of the world).

``/presence`` (https://docs.daily.co/reference/rest-api/presence): an object keyed by room
name, each the list of participants present now, ``{room, id, userId, userName, joinTime,
duration, mtgSessionId}`` (``joinTime`` ISO 8601, ``duration`` whole seconds). Daily says
presence lags by up to 15 s; the simulator answers as of the last ``presence_lag`` boundary
(the less convenient reading: a participant who joined 10 s ago may not be listed yet).

``/meetings/{id}/participants`` (https://docs.daily.co/reference/rest-api/meetings):
``{"data": [...]}`` with the entries ``/meetings`` lists, ordered by join time (then id),
``limit`` (default and max 100), and ``joined_after`` / ``joined_before`` naming a
``participant_id`` (an unknown one is a 400).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .model import Meeting, Participant
from .render import participant_json
from .world import World


def present(meeting: Meeting, p: Participant, at: float) -> bool:
    """Whether ``p`` is in ``meeting`` at ``at`` (Unix s)."""
    if not meeting.ongoing(at) or p.join_time > at:
        return False
    return p.leave_time is None or at < p.leave_time


def snapshot_time(now: float, lag: float) -> float:
    """The moment presence describes: the last ``lag`` boundary (``now`` when lag is 0)."""
    return now if lag <= 0 else math.floor(now / lag) * lag


def presence(world: World, domain: str, now: float, lag: float) -> dict[str, list[dict[str, Any]]]:
    at = snapshot_time(now, lag)
    rooms: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(world.meetings[domain], key=lambda m: m.index):
        for p in m.participants:
            if not present(m, p, at):
                continue
            rooms.setdefault(m.room, []).append(
                {
                    "room": m.room,
                    "id": p.participant_id,
                    "userId": p.user_id,
                    "userName": p.user_name,
                    "joinTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(p.join_time)),
                    "duration": int(at - p.join_time),
                    "mtgSessionId": m.id,
                }
            )
    return rooms


def joined(meeting: Meeting, now: float) -> list[Participant]:
    """The participants who have joined by ``now``, by join time then id."""
    out = [p for p in meeting.participants if p.join_time <= now]
    return sorted(out, key=lambda p: (p.join_time, p.participant_id))


def participants_page(
    meeting: Meeting, now: float, limit: int, after: str | None, before: str | None
) -> list[dict[str, Any]] | None:
    """A page of ``/meetings/{id}/participants``; None when a cursor names no participant."""
    rows = joined(meeting, now)
    ids = [p.participant_id for p in rows]
    lo, hi = 0, len(rows)
    if after is not None:
        if after not in ids:
            return None
        lo = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            return None
        hi = ids.index(before)
    return [participant_json(p, now) for p in rows[lo:hi][:limit]]
