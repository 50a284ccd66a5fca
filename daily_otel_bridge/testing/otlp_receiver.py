"""An in-process OTLP receiver (gRPC and HTTP/protobuf) for tests and benchmarks.

It runs a `grpc.aio` server and an `aiohttp` server on their own asyncio loop in a daemon thread,
so synchronous tests, async tests (whose loop is a different one) and benchmarks can all use it:

    with OtlpReceiver() as receiver:
        exporter = make_exporter(receiver.grpc_endpoint)       # or receiver.http_endpoint
        ...
        logs = receiver.wait_for_logs(3, timeout=5)
        receiver.set_fault(Fault(grpc_status="UNAVAILABLE", http_status=503, count=2))
        receiver.stop_serving()   # the ports are really closed: clients get "connection refused"
        receiver.resume_serving()  # ... and re-opened on the same ports

A backend that is a network round trip away and not always healthy: `answer_delay` (+-
`answer_delay_jitter`, uniform) delays every export answer, `failure_ratio` answers that share of
the export requests with a retryable error (gRPC UNAVAILABLE / HTTP 503, nothing stored), drawn
in arrival order from `random.Random(failure_seed)`. An explicit `Fault` takes precedence over a
random failure; its own `delay_seconds` adds to `answer_delay`. As with a delayed fault, records
are stored on arrival and acknowledged after the delay (`ReceivedRequest.time + .delay`).
`max_inflight()` is the most export requests that were received and not yet answered at once.

Everything received is decoded into plain frozen dataclasses (`ReceivedLog`, `ReceivedPoint`,
`ReceivedRequest`); attribute values become Python values (see `decode_any_value`).

It only ever binds to a loopback address and stops by itself after `max_seconds`, so a test that
forgets to stop it cannot leave a listener behind for long.

Seeing gRPC compression: grpcio hides the `grpc-encoding` header from the handler, so by default
(`observe_grpc_compression=True`) the public gRPC port is a small TCP relay in front of the real
gRPC server that reads the per-message "compressed" flag of the HTTP/2 DATA frames. Benchmarks
that do not care should pass `observe_grpc_compression=False` to skip the extra hop; then
`ReceivedRequest.compression` is None for gRPC.

Also a CLI for subprocess-based tests and benchmarks:

    python -m daily_otel_bridge.testing.otlp_receiver --grpc-port 0 --http-port 0 \
        --max-seconds 600 [--dump records.jsonl] [--answer-delay 50ms] [--failure-ratio 0.2]

prints `grpc http://127.0.0.1:P` and `http http://127.0.0.1:Q` on stdout, then
`records=N metric_points=M requests=R` on stderr every second, and on SIGTERM/SIGINT (or after
--max-seconds) `final records=N metric_points=M requests=R` on stdout. It only counts (see
`keep_records`); `--dump` writes every log record as one JSON line (`log_to_json`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import hashlib
import ipaddress
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import IO, Any, Final, Literal

import grpc
from aiohttp import web

# protobuf and googleapis-common-protos ship no py.typed; their classes are Any to mypy.
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

# The bridge's own decoder: what the receiver reports is read the way the bridge writes it.
from daily_otel_bridge.core.encoding import decode_any_value, decode_attributes

__all__ = [
    "GRPC_TO_HTTP_STATUS",
    "HTTP_TO_GRPC_STATUS",
    "Fault",
    "OtlpReceiver",
    "ReceivedLog",
    "ReceivedPoint",
    "ReceivedRequest",
    "decode_any_value",
    "decode_attributes",
    "log_to_json",
    "main",
]

LOGS_GRPC_SERVICE: Final = "opentelemetry.proto.collector.logs.v1.LogsService"
METRICS_GRPC_SERVICE: Final = "opentelemetry.proto.collector.metrics.v1.MetricsService"
LOGS_HTTP_PATH: Final = "/v1/logs"
METRICS_HTTP_PATH: Final = "/v1/metrics"
PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"
# Far above what any sane exporter sends in one request (the OTLP default limit is 4 MiB), so a
# benchmark with huge batches measures the client, not our limit.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024

Transport = Literal["grpc", "http"]
Signal = Literal["logs", "metrics"]

# When a Fault names only one transport's status, the other transport gets the conventional
# equivalent, chosen so that "retryable" stays retryable under the OTLP rules (gRPC: CANCELLED,
# DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS; HTTP: 429, 502, 503, 504) and
# "permanent" stays permanent. The one inexact pair: RESOURCE_EXHAUSTED <-> 429, which gRPC only
# retries when RetryInfo is attached (set Fault.retry_after_seconds), HTTP always.
GRPC_TO_HTTP_STATUS: Final[dict[str, int]] = {
    "CANCELLED": 503,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 503,
    "OUT_OF_RANGE": 503,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 503,
    "UNAUTHENTICATED": 401,
}
HTTP_TO_GRPC_STATUS: Final[dict[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "UNAVAILABLE",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _http_to_grpc(status: int) -> str:
    if status in HTTP_TO_GRPC_STATUS:
        return HTTP_TO_GRPC_STATUS[status]
    return "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


@dataclass(frozen=True, slots=True)
class Fault:
    """What the receiver should answer instead of a plain success.

    An error status (`grpc_status` and/or `http_status`) fails the whole request and nothing is
    stored; if only one of them is given the other transport gets the equivalent from
    GRPC_TO_HTTP_STATUS / HTTP_TO_GRPC_STATUS. `retry_after_seconds` (only with an error status)
    becomes the HTTP `Retry-After` header (whole seconds when integral, else a decimal such as
    "0.5": not valid HTTP, but it lets fast tests use sub-second waits) and, for gRPC, a
    `google.rpc.RetryInfo` in `grpc-status-details-bin`. `delay_seconds` delays the answer; the
    records of a delayed success are stored on arrival, before the delay, as with a real backend
    whose answer got lost on the way, so a client that times out and retries produces duplicates.
    `reject_records` answers success with partial_success (rejected_log_records or
    rejected_data_points = min(reject_records, records in the request)); the first that many
    records of the request are dropped, the rest stored. `count` limits the fault to the next
    `count` export requests (either transport, either signal); None keeps it until cleared.
    """

    grpc_status: str | None = None
    http_status: int | None = None
    retry_after_seconds: float | None = None
    delay_seconds: float = 0.0
    reject_records: int = 0
    count: int | None = None

    def __post_init__(self) -> None:
        if self.grpc_status is not None and (
            self.grpc_status == "OK" or self.grpc_status not in grpc.StatusCode.__members__
        ):
            raise ValueError(f"not a gRPC error status name: {self.grpc_status!r}")
        if self.http_status is not None and not 400 <= self.http_status <= 599:
            raise ValueError(f"http_status must be a 4xx or 5xx code, not {self.http_status}")
        if self.retry_after_seconds is not None and not self.retry_after_seconds >= 0:
            raise ValueError("retry_after_seconds must be >= 0")
        if not self.delay_seconds >= 0:
            raise ValueError("delay_seconds must be >= 0")
        if self.reject_records < 0:
            raise ValueError("reject_records must be >= 0")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 (or None for 'until cleared')")

    @property
    def is_error(self) -> bool:
        return self.grpc_status is not None or self.http_status is not None

    def grpc_code(self) -> Any:  # grpc.StatusCode; grpc is untyped here
        """The gRPC status this fault answers with (None when it is not an error)."""
        if self.grpc_status is not None:
            return grpc.StatusCode[self.grpc_status]
        if self.http_status is not None:
            return grpc.StatusCode[_http_to_grpc(self.http_status)]
        return None

    def http_code(self) -> int | None:
        """The HTTP status this fault answers with (None when it is not an error)."""
        if self.http_status is not None:
            return self.http_status
        if self.grpc_status is not None:
            return GRPC_TO_HTTP_STATUS[self.grpc_status]
        return None


@dataclass(frozen=True, slots=True)
class ReceivedLog:
    resource: dict[str, object]
    scope_name: str
    scope_version: str
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: object
    attributes: dict[str, object]
    event_name: str
    flags: int
    trace_id: bytes
    span_id: bytes


@dataclass(frozen=True, slots=True)
class ReceivedPoint:
    """One data point. `kind` is "gauge", "sum" or "histogram" (also "exponential_histogram" and
    "summary"); for the histogram-like kinds `value` is the point's `sum`."""

    resource: dict[str, object]
    scope_name: str
    metric_name: str
    unit: str
    description: str
    kind: str
    time_unix_nano: int
    value: float | int
    attributes: dict[str, object]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One export request, recorded whether it was answered with success or with a fault.

    `records` is the number of log records (logs) or data points (metrics) it carried.
    `headers` are the HTTP headers or gRPC metadata with lower-cased names (repeated names joined
    with ", "; binary `-bin` metadata base64-encoded). `compression` is the Content-Encoding /
    grpc-encoding seen: "gzip", "identity", "deflate" for gRPC, or None when not observed (gRPC
    with observe_grpc_compression=False). `time` is time.time() on arrival. `size` is the
    uncompressed protobuf size in bytes. `fault` is what it was answered with instead of a plain
    success (a random failure shows as `Fault(grpc_status="UNAVAILABLE", http_status=503)`);
    `delay` is how long its answer was held back (answer_delay + jitter + the fault's delay).
    """

    transport: Transport
    signal: Signal
    records: int
    headers: dict[str, str]
    compression: str | None
    time: float
    size: int
    fault: Fault | None
    delay: float = 0.0


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Infinity
    return value


def log_to_json(log: ReceivedLog) -> dict[str, object]:
    """A JSON-able dict of a record (what `--dump` writes): field names as in ReceivedLog, bytes
    values in body/attributes base64, trace_id/span_id lower-case hex, NaN/inf as strings."""
    return {
        "resource": _jsonable(log.resource),
        "scope_name": log.scope_name,
        "scope_version": log.scope_version,
        "time_unix_nano": log.time_unix_nano,
        "observed_time_unix_nano": log.observed_time_unix_nano,
        "severity_number": log.severity_number,
        "severity_text": log.severity_text,
        "body": _jsonable(log.body),
        "attributes": _jsonable(log.attributes),
        "event_name": log.event_name,
        "flags": log.flags,
        "trace_id": log.trace_id.hex(),
        "span_id": log.span_id.hex(),
    }


def _count_log_records(request: logs_service_pb2.ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def _data_points(metric: metrics_pb2.Metric) -> tuple[str, Sequence[Any]]:
    kind = metric.WhichOneof("data")
    if kind == "gauge":
        return kind, metric.gauge.data_points
    if kind == "sum":
        return kind, metric.sum.data_points
    if kind == "histogram":
        return kind, metric.histogram.data_points
    if kind == "exponential_histogram":
        return kind, metric.exponential_histogram.data_points
    if kind == "summary":
        return kind, metric.summary.data_points
    return "", ()


def _count_data_points(request: metrics_service_pb2.ExportMetricsServiceRequest) -> int:
    return sum(
        len(_data_points(m)[1])
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )


def _decode_logs(request: logs_service_pb2.ExportLogsServiceRequest) -> list[ReceivedLog]:
    out: list[ReceivedLog] = []
    for rl in request.resource_logs:
        resource = decode_attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                out.append(
                    ReceivedLog(
                        resource=dict(resource),  # a copy each: a test mutating one is harmless
                        scope_name=sl.scope.name,
                        scope_version=sl.scope.version,
                        time_unix_nano=lr.time_unix_nano,
                        observed_time_unix_nano=lr.observed_time_unix_nano,
                        severity_number=int(lr.severity_number),
                        severity_text=lr.severity_text,
                        body=decode_any_value(lr.body),
                        attributes=decode_attributes(lr.attributes),
                        event_name=lr.event_name,
                        flags=lr.flags,
                        trace_id=lr.trace_id,
                        span_id=lr.span_id,
                    )
                )
    return out


def _decode_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest,
) -> list[ReceivedPoint]:
    out: list[ReceivedPoint] = []
    for rm in request.resource_metrics:
        resource = decode_attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind, points = _data_points(metric)
                for point in points:
                    value: float | int
                    if kind in ("gauge", "sum"):
                        which = point.WhichOneof("value")
                        value = point.as_int if which == "as_int" else point.as_double
                    else:
                        value = point.sum
                    out.append(
                        ReceivedPoint(
                            resource=dict(resource),
                            scope_name=sm.scope.name,
                            metric_name=metric.name,
                            unit=metric.unit,
                            description=metric.description,
                            kind=kind,
                            time_unix_nano=point.time_unix_nano,
                            value=value,
                            attributes=decode_attributes(point.attributes),
                        )
                    )
    return out


def _format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0")


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the test receiver binds to loopback addresses only, not {host!r}")


def _grpc_status_details(code: Any, message: str, retry_after: float | None) -> bytes:
    """A serialized google.rpc.Status for `grpc-status-details-bin` (code must match the call's
    status, clients such as grpc_status.rpc_status check that)."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if retry_after is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(round(retry_after * 1e9))
        status.details.add().Pack(info)
    return bytes(status.SerializeToString())


class _GrpcMessageSniffer:
    """Reads the client-to-server half of a plaintext HTTP/2 connection just far enough to see
    each gRPC message's 1-byte "compressed" flag and its bytes (RFC 9113 frame layout; gRPC's
    5-byte length prefix). HPACK headers are not decoded: the flag is all we need. If the
    stream is not what we expect it gives up quietly and the relay keeps forwarding."""

    _PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, on_message: Callable[[bool, bytes], None]) -> None:
        self._on_message = on_message
        self._buffer = bytearray()
        self._preface_seen = False
        self._broken = False
        self._streams: dict[int, bytearray] = {}

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            self._feed(data)
        except Exception:
            # Observing compression is a nicety; never let it break the connection.
            self._broken = True
            self._buffer.clear()
            self._streams.clear()

    def _feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._preface_seen:
            if len(buffer) < len(self._PREFACE):
                return
            if bytes(buffer[: len(self._PREFACE)]) != self._PREFACE:
                raise ValueError("not an HTTP/2 prior-knowledge connection")
            del buffer[: len(self._PREFACE)]
            self._preface_seen = True
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[0:3], "big")
            if len(buffer) < 9 + length:
                return
            frame_type, flags = buffer[3], buffer[4]
            stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            payload = bytes(buffer[9 : 9 + length])
            del buffer[: 9 + length]
            if frame_type == 0x0:  # DATA
                if flags & 0x8:  # PADDED
                    payload = payload[1 : len(payload) - payload[0]]
                self._data(stream_id, payload)
                if flags & 0x1:  # END_STREAM
                    self._streams.pop(stream_id, None)
            elif frame_type == 0x3 or (frame_type == 0x1 and flags & 0x1):  # RST_STREAM, trailers
                self._streams.pop(stream_id, None)

    def _data(self, stream_id: int, payload: bytes) -> None:
        pending = self._streams.setdefault(stream_id, bytearray())
        pending += payload
        while len(pending) >= 5:
            size = int.from_bytes(pending[1:5], "big")
            if len(pending) < 5 + size:
                return
            compressed = pending[0] == 1
            message = bytes(pending[5 : 5 + size])
            del pending[: 5 + size]
            self._on_message(compressed, message)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class OtlpReceiver:
    """OTLP logs+metrics receiver over gRPC and HTTP/protobuf; see the module docstring.

    `keep_records=False` only counts (for benchmarks with millions of records): log_records(),
    metric_points() and requests() stay empty, count()/metric_count()/request_count() work, and
    wait_for_logs() waits on the count. `dump_path` appends every stored log record as a JSON line
    (flushed per request) whatever keep_records is.
    """

    def __init__(
        self,
        *,
        grpc: bool = True,
        http: bool = True,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        http_port: int = 0,
        max_seconds: float = 600,
        keep_records: bool = True,
        observe_grpc_compression: bool = True,
        dump_path: str | PathLike[str] | None = None,
        answer_delay: float = 0.0,
        answer_delay_jitter: float = 0.0,
        failure_ratio: float = 0.0,
        failure_seed: int = 0,
    ) -> None:
        if not (grpc or http):
            raise ValueError("enable at least one of grpc and http")
        if not 0 <= answer_delay_jitter <= answer_delay:
            raise ValueError("answer_delay must be >= 0 and answer_delay_jitter in [0, delay]")
        if not 0.0 <= failure_ratio <= 1.0:
            raise ValueError(f"failure_ratio must be within [0, 1], got {failure_ratio}")
        _check_loopback(host)
        if host == "localhost":
            host = "127.0.0.1"  # one address family, the same for gRPC and HTTP
        self._grpc_enabled = grpc
        self._http_enabled = http
        self._host = host
        self._grpc_port = grpc_port
        self._http_port = http_port
        self._max_seconds = max_seconds
        self._keep = keep_records
        self._observe = observe_grpc_compression
        self._dump_path = dump_path
        self._answer_delay = answer_delay
        self._answer_jitter = answer_delay_jitter
        self._failure_ratio = failure_ratio
        # Separate streams: turning jitter on must not change which requests fail.
        self._failure_rng = random.Random(f"{failure_seed}:failures")
        self._jitter_rng = random.Random(f"{failure_seed}:jitter")

        # Shared between the caller's threads and the loop thread.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._logs: list[ReceivedLog] = []
        self._points: list[ReceivedPoint] = []
        self._requests: list[ReceivedRequest] = []
        self._log_count = 0
        self._point_count = 0
        self._request_count = 0
        self._fault: Fault | None = None
        self._fault_left: int | None = None
        self._inflight = 0
        self._max_inflight = 0
        self._failed = 0

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._startup_error: BaseException | None = None

        # Loop-thread-only state.
        self._stop_requested: asyncio.Event | None = None
        self._serving = False
        self._grpc_server: Any = None  # grpc.aio.Server
        self._grpc_upstream_port = 0  # the real gRPC server behind the relay
        self._relay: asyncio.Server | None = None
        self._relay_connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._sniffed: dict[bytes, deque[str]] = {}
        self._http_runner: web.AppRunner | None = None
        self._dump: IO[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        if self._thread is not None:
            raise RuntimeError("OtlpReceiver.start() called twice")
        if self._dump_path is not None:
            # Opened here so a bad path fails in the caller; closed by the loop thread at the end.
            self._dump = open(self._dump_path, "a", encoding="utf-8")  # noqa: SIM115
        self._thread = threading.Thread(target=self._run, name="otlp-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("OTLP receiver did not start within 30 s")
        if self._startup_error is not None:
            self._thread.join(timeout=10)
            raise RuntimeError(
                f"OTLP receiver failed to start: {self._startup_error!r}"
            ) from self._startup_error
        return self

    def stop(self) -> None:
        """Close everything and end the loop thread; safe to call more than once."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop_requested is not None and not self._finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout=30)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True from start() until stop() or max_seconds."""
        return self._ready.is_set() and self._startup_error is None and not self._finished.is_set()

    @property
    def grpc_port(self) -> int:
        if not self._grpc_enabled or not self._grpc_port:
            raise RuntimeError("gRPC is not enabled or the receiver is not started")
        return self._grpc_port

    @property
    def http_port(self) -> int:
        if not self._http_enabled or not self._http_port:
            raise RuntimeError("HTTP is not enabled or the receiver is not started")
        return self._http_port

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{_format_host(self._host)}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL: POST protobuf to http_endpoint + "/v1/logs" or "/v1/metrics"."""
        return f"http://{_format_host(self._host)}:{self.http_port}"

    def stop_serving(self) -> None:
        """Close the listening ports and drop open connections: clients see connection refused
        (or a reset, for requests in flight). Received data and the fault stay."""
        self._call(self._close_ports())

    def resume_serving(self) -> None:
        """Listen again on the same ports (raises OSError if something else took one)."""
        self._call(self._open_ports())

    # -- results -----------------------------------------------------------------------------

    def log_records(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)

    def metric_points(self) -> list[ReceivedPoint]:
        with self._lock:
            return list(self._points)

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self) -> int:
        """Log records stored so far (rejected ones and failed requests do not count)."""
        with self._lock:
            return self._log_count

    def metric_count(self) -> int:
        with self._lock:
            return self._point_count

    def request_count(self) -> int:
        """Export requests received (whatever the answer was; unparseable bodies excluded)."""
        with self._lock:
            return self._request_count

    def max_inflight(self) -> int:
        """The most export requests received and not yet answered at the same time."""
        with self._lock:
            return self._max_inflight

    def failed_count(self) -> int:
        """Export requests answered with an error (an injected Fault or a random failure)."""
        with self._lock:
            return self._failed

    def wait_for_logs(self, n: int, timeout: float) -> list[ReceivedLog]:
        """Block until at least `n` log records are stored; returns log_records()."""
        self._wait(lambda: self._log_count, n, timeout, "log records")
        return self.log_records()

    def wait_for_metric_points(self, n: int, timeout: float) -> list[ReceivedPoint]:
        self._wait(lambda: self._point_count, n, timeout, "metric data points")
        return self.metric_points()

    def clear(self) -> None:
        """Forget everything received (records, points, requests, counts); the fault stays."""
        with self._lock:
            self._logs.clear()
            self._points.clear()
            self._requests.clear()
            self._log_count = self._point_count = self._request_count = 0
            self._max_inflight = self._inflight
            self._failed = 0

    def set_fault(self, fault: Fault | None) -> None:
        """Answer the next requests with `fault` (None: plain success again)."""
        with self._lock:
            self._fault = fault
            self._fault_left = fault.count if fault is not None else None

    @property
    def fault(self) -> Fault | None:
        """The fault in force (None once a counted fault is used up)."""
        with self._lock:
            return self._fault

    # -- internals: caller side ----------------------------------------------------------------

    def _wait(self, current: Callable[[], int], n: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while current() < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"received {current()} of {n} {what} within {timeout} s")
                self._changed.wait(remaining)

    def _call(self, coro: Any) -> None:
        loop = self._loop
        if loop is None or not self.running:
            coro.close()
            raise RuntimeError("the OTLP receiver is not running")
        asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    def _take_fault(self) -> Fault | None:
        with self._lock:
            fault = self._fault
            if fault is not None and self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._fault, self._fault_left = None, None
        # Drawn for every request, fault or not, so the sequence depends on arrivals only.
        if self._failure_ratio and self._failure_rng.random() < self._failure_ratio:
            fault = fault or _RANDOM_FAILURE
        return fault

    def _delay_for(self, fault: Fault | None) -> float:
        delay = self._answer_delay
        if self._answer_jitter:
            delay += self._jitter_rng.uniform(-1.0, 1.0) * self._answer_jitter
        if fault is not None:
            delay += fault.delay_seconds
        return max(0.0, delay)

    # -- internals: loop thread --------------------------------------------------------------

    def _run(self) -> None:
        # asyncio.Runner: on exit it cancels leftover tasks (relay pumps, handlers) and shuts
        # down async generators and the executor, like asyncio.run() does.
        try:
            with asyncio.Runner() as runner:
                self._loop = runner.get_loop()
                runner.run(self._main())
        except BaseException as exc:  # report rather than die silently in a daemon thread
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                print(f"OTLP receiver crashed: {exc!r}", file=sys.stderr)
        finally:
            self._finished.set()
            self._ready.set()
            with self._changed:
                self._changed.notify_all()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            if self._grpc_enabled and self._observe:
                self._grpc_upstream_port = await self._start_grpc_server("127.0.0.1", 0)
            await self._open_ports()
        except BaseException as exc:
            self._startup_error = exc
            await self._shutdown()
            return
        finally:
            self._ready.set()
        try:
            await asyncio.wait_for(self._stop_requested.wait(), self._max_seconds)
        except TimeoutError:
            print(
                f"OTLP receiver: max_seconds={self._max_seconds} reached, stopping",
                file=sys.stderr,
            )
        await self._shutdown()

    async def _shutdown(self) -> None:
        await self._close_ports()
        if self._grpc_server is not None:
            await self._grpc_server.stop(None)
            self._grpc_server = None
        if self._dump is not None:
            self._dump.close()
            self._dump = None

    async def _start_grpc_server(self, host: str, port: int) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Without this a second server could silently share the port (gRPC's default
                # SO_REUSEPORT); we want "address in use" instead.
                ("grpc.so_reuseport", 0),
            ]
        )
        # Raw bytes in and out (no deserializer): we parse ourselves to answer INVALID_ARGUMENT
        # on garbage and to match the relay's digests. gzip/deflate requests are decompressed by
        # grpc core, which accepts all its algorithms by default.
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    LOGS_GRPC_SERVICE,
                    {"Export": grpc.unary_unary_rpc_method_handler(self._grpc_logs)},
                ),
                grpc.method_handlers_generic_handler(
                    METRICS_GRPC_SERVICE,
                    {"Export": grpc.unary_unary_rpc_method_handler(self._grpc_metrics)},
                ),
            )
        )
        bound: int = server.add_insecure_port(f"{_format_host(host)}:{port}")
        await server.start()
        self._grpc_server = server
        return bound

    async def _open_ports(self) -> None:
        if self._serving:
            return
        if self._grpc_enabled:
            if self._observe:
                self._relay = await asyncio.start_server(
                    self._relay_connection, self._host, self._grpc_port, reuse_address=True
                )
                self._grpc_port = self._relay.sockets[0].getsockname()[1]
            else:
                self._grpc_port = await self._start_grpc_server(self._host, self._grpc_port)
        if self._http_enabled:
            app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
            app.router.add_post(LOGS_HTTP_PATH, self._http_logs)
            app.router.add_post(METRICS_HTTP_PATH, self._http_metrics)
            # We decompress ourselves: to report the encoding and to 415 unknown ones.
            runner = web.AppRunner(
                app, access_log=None, auto_decompress=False, shutdown_timeout=0.2
            )
            await runner.setup()
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                # SO_REUSEADDR so resume_serving can re-bind while old connections linger in
                # TIME_WAIT; it does not let two listeners share the port.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self._host, self._http_port))
                site = web.SockSite(runner, sock)
                await site.start()
            except BaseException:
                sock.close()
                await runner.cleanup()
                raise
            self._http_port = sock.getsockname()[1]
            self._http_runner = runner
        self._serving = True

    async def _close_ports(self) -> None:
        self._serving = False
        if self._relay is not None:
            self._relay.close()
            for client, upstream in list(self._relay_connections):
                client.transport.abort()
                upstream.transport.abort()
            await self._relay.wait_closed()
            self._relay = None
        elif self._grpc_server is not None and not self._observe:
            await self._grpc_server.stop(None)
            self._grpc_server = None
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None

    # -- gRPC relay (observing compression) ----------------------------------------------------

    async def _relay_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self._grpc_upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._relay_connections.add(pair)
        sniffer = _GrpcMessageSniffer(self._note_grpc_message)
        tasks = {
            asyncio.create_task(self._pump(reader, up_writer, sniffer)),
            asyncio.create_task(self._pump(up_reader, writer, None)),
        }
        try:
            # HTTP/2 has no use for half-closed TCP: when either side is done, so are we.
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._relay_connections.discard(pair)
            writer.close()
            up_writer.close()

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        sniffer: _GrpcMessageSniffer | None,
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(256 * 1024):
                if sniffer is not None:
                    # Before forwarding, so the digest is known before the handler can run.
                    sniffer.feed(data)
                sink.write(data)
                await sink.drain()

    def _note_grpc_message(self, compressed: bool, message: bytes) -> None:
        encoding = "identity"
        if compressed:
            try:
                if message[:2] == b"\x1f\x8b":
                    message, encoding = gzip.decompress(message), "gzip"
                else:
                    message, encoding = zlib.decompress(message), "deflate"
            except (OSError, EOFError, zlib.error):
                return  # an algorithm we cannot read (grpc core will reject it anyway)
        self._sniffed.setdefault(_digest(message), deque()).append(encoding)
        # Entries whose RPC never reached a handler (e.g. over the size limit) must not pile up.
        while len(self._sniffed) > 10_000:
            del self._sniffed[next(iter(self._sniffed))]

    def _grpc_compression(self, message: bytes) -> str | None:
        if not self._observe:
            return None
        key = _digest(message)
        seen = self._sniffed.get(key)
        if not seen:
            return None
        encoding = seen.popleft()
        if not seen:
            del self._sniffed[key]
        return encoding

    # -- request handling ------------------------------------------------------------------------

    async def _grpc_logs(self, request: bytes, context: Any) -> bytes:
        return await self._grpc_export("logs", request, context)

    async def _grpc_metrics(self, request: bytes, context: Any) -> bytes:
        return await self._grpc_export("metrics", request, context)

    async def _grpc_export(self, signal_type: Signal, request: bytes, context: Any) -> bytes:
        headers: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            text = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
            name = key.lower()
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        result = await self._export(
            "grpc", signal_type, request, headers, self._grpc_compression(request)
        )
        if isinstance(result, bytes):
            return result
        if isinstance(result, str):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, result)
        else:
            code = result.grpc_code()
            message = f"injected fault: {code.name}"
            trailing: tuple[tuple[str, bytes], ...] = ()
            if result.retry_after_seconds is not None:
                details = _grpc_status_details(code, message, result.retry_after_seconds)
                trailing = (("grpc-status-details-bin", details),)
            await context.abort(code, message, trailing_metadata=trailing)
        raise AssertionError("context.abort() returned")  # it raises

    async def _http_logs(self, request: web.Request) -> web.StreamResponse:
        return await self._http_export("logs", request)

    async def _http_metrics(self, request: web.Request) -> web.StreamResponse:
        return await self._http_export("metrics", request)

    async def _http_export(self, signal_type: Signal, request: web.Request) -> web.StreamResponse:
        if request.content_type != PROTOBUF_CONTENT_TYPE:
            return web.Response(status=415, text=f"only {PROTOBUF_CONTENT_TYPE} is supported here")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
        if encoding not in ("gzip", "identity"):
            return web.Response(status=415, text=f"unsupported Content-Encoding: {encoding}")
        body = await request.read()
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as exc:
                return _http_error(400, grpc.StatusCode.INVALID_ARGUMENT, f"bad gzip body: {exc}")
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            name = key.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        result = await self._export("http", signal_type, body, headers, encoding)
        if isinstance(result, bytes):
            return web.Response(body=result, content_type=PROTOBUF_CONTENT_TYPE)
        if isinstance(result, str):
            return _http_error(400, grpc.StatusCode.INVALID_ARGUMENT, result)
        status = result.http_code()
        assert status is not None
        response = _http_error(status, result.grpc_code(), f"injected fault: HTTP {status}")
        if result.retry_after_seconds is not None:
            response.headers["Retry-After"] = _format_seconds(result.retry_after_seconds)
        return response

    async def _export(
        self,
        transport: Transport,
        signal_type: Signal,
        body: bytes,
        headers: dict[str, str],
        compression: str | None,
    ) -> bytes | str | Fault:
        """Record and store one request. Returns the serialized success response, a message for
        an unparseable body, or the error Fault to answer with."""
        with self._lock:
            self._inflight += 1
            self._max_inflight = max(self._max_inflight, self._inflight)
        try:
            return await self._export_one(transport, signal_type, body, headers, compression)
        finally:
            with self._lock:
                self._inflight -= 1

    async def _export_one(
        self,
        transport: Transport,
        signal_type: Signal,
        body: bytes,
        headers: dict[str, str],
        compression: str | None,
    ) -> bytes | str | Fault:
        arrived = time.time()
        logs_request: logs_service_pb2.ExportLogsServiceRequest | None = None
        metrics_request: metrics_service_pb2.ExportMetricsServiceRequest | None = None
        try:
            if signal_type == "logs":
                logs_request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                n = _count_log_records(logs_request)
            else:
                metrics_request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                n = _count_data_points(metrics_request)
        except DecodeError as exc:
            return f"cannot parse the {signal_type} export request: {exc}"
        fault = self._take_fault()
        delay = self._delay_for(fault)
        entry = ReceivedRequest(
            transport=transport,
            signal=signal_type,
            records=n,
            headers=headers,
            compression=compression,
            time=arrived,
            size=len(body),
            fault=fault,
            delay=delay,
        )
        with self._lock:
            self._request_count += 1
            if self._keep:
                self._requests.append(entry)
            if fault is not None and fault.is_error:
                self._failed += 1
        if fault is not None and fault.is_error:
            if delay:
                await asyncio.sleep(delay)
            return fault
        rejected = min(fault.reject_records, n) if fault is not None else 0
        if logs_request is not None:
            self._store_logs(logs_request, rejected, n)
            logs_response = logs_service_pb2.ExportLogsServiceResponse()
            if rejected:
                logs_response.partial_success.rejected_log_records = rejected
                logs_response.partial_success.error_message = (
                    f"injected fault: rejected {rejected} log records"
                )
            response = logs_response.SerializeToString()
        else:
            assert metrics_request is not None
            self._store_points(metrics_request, rejected, n)
            metrics_response = metrics_service_pb2.ExportMetricsServiceResponse()
            if rejected:
                metrics_response.partial_success.rejected_data_points = rejected
                metrics_response.partial_success.error_message = (
                    f"injected fault: rejected {rejected} data points"
                )
            response = metrics_response.SerializeToString()
        if delay:
            # After storing: a backend whose answer is on its way has the records already.
            await asyncio.sleep(delay)
        return bytes(response)

    def _store_logs(
        self, request: logs_service_pb2.ExportLogsServiceRequest, rejected: int, n: int
    ) -> None:
        decoded = _decode_logs(request)[rejected:] if self._keep or self._dump is not None else []
        if self._dump is not None:
            for log in decoded:
                self._dump.write(json.dumps(log_to_json(log), ensure_ascii=False) + "\n")
            self._dump.flush()
        with self._changed:
            self._log_count += n - rejected
            if self._keep:
                self._logs.extend(decoded)
            self._changed.notify_all()

    def _store_points(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, rejected: int, n: int
    ) -> None:
        with self._changed:
            self._point_count += n - rejected
            if self._keep:
                self._points.extend(_decode_metrics(request)[rejected:])
            self._changed.notify_all()


# What a random failure answers: retryable under the OTLP rules on both transports.
_RANDOM_FAILURE: Final = Fault(grpc_status="UNAVAILABLE", http_status=503)


def _http_error(status: int, code: Any, message: str) -> web.Response:
    # OTLP/HTTP: an error body, if any, is a protobuf google.rpc.Status.
    body = status_pb2.Status(code=code.value[0], message=message).SerializeToString()
    return web.Response(status=status, body=body, content_type=PROTOBUF_CONTENT_TYPE)


def _duration_arg(value: str) -> float:
    # The daemon's duration syntax (`50ms`, `1s`), so benches pass one spelling everywhere.
    from daily_otel_bridge.config.settings import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m daily_otel_bridge.testing.otlp_receiver",
        description="Count (and optionally dump) OTLP logs and metrics received over gRPC/HTTP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--grpc-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--http-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-grpc", action="store_true", help="do not serve OTLP/gRPC")
    parser.add_argument("--no-http", action="store_true", help="do not serve OTLP/HTTP")
    parser.add_argument("--max-seconds", type=float, default=600, help="exit after this long")
    parser.add_argument("--dump", metavar="PATH", help="append each log record as a JSON line")
    parser.add_argument(
        "--answer-delay", type=_duration_arg, default=0.0, help="delay every answer, e.g. 50ms"
    )
    parser.add_argument("--answer-delay-jitter", type=_duration_arg, default=0.0, help="+- uniform")
    parser.add_argument(
        "--failure-ratio", type=float, default=0.0, help="share of exports answered UNAVAILABLE/503"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random failures")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    receiver = OtlpReceiver(
        grpc=not args.no_grpc,
        http=not args.no_http,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        max_seconds=args.max_seconds,
        keep_records=False,  # a subprocess is observed through counts and --dump only
        observe_grpc_compression=False,  # nobody could see it; spare benchmarks the relay hop
        dump_path=args.dump,
        answer_delay=args.answer_delay,
        answer_delay_jitter=args.answer_delay_jitter,
        failure_ratio=args.failure_ratio,
        failure_seed=args.seed,
    )
    receiver.start()

    def counts() -> str:
        failed = receiver.failed_count()
        return (
            f"records={receiver.count()} metric_points={receiver.metric_count()} "
            f"requests={receiver.request_count()}" + (f" failed={failed}" if failed else "")
        )

    try:
        if not args.no_grpc:
            print(f"grpc {receiver.grpc_endpoint}", flush=True)
        if not args.no_http:
            print(f"http {receiver.http_endpoint}", flush=True)
        while not stop.wait(1.0) and receiver.running:
            print(counts(), file=sys.stderr, flush=True)
    finally:
        receiver.stop()
        print(f"final {counts()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
