"""What the bridge must deliver for a given ground truth, shared by the test suites."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from daily_otel_bridge.core.mapping import digest_any, record_digest, record_uid


def expected_uids(records: Iterable[Any]) -> Counter[str]:
    """The uids the bridge must produce: digest plus occurrence among identical records.

    `records` in the order Daily returns them (ASC); identical records share a `time`, so
    counting occurrences over the whole list numbers them as a read does.
    """
    occurrences: Counter[bytes] = Counter()
    uids: Counter[str] = Counter()
    for record in records:
        digest = digest_any(record)
        occurrences[digest] += 1
        uids[record_uid(digest, occurrences[digest])] += 1
    return uids


def records_by_uid(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    occurrences: Counter[bytes] = Counter()
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        digest = record_digest(record)
        occurrences[digest] += 1
        out[record_uid(digest, occurrences[digest])] = record
    return out
