"""Daily log record -> OTLP LogRecord, as README.md's "Mapping contract" specifies.

Pure: no I/O, no clock. The observed time and the room name are passed in. The functions
write straight into a `LogRecord` that the caller allocated inside its export request
(`scope_logs.log_records.add()`), because building standalone messages and copying them
into the request costs about a third more CPU on the hot path.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import orjson
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.encoding import (
    int_attribute,
    length_delimited,
    pack_fixed64,
    string_attribute,
    string_field,
    varint,
)
from daily_otel_bridge.core.records import DailyRecord

LOG_EVENT_NAME: Final = "daily.log"
METRICS_EVENT_NAME: Final = "daily.metrics"

ATTR_MTG_SESSION_ID: Final = "daily.mtg_session_id"
ATTR_USER_SESSION_ID: Final = "daily.user_session_id"
ATTR_PEER_ID: Final = "daily.peer_id"
ATTR_CODE: Final = "daily.log.code"
ATTR_LEVEL: Final = "daily.log.level"
ATTR_CLIENT_TIME: Final = "daily.client_time"
ATTR_ROOM: Final = "daily.room"
ATTR_UID: Final = "log.record.uid"

# OpenTelemetry severity numbers of the six ranges' first value (logs data model).
SEVERITY_NUMBERS: Final[Mapping[str, int]] = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "ERROR": 17,
    "FATAL": 21,
}
# Daily does not document `level`; 0/1/2 follows the ERROR/INFO/DEBUG order of its
# `logLevel` enum (an inference, so the map is configurable and the raw value is kept).
DEFAULT_SEVERITY_MAP: Final[Mapping[int, str]] = {0: "ERROR", 1: "INFO", 2: "DEBUG"}


class MalformedRecord(ValueError):
    """A record that cannot be mapped; the reason is safe to log (it holds no secret)."""


@dataclass(frozen=True, slots=True)
class SeverityTable:
    """Daily `level` -> (OTel severity number, severity text)."""

    by_level: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    # level -> (severity fields, `daily.log.level` attribute) in wire form, for
    # `encode_log_record` (filled as levels are met; bounded).
    encoded: dict[int, tuple[bytes, bytes]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_names(cls, names: Mapping[int, str]) -> SeverityTable:
        return cls(
            {lvl: (SEVERITY_NUMBERS[name.upper()], name.upper()) for lvl, name in names.items()}
        )

    def lookup(self, level: int) -> tuple[int, str]:
        found = self.by_level.get(level)
        if found is None:
            return 0, f"LEVEL_{level}"
        return found

    def encoded_level(self, level: int) -> tuple[bytes, bytes]:
        """(severity_number + severity_text, the `daily.log.level` attribute) in wire form."""
        found = self.encoded.get(level)
        if found is None:
            number, text = self.lookup(level)
            severity = (b"\x10" + varint(number) if number else b"") + (
                string_field(b"\x1a", text) if text else b""
            )
            found = (severity, int_attribute(ATTR_LEVEL, level))
            if len(self.encoded) >= _MAX_CACHED:
                self.encoded.clear()
            self.encoded[level] = found
        return found


DEFAULT_SEVERITY: Final = SeverityTable.from_names(DEFAULT_SEVERITY_MAP)

_blake2b: Final = hashlib.blake2b
_SORT_KEYS: Final = orjson.OPT_SORT_KEYS


@lru_cache(maxsize=1024)
def _day_seconds(day: str) -> int:
    # `YYYY-MM-DD` is shared by every record of the day, so caching it removes the datetime
    # parsing from the hot path almost entirely. `datetime` checks every field: `timegm`
    # alone would turn 30 February into 2 March, and one such record would throw a
    # session's watermark days away.
    parsed = datetime(int(day[0:4]), int(day[5:7]), int(day[8:10]), tzinfo=UTC)
    seconds: int = calendar.timegm(parsed.utctimetuple())
    return seconds


def _epoch_seconds(prefix: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS` -> Unix seconds; ValueError for a field out of its range (what
    `datetime` would refuse: hour 25, minute or second 60)."""
    hour, minute, second = int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19])
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
        raise ValueError("time of day out of range")
    return _day_seconds(prefix[:10]) + hour * 3600 + minute * 60 + second


# Daily's `YYYY-MM-DDTHH:MM` -> that minute's Unix nanoseconds, for the minutes the checked
# path below accepted. Records of a session mostly share their minute with the previous
# ones (a per-second cache missed almost always), so the usual record costs one lookup and
# one int(); bounded like the encoder's caches.
_MINUTES: Final[dict[str, int]] = {}


def parse_time_ns(value: object) -> int:
    """ISO-8601 with up to nine fractional digits -> Unix nanoseconds, without rounding.

    Daily sends `2026-03-23T16:32:55.473000000Z`; `datetime` stops at microseconds, which
    would merge records that Daily keeps apart, so the fraction is read as digits.
    """
    if type(value) is str and len(value) == 30 and value[29] == "Z" and value[19] == ".":
        minute_ns = _MINUTES.get(value[:16])
        if minute_ns is not None:
            # Seconds and the nine digits of the fraction as one number: SS * 10**9 + ns.
            # isdecimal() is what int() accepts (isdigit() also lets "²" through); a first
            # digit below "6" keeps the second below 60.
            rest = value[17:19] + value[20:29]
            if value[16] == ":" and value[17] < "6" and rest.isdecimal():
                return minute_ns + int(rest)
        if (
            value[4] == "-"
            and value[7] == "-"
            and value[10] == "T"
            and value[13] == ":"
            and value[16] == ":"
        ):
            # Daily's own form, `2026-03-23T16:32:55.473000000Z`: the nine digits as they are.
            digits = value[20:29]
            if digits.isdecimal():
                try:
                    seconds = _epoch_seconds(value)
                except (ValueError, OverflowError) as exc:
                    raise MalformedRecord(f"unparsable time {value[:40]!r}") from exc
                if len(_MINUTES) >= _MAX_CACHED:
                    _MINUTES.clear()
                _MINUTES[value[:16]] = (seconds - int(value[17:19])) * 1_000_000_000
                return seconds * 1_000_000_000 + int(digits)
    if not isinstance(value, str):
        raise MalformedRecord(f"time is {type(value).__name__}, expected an ISO-8601 string")
    text = value
    if (
        len(text) >= 20
        and text[-1] in "Zz"
        and text[4] == "-"
        and text[7] == "-"
        and text[10] in "Tt "
        and text[13] == ":"
        and text[16] == ":"
    ):
        try:
            seconds = _epoch_seconds(text[:19])
        except (ValueError, OverflowError) as exc:
            raise MalformedRecord(f"unparsable time {text[:40]!r}") from exc
        rest = text[19:-1]
        if not rest:
            return seconds * 1_000_000_000
        if rest[0] == "." and 1 < len(rest) <= 10 and rest[1:].isdecimal():
            digits = rest[1:]
            scale: int = 10 ** (9 - len(digits))
            return seconds * 1_000_000_000 + int(digits) * scale
    return _parse_time_slow(text)


def _parse_time_slow(text: str) -> int:
    # Offsets other than Z, or fewer separators: rare, so the general parser is fine. The
    # fraction is still taken as digits so that nanoseconds survive.
    fraction_ns = 0
    main = text
    dot = text.find(".", 19)
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdecimal():
            end += 1
        digits = text[dot + 1 : end]
        if not digits or len(digits) > 9:
            raise MalformedRecord(f"unparsable time {text[:40]!r}")
        fraction_ns = int(digits) * 10 ** (9 - len(digits))
        main = text[:dot] + text[end:]
    try:
        parsed = datetime.fromisoformat(main.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedRecord(f"unparsable time {text[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedRecord(f"time without a timezone {text[:40]!r}")
    return calendar.timegm(parsed.utctimetuple()) * 1_000_000_000 + fraction_ns


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the form a record's identity is computed over.

    orjson produces exactly this five times faster than the standard library; the standard
    library takes over for what orjson refuses (integers beyond 64 bits, lone surrogates),
    producing the same bytes wherever both can.
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def record_digest(record: Mapping[str, Any]) -> bytes:
    """A stable 128-bit digest of the record's whole content (every key, sorted)."""
    return hashlib.blake2b(canonical_json(record), digest_size=16).digest()


def digest_any(record: object) -> bytes:
    """The digest of whatever Daily sent as a record, even when it is not an object (such a
    record still needs an identity: it becomes a dead letter exactly once)."""
    if type(record) is dict:
        # The hot path: `record_digest` in one step (orjson gives the canonical bytes).
        try:
            return _blake2b(orjson.dumps(record, option=_SORT_KEYS), digest_size=16).digest()
        except TypeError:  # orjson.JSONEncodeError too: the standard library's turn
            pass
    if isinstance(record, dict):
        try:
            return record_digest(record)
        except (TypeError, ValueError):
            pass
    return record_digest({"__raw__": repr(record)})


def record_uid(digest: bytes, occurrence: int) -> str:
    """`log.record.uid`: the digest, plus the occurrence number for byte-identical twins.

    The first copy of a record keeps the bare digest so that the uid of an ordinary record
    depends on nothing but its content.
    """
    if occurrence <= 1:
        return digest.hex()
    return f"{digest.hex()}-{occurrence}"


def required_str(record: Mapping[str, Any], key: str) -> str:
    """`record[key]` when it is a non-empty string; MalformedRecord saying what it is else."""
    value = record.get(key)
    if not isinstance(value, str) or not value:
        if value is None:
            raise MalformedRecord(f"{key} is missing")
        raise MalformedRecord(f"{key} is {type(value).__name__}, expected a non-empty string")
    return value


def _optional_int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedRecord(f"{key} is {type(value).__name__}, expected an integer")
    return value


@dataclass(frozen=True, slots=True)
class ValidRecord:
    """The fields the cursor and the mapping need, checked once."""

    time_ns: int
    mtg_session_id: str


def validate(record: DailyRecord) -> ValidRecord:
    """Check the fields the contract depends on; raise MalformedRecord with the reason."""
    time_ns = checked_time_ns(record)
    return ValidRecord(time_ns=time_ns, mtg_session_id=record["mtgSessionId"])


def checked_time_ns(record: DailyRecord) -> int:
    """`validate` for the hot path: the record's `time` in ns once every check passed.

    The common case (every field of its usual exact type) is checked in one expression;
    anything else goes through the field-by-field checks, which give the reason.
    """
    if type(record) is dict:
        get = record.get
        mtg = get("mtgSessionId")
        user = get("userSessionId")
        message = get("message")
        level = get("level")
        code = get("code")
        peer = get("peerId")
        client_time = get("clientTime")
        if (
            type(mtg) is str
            and mtg
            and type(user) is str
            and user
            and (message is None or type(message) is str)
            and (level is None or type(level) is int)
            and (code is None or type(code) is int)
            and (peer is None or type(peer) is str)
            and (client_time is None or type(client_time) is str)
        ):
            return parse_time_ns(get("time"))
    return _validate_slow(record)


def _validate_slow(record: DailyRecord) -> int:
    if not isinstance(record, dict):
        raise MalformedRecord(f"record is {type(record).__name__}, expected an object")
    time_ns = parse_time_ns(record.get("time"))
    mtg = required_str(record, "mtgSessionId")
    required_str(record, "userSessionId")
    message = record.get("message")
    if message is not None and not isinstance(message, str):
        raise MalformedRecord(f"message is {type(message).__name__}, expected a string")
    _optional_int(record, "level")
    _optional_int(record, "code")
    peer = record.get("peerId")
    if peer is not None and not isinstance(peer, str):
        raise MalformedRecord(f"peerId is {type(peer).__name__}, expected a string or null")
    client_time = record.get("clientTime")
    if client_time is not None and not isinstance(client_time, str):
        raise MalformedRecord(f"clientTime is {type(client_time).__name__}, expected a string")
    del mtg
    return time_ns


def fill_log_record(
    target: LogRecord,
    record: DailyRecord,
    *,
    time_ns: int,
    observed_ns: int,
    uid: str,
    room: str | None,
    severity: SeverityTable = DEFAULT_SEVERITY,
) -> None:
    """Write one validated Daily record into `target` (a fresh LogRecord)."""
    target.time_unix_nano = time_ns
    target.observed_time_unix_nano = observed_ns
    level = record.get("level")
    if level is not None:
        number, text = severity.lookup(level)
        target.severity_number = number  # type: ignore[assignment]
        target.severity_text = text
    message = record.get("message")
    if message is not None:
        target.body.string_value = message
    target.event_name = LOG_EVENT_NAME
    attributes = target.attributes
    attributes.add(key=ATTR_MTG_SESSION_ID).value.string_value = record["mtgSessionId"]
    attributes.add(key=ATTR_USER_SESSION_ID).value.string_value = record["userSessionId"]
    peer = record.get("peerId")
    if peer is not None:
        attributes.add(key=ATTR_PEER_ID).value.string_value = peer
    code = record.get("code")
    if code is not None:
        attributes.add(key=ATTR_CODE).value.int_value = code
    if level is not None:
        attributes.add(key=ATTR_LEVEL).value.int_value = level
    client_time = record.get("clientTime")
    if client_time is not None:
        attributes.add(key=ATTR_CLIENT_TIME).value.string_value = client_time
    if room:
        attributes.add(key=ATTR_ROOM).value.string_value = room
    attributes.add(key=ATTR_UID).value.string_value = uid


# -- the same mapping, straight to the wire form (the hot path) ----------------------------

# Values met again and again (a session's id and room, a participant, a message text, a
# code) are encoded once: each cache maps a value to its finished attribute (or body) bytes.
_MAX_CACHED: Final = 4096


class _Encoded(dict[Any, bytes]):
    """value -> its encoded piece, computed on first use; forgets everything when full."""

    def __init__(self, encode: Any) -> None:
        super().__init__()
        self._encode = encode

    def __missing__(self, value: Any) -> bytes:
        piece: bytes = self._encode(value)
        if len(self) >= _MAX_CACHED:
            self.clear()
        self[value] = piece
        return piece


def _string_attribute_of(key: str) -> _Encoded:
    return _Encoded(lambda value: string_attribute(key, value))


_MTG_ATTR: Final = _string_attribute_of(ATTR_MTG_SESSION_ID)
_USER_ATTR: Final = _string_attribute_of(ATTR_USER_SESSION_ID)
_PEER_ATTR: Final = _string_attribute_of(ATTR_PEER_ID)
_ROOM_ATTR: Final = _string_attribute_of(ATTR_ROOM)
_CODE_ATTR: Final = _Encoded(lambda value: int_attribute(ATTR_CODE, value))
# LogRecord.body = 5, an AnyValue whose string_value = 1.
_BODY: Final = _Encoded(lambda value: length_delimited(b"\x2a", string_field(b"\x0a", value)))
_EVENT_NAME_FIELD: Final = string_field(b"\x62", LOG_EVENT_NAME)  # event_name = 12
_UINT64_LIMIT: Final = 1 << 64
# The key half of the two attributes that differ on every record.
_CLIENT_TIME_KEY: Final = string_field(b"\x0a", ATTR_CLIENT_TIME)
_UID_KEY: Final = string_field(b"\x0a", ATTR_UID)
_SMALL_VARINTS: Final = tuple(bytes((i,)) for i in range(128))
# KeyValue.value (2) of an AnyValue holding only string_value (1) of n < 126 bytes: the
# headers of both, by n.
_STRING_VALUE_HEADERS: Final = tuple(bytes((0x12, n + 2, 0x0A, n)) for n in range(126))


def _fixed64(tag: bytes, value: int) -> bytes:
    # proto3: zero is not written; protobuf refuses what a uint64 cannot hold.
    if not value:
        return b""
    if not 0 < value < _UINT64_LIMIT:
        raise ValueError(f"Value out of range: {value}")
    return tag + pack_fixed64(value)


def _unique_string_attribute(key_field: bytes, value: str) -> bytes:
    data = value.encode("utf-8")
    n = len(data)
    size = len(key_field) + n + 4
    if size < 0x80:  # every length fits one byte: the usual case, in one concatenation
        return b"\x32" + _SMALL_VARINTS[size] + key_field + _STRING_VALUE_HEADERS[n] + data
    any_value = length_delimited(b"\x0a", data)
    return length_delimited(b"\x32", key_field + length_delimited(b"\x12", any_value))


def _attribute_prefixes(key_field: bytes) -> tuple[bytes, ...]:
    """For each value length n whose attribute's lengths all fit one byte: everything of the
    attribute before the value's bytes (as `_unique_string_attribute` writes it)."""
    return tuple(
        b"\x32" + _SMALL_VARINTS[len(key_field) + n + 4] + key_field + _STRING_VALUE_HEADERS[n]
        for n in range(min(len(_STRING_VALUE_HEADERS), 0x80 - 4 - len(key_field)))
    )


_CLIENT_TIME_PREFIXES: Final = _attribute_prefixes(_CLIENT_TIME_KEY)
_UID_PREFIXES: Final = _attribute_prefixes(_UID_KEY)


def encode_log_record(
    record: DailyRecord,
    *,
    time_ns: int,
    observed_ns: int,
    uid: str,
    room: str | None,
    severity: SeverityTable = DEFAULT_SEVERITY,
) -> bytes:
    """`fill_log_record` in wire form: the bytes of the LogRecord it would fill, exactly as
    `SerializeToString` gives them (fields in number order, proto3 defaults left out).

    Raises ValueError where filling the message would (an integer beyond int64, text that
    UTF-8 cannot hold).
    """
    # Everything a usual record needs is inlined (a call per field shows in profiles); the
    # helpers above take the unusual values (long texts, times out of range).
    get = record.get
    level = get("level")
    if level is not None:
        encoded_level = severity.encoded.get(level)
        if encoded_level is None:
            encoded_level = severity.encoded_level(level)
        severity_fields, level_attr = encoded_level
    else:
        severity_fields = level_attr = b""
    message = get("message")
    peer = get("peerId")
    code = get("code")
    client_time = get("clientTime")
    if client_time is not None:
        data = client_time.encode("utf-8")
        client_time_attr = (
            _CLIENT_TIME_PREFIXES[len(data)] + data
            if len(data) < len(_CLIENT_TIME_PREFIXES)
            else _unique_string_attribute(_CLIENT_TIME_KEY, client_time)
        )
    else:
        client_time_attr = b""
    data = uid.encode("utf-8")
    uid_attr = (
        _UID_PREFIXES[len(data)] + data
        if len(data) < len(_UID_PREFIXES)
        else _unique_string_attribute(_UID_KEY, uid)
    )
    return b"".join(
        (
            # time_unix_nano = 1
            b"\x09" + pack_fixed64(time_ns)
            if 0 < time_ns < _UINT64_LIMIT
            else _fixed64(b"\x09", time_ns),
            severity_fields,  # severity_number = 2, severity_text = 3
            _BODY[message] if message is not None else b"",
            _MTG_ATTR[record["mtgSessionId"]],
            _USER_ATTR[record["userSessionId"]],
            _PEER_ATTR[peer] if peer is not None else b"",
            _CODE_ATTR[code] if code is not None else b"",
            level_attr,
            client_time_attr,
            _ROOM_ATTR[room] if room else b"",
            uid_attr,
            b"\x59" + pack_fixed64(observed_ns)  # observed_time_unix_nano = 11
            if 0 < observed_ns < _UINT64_LIMIT
            else _fixed64(b"\x59", observed_ns),
            _EVENT_NAME_FIELD,
        )
    )
