"""Tests of the OTLP test receiver: decoding, fault injection, port closing, CLI."""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from daily_otel_bridge.testing.otlp_receiver import (
    Fault,
    OtlpReceiver,
    ReceivedLog,
    ReceivedPoint,
    decode_any_value,
    decode_attributes,
)

pytestmark = pytest.mark.timeout(60)

TRACE_ID = bytes(range(16))
SPAN_ID = bytes(range(8))


def kv(key: str, **value: Any) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))


def log_record(body: str, **overrides: object) -> logs_pb2.LogRecord:
    fields: dict[str, object] = {
        "time_unix_nano": 1_700_000_000_123_456_789,
        "observed_time_unix_nano": 1_700_000_001_000_000_000,
        "severity_number": logs_pb2.SEVERITY_NUMBER_ERROR,
        "severity_text": "ERROR",
        "body": common_pb2.AnyValue(string_value=body),
        "attributes": [
            kv("call.id", string_value="abc"),
            kv("n", int_value=-42),
            kv("f", double_value=1.5),
            kv("ok", bool_value=True),
            kv("raw", bytes_value=b"\x00\xff"),
            kv(
                "arr",
                array_value=common_pb2.ArrayValue(
                    values=[common_pb2.AnyValue(int_value=1), common_pb2.AnyValue(string_value="x")]
                ),
            ),
            kv("map", kvlist_value=common_pb2.KeyValueList(values=[kv("inner", double_value=2.0)])),
            kv("unset"),
        ],
        "event_name": "daily.call.ended",
        "flags": 1,
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
    }
    fields.update(overrides)
    return logs_pb2.LogRecord(**fields)  # type: ignore[arg-type]


def logs_request(*bodies: str) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(
                    attributes=[kv("service.name", string_value="bridge"), kv("pid", int_value=7)]
                ),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="my.scope", version="1.2"),
                        log_records=[log_record(body) for body in bodies],
                    )
                ],
            )
        ]
    )


def expected_log(body: str) -> ReceivedLog:
    return ReceivedLog(
        resource={"service.name": "bridge", "pid": 7},
        scope_name="my.scope",
        scope_version="1.2",
        time_unix_nano=1_700_000_000_123_456_789,
        observed_time_unix_nano=1_700_000_001_000_000_000,
        severity_number=17,
        severity_text="ERROR",
        body=body,
        attributes={
            "call.id": "abc",
            "n": -42,
            "f": 1.5,
            "ok": True,
            "raw": b"\x00\xff",
            "arr": [1, "x"],
            "map": {"inner": 2.0},
            "unset": None,
        },
        event_name="daily.call.ended",
        flags=1,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(max_seconds=60) as r:
        yield r


@contextlib.contextmanager
def logs_stub(
    endpoint: str, compression: grpc.Compression | None = None
) -> Iterator[logs_service_pb2_grpc.LogsServiceStub]:
    channel = grpc.insecure_channel(endpoint.removeprefix("http://"), compression=compression)
    try:
        yield logs_service_pb2_grpc.LogsServiceStub(channel)  # type: ignore[no-untyped-call]
    finally:
        channel.close()


def http_post(
    url: str,
    body: bytes,
    *,
    gzip_body: bool = False,
    content_type: str = "application/x-protobuf",
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    """POST and return (status, headers, body) whatever the status."""
    all_headers = {"Content-Type": content_type, **(headers or {})}
    if gzip_body:
        body = gzip.compress(body)
        all_headers["Content-Encoding"] = "gzip"
    # S310: the URL is always one of our own loopback http:// endpoints.
    request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# -- decoding ---------------------------------------------------------------------------------


def test_decode_any_value_covers_every_kind() -> None:
    assert decode_any_value(common_pb2.AnyValue()) is None
    assert decode_any_value(common_pb2.AnyValue(string_value="")) == ""
    assert decode_any_value(common_pb2.AnyValue(bool_value=False)) is False
    assert decode_any_value(common_pb2.AnyValue(int_value=0)) == 0
    assert decode_any_value(common_pb2.AnyValue(double_value=0.25)) == 0.25
    assert decode_any_value(common_pb2.AnyValue(bytes_value=b"")) == b""
    nested = common_pb2.AnyValue(
        kvlist_value=common_pb2.KeyValueList(
            values=[kv("a", array_value=common_pb2.ArrayValue(values=[common_pb2.AnyValue()]))]
        )
    )
    assert decode_any_value(nested) == {"a": [None]}
    assert decode_attributes([kv("k", int_value=1), kv("k", int_value=2)]) == {"k": 2}


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_grpc_export_is_decoded_field_by_field(
    receiver: OtlpReceiver, compression: grpc.Compression | None
) -> None:
    with logs_stub(receiver.grpc_endpoint, compression) as stub:
        response = stub.Export(
            logs_request("one", "two"), timeout=5, metadata=[("authorization", "Bearer t0k")]
        )
    assert not response.HasField("partial_success")
    assert receiver.log_records() == [expected_log("one"), expected_log("two")]
    (req,) = receiver.requests()
    assert (req.transport, req.signal, req.records, req.fault) == ("grpc", "logs", 2, None)
    assert req.compression == ("gzip" if compression else "identity")
    assert req.headers["authorization"] == "Bearer t0k"
    assert req.size == logs_request("one", "two").ByteSize()
    assert abs(req.time - time.time()) < 5
    assert receiver.count() == 2
    assert receiver.request_count() == 1


@pytest.mark.parametrize("gzip_body", [False, True])
def test_http_export_is_decoded_field_by_field(receiver: OtlpReceiver, gzip_body: bool) -> None:
    status, headers, body = http_post(
        receiver.http_endpoint + "/v1/logs",
        logs_request("over http").SerializeToString(),
        gzip_body=gzip_body,
        headers={"X-Api-Key": "k"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-protobuf"
    response = logs_service_pb2.ExportLogsServiceResponse.FromString(body)
    assert not response.HasField("partial_success")
    assert receiver.wait_for_logs(1, timeout=5) == [expected_log("over http")]
    (req,) = receiver.requests()
    assert (req.transport, req.signal, req.records) == ("http", "logs", 1)
    assert req.compression == ("gzip" if gzip_body else "identity")
    assert req.headers["x-api-key"] == "k"
    assert req.headers["content-type"] == "application/x-protobuf"


def test_http_refuses_other_content_types_and_encodings(receiver: OtlpReceiver) -> None:
    url = receiver.http_endpoint + "/v1/logs"
    payload = logs_request("x").SerializeToString()
    assert http_post(url, b"{}", content_type="application/json")[0] == 415
    assert http_post(url, payload, headers={"Content-Encoding": "br"})[0] == 415
    status, _, body = http_post(url, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert status_pb2.Status.FromString(body).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert http_post(url, b"\xff\xff\xff")[0] == 400  # not a protobuf message
    assert http_post(receiver.http_endpoint + "/v1/traces", payload)[0] == 404
    assert receiver.requests() == []
    assert receiver.count() == 0


def test_grpc_garbage_is_invalid_argument(receiver: OtlpReceiver) -> None:
    channel = grpc.insecure_channel(receiver.grpc_endpoint.removeprefix("http://"))
    with channel:
        raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def metrics_request() -> metrics_service_pb2.ExportMetricsServiceRequest:
    attrs = [kv("room", string_value="r1")]
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource_pb2.Resource(attributes=[kv("service.name", string_value="b")]),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name="m.scope"),
                        metrics=[
                            metrics_pb2.Metric(
                                name="participants",
                                unit="{participant}",
                                description="now in call",
                                gauge=metrics_pb2.Gauge(
                                    data_points=[
                                        metrics_pb2.NumberDataPoint(
                                            time_unix_nano=5, as_int=3, attributes=attrs
                                        )
                                    ]
                                ),
                            ),
                            metrics_pb2.Metric(
                                name="bytes",
                                unit="By",
                                sum=metrics_pb2.Sum(
                                    data_points=[
                                        metrics_pb2.NumberDataPoint(time_unix_nano=6, as_double=1.5)
                                    ]
                                ),
                            ),
                            metrics_pb2.Metric(
                                name="rtt",
                                unit="s",
                                histogram=metrics_pb2.Histogram(
                                    data_points=[
                                        metrics_pb2.HistogramDataPoint(
                                            time_unix_nano=7, count=2, sum=0.5
                                        )
                                    ]
                                ),
                            ),
                        ],
                    )
                ],
            )
        ]
    )


def test_metrics_over_grpc_and_http(receiver: OtlpReceiver) -> None:
    channel = grpc.insecure_channel(receiver.grpc_endpoint.removeprefix("http://"))
    with channel:
        metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics_request(), timeout=5)  # type: ignore[no-untyped-call]
    status, _, body = http_post(
        receiver.http_endpoint + "/v1/metrics", metrics_request().SerializeToString()
    )
    assert status == 200
    metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
    points = receiver.wait_for_metric_points(6, timeout=5)
    resource: dict[str, object] = {"service.name": "b"}
    assert points[:3] == [
        ReceivedPoint(
            resource, "m.scope", "participants", "{participant}", "now in call", "gauge", 5, 3,
            {"room": "r1"},
        ),
        ReceivedPoint(resource, "m.scope", "bytes", "By", "", "sum", 6, 1.5, {}),
        ReceivedPoint(resource, "m.scope", "rtt", "s", "", "histogram", 7, 0.5, {}),
    ]  # fmt: skip
    assert points[3:] == points[:3]
    assert isinstance(points[0].value, int)
    assert [(r.transport, r.signal, r.records) for r in receiver.requests()] == [
        ("grpc", "metrics", 3),
        ("http", "metrics", 3),
    ]
    assert receiver.metric_count() == 6
    assert receiver.count() == 0


def test_large_grpc_message_is_accepted(receiver: OtlpReceiver) -> None:
    big = "x" * (6 * 1024 * 1024)  # over gRPC's 4 MiB default
    with logs_stub(receiver.grpc_endpoint, grpc.Compression.Gzip) as stub:
        stub.Export(logs_request(big), timeout=10)
    assert receiver.log_records()[0].body == big


async def test_async_clients_on_another_loop(receiver: OtlpReceiver) -> None:
    # The receiver's loop lives in its own thread; grpc.aio and aiohttp clients on the test's
    # loop must not interfere with it.
    async with grpc.aio.insecure_channel(receiver.grpc_endpoint.removeprefix("http://")) as ch:
        await logs_service_pb2_grpc.LogsServiceStub(ch).Export(logs_request("aio"), timeout=5)  # type: ignore[no-untyped-call]
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            receiver.http_endpoint + "/v1/logs",
            data=gzip.compress(logs_request("aiohttp").SerializeToString()),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        ) as response,
    ):
        assert response.status == 200
    assert [log.body for log in receiver.log_records()] == ["aio", "aiohttp"]


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "grpc_code", "http_status"),
    [
        (Fault(grpc_status="UNAVAILABLE", http_status=503), grpc.StatusCode.UNAVAILABLE, 503),
        (Fault(grpc_status="INVALID_ARGUMENT"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (Fault(http_status=429), grpc.StatusCode.UNAVAILABLE, 429),
        (Fault(http_status=401), grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
def test_error_faults_reach_both_transports(
    receiver: OtlpReceiver, fault: Fault, grpc_code: grpc.StatusCode, http_status: int
) -> None:
    receiver.set_fault(fault)
    with logs_stub(receiver.grpc_endpoint) as stub, pytest.raises(grpc.RpcError) as info:
        stub.Export(logs_request("lost"), timeout=5)
    assert info.value.code() == grpc_code
    status, headers, body = http_post(
        receiver.http_endpoint + "/v1/logs", logs_request("lost").SerializeToString()
    )
    assert status == http_status
    assert "Retry-After" not in headers
    assert status_pb2.Status.FromString(body).code == grpc_code.value[0]
    assert receiver.log_records() == []
    assert [r.fault for r in receiver.requests()] == [fault, fault]


def test_resource_exhausted_carries_retry_info(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(grpc_status="RESOURCE_EXHAUSTED", retry_after_seconds=1.5))
    with logs_stub(receiver.grpc_endpoint) as stub, pytest.raises(grpc.RpcError) as info:
        stub.Export(logs_request("x"), timeout=5)
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(error.trailing_metadata())
    details = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    retry_info = error_details_pb2.RetryInfo()
    (detail,) = details.details
    assert detail.Unpack(retry_info)
    assert retry_info.retry_delay.ToNanoseconds() == 1_500_000_000


@pytest.mark.parametrize(("seconds", "header"), [(2.0, "2"), (0.5, "0.5")])
def test_http_retry_after_header(receiver: OtlpReceiver, seconds: float, header: str) -> None:
    receiver.set_fault(Fault(http_status=503, retry_after_seconds=seconds))
    status, headers, _ = http_post(
        receiver.http_endpoint + "/v1/logs", logs_request("x").SerializeToString()
    )
    assert (status, headers["Retry-After"]) == (503, header)


def test_fault_count_applies_to_the_next_requests_only(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(grpc_status="UNAVAILABLE", count=2))
    codes = []
    with logs_stub(receiver.grpc_endpoint) as stub:
        for i in range(3):
            try:
                stub.Export(logs_request(str(i)), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert codes == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]
    assert receiver.fault is None
    assert [log.body for log in receiver.log_records()] == ["2"]


def test_reject_records_answers_partial_success(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(reject_records=2))
    with logs_stub(receiver.grpc_endpoint) as stub:
        response = stub.Export(logs_request("a", "b", "c"), timeout=5)
    assert response.partial_success.rejected_log_records == 2
    assert response.partial_success.error_message
    status, _, body = http_post(
        receiver.http_endpoint + "/v1/logs", logs_request("d").SerializeToString()
    )
    assert status == 200
    http_response = logs_service_pb2.ExportLogsServiceResponse.FromString(body)
    assert http_response.partial_success.rejected_log_records == 1  # min(2, records sent)
    # The first `reject_records` records of each request are the rejected ones.
    assert [log.body for log in receiver.log_records()] == ["c"]
    assert receiver.count() == 1


def test_reject_data_points(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(reject_records=1, count=1))
    status, _, body = http_post(
        receiver.http_endpoint + "/v1/metrics", metrics_request().SerializeToString()
    )
    response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
    assert (status, response.partial_success.rejected_data_points) == (200, 1)
    assert [p.metric_name for p in receiver.metric_points()] == ["bytes", "rtt"]


def test_delay_is_felt_by_both_transports(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(delay_seconds=0.3))
    started = time.monotonic()
    with logs_stub(receiver.grpc_endpoint) as stub:
        stub.Export(logs_request("slow grpc"), timeout=5)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    http_post(receiver.http_endpoint + "/v1/logs", logs_request("slow http").SerializeToString())
    assert time.monotonic() - started >= 0.3
    assert receiver.count() == 2


def test_delay_past_the_client_deadline_still_stores(receiver: OtlpReceiver) -> None:
    # Like a backend whose answer got lost: the client times out, the records arrived anyway.
    receiver.set_fault(Fault(delay_seconds=1.0, count=1))
    with logs_stub(receiver.grpc_endpoint) as stub, pytest.raises(grpc.RpcError) as info:
        stub.Export(logs_request("late"), timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert [log.body for log in receiver.wait_for_logs(1, timeout=5)] == ["late"]


def test_delayed_error(receiver: OtlpReceiver) -> None:
    receiver.set_fault(Fault(http_status=503, delay_seconds=0.2))
    started = time.monotonic()
    status, _, _ = http_post(
        receiver.http_endpoint + "/v1/logs", logs_request("x").SerializeToString()
    )
    assert status == 503
    assert time.monotonic() - started >= 0.2


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="gRPC"):
        Fault(grpc_status="UNAVAILABLEX")
    with pytest.raises(ValueError, match="gRPC"):
        Fault(grpc_status="OK")
    with pytest.raises(ValueError, match="4xx"):
        Fault(http_status=200)
    with pytest.raises(ValueError, match="count"):
        Fault(count=0)


# -- ports ------------------------------------------------------------------------------------


def connect_refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.mark.parametrize("observe", [True, False])
def test_stop_and_resume_serving_on_the_same_ports(observe: bool) -> None:
    with OtlpReceiver(observe_grpc_compression=observe, max_seconds=60) as receiver:
        grpc_port, http_port = receiver.grpc_port, receiver.http_port
        with logs_stub(receiver.grpc_endpoint) as stub:
            stub.Export(logs_request("before"), timeout=5)  # leaves an open connection
            receiver.stop_serving()
            assert connect_refused(grpc_port)
            assert connect_refused(http_port)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(logs_request("during"), timeout=2)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(urllib.error.URLError) as http_info:
                http_post(receiver.http_endpoint + "/v1/logs", b"")
            assert isinstance(http_info.value.reason, ConnectionRefusedError)

            receiver.resume_serving()
            assert (receiver.grpc_port, receiver.http_port) == (grpc_port, http_port)
            # The channel is in reconnect backoff after the refusal; wait_for_ready rides it.
            stub.Export(logs_request("after"), timeout=5, wait_for_ready=True)
        status, _, _ = http_post(
            receiver.http_endpoint + "/v1/logs", logs_request("after http").SerializeToString()
        )
        assert status == 200
        assert [log.body for log in receiver.log_records()] == ["before", "after", "after http"]


def test_max_seconds_stops_the_receiver() -> None:
    receiver = OtlpReceiver(max_seconds=0.3).start()
    port = receiver.http_port
    deadline = time.monotonic() + 5
    while receiver.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not receiver.running
    assert connect_refused(port)
    receiver.stop()  # still fine


def test_port_in_use_fails_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for kwargs in ({"http_port": port}, {"grpc_port": port}):
            with pytest.raises(RuntimeError, match="failed to start"):
                OtlpReceiver(**kwargs).start()


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OtlpReceiver(host="0.0.0.0")


def test_grpc_only_receiver() -> None:
    with OtlpReceiver(http=False, max_seconds=60) as receiver:
        with pytest.raises(RuntimeError):
            _ = receiver.http_endpoint
        with logs_stub(receiver.grpc_endpoint) as stub:
            stub.Export(logs_request("x"), timeout=5)
        assert receiver.count() == 1


# -- waiting, clearing, counting -----------------------------------------------------------------


def test_wait_for_logs_times_out_with_the_count(receiver: OtlpReceiver) -> None:
    with logs_stub(receiver.grpc_endpoint) as stub:
        stub.Export(logs_request("only one"), timeout=5)
    with pytest.raises(TimeoutError, match="received 1 of 2"):
        receiver.wait_for_logs(2, timeout=0.2)
    receiver.clear()
    assert (receiver.log_records(), receiver.requests(), receiver.count()) == ([], [], 0)


def test_keep_records_false_only_counts(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    with OtlpReceiver(keep_records=False, dump_path=dump, max_seconds=60) as receiver:
        with logs_stub(receiver.grpc_endpoint) as stub:
            stub.Export(logs_request("a", "b"), timeout=5)
        assert receiver.wait_for_logs(2, timeout=5) == []
        assert (receiver.count(), receiver.request_count(), receiver.requests()) == (2, 1, [])
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [line["body"] for line in lines] == ["a", "b"]
    assert lines[0]["attributes"]["raw"] == "AP8="  # bytes are base64 in JSON
    assert lines[0]["trace_id"] == TRACE_ID.hex()


def test_cli(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "daily_otel_bridge.testing.otlp_receiver"),
            *("--max-seconds", "30", "--dump", str(dump)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoints = dict(proc.stdout.readline().split() for _ in range(2))
        assert endpoints["grpc"].startswith("http://127.0.0.1:")
        status, _, _ = http_post(
            endpoints["http"] + "/v1/logs", logs_request("via cli").SerializeToString()
        )
        assert status == 200
        with logs_stub(endpoints["grpc"]) as stub:
            stub.Export(logs_request("via cli grpc"), timeout=5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.strip().splitlines()[-1] == "final records=2 metric_points=0 requests=2"
    bodies = [json.loads(line)["body"] for line in dump.read_text().splitlines()]
    assert bodies == ["via cli", "via cli grpc"]


def test_protobuf_error_type_is_what_we_catch() -> None:
    # The receiver relies on FromString raising DecodeError for garbage.
    with pytest.raises(DecodeError):
        logs_service_pb2.ExportLogsServiceRequest.FromString(b"\xff\xff\xff")


# -- a backend far away and not always healthy (issue 9) --------------------------------------


def test_answer_delay_overlaps_concurrent_exports() -> None:
    import concurrent.futures

    with OtlpReceiver(max_seconds=60, answer_delay=1.0) as receiver:
        body = logs_request("far").SerializeToString()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda _: http_post(receiver.http_endpoint + "/v1/logs", body), range(4))
            )
        assert [status for status, _, _ in results] == [200] * 4
        # Four requests sent together, each held 1 s: all four were in flight at once.
        assert receiver.max_inflight() == 4
        assert [r.delay for r in receiver.requests()] == [1.0] * 4
        assert receiver.count() == 4


def test_answer_delay_is_felt_by_a_short_client_deadline() -> None:
    with OtlpReceiver(max_seconds=60, answer_delay=2.0) as receiver:
        with logs_stub(receiver.grpc_endpoint) as stub, pytest.raises(grpc.RpcError) as info:
            stub.Export(logs_request("late"), timeout=0.2)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # Stored on arrival, like a backend whose answer was still on its way.
        assert [log.body for log in receiver.wait_for_logs(1, timeout=5)] == ["late"]


def test_jittered_delay_is_recorded_and_bounded() -> None:
    with OtlpReceiver(max_seconds=60, answer_delay=0.05, answer_delay_jitter=0.02) as receiver:
        for i in range(10):
            http_post(receiver.http_endpoint + "/v1/logs", logs_request(f"{i}").SerializeToString())
        delays = [r.delay for r in receiver.requests()]
    assert all(0.03 <= d <= 0.07 for d in delays)
    assert len(set(delays)) > 1


def test_failure_ratio_fails_a_seeded_share_retryably() -> None:
    def run(seed: int) -> list[int]:
        with OtlpReceiver(max_seconds=60, failure_ratio=0.2, failure_seed=seed) as receiver:
            statuses = [
                http_post(
                    receiver.http_endpoint + "/v1/logs", logs_request(str(i)).SerializeToString()
                )[0]
                for i in range(100)
            ]
            with logs_stub(receiver.grpc_endpoint) as stub:
                codes = []
                for _ in range(30):
                    try:
                        stub.Export(logs_request("g"), timeout=5)
                        codes.append(grpc.StatusCode.OK)
                    except grpc.RpcError as exc:
                        codes.append(exc.code())
            assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
            failed = statuses.count(503) + codes.count(grpc.StatusCode.UNAVAILABLE)
            assert receiver.failed_count() == failed
            # Failed requests store nothing.
            assert receiver.count() == 130 - failed
            random_faults = [r for r in receiver.requests() if r.fault is not None]
            assert len(random_faults) == failed
            assert all(r.fault is not None and r.fault.http_status == 503 for r in random_faults)
            return statuses

    first = run(7)
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 35  # 100 draws at 0.2, seeded: never flakes
    assert run(7) == first


def test_explicit_fault_wins_over_random_failure() -> None:
    with OtlpReceiver(max_seconds=60, failure_ratio=1.0) as receiver:
        receiver.set_fault(Fault(reject_records=1, count=1))
        body = logs_request("a", "b").SerializeToString()
        status, _, _ = http_post(receiver.http_endpoint + "/v1/logs", body)
        assert status == 200
        assert http_post(receiver.http_endpoint + "/v1/logs", body)[0] == 503
        assert receiver.failed_count() == 1


def test_backend_options_validation() -> None:
    with pytest.raises(ValueError, match="answer_delay"):
        OtlpReceiver(answer_delay=0.01, answer_delay_jitter=0.02)
    with pytest.raises(ValueError, match="failure_ratio"):
        OtlpReceiver(failure_ratio=1.5)


def test_cli_backend_flags() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "daily_otel_bridge.testing.otlp_receiver", "--no-grpc"),
            *("--max-seconds", "30", "--answer-delay", "10ms", "--failure-ratio", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().split()[1]
        status, _, _ = http_post(endpoint + "/v1/logs", logs_request("x").SerializeToString())
        assert status == 503
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert out.strip().splitlines()[-1] == "final records=0 metric_points=0 requests=1 failed=1"
