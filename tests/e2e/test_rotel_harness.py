"""The rotel harness: real rotel-agent processes receiving OTLP over gRPC and HTTP."""

from __future__ import annotations

import gzip
import time
import urllib.request
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from daily_otel_bridge.testing.otlp_receiver import decode_any_value, decode_attributes
from daily_otel_bridge.testing.rotel import (
    RotelCollector,
    find_rotel_agent,
    parse_debug_log_records,
    parse_debug_value,
)

try:
    find_rotel_agent()
except OSError as exc:  # FileNotFoundError / PermissionError
    pytest.skip(f"rotel-agent unavailable: {exc}", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def kv(key: str, **value: Any) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))


ATTRIBUTES = [
    kv("call.id", string_value="abc"),
    kv("n", int_value=-42),
    kv("f", double_value=1.5),
    kv("whole", double_value=2.0),  # rotel prints Double(2)
    kv("ok", bool_value=True),
    kv("raw", bytes_value=b"\x01\xff"),
    kv(
        "arr",
        array_value=common_pb2.ArrayValue(
            values=[common_pb2.AnyValue(int_value=1), common_pb2.AnyValue(string_value="x, y)")]
        ),
    ),
    kv(
        "map",
        kvlist_value=common_pb2.KeyValueList(
            values=[kv("a", string_value="p)q, r:s"), kv("b", bool_value=False)]
        ),
    ),
    kv("multi", string_value="line 1\nline 2"),
    kv("key: with colon", string_value="v"),
    kv("empty", string_value=""),
    kv("unset"),
]


def request(body: common_pb2.AnyValue, transport: str) -> logs_service_pb2.ExportLogsServiceRequest:
    record = logs_pb2.LogRecord(
        time_unix_nano=1_700_000_000_123_456_789,
        observed_time_unix_nano=1_700_000_001_000_000_000,
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN2,
        severity_text="WARN2",
        body=body,
        attributes=[*ATTRIBUTES, kv("transport", string_value=transport)],
        event_name="daily.call.ended",
        flags=1,
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
    )
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(
                    attributes=[kv("service.name", string_value="bridge"), kv("pid", int_value=7)]
                ),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="my.scope", version="1.2"),
                        log_records=[record],
                    )
                ],
            )
        ]
    )


def send_grpc(endpoint: str, req: logs_service_pb2.ExportLogsServiceRequest) -> None:
    with grpc.insecure_channel(
        endpoint.removeprefix("http://"), compression=grpc.Compression.Gzip
    ) as channel:
        response = logs_service_pb2_grpc.LogsServiceStub(channel).Export(req, timeout=5)  # type: ignore[no-untyped-call]
    assert not response.HasField("partial_success")


def send_http(endpoint: str, req: logs_service_pb2.ExportLogsServiceRequest, gzipped: bool) -> None:
    body = req.SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    # S310: the URL is always rotel's loopback http:// endpoint.
    http_request = urllib.request.Request(  # noqa: S310
        endpoint + "/v1/logs", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(http_request, timeout=5) as response:  # noqa: S310
        assert response.status == 200


def test_rotel_receives_grpc_and_http() -> None:
    with RotelCollector(max_seconds=60) as rotel:
        send_grpc(rotel.grpc_endpoint, request(common_pb2.AnyValue(string_value="one"), "grpc"))
        send_http(rotel.http_endpoint, request(common_pb2.AnyValue(int_value=2), "http"), True)
        multi_line = common_pb2.AnyValue(string_value="first\n  second (with parens)")
        send_http(rotel.http_endpoint, request(multi_line, "http-plain"), False)
        records = rotel.wait_for_records(3, timeout=10)

    # Three requests on two connections: do not rely on the order rotel prints them in.
    by_transport = {record["attributes"]["transport"]: record for record in records}  # type: ignore[index]
    assert set(by_transport) == {"grpc", "http", "http-plain"}
    assert by_transport["grpc"]["body"] == "one"
    assert by_transport["http"]["body"] == 2
    assert by_transport["http-plain"]["body"] == "first\n  second (with parens)"
    expected_attributes = decode_attributes(ATTRIBUTES)
    for transport, record in by_transport.items():
        assert record["attributes"] == {**expected_attributes, "transport": transport}
        assert record["resource"] == {"service.name": "bridge", "pid": 7}
        assert (record["scope_name"], record["scope_version"]) == ("my.scope", "1.2")
        assert record["time_unix_nano"] == 1_700_000_000_123_456_789
        assert record["observed_time_unix_nano"] == 1_700_000_001_000_000_000
        assert (record["severity_number"], record["severity_text"]) == (14, "WARN2")
        assert record["event_name"] == "daily.call.ended"
        assert (record["trace_id"], record["span_id"]) == (bytes(range(16)), bytes(range(8)))
        assert record["flags"] == 1
    # output() keeps what rotel printed after the process is gone.
    assert "LogRecord #0" in rotel.output()


def test_structured_and_empty_bodies() -> None:
    bodies = [
        common_pb2.AnyValue(
            kvlist_value=common_pb2.KeyValueList(
                values=[kv("k", int_value=1), kv("nested", array_value=common_pb2.ArrayValue())]
            )
        ),
        common_pb2.AnyValue(),
        common_pb2.AnyValue(string_value=""),
    ]
    req = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                scope_logs=[
                    logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(body=b) for b in bodies])
                ]
            )
        ]
    )
    with RotelCollector(max_seconds=60) as rotel:
        send_grpc(rotel.grpc_endpoint, req)
        records = rotel.wait_for_records(3, timeout=10)
    assert [r["body"] for r in records] == [decode_any_value(b) for b in bodies]
    assert records[0]["body"] == {"k": 1, "nested": []}
    # Empty sections are simply not printed; the parser fills in the zero values.
    assert records[1]["resource"] == {}
    assert records[1]["attributes"] == {}
    assert (records[1]["severity_number"], records[1]["severity_text"]) == (0, "")
    assert (records[1]["scope_name"], records[1]["event_name"], records[1]["trace_id"]) == (
        "",
        "",
        b"",
    )


def test_parallel_collectors_and_watchdog() -> None:
    with RotelCollector(max_seconds=60) as first, RotelCollector(max_seconds=1.0) as second:
        assert first.grpc_endpoint != second.grpc_endpoint
        send_grpc(second.grpc_endpoint, request(common_pb2.AnyValue(string_value="2nd"), "grpc"))
        assert second.wait_for_records(1, timeout=10)[0]["body"] == "2nd"
        deadline = time.monotonic() + 10
        while second.returncode is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.returncode is not None  # the watchdog stopped it
        assert first.returncode is None
        assert first.parsed_log_records() == []


def test_startup_failure_shows_rotels_output() -> None:
    with pytest.raises(RuntimeError, match="--no-such-flag"):
        RotelCollector(extra_args=["--no-such-flag"]).start()


def test_parse_debug_value_backtracks_over_unescaped_strings() -> None:
    assert parse_debug_value("Str(a), b)") == "a), b"  # top level: the last ")" closes
    assert parse_debug_value("Slice(Str(a), b), Int(1))") == ["a), b", 1]
    assert parse_debug_value("Map(k:Str(x)), j:Empty)") == {"k": "x)", "j": None}
    assert parse_debug_value("Bytes([])") == b""
    with pytest.raises(ValueError, match="not a rotel debug value"):
        parse_debug_value("Nope(1)")


def test_parser_skips_rotel_log_lines_and_incomplete_records() -> None:
    output = (
        "2026-11-26T19:31:35.882042Z  INFO Starting Rotel.\n"
        "ResourceLog #0\nResource SchemaURL: \nScopeLogs #0\nScopeLogs SchemaURL: \n"
        "LogRecord #0\nObservedTimestamp: 5\nTimestamp: 4\nSeverityText: \n"
        "SeverityNumber: SEVERITY_NUMBER_UNSPECIFIED(0)\nBody: Str(done)\n"
        "    Trace ID       : \n    Span ID        : \nFlags: 0\n"
        # --debug-log metrics output in between must not leak into the log records
        "ResourceMetrics #0\nResource SchemaURL: \nScopeMetrics #0\nMetric #0\nDescriptor:\n"
        "     -> Name: g\nNumberDataPoints #0\nTimestamp: 9\nValue: 3\n"
        "ResourceLog #0\nResource SchemaURL: \nScopeLogs #0\n"
        "LogRecord #0\nObservedTimestamp: 6\nTimestamp: 0\n"
    )
    (record,) = parse_debug_log_records(output)  # the last one is still being written
    assert (record["body"], record["observed_time_unix_nano"], record["time_unix_nano"]) == (
        "done",
        5,
        4,
    )
    assert record["attributes"] == {}
