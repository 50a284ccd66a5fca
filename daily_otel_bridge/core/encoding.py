"""OTLP building blocks: resource, scope, AnyValue (both ways) and the batch container. No I/O.

Encoding is kept apart from transport (as opentelemetry-python's exporters do) so that the
gRPC, HTTP and console transports all send the very same request object.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource

from daily_otel_bridge import __version__

SCOPE_NAME = "daily_otel_bridge"
DEFAULT_SERVICE_NAME = "daily"
ATTR_DOMAIN = "daily.domain"
SERVICE_NAME = "service.name"

# A structured body keeps this many levels of nesting (see `fill_any_value`).
MAX_BODY_DEPTH: Final = 20

# protobuf refuses integers outside int64 in an AnyValue: see `fill_any_value`.
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def build_resource(
    domain: str,
    configured: Mapping[str, str | int | float | bool],
    detected: Mapping[str, Any],
) -> dict[str, Any]:
    """The domain's resource attributes: what was detected from the environment
    (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`: `otlp.resource`), then the domain's
    configured attributes, then `daily.domain`. Pure: the detection happens at the edge.

    The SDK names an unnamed service `unknown_service`; ours defaults to `daily` instead.
    """
    attributes: dict[str, Any] = dict(detected)
    if str(attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    attributes.update(configured)
    attributes[ATTR_DOMAIN] = domain
    return attributes


def any_value(value: object) -> AnyValue:
    """`value` as a standalone AnyValue (see `fill_any_value`, which writes it in place)."""
    out = AnyValue()
    fill_any_value(out, value)
    return out


def fill_any_value(target: AnyValue, value: object, depth: int = 0) -> None:
    """Write `value` into `target` in place: the one Python -> AnyValue writer.

    Writing in place is three times faster than building standalone messages and copying
    them (a call-quality sample is a few hundred nodes). It also keeps two kinds of odd
    input from breaking the export: an integer beyond int64 (protobuf refuses it) becomes
    its decimal text, and a container nested deeper than MAX_BODY_DEPTH becomes its JSON
    text, since a receiver refuses a whole request whose messages nest deeper than 100
    (protobuf's default limit; each JSON level costs three).
    """
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif value is None:
        return
    elif isinstance(value, dict | list | tuple) and depth >= MAX_BODY_DEPTH:
        target.string_value = _json_text(value)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()  # `{}` is an empty kvlist, not an empty value
        values = target.kvlist_value.values
        for key, child in value.items():
            fill_any_value(values.add(key=str(key)).value, child, depth + 1)
    elif isinstance(value, list | tuple):
        target.array_value.SetInParent()
        items = target.array_value.values
        for child in value:
            fill_any_value(items.add(), child, depth + 1)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = str(value)


def fill_attributes(target: Any, items: Iterable[tuple[str, object]]) -> None:
    """Append `items` to a repeated KeyValue field (a resource's, a data point's attributes)."""
    for key, value in items:
        fill_any_value(target.add(key=key).value, value)


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        # Deeper than json can go, or circular (not from a JSON document): say so.
        return "<unencodable: nested too deeply>"


def decode_any_value(value: AnyValue, *, hex_bytes: bool = False) -> object:
    """An OTLP AnyValue as a Python value, the inverse of `fill_any_value`: str, bool, int,
    float, bytes (hex text with `hex_bytes`, for JSON output), list, dict (kvlist), or None
    when unset."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return value.bytes_value.hex() if hex_bytes else value.bytes_value
    if kind == "array_value":
        return [decode_any_value(item, hex_bytes=hex_bytes) for item in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values, hex_bytes=hex_bytes)
    # Unset, or string_value_strindex, which the spec reserves for profiles and tells other
    # receivers to treat as absent.
    return None


def decode_attributes(
    attributes: Iterable[KeyValue], *, hex_bytes: bool = False
) -> dict[str, object]:
    """OTLP attributes as a dict (a repeated key keeps the last value)."""
    return {kv.key: decode_any_value(kv.value, hex_bytes=hex_bytes) for kv in attributes}


def stamp_scope(scope: InstrumentationScope) -> None:
    """Name the bridge as the instrumentation scope of what it exports (logs, call-quality
    metrics and its own metrics alike)."""
    scope.name = SCOPE_NAME
    scope.version = __version__


def resource_to_proto(attributes: Mapping[str, Any]) -> ProtoResource:
    proto = ProtoResource()
    fill_attributes(proto.attributes, sorted(attributes.items()))
    return proto


# -- the protobuf wire format, by hand, for the log records of the hot path --------------------
#
# Building a LogRecord message field by field costs more CPU than everything else the bridge
# does per record; its wire form is a handful of length-prefixed pieces, most of them the
# same for every record of a session. `mapping.encode_log_record` writes them directly, with
# these helpers, in the order protobuf itself serialises fields (by field number), so that
# the bytes sent are the very bytes `SerializeToString` would give for the same message
# (tests/unit/test_mapping.py compares both on every kind of record).

_SMALL_VARINTS: Final = tuple(bytes((i,)) for i in range(128))
# Lengths below 4 KiB (a record, its strings) as ready-made one- or two-byte varints.
_VARINTS: Final = _SMALL_VARINTS + tuple(
    bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(128, 1 << 12)
)
pack_fixed64: Final[Callable[[int], bytes]] = struct.Struct("<Q").pack
# ScopeLogs.log_records (field 2) key + length of a record below 4 KiB, by length.
_RECORD_KEYS: Final = tuple(b"\x12" + v for v in _VARINTS)


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def int64_varint(value: int) -> bytes:
    """An int64 field's varint (negatives in ten bytes, two's complement); ValueError outside
    int64, as protobuf's own setter raises."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"Value out of range: {value}")
    return varint(value if value >= 0 else value + (1 << 64))


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """`tag` (a field's key byte(s), wire type 2) + length + payload."""
    n = len(payload)
    return tag + (_VARINTS[n] if n < 0x1000 else varint(n)) + payload


def string_field(tag: bytes, value: str) -> bytes:
    """A string field; UnicodeEncodeError (a ValueError) for text that UTF-8 cannot hold, as
    protobuf refuses it too."""
    return length_delimited(tag, value.encode("utf-8"))


# KeyValue: key = 1 (string), value = 2 (AnyValue); AnyValue: string_value = 1, int_value = 3.
_KV_TAG: Final = b"\x32"  # LogRecord.attributes = 6


def string_attribute(key: str, value: str) -> bytes:
    """One `attributes` entry (field 6 of LogRecord, tag included) holding a string."""
    any_value = string_field(b"\x0a", value)
    return length_delimited(
        _KV_TAG, string_field(b"\x0a", key) + length_delimited(b"\x12", any_value)
    )


def int_attribute(key: str, value: int) -> bytes:
    """One `attributes` entry (field 6 of LogRecord, tag included) holding an int64."""
    any_value = b"\x18" + int64_varint(value)
    return length_delimited(
        _KV_TAG, string_field(b"\x0a", key) + length_delimited(b"\x12", any_value)
    )


class SerializedRequest:
    """An export request in its wire form, built without a message object.

    The transports send `data` as is (`SerializeToString()` returns it, so anything that
    serialises a request takes it); anything else that reads the request (the console
    transport, a test's fake exporter) gets the decoded message, which is parsed once, on
    first use, and whose attributes this object passes through.
    """

    __slots__ = ("_decode", "_message", "data")

    def __init__(self, data: bytes, decode: Callable[[bytes], Message]) -> None:
        self.data = data
        self._decode = decode
        self._message: Message | None = None

    def SerializeToString(self) -> bytes:
        return self.data

    @property
    def message(self) -> Message:
        if self._message is None:
            self._message = self._decode(self.data)
        return self._message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)


class LogBatch:
    """One export request under construction: one ResourceLogs for one domain.

    Records are kept in their wire form (`add_encoded`, the hot path) or, for the rare
    callers that fill a message (`add`: call-quality samples as logs), as a message that is
    serialised when the request is; `encode` joins them behind the resource and the scope.
    """

    def __init__(self, resource: ProtoResource) -> None:
        self._resource = resource
        # A record in wire form is two entries: its ScopeLogs.log_records key + length, then
        # its bytes (kept apart so that nothing copies a record before the request's single
        # join). A record still to serialise is one entry, its LogRecord message.
        self._parts: list[bytes | LogRecord] = []
        self._messages = 0
        self.size = 0

    def add(self) -> LogRecord:
        """A fresh record inside the request, for `mapping.fill_log_record` to write."""
        self.size += 1
        self._messages += 1
        record = LogRecord()
        self._parts.append(record)
        return record

    def add_encoded(self, data: bytes) -> None:
        """A record already serialised (`mapping.encode_log_record`)."""
        self.size += 1
        n = len(data)
        self._parts += (_RECORD_KEYS[n] if n < 0x1000 else b"\x12" + varint(n), data)

    def discard_last(self) -> None:
        """Undo the last `add()` (filling the record failed half-way) or `add_encoded()`."""
        if isinstance(self._parts[-1], LogRecord):
            self._messages -= 1
            del self._parts[-1]
        else:
            del self._parts[-2:]
        self.size -= 1

    def encode(self) -> bytes:
        """The ExportLogsServiceRequest's bytes, exactly as protobuf would serialise it.

        One join of every piece: the lengths of the enclosing messages are sums, so the
        request's bytes are copied once (nesting by concatenation copied a request of 2,000
        records four times, which cost more than encoding its records).
        """
        parts: list[Any] = self._parts
        if self._messages:
            parts = []
            for part in self._parts:
                if isinstance(part, LogRecord):
                    parts.append(length_delimited(b"\x12", part.SerializeToString()))
                else:
                    parts.append(part)
        scope = InstrumentationScope()
        stamp_scope(scope)
        scope_field = length_delimited(b"\x0a", scope.SerializeToString())
        resource_field = length_delimited(b"\x0a", self._resource.SerializeToString())
        scope_logs_size = len(scope_field) + sum(map(len, parts))
        scope_logs_key = b"\x12" + varint(scope_logs_size)  # ResourceLogs.scope_logs = 2
        resource_logs_size = len(resource_field) + len(scope_logs_key) + scope_logs_size
        return b"".join(
            (
                b"\x0a" + varint(resource_logs_size),  # request.resource_logs = 1
                resource_field,
                scope_logs_key,
                scope_field,
                *parts,
            )
        )

    def serialized(self) -> SerializedRequest:
        """The request to export: its bytes, decoded only if something reads it."""
        return SerializedRequest(self.encode(), ExportLogsServiceRequest.FromString)

    @property
    def request(self) -> ExportLogsServiceRequest:
        """The request as a message (parsed from `encode()`: for tests and the console)."""
        return ExportLogsServiceRequest.FromString(self.encode())

    def records(self) -> Any:
        return self.request.resource_logs[0].scope_logs[0].log_records
