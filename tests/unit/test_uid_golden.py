"""`log.record.uid` written out: the values a backend de-duplicates on must never change.

These hex strings were computed once and are kept as they are: a change of canonical form
(key order, spacing, escaping, number formatting, the digest) would give every record
delivered before the change a second identity downstream. Computed independently of the
production code by `tests/expectations.py` too (stdlib `json` + `hashlib`)."""

from __future__ import annotations

from typing import Any

import pytest

from daily_otel_bridge.core.mapping import digest_any, record_uid
from tests.expectations import independent_digest

GOLDEN: list[tuple[Any, str]] = [
    (
        {
            "time": "2024-05-01T10:00:00.123000000Z",
            "clientTime": "2024-05-01T10:00:00.100Z",
            "message": "joined",
            "mtgSessionId": "m-1",
            "userSessionId": "u-1",
            "peerId": "p-1",
            "domainName": "acme",
            "level": 1,
            "code": 4010,
        },
        "afd6d1e2d30c6d3635268dbd786968da",
    ),
    (
        {
            "time": "2024-05-01T10:00:01.000000000Z",
            "message": "grüße 🎥 \u00e9",
            "mtgSessionId": "m-1",
            "level": 0,
        },
        "f0d5eaee997485a16c79dea7954bbd17",
    ),
    (
        {
            "message": "x",
            "n": 12345678901234567890123,
            "nested": {"b": [1, 2.5, None, True], "a": "z"},
        },
        "9a88c16797381e2c0b1b977c82af0781",
    ),
    ("not an object", "d19417b0d5cae40d41ac378f829fbd7c"),
]


@pytest.mark.parametrize(("record", "uid"), GOLDEN)
def test_the_uid_of_a_record_is_written_in_stone(record: Any, uid: str) -> None:
    assert record_uid(digest_any(record), 1) == uid
    assert record_uid(digest_any(record), 2) == f"{uid}-2"
    assert record_uid(digest_any(record), 3) == f"{uid}-3"


@pytest.mark.parametrize(("record", "uid"), GOLDEN)
def test_the_test_oracle_agrees_without_the_production_code(record: Any, uid: str) -> None:
    assert independent_digest(record).hex() == uid
