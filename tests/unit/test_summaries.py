"""Meeting summaries (`core.summaries`): validation, the records and their attributes, and the
uid formula with golden values."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.encoding import decode_any_value, decode_attributes
from daily_otel_bridge.core.mapping import MalformedRecord
from daily_otel_bridge.core.summaries import (
    PARTICIPANT_EVENT,
    SUMMARY_EVENT,
    encode_summary,
    parse_meeting,
    participant_uid,
    summary_uid,
)

MEETING_ID = "16e9701a-93e0-4933-83c9-223e7c40d552"
P1 = "4c8dee53-fd51-445c-92d4-917701401d14"
P2 = "a5e1b2c3-0000-4000-8000-000000000002"
OBSERVED = 1_775_000_000_000_000_000


def meeting(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": MEETING_ID,
        "room": "support-1",
        "start_time": 1_774_000_000,
        "duration": 1800,
        "ongoing": False,
        "max_participants": 2,
        "participants": [
            {
                "user_id": "u-1",
                "participant_id": P1,
                "user_name": "sean",
                "join_time": 1_774_000_010,
                "duration": 1700,
            },
            {"user_id": None, "participant_id": P2, "user_name": None, "join_time": 1_774_000_100},
        ],
    }
    raw.update(changes)
    return raw


def decoded(data: bytes) -> tuple[LogRecord, dict[str, object]]:
    record = LogRecord.FromString(data)
    return record, decode_attributes(record.attributes)


# -- the uid formula ----------------------------------------------------------------------


def test_uid_golden_values() -> None:
    # Changing these breaks de-duplication against what earlier versions exported.
    assert summary_uid(MEETING_ID) == "ab3fa97db6e83ea483fc1275a74d9542"
    assert participant_uid(MEETING_ID, P1) == "1a809a2f0228c910f67c82983ed14ffe"


def test_uid_formula_is_the_documented_one() -> None:
    def blake(text: str) -> str:
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    assert summary_uid(MEETING_ID) == blake(f"daily.meeting.summary\x00{MEETING_ID}")
    assert participant_uid(MEETING_ID, P1) == blake(
        f"daily.participant.session\x00{MEETING_ID}\x00{P1}"
    )


def test_uids_differ_by_kind_meeting_and_participant() -> None:
    uids = [
        summary_uid(MEETING_ID),
        summary_uid(P1),
        participant_uid(MEETING_ID, P1),
        participant_uid(MEETING_ID, P2),
        participant_uid(P1, MEETING_ID),
        participant_uid("other", P1),
    ]
    assert len(set(uids)) == len(uids)
    # A summary's uid is never a participant's, even for an id equal to a participant id.
    assert summary_uid(MEETING_ID) != participant_uid(MEETING_ID, "")


# -- the records -----------------------------------------------------------------------------


def test_summary_record() -> None:
    records = encode_summary(parse_meeting(meeting()), observed_ns=OBSERVED)
    assert [r.uid for r in records] == [
        summary_uid(MEETING_ID),
        participant_uid(MEETING_ID, P1),
        participant_uid(MEETING_ID, P2),
    ]
    record, attributes = decoded(records[0].data)
    assert record.event_name == SUMMARY_EVENT
    assert record.time_unix_nano == (1_774_000_000 + 1800) * 10**9 == records[0].time_ns
    assert record.observed_time_unix_nano == OBSERVED
    assert (record.severity_number, record.severity_text) == (9, "INFO")
    body = "meeting ended in room support-1: 1800 s, 2 participant sessions"
    assert decode_any_value(record.body) == body
    assert attributes == {
        "daily.mtg_session_id": MEETING_ID,
        "daily.room": "support-1",
        "daily.meeting.start_time": 1_774_000_000,
        "daily.meeting.end_time": 1_774_001_800,
        "daily.meeting.duration": 1800,
        "daily.max_participants": 2,
        "daily.meeting.participant_count": 2,
        "log.record.uid": summary_uid(MEETING_ID),
    }
    assert list(attributes)[-1] == "log.record.uid"


def test_participant_records() -> None:
    records = encode_summary(parse_meeting(meeting()), observed_ns=OBSERVED)
    first, attributes = decoded(records[1].data)
    assert first.event_name == PARTICIPANT_EVENT
    assert first.time_unix_nano == (1_774_000_010 + 1700) * 10**9  # when the participant left
    assert attributes == {
        "daily.mtg_session_id": MEETING_ID,
        "daily.user_session_id": P1,
        "daily.room": "support-1",
        "daily.user_id": "u-1",
        "daily.user_name": "sean",
        "daily.participant.join_time": 1_774_000_010,
        "daily.participant.duration": 1700,
        "log.record.uid": participant_uid(MEETING_ID, P1),
    }
    second, attributes = decoded(records[2].data)
    # No duration: stamped at the meeting's end; absent fields are left out, not "None".
    assert second.time_unix_nano == 1_774_001_800 * 10**9
    assert decode_any_value(second.body) == "participant session in room support-1: unknown"
    assert "daily.user_id" not in attributes
    assert "daily.user_name" not in attributes
    assert "daily.participant.duration" not in attributes
    assert attributes["daily.participant.join_time"] == 1_774_000_100


def test_the_same_meeting_gives_the_same_bytes() -> None:
    a = encode_summary(parse_meeting(meeting()), observed_ns=OBSERVED)
    b = encode_summary(parse_meeting(copy.deepcopy(meeting())), observed_ns=OBSERVED)
    assert a == b


# -- tolerated and refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"participants": None}, lambda m: m.participants == ()),
        ({"participants": []}, lambda m: m.participants == ()),
        ({"max_participants": None}, lambda m: m.max_participants is None),
        ({"room": None}, lambda m: m.room == ""),
        ({"duration": 59.6}, lambda m: m.duration == 60),  # whole seconds, one type
        ({"start_time": 1_774_000_000.4}, lambda m: m.start_time == 1_774_000_000),
        ({"unknown_field": {"x": 1}}, lambda m: m.id == MEETING_ID),
        (
            {"participants": [{"participant_id": P1}, {"participant_id": P1, "duration": 3}]},
            lambda m: len(m.participants) == 1 and m.repeated_participants == 1,
        ),
    ],
)
def test_tolerated(changes: dict[str, Any], check: Any) -> None:
    assert check(parse_meeting(meeting(**changes)))


def test_missing_optional_keys() -> None:
    raw = meeting()
    for key in ("room", "max_participants", "participants", "ongoing"):
        del raw[key]
    parsed = parse_meeting(raw)
    records = encode_summary(parsed, observed_ns=OBSERVED)
    assert len(records) == 1
    _, attributes = decoded(records[0].data)
    assert "daily.room" not in attributes
    assert "daily.max_participants" not in attributes
    assert attributes["daily.meeting.participant_count"] == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("meeting", "meeting is str, expected an object"),
        (meeting(id=None), "id is missing or not a non-empty string"),
        (meeting(id=""), "id is missing or not a non-empty string"),
        (meeting(ongoing=True), "the meeting is ongoing: no summary until it ends"),
        (meeting(ongoing="no"), "ongoing is str, expected a boolean"),
        (meeting(start_time=None), "start_time is missing"),
        (meeting(start_time="2026-01-01"), "start_time is str, expected a number"),
        (meeting(start_time=True), "start_time is bool, expected a number"),
        (meeting(duration=None), "duration is missing"),
        (meeting(duration=-5), "duration is out of range"),
        (meeting(duration=float("nan")), "duration is out of range"),
        (meeting(start_time=10**12), "start_time is out of range"),
        (meeting(room=7), "room is int, expected a string"),
        (meeting(max_participants="2"), "max_participants is not a non-negative integer"),
        (meeting(max_participants=-1), "max_participants is not a non-negative integer"),
        (meeting(participants={"p": 1}), "participants is dict, expected a list"),
        (meeting(participants=["p"]), "participants[0] is str, expected an object"),
        (
            meeting(participants=[{"participant_id": P1}, {"user_id": "x"}]),
            "participants[1].participant_id is missing or not a non-empty string",
        ),
        (
            meeting(participants=[{"participant_id": P1, "join_time": "9am"}]),
            "participants[0].join_time is str, expected a number",
        ),
        (
            meeting(participants=[{"participant_id": P1, "user_name": ["a"]}]),
            "participants[0].user_name is list, expected a string",
        ),
    ],
)
def test_refused_with_a_clear_reason(raw: object, reason: str) -> None:
    with pytest.raises(MalformedRecord) as info:
        parse_meeting(raw)
    assert str(info.value) == reason


def test_reasons_never_quote_values() -> None:
    secretish = "user-name-that-should-not-be-logged"
    with pytest.raises(MalformedRecord) as info:
        parse_meeting(meeting(participants=[{"participant_id": P1, "duration": secretish}]))
    assert secretish not in str(info.value)
