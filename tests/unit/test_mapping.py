"""The mapping contract (README.md, "Mapping contract") as tables: Daily record in, OTLP
LogRecord fields out."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.console import decode_any
from daily_otel_bridge.core.mapping import (
    DEFAULT_SEVERITY,
    MalformedRecord,
    SeverityTable,
    fill_log_record,
    parse_time_ns,
    record_digest,
    record_uid,
    validate,
)

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
    ],
)
def test_parse_time_rejects(bad: object) -> None:
    with pytest.raises(MalformedRecord):
        parse_time_ns(bad)


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
