"""Who is in a call now: a `GET /presence` answer -> participants present per domain and per
room. Counts only: no per-participant series. Pure.

Daily answers one object for the whole domain, room name -> the participants present there
(https://docs.daily.co/reference/rest-api/presence: `room`, `id`, `userId`, `userName`,
`mtgSessionId`, `joinTime`, `duration`), up to 15 s behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from daily_otel_bridge.core.mapping import MalformedRecord


@dataclass(frozen=True, slots=True)
class PresenceCounts:
    total: int = 0
    by_room: Mapping[str, int] = field(default_factory=dict)  # rooms with someone present


def count_presence(answer: object) -> PresenceCounts:
    """Count the participants of one answer; a participant listed twice in a room (same
    `id`) counts once. MalformedRecord (naming what is wrong, never a value) for an answer
    that is not an object of lists."""
    if not isinstance(answer, dict):
        raise MalformedRecord(f"presence is {type(answer).__name__}, expected an object")
    by_room: dict[str, int] = {}
    for room, participants in answer.items():
        if not isinstance(participants, list):
            raise MalformedRecord(
                f"presence of a room is {type(participants).__name__}, expected a list"
            )
        ids: set[str] = set()
        anonymous = 0
        for participant in participants:
            pid = participant.get("id") if isinstance(participant, dict) else None
            if isinstance(pid, str) and pid:
                ids.add(pid)
            else:
                anonymous += 1  # still someone present: counted, never de-duplicated
        count = len(ids) + anonymous
        if count:
            by_room[str(room)] = count
    return PresenceCounts(total=sum(by_room.values()), by_room=by_room)


def gauge_values(counts: Mapping[str, int], *, room_label: bool) -> dict[str, int]:
    """The values of a gauge with a `room` label: one per room when the label is on, else
    the domain's total under room "" (one metric family either way)."""
    if room_label:
        return dict(counts)
    return {"": sum(counts.values())}


def rooms_to_forget(previous: set[str], current: Mapping[str, int]) -> set[str]:
    """Room series to remove: rooms of the last update that have nobody now (a series left
    at its last value would claim people who left; one set to 0 forever grows without
    bound, one series per room ever seen)."""
    return {room for room in previous if room not in current}
