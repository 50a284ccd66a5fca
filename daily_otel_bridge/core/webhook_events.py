"""One Daily webhook event -> one OTel LogRecord, and the hints it gives the poller. Pure: the
time the event was received is passed in.

A webhook body is `{"version", "type", "id", "payload", "event_ts"}`
(https://docs.daily.co/reference/rest-api/webhooks/events). The mapping (the README's
webhook mapping table says the same):

* EventName `daily.<type>`; `log.record.uid` is Daily's event `id`, so a downstream that
  de-duplicates on it sees one record however often Daily re-sent the event;
* Timestamp is the event's own time from the payload (`EVENT_TIME_FIELDS`); `event_ts` is
  only when Daily *sent* the webhook, and is the fall-back (then the time we received it):
  `daily.webhook.time_source` names the field used, so a reader knows which clock it is;
* the payload's keys become `daily.<key>` attributes, except the ids the polled records
  already name: meeting id -> `daily.mtg_session_id`, participant session ->
  `daily.user_session_id`, room name -> `daily.room` (`core.mapping`'s names);
* severity ERROR for `*.error`, WARN for `*.warning`, INFO otherwise;
* Body: the payload's error text (`error_msg`, `error`, `message`) when it has one.

Unknown types are mapped the same generic way, never dropped: Daily adds event types, and an
event we have no table for is still an event someone may need.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.encoding import fill_any_value
from daily_otel_bridge.core.mapping import (
    ATTR_MTG_SESSION_ID,
    ATTR_ROOM,
    ATTR_UID,
    ATTR_USER_SESSION_ID,
    SEVERITY_NUMBERS,
    MalformedRecord,
    parse_time_ns,
)

__all__ = [
    "ATTR_TIME_SOURCE",
    "ATTR_WEBHOOK_EVENT_TS",
    "ATTR_WEBHOOK_VERSION",
    "EVENT_TIME_FIELDS",
    "MalformedEvent",
    "PollerHint",
    "RoomBusy",
    "SessionEnded",
    "SessionStarted",
    "WebhookEvent",
    "encode_event",
    "event_attributes",
    "event_name",
    "event_severity",
    "event_time_ns",
    "fill_event_record",
    "is_verification",
    "parse_event",
    "poller_hint",
]

EVENT_NAME_PREFIX: Final = "daily."
ATTR_WEBHOOK_VERSION: Final = "daily.webhook.version"
ATTR_WEBHOOK_EVENT_TS: Final = "daily.webhook.event_ts"
ATTR_TIME_SOURCE: Final = "daily.webhook.time_source"

# What Daily's verification POST carries when a hook is created (docs: "Before creating your
# webhook, we perform a verification check").
VERIFICATION_BODY: Final[Mapping[str, str]] = {"test": "test"}

# Longer ids or types are not Daily's (its ids are a prefix and a UUID, its types a few words).
MAX_ID_CHARS: Final = 256
MAX_TYPE_CHARS: Final = 128

# Payload keys that mean what the polled records' attributes mean. `session_id` is a
# participant's session only in participant events; elsewhere it stays `daily.session_id`.
_MEETING_KEYS: Final = ("meeting_id", "mtgSessionId", "mtg_session_id")
_PARTICIPANT_KEYS: Final = ("userSessionId", "user_session_id")
_ROOM_KEYS: Final = ("room", "room_name", "roomName")
_PARTICIPANT_TYPE_PREFIXES: Final = ("participant.", "waiting-participant.")
_BODY_KEYS: Final = ("error_msg", "error", "message")

# The payload field that holds the event's own time, by the type's last word. A participant
# leaving has no time field of its own: it is `joined_at + duration` (see `event_time_ns`).
# Errors carry no start of their own: `timestamp` where Daily gives one, else `event_ts`,
# which is sent moments after the error.
EVENT_TIME_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "started": ("start_ts",),
    "joined": ("joined_at",),
    "ended": ("end_ts",),
    "stopped": ("end_ts",),
    "error": ("timestamp",),
    "warning": ("timestamp",),
}
# Any other type (ready-to-download, updated, unknown ones): a `timestamp` if there is one.
_DEFAULT_TIME_FIELDS: Final = ("timestamp",)
# Unix seconds below this, milliseconds above (10^11 s is the year 5138).
_MS_THRESHOLD: Final = 1e11
_MAX_TIME_NUMBER: Final = Decimal(10) ** 15


class MalformedEvent(ValueError):
    """A body that is not a Daily event (not JSON, no id, no type); the reason is safe to log
    (it never quotes the body)."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A parsed Daily webhook event; `payload` is `{}` when the event has none."""

    id: str
    type: str
    payload: Mapping[str, Any]
    version: str | None = None
    event_ts: object = None


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedEvent("the body is not JSON") from None


def is_verification(body: bytes) -> bool:
    """True for Daily's verification POST (`{"test":"test"}`), which carries no event."""
    if len(body) > 64:  # cheap: the verification body is 15 bytes, an event hundreds
        return False
    try:
        return bool(_loads(body) == VERIFICATION_BODY)
    except MalformedEvent:
        return False


def _text_field(document: Mapping[str, Any], key: str, limit: int) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        what = "missing" if value is None else f"a {type(value).__name__}, not a non-empty string"
        raise MalformedEvent(f"`{key}` is {what}")
    if len(value) > limit or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise MalformedEvent(f"`{key}` is longer than {limit} characters or has control ones")
    return value


def parse_event(body: bytes) -> WebhookEvent:
    """The event in a webhook body; MalformedEvent when it is not one."""
    document = _loads(body)
    if not isinstance(document, dict):
        raise MalformedEvent(f"the body is a JSON {type(document).__name__}, not an object")
    event_id = _text_field(document, "id", MAX_ID_CHARS)
    event_type = _text_field(document, "type", MAX_TYPE_CHARS)
    payload = document.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        # Kept, not refused: the event is still worth exporting (`daily.payload`).
        payload = {"payload": payload}
    version = document.get("version")
    return WebhookEvent(
        id=event_id,
        type=event_type,
        payload=payload,
        version=version if isinstance(version, str) else None,
        event_ts=document.get("event_ts"),
    )


# -- time ------------------------------------------------------------------------------------


def _seconds_ns(value: object) -> int | None:
    """A Unix time in seconds (or milliseconds, or an ISO-8601 string) -> ns, exactly (a float
    through its decimal text, so 1760000000.123 is .123000000, not .122999808); None when it
    is not a usable time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = Decimal(text)
        except InvalidOperation:
            try:
                return parse_time_ns(text)
            except MalformedRecord:
                return None
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        number = Decimal(repr(value))
    else:
        return None
    # Beyond 10^15 (milliseconds in the year 33658) it is no time, and a huge exponent
    # ("1e999999") would make the int below cost seconds.
    if not number.is_finite() or not 0 < number < _MAX_TIME_NUMBER:
        return None
    scale = 1_000_000 if number >= _MS_THRESHOLD else 1_000_000_000
    return int(number * scale)


def _last_word(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def event_time_ns(event: WebhookEvent, received_ns: int) -> tuple[int, str]:
    """(Timestamp in ns, the field it came from): the payload's own time for the type, else
    `event_ts` (when Daily sent the webhook), else `received` (when we got it)."""
    payload = event.payload
    if event.type.endswith(".left"):
        joined = _seconds_ns(payload.get("joined_at"))
        duration = payload.get("duration")
        if (
            joined is not None
            and isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and math.isfinite(duration)
            and duration >= 0
        ):
            return joined + round(duration * 1_000_000_000), "joined_at+duration"
    for field in EVENT_TIME_FIELDS.get(_last_word(event.type), _DEFAULT_TIME_FIELDS):
        found = _seconds_ns(payload.get(field))
        if found is not None:
            return found, field
    sent = _seconds_ns(event.event_ts)
    if sent is not None:
        return sent, "event_ts"
    return received_ns, "received"


# -- severity, name, attributes ----------------------------------------------------------------


def event_severity(event_type: str) -> tuple[int, str]:
    """(OTel severity number, text): ERROR for `*.error`, WARN for `*.warning`, else INFO."""
    word = _last_word(event_type)
    name = "ERROR" if word == "error" else "WARN" if word == "warning" else "INFO"
    return SEVERITY_NUMBERS[name], name


def event_name(event_type: str) -> str:
    return EVENT_NAME_PREFIX + event_type


def _renamed(event_type: str) -> Mapping[str, str]:
    renames = dict.fromkeys(_MEETING_KEYS, ATTR_MTG_SESSION_ID)
    renames.update(dict.fromkeys(_PARTICIPANT_KEYS, ATTR_USER_SESSION_ID))
    renames.update(dict.fromkeys(_ROOM_KEYS, ATTR_ROOM))
    if event_type.startswith(_PARTICIPANT_TYPE_PREFIXES):
        renames["session_id"] = ATTR_USER_SESSION_ID
    return renames


_RENAMES: dict[bool, Mapping[str, str]] = {
    False: _renamed(""),
    True: _renamed("participant."),
}


def event_attributes(event: WebhookEvent, time_source: str) -> list[tuple[str, object]]:
    """The LogRecord's attributes, in a stable order (payload keys in the order Daily sent
    them); null payload values are left out, as the polled mapping leaves out null fields."""
    renames = _RENAMES[event.type.startswith(_PARTICIPANT_TYPE_PREFIXES)]
    out: list[tuple[str, object]] = []
    used: set[str] = set()

    def add(key: str, value: object) -> None:
        if value is not None and key not in used:
            used.add(key)
            out.append((key, value))

    for key, value in event.payload.items():
        target = renames.get(str(key))
        name = target if target is not None and target not in used else f"daily.{key}"
        if name in used:
            # Two keys meaning the same (`room_name`, then `room`): the first takes the
            # common name, the other `daily.payload.<key>`, so nothing is lost.
            name = f"daily.payload.{key}"
        add(name, value)
    add(ATTR_WEBHOOK_VERSION, event.version)
    if not isinstance(event.event_ts, bool) and isinstance(event.event_ts, int | float | str):
        add(ATTR_WEBHOOK_EVENT_TS, event.event_ts)
    add(ATTR_TIME_SOURCE, time_source)
    add(ATTR_UID, event.id)
    return out


def _body_text(payload: Mapping[str, Any]) -> str | None:
    for key in _BODY_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def fill_event_record(target: LogRecord, event: WebhookEvent, *, received_ns: int) -> None:
    """Write `event` into `target` (a fresh LogRecord)."""
    time_ns, source = event_time_ns(event, received_ns)
    target.time_unix_nano = time_ns
    target.observed_time_unix_nano = received_ns
    number, text = event_severity(event.type)
    target.severity_number = number  # type: ignore[assignment]
    target.severity_text = text
    body = _body_text(event.payload)
    if body is not None:
        target.body.string_value = body
    target.event_name = event_name(event.type)
    for key, value in event_attributes(event, source):
        fill_any_value(target.attributes.add(key=key).value, value)


def encode_event(event: WebhookEvent, *, received_ns: int) -> bytes:
    """The serialized LogRecord of `event`, the form `mapping.encode_log_record` gives for a
    polled record (the batcher joins such bytes into an export request). Events are few, so
    the message is built with protobuf rather than by hand."""
    record = LogRecord()
    fill_event_record(record, event, received_ns=received_ns)
    return record.SerializeToString(deterministic=True)


# -- hints to the poller -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """`meeting.started`: track this session now, before the next discovery."""

    kind: ClassVar[str] = "started"
    mtg_session_id: str
    room: str
    start_ms: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """`meeting.ended`: the session's end is known; its grace period may start."""

    kind: ClassVar[str] = "ended"
    mtg_session_id: str
    end_ms: int


@dataclass(frozen=True, slots=True)
class RoomBusy:
    """A participant joined or left: the meeting (or, without its id, the room) is busy."""

    kind: ClassVar[str] = "busy"
    mtg_session_id: str | None
    room: str | None


PollerHint = SessionStarted | SessionEnded | RoomBusy


def _first_text(payload: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def poller_hint(event: WebhookEvent) -> PollerHint | None:
    """What `event` tells the poller, or None. A hint only: polling stays the source of
    truth, so an event without the fields a hint needs simply gives none."""
    payload = event.payload
    meeting = _first_text(payload, _MEETING_KEYS)
    room = _first_text(payload, _ROOM_KEYS)
    if event.type == "meeting.started":
        if meeting is None:
            return None
        start_ns, _ = event_time_ns(event, 0)
        if start_ns <= 0:
            return None
        return SessionStarted(meeting, room or "", start_ns // 1_000_000)
    if event.type == "meeting.ended":
        if meeting is None:
            return None
        end_ns, _ = event_time_ns(event, 0)
        if end_ns <= 0:
            return None
        return SessionEnded(meeting, end_ns // 1_000_000)
    if event.type in ("participant.joined", "participant.left"):
        if meeting is None and room is None:
            return None
        return RoomBusy(meeting, room)
    return None
