"""The mapping contract (README.md, "Mapping contract") as tables: Daily record in, OTLP
LogRecord fields out."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.console import decode_any
from daily_otel_bridge.core.encoding import LogBatch, stamp_scope
from daily_otel_bridge.core.mapping import (
    DEFAULT_SEVERITY,
    MalformedRecord,
    SeverityTable,
    checked_time_ns,
    digest_any,
    encode_log_record,
    fill_log_record,
    parse_time_ns,
    record_digest,
    record_uid,
    validate,
)
from daily_otel_bridge.otlp.resource import domain_resource

SEED_RECORD: dict[str, Any] = {
    "time": "2026-03-23T16:32:55.473000000Z",
    "clientTime": "2026-03-23T16:32:54.338000000Z",
    "message": "participant left",
    "mtgSessionId": "008c1f0f-6fc5-4e5f-b872-1b9623cb1e7a",
    "userSessionId": "7a51a4b2-92cf-4ad2-b53b-9d01cc985a38",
    "peerId": "6436dbcb-f60a-48c4-90ca-4588f60f6fbc",
    "domainName": "your-domain",
    "level": 1,
    "code": 8020,
}
T0 = 1774283575  # 2026-03-23T16:32:55Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-23T16:32:55.473000000Z", T0 * 10**9 + 473_000_000),
        ("2026-03-23T16:32:55.000000001Z", T0 * 10**9 + 1),
        ("2026-03-23T16:32:55.999999999Z", T0 * 10**9 + 999_999_999),
        ("2026-03-23T16:32:55.5Z", T0 * 10**9 + 500_000_000),
        ("2026-03-23T16:32:55.123456Z", T0 * 10**9 + 123_456_000),
        ("2026-03-23T16:32:55Z", T0 * 10**9),
        ("2026-03-23T16:32:55.473000000+00:00", T0 * 10**9 + 473_000_000),
        ("2026-03-23T18:32:55.000000007+02:00", T0 * 10**9 + 7),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_parse_time_keeps_nanoseconds(text: str, expected: int) -> None:
    assert parse_time_ns(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        None,
        12,
        "",
        "yesterday",
        "2026-03-23",
        "2026-13-23T16:32:55Z",
        "2026-03-23T16:32:55",
        "2026-03-23T16:32:55.1234567890Z",
        "2026-03-23T16:32:55.abcZ",
        # isdigit() is true of "²", int() refuses it: a MalformedRecord, not a ValueError.
        "2026-03-23T16:32:55.47300000²Z",
        "2026-03-23T16:32:5².473000000Z",
        "2026-03-23T16:32:55.4²Z",
        "2026-03-23T16:32:55.4²+00:00",
    ],
)
def test_parse_time_rejects(bad: object) -> None:
    parse_time_ns("2026-03-23T16:32:00.000000000Z")  # the minute known to the fast path
    with pytest.raises(MalformedRecord):
        parse_time_ns(bad)


def test_parse_time_of_a_known_minute_agrees_with_the_checked_path() -> None:
    """The second record of a minute is read from the minute's cached start; every second
    (and the out-of-range ones), fraction and odd character must come out as on the first."""
    minute = "2026-03-23T16:32:"
    parse_time_ns(minute + "00.000000000Z")
    for second in [*(f"{s:02d}" for s in range(62)), "+5", " 5", "5 ", "٣5", "5٣", "-1"]:
        for fraction in ("000000000", "473000001", "999999999", "47300000²", "4730000 1"):
            text = f"{minute}{second}.{fraction}Z"
            try:
                moment = datetime(2026, 3, 23, 16, 32, int(second), tzinfo=UTC)
                expected: int | None = calendar.timegm(moment.utctimetuple()) * 10**9 + int(
                    fraction
                )
            except ValueError:
                expected = None
            if expected is None:
                with pytest.raises(MalformedRecord):
                    parse_time_ns(text)
            else:
                assert parse_time_ns(text) == expected, text


def mapped(record: dict[str, Any], **kw: Any) -> LogRecord:
    target = LogRecord()
    args: dict[str, Any] = {
        "time_ns": parse_time_ns(record["time"]),
        "observed_ns": 42,
        "uid": "uid-1",
        "room": "standup",
    }
    args.update(kw)
    fill_log_record(target, record, **args)
    return target


def attrs(lr: LogRecord) -> dict[str, Any]:
    return {kv.key: decode_any(kv.value) for kv in lr.attributes}


def test_contract_fields_of_the_seed_record() -> None:
    lr = mapped(SEED_RECORD)
    assert lr.time_unix_nano == T0 * 10**9 + 473_000_000
    assert lr.observed_time_unix_nano == 42
    assert lr.severity_number == 9
    assert lr.severity_text == "INFO"
    assert lr.body.string_value == "participant left"
    assert lr.event_name == "daily.log"
    assert attrs(lr) == {
        "daily.mtg_session_id": SEED_RECORD["mtgSessionId"],
        "daily.user_session_id": SEED_RECORD["userSessionId"],
        "daily.peer_id": SEED_RECORD["peerId"],
        "daily.log.code": 8020,
        "daily.log.level": 1,
        "daily.client_time": "2026-03-23T16:32:54.338000000Z",
        "daily.room": "standup",
        "log.record.uid": "uid-1",
    }


@pytest.mark.parametrize(
    ("change", "absent"),
    [
        ({"peerId": None}, "daily.peer_id"),
        ({"code": None}, "daily.log.code"),
        ({"clientTime": None}, "daily.client_time"),
    ],
)
def test_nulls_are_omitted(change: dict[str, Any], absent: str) -> None:
    lr = mapped({**SEED_RECORD, **change})
    assert absent not in attrs(lr)


def test_room_omitted_when_unknown() -> None:
    assert "daily.room" not in attrs(mapped(SEED_RECORD, room=None))


@pytest.mark.parametrize(
    ("level", "number", "text"),
    [(0, 17, "ERROR"), (1, 9, "INFO"), (2, 5, "DEBUG"), (7, 0, "LEVEL_7"), (-1, 0, "LEVEL_-1")],
)
def test_default_severity_map(level: int, number: int, text: str) -> None:
    lr = mapped({**SEED_RECORD, "level": level})
    assert (lr.severity_number, lr.severity_text) == (number, text)
    assert attrs(lr)["daily.log.level"] == level


def test_configured_severity_map() -> None:
    table = SeverityTable.from_names({0: "fatal", 1: "WARN", 2: "trace"})
    assert table.lookup(0) == (21, "FATAL")
    assert table.lookup(1) == (13, "WARN")
    assert table.lookup(2) == (1, "TRACE")
    assert DEFAULT_SEVERITY.lookup(3) == (0, "LEVEL_3")


def test_uid_is_deterministic_and_counts_twins() -> None:
    d1 = record_digest(SEED_RECORD)
    d2 = record_digest(dict(reversed(list(SEED_RECORD.items()))))
    assert d1 == d2, "key order must not change the identity"
    assert record_uid(d1, 1) == d1.hex()
    assert record_uid(d1, 2) == f"{d1.hex()}-2"
    other = record_digest({**SEED_RECORD, "message": "participant joined"})
    assert other != d1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"time": None}, "time"),
        ({"time": "not a time"}, "unparsable time"),
        ({"mtgSessionId": None}, "mtgSessionId is missing"),
        ({"userSessionId": 12}, "userSessionId is int"),
        ({"level": "1"}, "level is str"),
        ({"code": 1.5}, "code is float"),
        ({"code": True}, "code is bool"),
        ({"peerId": 7}, "peerId is int"),
        ({"message": {"a": 1}}, "message is dict"),
    ],
)
def test_validate_names_the_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedRecord, match=reason):
        validate({**SEED_RECORD, **change})


def test_validate_accepts_the_seed_examples() -> None:
    valid = validate(SEED_RECORD)
    assert valid.mtg_session_id == SEED_RECORD["mtgSessionId"]
    assert valid.time_ns == T0 * 10**9 + 473_000_000


def test_unicode_and_large_messages_survive() -> None:
    text = "héllo 🎥 " + "x" * (1024 * 1024)
    lr = mapped({**SEED_RECORD, "message": text})
    assert lr.body.string_value == text


# -- encode_log_record: the wire form of the hot path must be fill_log_record's, byte for byte


def both_ways(record: dict[str, Any], **kw: Any) -> tuple[bytes, bytes]:
    """(what `fill_log_record` serialises to, what `encode_log_record` writes)."""
    args: dict[str, Any] = {
        "time_ns": T0 * 10**9 + 473_000_000,
        "observed_ns": 42,
        "uid": "uid-1",
        "room": "standup",
    }
    args.update(kw)
    target = LogRecord()
    fill_log_record(target, record, **args)
    return target.SerializeToString(), encode_log_record(record, **args)


@pytest.mark.parametrize(
    ("change", "kw"),
    [
        ({}, {}),
        ({"message": None, "level": None, "code": None, "peerId": None, "clientTime": None}, {}),
        ({"message": ""}, {}),  # an empty body is still a body (a set oneof)
        ({"peerId": "", "clientTime": ""}, {}),
        ({"level": 99}, {}),  # unknown level: severity number 0 (left out), text LEVEL_99
        ({"level": -1, "code": -7}, {}),  # negative int64: ten-byte varints
        ({"code": 2**63 - 1}, {}),
        ({"code": -(2**63)}, {}),
        ({"code": 0, "level": 0}, {}),
        ({}, {"room": None}),
        ({}, {"room": ""}),
        ({}, {"time_ns": 0, "observed_ns": 0}),  # proto3 zeros are not written
        ({}, {"time_ns": 2**64 - 1}),
        ({}, {"uid": "ab" * 16 + "-12"}),
        ({"message": "héllo 🎥 " + "x" * 300}, {}),  # multi-byte lengths
        ({"clientTime": "t" * 121}, {}),  # around the one-byte-length fast path
        ({"clientTime": "t" * 122}, {}),
        ({"clientTime": "t" * 200}, {"uid": "u" * 20_000}),
        ({"mtgSessionId": "m" * 300, "userSessionId": "ü" * 100}, {"room": "r" * 130}),
    ],
)
def test_encoded_log_record_is_the_serialised_message(
    change: dict[str, Any], kw: dict[str, Any]
) -> None:
    filled, encoded = both_ways({**SEED_RECORD, **change}, **kw)
    assert encoded == filled
    assert LogRecord.FromString(encoded) == LogRecord.FromString(filled)


def test_encoded_log_record_with_a_configured_severity_map() -> None:
    table = SeverityTable.from_names({0: "FATAL", 1: "WARN", 7: "TRACE"})
    for level in (0, 1, 2, 7):
        filled, encoded = both_ways({**SEED_RECORD, "level": level}, severity=table)
        assert encoded == filled


@pytest.mark.parametrize(
    ("change", "kw"),
    [
        ({"code": 2**63}, {}),
        ({"code": -(2**63) - 1}, {}),
        ({"level": 2**70}, {}),
        ({"message": "lone surrogate \ud800 here"}, {}),
        ({"clientTime": "\udfff"}, {}),
        ({"peerId": "\ud800"}, {}),
        ({}, {"time_ns": -1}),
        ({}, {"observed_ns": 2**64}),
        ({}, {"room": "\ud800"}),
    ],
)
def test_encoding_refuses_what_the_message_refuses(
    change: dict[str, Any], kw: dict[str, Any]
) -> None:
    record = {**SEED_RECORD, **change}
    args: dict[str, Any] = {"time_ns": 1, "observed_ns": 1, "uid": "u", "room": None, **kw}
    with pytest.raises(ValueError, match=r"."):
        fill_log_record(LogRecord(), record, **args)
    with pytest.raises(ValueError, match=r"."):
        encode_log_record(record, **args)


_text = st.text(max_size=150)  # surrogates included: st.text draws them
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(
    message=st.none() | _text,
    user=_text.filter(bool),
    peer=st.none() | _text,
    level=st.none() | _int64,
    code=st.none() | _int64,
    client_time=st.none() | _text,
    room=st.none() | _text,
    uid=_text,
    time_ns=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_encoded_log_record_matches_for_any_field_values(
    message: str | None,
    user: str,
    peer: str | None,
    level: int | None,
    code: int | None,
    client_time: str | None,
    room: str | None,
    uid: str,
    time_ns: int,
) -> None:
    record = {
        **SEED_RECORD,
        "message": message,
        "userSessionId": user,
        "peerId": peer,
        "level": level,
        "code": code,
        "clientTime": client_time,
    }
    args: dict[str, Any] = {"time_ns": time_ns, "observed_ns": 42, "uid": uid, "room": room}
    target = LogRecord()
    try:
        fill_log_record(target, record, **args)
    except ValueError:  # text UTF-8 cannot hold: the encoder must refuse it too
        with pytest.raises(ValueError, match=r"."):
            encode_log_record(record, **args)
        return
    assert encode_log_record(record, **args) == target.SerializeToString()


def test_a_log_batch_of_encoded_records_is_the_request_protobuf_would_build() -> None:
    resource = domain_resource("acme", {"deployment.environment": "test"})
    expected = ExportLogsServiceRequest()
    resource_logs = expected.resource_logs.add()
    resource_logs.resource.CopyFrom(resource)
    scope_logs = resource_logs.scope_logs.add()
    stamp_scope(scope_logs.scope)
    batch = LogBatch(resource)
    records = [
        {**SEED_RECORD, "message": f"line {i}", "code": i, "level": i % 3} for i in range(50)
    ]
    for i, record in enumerate(records):
        args: dict[str, Any] = {"time_ns": T0 * 10**9 + i, "observed_ns": 42, "uid": f"u{i}"}
        fill_log_record(scope_logs.log_records.add(), record, room="standup", **args)
        if i % 10 == 3:
            # A record filled as a message (samples as logs) keeps its place in the request.
            fill_log_record(batch.add(), record, room="standup", **args)
        else:
            batch.add_encoded(encode_log_record(record, room="standup", **args))
    batch.add_encoded(encode_log_record(SEED_RECORD, time_ns=1, observed_ns=1, uid="x", room=None))
    batch.discard_last()
    assert batch.size == 50
    assert batch.encode() == expected.SerializeToString()
    assert batch.request == expected
    sent = batch.serialized()
    assert sent.SerializeToString() == expected.SerializeToString()
    assert sent.resource_logs == expected.resource_logs  # read through as the message


def test_checked_time_ns_agrees_with_validate() -> None:
    assert checked_time_ns(SEED_RECORD) == validate(SEED_RECORD).time_ns
    for change in ({"level": True}, {"code": 1.5}, {"peerId": 7}, {"time": None}):
        with pytest.raises(MalformedRecord) as slow:
            validate({**SEED_RECORD, **change})
        with pytest.raises(MalformedRecord) as fast:
            checked_time_ns({**SEED_RECORD, **change})
        assert str(fast.value) == str(slow.value)


def test_digest_any_is_record_digest_for_objects() -> None:
    assert digest_any(SEED_RECORD) == record_digest(SEED_RECORD)
    big = {**SEED_RECORD, "extra": 2**70}  # orjson refuses it: the standard library's bytes
    assert digest_any(big) == record_digest(big)
    assert digest_any("text") == record_digest({"__raw__": repr("text")})


@settings(max_examples=500, deadline=None)
@given(
    year=st.integers(min_value=1, max_value=9999),
    month=st.integers(min_value=0, max_value=13),
    day=st.integers(min_value=0, max_value=32),
    hour=st.integers(min_value=0, max_value=25),
    minute=st.integers(min_value=0, max_value=61),
    second=st.integers(min_value=0, max_value=61),
    nanos=st.integers(min_value=0, max_value=10**9 - 1),
)
def test_parse_time_agrees_with_datetime_on_every_field(
    year: int, month: int, day: int, hour: int, minute: int, second: int, nanos: int
) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{nanos:09d}Z"
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        with pytest.raises(MalformedRecord, match="unparsable time"):
            parse_time_ns(text)
        return
    assert parse_time_ns(text) == calendar.timegm(moment.utctimetuple()) * 10**9 + nanos
