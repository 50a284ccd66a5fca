"""Meeting summaries: one ended meeting of `GET /meetings` -> OTel LogRecords. Pure.

From one raw `/meetings` entry (docs.daily.co/reference/rest-api/meetings: `id`, `room`,
`start_time` and `duration` in seconds, `ongoing`, `max_participants`, `participants[]` with
`user_id`, `participant_id`, `user_name`, `join_time`, `duration`):

* one `daily.meeting.summary`, stamped at the meeting's end (`start_time + duration`: the
  moment the summary became true);
* one `daily.participant.session` per participant, stamped at the participant's leave time
  (`join_time + duration`; the meeting's end when either is missing).

`log.record.uid` (`log_records.stable_uid`), the same on every run, so a summary that is
built twice (a crash before the commit) is de-duplicated downstream:

* summary:     blake2b-128("daily.meeting.summary" NUL meeting id)
* participant: blake2b-128("daily.participant.session" NUL meeting id NUL participant_id)

Daily gives times to about 15 s and in whole seconds; a fractional number is rounded to the
second, so every attribute keeps one type (int) whatever Daily sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from daily_otel_bridge.core.log_records import (
    AttributeValue,
    EncodedRecord,
    encode_record,
    stable_uid,
)
from daily_otel_bridge.core.mapping import (
    ATTR_MTG_SESSION_ID,
    ATTR_ROOM,
    ATTR_USER_SESSION_ID,
    MalformedRecord,
)

SUMMARY_EVENT: Final = "daily.meeting.summary"
PARTICIPANT_EVENT: Final = "daily.participant.session"

ATTR_MEETING_START: Final = "daily.meeting.start_time"  # Unix seconds
ATTR_MEETING_END: Final = "daily.meeting.end_time"  # Unix seconds
ATTR_MEETING_DURATION: Final = "daily.meeting.duration"  # seconds
ATTR_MAX_PARTICIPANTS: Final = "daily.max_participants"
ATTR_PARTICIPANT_COUNT: Final = "daily.meeting.participant_count"
ATTR_USER_ID: Final = "daily.user_id"
ATTR_USER_NAME: Final = "daily.user_name"
ATTR_JOIN_TIME: Final = "daily.participant.join_time"  # Unix seconds
ATTR_PARTICIPANT_DURATION: Final = "daily.participant.duration"  # seconds

_NS: Final = 1_000_000_000
# 2100-01-01: no meeting's time or length is larger, and two of them added (a leave time)
# stay inside int64 nanoseconds.
_MAX_SECONDS: Final = 4_102_444_800


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str  # the userSessionId
    user_id: str | None
    user_name: str | None
    join_time: int | None  # Unix seconds
    duration: int | None  # seconds

    @property
    def leave_time(self) -> int | None:
        if self.join_time is None or self.duration is None:
            return None
        return self.join_time + self.duration


@dataclass(frozen=True, slots=True)
class MeetingSummary:
    """An ended meeting, checked."""

    id: str  # the mtgSessionId
    room: str
    start_time: int  # Unix seconds
    duration: int  # seconds
    max_participants: int | None
    participants: tuple[Participant, ...]
    # Entries of `participants[]` left out: repeats of a participant_id already listed.
    repeated_participants: int = 0

    @property
    def end_time(self) -> int:
        return self.start_time + self.duration


def _seconds(item: Mapping[str, Any], key: str, *, where: str, required: bool) -> int | None:
    value = item.get(key)
    if value is None:
        if required:
            raise MalformedRecord(f"{where}{key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedRecord(f"{where}{key} is {type(value).__name__}, expected a number")
    if not math.isfinite(value) or not 0 <= value <= _MAX_SECONDS:
        raise MalformedRecord(f"{where}{key} is out of range")
    return round(value)


def _required_seconds(item: Mapping[str, Any], key: str) -> int:
    value = _seconds(item, key, where="", required=True)
    if value is None:  # pragma: no cover - `required` raised already
        raise MalformedRecord(f"{key} is missing")
    return value


def _optional_str(item: Mapping[str, Any], key: str, *, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"{where}{key} is {type(value).__name__}, expected a string")
    return value


def _participant(item: object, index: int) -> Participant:
    where = f"participants[{index}]."
    if not isinstance(item, dict):
        raise MalformedRecord(f"participants[{index}] is {type(item).__name__}, expected an object")
    pid = item.get("participant_id")
    if not isinstance(pid, str) or not pid:
        raise MalformedRecord(f"{where}participant_id is missing or not a non-empty string")
    return Participant(
        participant_id=pid,
        user_id=_optional_str(item, "user_id", where=where),
        user_name=_optional_str(item, "user_name", where=where),
        join_time=_seconds(item, "join_time", where=where, required=False),
        duration=_seconds(item, "duration", where=where, required=False),
    )


def parse_meeting(raw: object) -> MeetingSummary:
    """Check one raw `/meetings` entry of an ended meeting; MalformedRecord with the reason
    (safe to log: it names fields, never their values) otherwise. An ongoing meeting is
    refused too: it has no summary yet."""
    if not isinstance(raw, dict):
        raise MalformedRecord(f"meeting is {type(raw).__name__}, expected an object")
    mid = raw.get("id")
    if not isinstance(mid, str) or not mid:
        raise MalformedRecord("id is missing or not a non-empty string")
    ongoing = raw.get("ongoing", False)
    if not isinstance(ongoing, bool):
        raise MalformedRecord(f"ongoing is {type(ongoing).__name__}, expected a boolean")
    if ongoing:
        raise MalformedRecord("the meeting is ongoing: no summary until it ends")
    room = _optional_str(raw, "room", where="") or ""
    start = _required_seconds(raw, "start_time")
    duration = _required_seconds(raw, "duration")
    max_participants = raw.get("max_participants")
    if max_participants is not None and (
        isinstance(max_participants, bool)
        or not isinstance(max_participants, int)
        or max_participants < 0
    ):
        raise MalformedRecord("max_participants is not a non-negative integer")
    listed = raw.get("participants")
    if listed is None:
        listed = []  # `no_participants=true` or an empty meeting
    if not isinstance(listed, list):
        raise MalformedRecord(f"participants is {type(listed).__name__}, expected a list")
    participants: list[Participant] = []
    ids: set[str] = set()
    for index, item in enumerate(listed):
        participant = _participant(item, index)
        if participant.participant_id in ids:
            continue  # the same session twice would be the same uid: one record
        ids.add(participant.participant_id)
        participants.append(participant)
    return MeetingSummary(
        id=mid,
        room=room,
        start_time=start,
        duration=duration,
        max_participants=max_participants,
        participants=tuple(participants),
        repeated_participants=len(listed) - len(participants),
    )


def summary_uid(meeting_id: str) -> str:
    return stable_uid(SUMMARY_EVENT, meeting_id)


def participant_uid(meeting_id: str, participant_id: str) -> str:
    return stable_uid(PARTICIPANT_EVENT, meeting_id, participant_id)


def summary_attributes(meeting: MeetingSummary) -> list[tuple[str, AttributeValue]]:
    return [
        (ATTR_MTG_SESSION_ID, meeting.id),
        (ATTR_ROOM, meeting.room or None),
        (ATTR_MEETING_START, meeting.start_time),
        (ATTR_MEETING_END, meeting.end_time),
        (ATTR_MEETING_DURATION, meeting.duration),
        (ATTR_MAX_PARTICIPANTS, meeting.max_participants),
        (ATTR_PARTICIPANT_COUNT, len(meeting.participants)),
    ]


def participant_attributes(
    meeting: MeetingSummary, participant: Participant
) -> list[tuple[str, AttributeValue]]:
    return [
        (ATTR_MTG_SESSION_ID, meeting.id),
        (ATTR_USER_SESSION_ID, participant.participant_id),
        (ATTR_ROOM, meeting.room or None),
        (ATTR_USER_ID, participant.user_id),
        (ATTR_USER_NAME, participant.user_name),
        (ATTR_JOIN_TIME, participant.join_time),
        (ATTR_PARTICIPANT_DURATION, participant.duration),
    ]


def encode_summary(meeting: MeetingSummary, *, observed_ns: int) -> list[EncodedRecord]:
    """The summary's record, then one per participant, in `participants[]` order."""
    uid = summary_uid(meeting.id)
    end_ns = meeting.end_time * _NS
    where = f" in room {meeting.room}" if meeting.room else ""
    records = [
        EncodedRecord(
            uid=uid,
            time_ns=end_ns,
            data=encode_record(
                time_ns=end_ns,
                observed_ns=observed_ns,
                severity="INFO",
                event_name=SUMMARY_EVENT,
                body=(
                    f"meeting ended{where}: {meeting.duration} s, "
                    f"{len(meeting.participants)} participant sessions"
                ),
                attributes=summary_attributes(meeting),
                uid=uid,
            ),
        )
    ]
    for participant in meeting.participants:
        puid = participant_uid(meeting.id, participant.participant_id)
        leave = participant.leave_time
        time_ns = (leave if leave is not None else meeting.end_time) * _NS
        length = f"{participant.duration} s" if participant.duration is not None else "unknown"
        records.append(
            EncodedRecord(
                uid=puid,
                time_ns=time_ns,
                data=encode_record(
                    time_ns=time_ns,
                    observed_ns=observed_ns,
                    severity="INFO",
                    event_name=PARTICIPANT_EVENT,
                    body=f"participant session{where}: {length}",
                    attributes=participant_attributes(meeting, participant),
                    uid=puid,
                ),
            )
        )
    return records
