"""One OTel LogRecord, in wire form, from plain values: the encoder of the sources beside the
call logs (meeting summaries, REST API logs). Pure.

`mapping.encode_log_record` writes a Daily log line's bytes by hand because it runs a hundred
thousand times a second. These sources produce a few records a minute, so this encoder builds
the protobuf message and serialises it: the very bytes `SerializeToString` gives, which is what
`Batcher.add_encoded_log` takes (`LogBatch.add_encoded`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from daily_otel_bridge.core.encoding import fill_any_value
from daily_otel_bridge.core.mapping import ATTR_UID, SEVERITY_NUMBERS

# An attribute value as OTLP carries it; None leaves the attribute out.
AttributeValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A record ready for the batch: its bytes, its `log.record.uid`, its time."""

    uid: str
    time_ns: int
    data: bytes


def severity_of(name: str) -> tuple[int, str]:
    """(severity number, text) of an OTel severity name (`INFO`, `WARN`, `ERROR`...)."""
    return SEVERITY_NUMBERS[name], name


def stable_uid(*parts: str) -> str:
    """`log.record.uid` of a record Daily gives no id of its own: BLAKE2b-128 (hex) of the
    parts joined by NUL. NUL cannot occur in a JSON-decoded id of Daily's, so two different
    tuples never join to the same text; the first part names the kind of record, so the uid
    of a summary never equals one of a log line (whose digest is over a JSON object)."""
    return hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=16).hexdigest()


_UINT64_MAX: Final = 2**64 - 1


def encode_record(
    *,
    time_ns: int,
    observed_ns: int,
    severity: str,
    event_name: str,
    body: object,
    attributes: Iterable[tuple[str, AttributeValue]],
    uid: str,
) -> bytes:
    """The serialised LogRecord. `body` is any JSON-like value (a string, usually);
    attributes whose value is None are left out; `log.record.uid` comes last, as in the
    mapping of log lines. Raises ValueError for a time outside uint64."""
    if not (0 <= time_ns <= _UINT64_MAX and 0 <= observed_ns <= _UINT64_MAX):
        raise ValueError("time out of range")
    record = LogRecord()
    record.time_unix_nano = time_ns
    record.observed_time_unix_nano = observed_ns
    number, text = severity_of(severity)
    record.severity_number = number  # type: ignore[assignment]
    record.severity_text = text
    if body is not None:
        fill_any_value(record.body, body)
    record.event_name = event_name
    for key, value in attributes:
        if value is not None:
            fill_any_value(record.attributes.add(key=key).value, value)
    record.attributes.add(key=ATTR_UID).value.string_value = uid
    return record.SerializeToString()
