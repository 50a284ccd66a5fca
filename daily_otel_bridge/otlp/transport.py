"""The only module that talks OTLP: gRPC, HTTP/protobuf and a console stand-in.

Why not opentelemetry-exporter-otlp's `OTLPLogExporter`: it takes SDK `ReadableLogRecord`s
(about 17k records/s to build and encode here, against 80k+/s for proto messages built
directly), it is synchronous (it would block the event loop or need a thread per domain),
it retries inside `export()` on its own schedule, and it reduces the backend's answer to
SUCCESS/FAILURE, dropping `partial_success`, which this bridge must log and count. Its
transports are private API (`_OTLPHTTPClient`) with the same limits. So the transports here
send a request we built ourselves with `grpc.aio` (using opentelemetry-proto's generated
stub) and aiohttp, and follow the OTLP specification's retry rules.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from daily_otel_bridge.config.settings import ExportSettings
from daily_otel_bridge.core.encoding import SerializedRequest
from daily_otel_bridge.core.retry import Failure, parse_retry_after, retry
from daily_otel_bridge.core.trouble import AttemptObserver, clip
from daily_otel_bridge.tls import client_context

LOGS_PATH = "/v1/logs"
METRICS_PATH = "/v1/metrics"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RECONNECT_BACKOFF_MIN_MS = 500
RECONNECT_BACKOFF_MAX_MS = 5000

# A request: a message, or the bytes the batcher built (`core.encoding.LogBatch`).
ExportRequest = Message | SerializedRequest


def _serialize(request: ExportRequest) -> bytes:
    """Either kind of request as bytes (a `SerializedRequest` is sent as it is)."""
    return request.SerializeToString()


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """What differs between two OTLP signals on the wire; the transports take a spec and
    never name a signal."""

    name: str
    grpc_method: str
    http_path: str
    response: Callable[[], Message]  # an empty response message, parsed in place
    rejected_field: str  # the partial_success field counting what the backend refused
    request_type: Callable[[bytes], Message]  # decodes a request (the console renders it)
    render: Callable[[Any], Iterator[dict[str, Any]]]  # one dict per record or point


def _render_logs(request: Any) -> Iterator[dict[str, Any]]:
    from daily_otel_bridge.core.console import log_records_as_dicts

    return log_records_as_dicts(request)


def _render_metrics(request: Any) -> Iterator[dict[str, Any]]:
    from daily_otel_bridge.core.console import metric_points_as_dicts

    return metric_points_as_dicts(request)


LOGS_SIGNAL = SignalSpec(
    name="logs",
    grpc_method="/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    http_path=LOGS_PATH,
    response=ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    request_type=ExportLogsServiceRequest.FromString,
    render=_render_logs,
)
METRICS_SIGNAL = SignalSpec(
    name="metrics",
    grpc_method="/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    http_path=METRICS_PATH,
    response=ExportMetricsServiceResponse,
    rejected_field="rejected_data_points",
    request_type=ExportMetricsServiceRequest.FromString,
    render=_render_metrics,
)
SIGNALS: dict[str, SignalSpec] = {s.name: s for s in (LOGS_SIGNAL, METRICS_SIGNAL)}


_RETRYABLE_GRPC = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
_RETRYABLE_HTTP = {429, 502, 503, 504}


def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("Connection refused"), which
    name no URL, path or header."""
    os_error = getattr(exc, "os_error", None)
    reason = getattr(os_error, "strerror", None)
    return f" ({reason})" if reason else ""


class ExportError(Exception):
    """The backend did not acknowledge. `transient` says whether trying later may help."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """An acknowledged request; `rejected` items were refused for good (partial success)."""

    rejected: int = 0
    error_message: str = ""
    attempts: int = 1


class Transport(Protocol):
    name: str

    async def send(self, signal: SignalSpec, request: ExportRequest) -> ExportOutcome: ...
    async def close(self) -> None: ...


def signal_url(settings: ExportSettings, path: str) -> str:
    """HTTP URL of a signal: the explicit per-signal endpoint as is, else base + path."""
    explicit = {LOGS_PATH: settings.logs_endpoint, METRICS_PATH: settings.metrics_endpoint}.get(
        path
    )
    if explicit:
        return explicit
    base = settings.endpoint.rstrip("/")
    if base.endswith(path):
        return base
    return base + path


def _retry_info_delay(error: grpc.aio.AioRpcError) -> float | None:
    """`google.rpc.RetryInfo.retry_delay` from the status details, if the server sent one."""
    try:
        from google.rpc import error_details_pb2, status_pb2
    except ImportError:  # pragma: no cover - googleapis-common-protos comes with the exporter
        return None
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                delay = info.retry_delay
                return float(delay.seconds) + float(delay.nanos) / 1e9
    return None


class GrpcTransport:
    name = "grpc"

    def __init__(self, settings: ExportSettings) -> None:
        parts = urlsplit(settings.endpoint)
        target = parts.netloc or settings.endpoint
        insecure = settings.insecure if settings.insecure is not None else parts.scheme == "http"
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Our retry loop follows the OTLP rules; grpc's own would retry behind our back.
            ("grpc.enable_retries", 0),
            # After the backend was unreachable, grpc waits before reconnecting, growing the
            # wait up to 120 s by default: calls fail at once with UNAVAILABLE meanwhile, so
            # delivery would resume up to two minutes after the backend is back. Our own
            # backoff already paces the calls; keep the channel's own wait short.
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MIN_MS),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MIN_MS),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
        ]
        if insecure:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            root = settings.certificate_file.read_bytes() if settings.certificate_file else None
            key = settings.client_key_file.read_bytes() if settings.client_key_file else None
            chain = (
                settings.client_certificate_file.read_bytes()
                if settings.client_certificate_file
                else None
            )
            credentials = grpc.ssl_channel_credentials(root, key, chain)
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        # One call per signal, built like the generated stubs but with a serializer that
        # takes either kind of request (the stubs' own takes nothing but a message).
        self._calls = {
            spec.name: self._channel.unary_unary(
                spec.grpc_method,
                request_serializer=_serialize,
                response_deserializer=lambda data, spec=spec: _parsed(spec, data),
            )
            for spec in SIGNALS.values()
        }
        self._metadata = tuple((k.lower(), v) for k, v in settings.header_items())
        self._timeout = settings.timeout
        self._compression = (
            grpc.Compression.Gzip
            if settings.compression == "gzip"
            else grpc.Compression.NoCompression
        )

    async def send(self, signal: SignalSpec, request: ExportRequest) -> ExportOutcome:
        try:
            response = await self._calls[signal.name](
                request,
                timeout=self._timeout,
                metadata=self._metadata,
                compression=self._compression,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            details = clip(exc.details() or "", 200)
            message = f"OTLP gRPC export failed: {code.name}" + (f" ({details})" if details else "")
            if code in _RETRYABLE_GRPC:
                raise ExportError(message, transient=True) from None
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                delay = _retry_info_delay(exc)
                # Retryable only when the server says when (OTLP spec); otherwise it is
                # a permanent refusal such as an oversized message.
                raise ExportError(message, transient=delay is not None, retry_after=delay) from None
            raise ExportError(message, transient=False) from None
        return _outcome(signal, response)

    async def close(self) -> None:
        await self._channel.close()


class HttpTransport:
    name = "http/protobuf"

    def __init__(self, settings: ExportSettings) -> None:
        self._urls = {spec.name: signal_url(settings, spec.http_path) for spec in SIGNALS.values()}
        self._settings = settings
        self._headers = {k: v for k, v in settings.header_items()}
        self._headers["Content-Type"] = "application/x-protobuf"
        self._gzip = settings.compression == "gzip"
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            use_tls = any(u.startswith("https:") for u in self._urls.values())
            connector = aiohttp.TCPConnector(
                ssl=client_context(
                    self._settings.certificate_file,
                    self._settings.client_certificate_file,
                    self._settings.client_key_file,
                )
                if use_tls
                else False,
                limit=4,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self._settings.timeout)
            )
        return self._session

    async def send(self, signal: SignalSpec, request: ExportRequest) -> ExportOutcome:
        url = self._urls[signal.name]
        body = request.SerializeToString()
        if self._gzip:
            # Level 1: the payload is highly repetitive; higher levels cost CPU for little.
            body = gzip.compress(body, compresslevel=1)
        try:
            async with self._http().post(url, data=body, headers=self._headers) as resp:
                payload = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
            host = urlsplit(url).netloc  # never the path or query: they may carry a token
            raise ExportError(
                f"OTLP HTTP export failed: TLS certificate of {host} not trusted ({reason});"
                " set certificate_file to the CA bundle that signed it",
                transient=False,
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ExportError(
                f"OTLP HTTP export failed: {type(exc).__name__}{_os_reason(exc)}", transient=True
            ) from None
        if 200 <= status < 300:
            response = signal.response()
            if payload:
                # Success without a readable body still means acknowledged.
                with contextlib.suppress(DecodeError):
                    response.ParseFromString(payload)
            return _outcome(signal, response)
        message = f"OTLP HTTP export failed: HTTP {status}"
        if status in _RETRYABLE_HTTP:
            raise ExportError(message, transient=True, retry_after=retry_after)
        raise ExportError(message, transient=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class ConsoleTransport:
    """One JSON line per record on stdout: for the demo and for debugging a config."""

    name = "console"

    def __init__(
        self,
        stream: IO[str] | None = None,
        formatter: Callable[[dict[str, Any]], str] | None = None,
    ):
        self._stream = stream or sys.stdout
        self._format = formatter or (lambda d: json.dumps(d, ensure_ascii=False))

    async def send(self, signal: SignalSpec, request: ExportRequest) -> ExportOutcome:
        message = signal.request_type(_serialize(request))
        lines = [self._format(d) for d in signal.render(message)]
        if lines:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        return ExportOutcome()

    async def close(self) -> None:
        return None


def build_transport(settings: ExportSettings) -> Transport:
    if settings.protocol == "grpc":
        return GrpcTransport(settings)
    if settings.protocol == "http/protobuf":
        return HttpTransport(settings)
    # A person at a terminal gets coloured one-liners; a pipe gets JSON lines to parse.
    from daily_otel_bridge.core.console import pretty_line

    return ConsoleTransport(formatter=pretty_line if sys.stdout.isatty() else None)


class Exporter:
    """A transport plus the OTLP retry policy: exponential backoff with jitter, honouring
    the server's hint, for at most `max_retry_time`; then the caller tries again later."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_retry_time: float,
        backoff_cap: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self._max_retry_time = max_retry_time
        self._backoff_cap = backoff_cap
        self._clock = clock
        # Told of each failed attempt at once (the retries can last a minute).
        self.observer: AttemptObserver | None = None

    @property
    def protocol(self) -> str:
        return self.transport.name

    async def export(self, signal: str, request: ExportRequest) -> ExportOutcome:
        """One export path for every signal (`SIGNALS`: "logs", "metrics")."""
        spec = SIGNALS.get(signal)
        if spec is None:
            raise ValueError(f"unknown signal {signal!r}")
        return await self._with_retries(lambda: self.transport.send(spec, request))

    async def _with_retries(self, send: Callable[[], Any]) -> ExportOutcome:
        async def attempt(number: int) -> ExportOutcome:
            outcome: ExportOutcome = await send()
            return ExportOutcome(
                rejected=outcome.rejected, error_message=outcome.error_message, attempts=number + 1
            )

        return await retry(
            attempt,
            _classify,
            max_elapsed=self._max_retry_time,
            backoff_cap=self._backoff_cap,
            observer=self.observer,
            clock=self._clock,
        )

    async def close(self) -> None:
        await self.transport.close()


def _parsed(signal: SignalSpec, data: bytes) -> Message:
    response = signal.response()
    response.ParseFromString(data)
    return response


def _outcome(signal: SignalSpec, response: Any) -> ExportOutcome:
    partial = response.partial_success
    return ExportOutcome(
        rejected=int(getattr(partial, signal.rejected_field)), error_message=partial.error_message
    )


def _classify(error: Exception) -> Failure | None:
    # The OTLP rules: retry what the transport marked transient, honouring the server's hint.
    if not isinstance(error, ExportError):
        return None
    if not error.transient:
        return Failure("export_permanent", retryable=False)
    return Failure("export_transient", retry_after=error.retry_after)
