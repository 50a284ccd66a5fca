"""Daily webhook event -> OTel LogRecord, and the poller's hints: tables of events -> fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.encoding import decode_attributes
from daily_otel_bridge.core.webhook_events import (
    MalformedEvent,
    RoomBusy,
    SessionEnded,
    SessionStarted,
    WebhookEvent,
    encode_event,
    fill_event_record,
    is_verification,
    parse_event,
    poller_hint,
)

RECEIVED_NS = 1_760_000_100_000_000_000
S = 1_000_000_000  # ns per second


def body(event_type: str, payload: Any, *, event_id: str = "evt-1", **extra: Any) -> bytes:
    document = {"version": "1.0.0", "type": event_type, "id": event_id, "payload": payload}
    document.setdefault("event_ts", 1_760_000_050)
    document.update(extra)
    return json.dumps(document).encode()


def record_of(raw: bytes) -> LogRecord:
    record = LogRecord()
    record.ParseFromString(encode_event(parse_event(raw), received_ns=RECEIVED_NS))
    return record


def attrs(record: LogRecord) -> dict[str, object]:
    return decode_attributes(record.attributes)


# Daily's documented payloads (docs.daily.co/reference/rest-api/webhooks/events/...).
MEETING_STARTED = {"start_ts": 1_760_000_000, "meeting_id": "mtg-1", "room": "room-a"}
MEETING_ENDED = {**MEETING_STARTED, "end_ts": 1_760_000_900}
PARTICIPANT_JOINED = {
    "joined_at": 1_760_000_010,
    "session_id": "user-sess-1",
    "room": "room-a",
    "user_id": "u-1",
    "user_name": "Ada",
    "owner": False,
    "will_eject_at": None,
    "permissions": {"hasPresence": True, "canSend": ["audio", "video"]},
}
PARTICIPANT_LEFT = {**PARTICIPANT_JOINED, "duration": 120}
RECORDING_ERROR = {
    "action": "clourd-recording-err",
    "error_msg": "the recording bot could not join",
    "instance_id": "inst-1",
    "room_name": "room-a",
    "timestamp": 1_760_000_020,
}


@pytest.mark.parametrize(
    ("event_type", "payload", "time_ns", "source", "severity", "body_text"),
    [
        ("meeting.started", MEETING_STARTED, 1_760_000_000 * S, "start_ts", "INFO", ""),
        ("meeting.ended", MEETING_ENDED, 1_760_000_900 * S, "end_ts", "INFO", ""),
        ("participant.joined", PARTICIPANT_JOINED, 1_760_000_010 * S, "joined_at", "INFO", ""),
        (
            "participant.left",
            PARTICIPANT_LEFT,
            1_760_000_130 * S,
            "joined_at+duration",
            "INFO",
            "",
        ),
        (
            "recording.error",
            RECORDING_ERROR,
            1_760_000_020 * S,
            "timestamp",
            "ERROR",
            "the recording bot could not join",
        ),
        (
            "dialout.error",
            {"error": "busy line"},
            1_760_000_050 * S,
            "event_ts",
            "ERROR",
            "busy line",
        ),
        (
            "dialout.warning",
            {"message": "retrying"},
            1_760_000_050 * S,
            "event_ts",
            "WARN",
            "retrying",
        ),
        ("streaming.error", {}, 1_760_000_050 * S, "event_ts", "ERROR", ""),
        (
            "recording.ready-to-download",
            {"start_ts": 1_760_000_000},  # when the recording started, not this event
            1_760_000_050 * S,
            "event_ts",
            "INFO",
            "",
        ),
        (
            "meeting.started",
            {"meeting_id": "m", "start_ts": "soon"},
            1_760_000_050 * S,
            "event_ts",
            "INFO",
            "",
        ),
        (
            "meeting.started",
            {"start_ts": 1_760_000_000_123},
            1_760_000_000_123_000_000,
            "start_ts",
            "INFO",
            "",
        ),
        (
            "meeting.ended",
            {"end_ts": 1_760_000_900.5},
            1_760_000_900_500_000_000,
            "end_ts",
            "INFO",
            "",
        ),
        ("brand-new.thing", {"x": 1}, 1_760_000_050 * S, "event_ts", "INFO", ""),
    ],
)
def test_mapping_table(
    event_type: str,
    payload: dict[str, Any],
    time_ns: int,
    source: str,
    severity: str,
    body_text: str,
) -> None:
    record = record_of(body(event_type, payload))
    assert record.event_name == f"daily.{event_type}"
    assert record.time_unix_nano == time_ns
    assert record.observed_time_unix_nano == RECEIVED_NS
    assert record.severity_text == severity
    assert record.severity_number == {"INFO": 9, "WARN": 13, "ERROR": 17}[severity]
    assert record.body.string_value == body_text
    found = attrs(record)
    assert found["log.record.uid"] == "evt-1"
    assert found["daily.webhook.time_source"] == source
    assert found["daily.webhook.version"] == "1.0.0"


@pytest.mark.parametrize(
    "start", ["1e999999", -5, 0, True, None, "NaN", [1], "2026-13-01T00:00:00Z"]
)
def test_unusable_times_fall_back(start: object) -> None:
    record = record_of(body("meeting.started", {"start_ts": start}))
    assert attrs(record)["daily.webhook.time_source"] == "event_ts"


def test_iso_and_numeric_text_times() -> None:
    iso = record_of(body("meeting.started", {"start_ts": "2025-10-09T08:53:20.5Z"}))
    assert iso.time_unix_nano == 1_760_000_000_500_000_000
    text = record_of(body("meeting.started", {"start_ts": "1760000000.25"}))
    assert text.time_unix_nano == 1_760_000_000_250_000_000


def test_time_falls_back_to_when_it_was_received() -> None:
    record = record_of(body("meeting.started", {}, event_ts=None))
    assert record.time_unix_nano == RECEIVED_NS
    assert attrs(record)["daily.webhook.time_source"] == "received"
    assert "daily.webhook.event_ts" not in attrs(record)


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        (
            "meeting.ended",
            MEETING_ENDED,
            {
                "daily.mtg_session_id": "mtg-1",
                "daily.room": "room-a",
                "daily.start_ts": 1_760_000_000,
                "daily.end_ts": 1_760_000_900,
            },
        ),
        (
            "participant.joined",
            PARTICIPANT_JOINED,
            {
                "daily.user_session_id": "user-sess-1",
                "daily.room": "room-a",
                "daily.user_id": "u-1",
                "daily.user_name": "Ada",
                "daily.owner": False,
                "daily.joined_at": 1_760_000_010,
                "daily.permissions": {"hasPresence": True, "canSend": ["audio", "video"]},
            },
        ),
        (
            # Outside participant events `session_id` is not a participant's: kept as is.
            "recording.started",
            {"session_id": "rec-sess", "mtgSessionId": "mtg-2", "roomName": "r"},
            {"daily.session_id": "rec-sess", "daily.mtg_session_id": "mtg-2", "daily.room": "r"},
        ),
        (
            # Two keys for the room: the first takes daily.room, the other keeps its name.
            "transcript.started",
            {"room_name": "r1", "room": "r2"},
            {"daily.room": "r1", "daily.payload.room": "r2"},
        ),
        (
            "recording.error",
            RECORDING_ERROR,
            {
                "daily.room": "room-a",
                "daily.action": "clourd-recording-err",
                "daily.error_msg": "the recording bot could not join",
                "daily.instance_id": "inst-1",
            },
        ),
        (
            # A payload that is not an object is kept, not refused.
            "odd.event",
            ["a", "b"],
            {"daily.payload": ["a", "b"]},
        ),
    ],
)
def test_attributes_table(event_type: str, payload: Any, expected: dict[str, object]) -> None:
    found = attrs(record_of(body(event_type, payload)))
    for key, value in expected.items():
        assert found[key] == value, key
    # Null values are left out; the polled records' names are used, not Daily's.
    assert "daily.will_eject_at" not in found
    assert "daily.meeting_id" not in found


def test_attribute_order_is_stable() -> None:
    raw = body("participant.joined", PARTICIPANT_JOINED)
    assert encode_event(parse_event(raw), received_ns=RECEIVED_NS) == encode_event(
        parse_event(raw), received_ns=RECEIVED_NS
    )


def test_encode_is_the_serialized_record() -> None:
    event = parse_event(body("meeting.started", MEETING_STARTED))
    record = LogRecord()
    fill_event_record(record, event, received_ns=RECEIVED_NS)
    assert encode_event(event, received_ns=RECEIVED_NS) == record.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str"),
        (b'{"type": "meeting.started", "payload": {}}', "`id` is missing"),
        (b'{"id": "e", "payload": {}}', "`type` is missing"),
        (b'{"id": 5, "type": "meeting.started"}', "`id` is a int"),
        (b'{"id": "", "type": "meeting.started"}', "`id` is a str"),
        (b'{"id": "e", "type": "  "}', "`type` is a str"),
        (b'{"id": "e\\n", "type": "t"}', "control"),
        (json.dumps({"id": "e" * 300, "type": "t"}).encode(), "longer than 256"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_malformed_events(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason) as info:
        parse_event(raw)
    # The reason never quotes the body.
    assert "e" * 300 not in str(info.value)


def test_verification_body() -> None:
    assert is_verification(b'{"test":"test"}')
    assert is_verification(b'{ "test" : "test" }\n')
    assert not is_verification(b'{"test":"other"}')
    assert not is_verification(b"not json")
    assert not is_verification(body("meeting.started", MEETING_STARTED))


def test_event_fields() -> None:
    event = parse_event(body("meeting.started", MEETING_STARTED))
    assert event == WebhookEvent(
        id="evt-1",
        type="meeting.started",
        payload=MEETING_STARTED,
        version="1.0.0",
        event_ts=1_760_000_050,
    )


@pytest.mark.parametrize(
    ("event_type", "payload", "hint"),
    [
        (
            "meeting.started",
            MEETING_STARTED,
            SessionStarted("mtg-1", "room-a", 1_760_000_000_000),
        ),
        # No start_ts: the time Daily sent it is the best start there is.
        ("meeting.started", {"meeting_id": "m"}, SessionStarted("m", "", 1_760_000_050_000)),
        ("meeting.started", {"room": "room-a"}, None),  # no meeting id, no hint
        ("meeting.ended", MEETING_ENDED, SessionEnded("mtg-1", 1_760_000_900_000)),
        ("meeting.ended", {"end_ts": 1}, None),
        ("participant.joined", PARTICIPANT_JOINED, RoomBusy(None, "room-a")),
        (
            "participant.left",
            {**PARTICIPANT_LEFT, "meeting_id": "mtg-1"},
            RoomBusy("mtg-1", "room-a"),
        ),
        ("participant.joined", {"session_id": "s"}, None),
        ("recording.error", RECORDING_ERROR, None),
        ("brand-new.thing", {"meeting_id": "m"}, None),
    ],
)
def test_poller_hints(event_type: str, payload: dict[str, Any], hint: object) -> None:
    found = poller_hint(parse_event(body(event_type, payload)))
    assert found == hint


def test_hint_kinds() -> None:
    assert (SessionStarted.kind, SessionEnded.kind, RoomBusy.kind) == ("started", "ended", "busy")
