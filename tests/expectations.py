"""What the bridge must deliver for a given ground truth, shared by the test suites.

The oracle does not use the production code it checks: a record's identity is computed
here again from its definition (BLAKE2b-128 of the canonical JSON: sorted keys, no spaces,
UTF-8), with the standard library only, so that a canonicalisation bug in the bridge shows
up as a mismatch instead of changing both sides (`tests/unit/test_uid_golden.py` pins the
values themselves).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any


def independent_digest(record: object) -> bytes:
    """The 128-bit identity of what Daily sent as one record (an object or not)."""
    if not isinstance(record, dict):
        record = {"__raw__": repr(record)}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def record_uid(digest: bytes, occurrence: int) -> str:
    return digest.hex() if occurrence <= 1 else f"{digest.hex()}-{occurrence}"


def expected_uids(records: Iterable[Any]) -> Counter[str]:
    """The uids the bridge must produce: digest plus occurrence among identical records.

    `records` in the order Daily returns them (ASC); identical records share a `time`, so
    counting occurrences over the whole list numbers them as a read does.
    """
    occurrences: Counter[bytes] = Counter()
    uids: Counter[str] = Counter()
    for record in records:
        digest = independent_digest(record)
        occurrences[digest] += 1
        uids[record_uid(digest, occurrences[digest])] += 1
    return uids


def records_by_uid(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    occurrences: Counter[bytes] = Counter()
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        digest = independent_digest(record)
        occurrences[digest] += 1
        out[record_uid(digest, occurrences[digest])] = record
    return out
