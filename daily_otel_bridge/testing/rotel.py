"""Run the real third-party OTLP collector `rotel` (PyPI package `rotel`) for end-to-end tests.

    with RotelCollector() as rotel:
        send_logs(rotel.grpc_endpoint)            # or rotel.http_endpoint (+ "/v1/logs")
        records = rotel.wait_for_records(3, timeout=10)
        assert records[0]["attributes"]["call.id"] == "abc"

rotel receives OTLP on two free loopback ports, drops everything (`--exporter blackhole`) and
prints what it received with `--debug-log logs --debug-log-verbosity detailed`, which
`parsed_log_records()` turns back into dicts. What that output looks like (rotel 0.0.1-alpha10):

    ResourceLog #0
    Resource SchemaURL: https://...
    Resource attributes:
         -> service.name: Str(bridge)
    ScopeLogs #0
    ScopeLogs SchemaURL:
    InstrumentationScope my.scope 1.2
    InstrumentationScope attributes:
         -> k: Str(v)
    LogRecord #0
    ObservedTimestamp: 1700000001000000000
    Timestamp: 1700000000123456789
    SeverityText: ERROR
    SeverityNumber: SEVERITY_NUMBER_ERROR(17)
    EventName: daily.call.ended
    Body: Str(hello)
    Attributes:
         -> n: Int(42)
         -> arr: Slice(Int(1), Str(x))
         -> kv: Map(inner:Str(v), d:Double(1))
         -> raw: Bytes([1, 2])
         -> none: Empty
        Trace ID       : 000102030405060708090a0b0c0d0e0f
        Span ID        : 0001020304050607
    Flags: 1

Sections with nothing in them are left out (no "Resource attributes:", "InstrumentationScope",
"EventName:" or "Attributes:" line when empty). Not printed at all: `dropped_attributes_count`
(of records, resources and scopes). Strings are printed raw, unquoted and unescaped, so a
multi-line string continues on the next lines, and strings nested in Slice/Map values that
contain ", " or ")" are ambiguous: the parser backtracks to the first reading that consumes the
whole value. A string containing a line that itself looks like one of the lines above (say
"\\nFlags: 0") cannot be told apart and will confuse the parser. Values it cannot parse are kept
as the raw text.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RotelCollector", "find_rotel_agent", "parse_debug_log_records", "parse_debug_value"]

# rotel's own log lines (text format, NO_COLOR): "2026-01-01T00:00:00.123Z  INFO Starting ...".
_ROTEL_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\s+(TRACE|DEBUG|INFO|WARN|ERROR)\b"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SEVERITY_NUMBER = re.compile(r"^\S*\((-?\d+)\)$")
_INT = re.compile(r"Int\((-?\d+)\)")
_DOUBLE = re.compile(r"Double\(([^()]*)\)")
_BOOL = re.compile(r"Bool\((true|false)\)")
_BYTES = re.compile(r"Bytes\(\[([\d, ]*)\]\)")


def find_rotel_agent() -> Path:
    """The `rotel-agent` binary shipped inside the `rotel` wheel."""
    try:
        agent = Path(str(importlib.resources.files("rotel") / "rotel-agent"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError("the `rotel` package is not installed (pip install rotel)") from exc
    if not agent.is_file():
        raise FileNotFoundError(f"no rotel-agent binary at {agent} (unsupported platform?)")
    if not os.access(agent, os.X_OK):
        raise PermissionError(f"{agent} is not executable")
    return agent


# -- value parsing ------------------------------------------------------------------------------


def _values(text: str, i: int) -> Iterator[tuple[object, int]]:
    """Every way to read one value at text[i:], as (value, end index), shortest strings first."""
    if text.startswith("Empty", i):
        yield None, i + 5
    elif text.startswith("Str(", i):
        # Unescaped: any later ")" may be the closing one; let the caller's context decide.
        j = text.find(")", i + 4)
        while j != -1:
            yield text[i + 4 : j], j + 1
            j = text.find(")", j + 1)
    elif match := _INT.match(text, i):
        yield int(match.group(1)), match.end()
    elif match := _DOUBLE.match(text, i):
        with contextlib.suppress(ValueError):
            yield float(match.group(1)), match.end()
    elif match := _BOOL.match(text, i):
        yield match.group(1) == "true", match.end()
    elif match := _BYTES.match(text, i):
        digits = match.group(1).replace(",", " ").split()
        yield bytes(int(d) for d in digits), match.end()
    elif text.startswith("Slice(", i):
        yield from _slice_items(text, i + 6, [])
    elif text.startswith("Map(", i):
        yield from _map_items(text, i + 4, {})


def _slice_items(text: str, i: int, items: list[object]) -> Iterator[tuple[object, int]]:
    if not items and text.startswith(")", i):
        yield [], i + 1
        return
    for value, j in _values(text, i):
        if text.startswith(")", j):
            yield [*items, value], j + 1
        if text.startswith(", ", j):
            yield from _slice_items(text, j + 2, [*items, value])


def _map_items(text: str, i: int, items: dict[str, object]) -> Iterator[tuple[object, int]]:
    if not items and text.startswith(")", i):
        yield {}, i + 1
        return
    colon = text.find(":", i)
    while colon != -1:  # keys are unescaped too: try every ":"
        key = text[i:colon]
        for value, j in _values(text, colon + 1):
            entry = {**items, key: value}
            if text.startswith(")", j):
                yield entry, j + 1
            if text.startswith(", ", j):
                yield from _map_items(text, j + 2, entry)
        colon = text.find(":", colon + 1)


def parse_debug_value(text: str) -> object:
    """One value as rotel prints it ("Str(x)", "Int(1)", "Map(a:Bool(true))", ...) as a Python
    value (str, int, float, bool, bytes, list, dict, None for Empty). Raises ValueError when the
    text is not such a value."""
    if text.startswith("Str(") and text.endswith(")"):
        return text[4:-1]  # at top level the last ")" is the closing one, whatever is inside
    for value, end in _values(text, 0):
        if end == len(text):
            return value
    raise ValueError(f"not a rotel debug value: {text!r}")


def _parse_attribute(text: str) -> tuple[str, object]:
    """ "key: Value" (the text after "     -> "); keys may contain ": " themselves."""
    sep = text.find(": ")
    while sep != -1:
        with contextlib.suppress(ValueError):
            return text[:sep], parse_debug_value(text[sep + 2 :])
        sep = text.find(": ", sep + 1)
    key, _, raw = text.partition(": ")
    return key, raw


def _tolerant_value(text: str) -> object:
    try:
        return parse_debug_value(text)
    except ValueError:
        return text


# -- record parsing -----------------------------------------------------------------------------

# "Name: value" lines of a record; rotel may or may not leave a space after an empty value.
_RECORD_FIELD = re.compile(
    r"^(?:(?P<name>ObservedTimestamp|Timestamp|SeverityText|SeverityNumber|EventName|Flags)"
    r"|\s+(?P<id>Trace ID|Span ID)\s*):\s?(?P<value>.*)$"
)
_FIELD_KEYS: dict[str, str] = {
    "ObservedTimestamp": "observed_time_unix_nano",
    "Timestamp": "time_unix_nano",
    "SeverityText": "severity_text",
    "SeverityNumber": "severity_number",
    "EventName": "event_name",
    "Flags": "flags",
    "Trace ID": "trace_id",
    "Span ID": "span_id",
}


@dataclass
class _Scope:
    name: str = ""
    version: str = ""
    schema_url: str = ""
    attributes: dict[str, object] = field(default_factory=dict)


def _new_record(
    resource: dict[str, object], resource_schema_url: str, scope: _Scope
) -> dict[str, object]:
    return {
        "resource": dict(resource),
        "resource_schema_url": resource_schema_url,
        "scope_name": scope.name,
        "scope_version": scope.version,
        "scope_attributes": dict(scope.attributes),
        "scope_schema_url": scope.schema_url,
        "time_unix_nano": 0,
        "observed_time_unix_nano": 0,
        "severity_number": 0,
        "severity_text": "",
        "event_name": "",
        "body": None,
        "attributes": {},
        "trace_id": b"",
        "span_id": b"",
        "flags": 0,
    }


def _convert(key: str, raw: str) -> object:
    if key in ("time_unix_nano", "observed_time_unix_nano", "flags"):
        return int(raw)
    if key == "severity_number":
        # "SEVERITY_NUMBER_ERROR(17)"; keep the name too, it is what rotel shows
        match = _SEVERITY_NUMBER.match(raw)
        return int(match.group(1)) if match else raw
    if key in ("trace_id", "span_id"):
        return bytes.fromhex(raw)
    return raw


def parse_debug_log_records(output: str) -> list[dict[str, object]]:
    """The log records in rotel's `--debug-log logs --debug-log-verbosity detailed` output.

    One dict per record with the keys: resource (dict), resource_schema_url, scope_name,
    scope_version, scope_attributes (dict), scope_schema_url, time_unix_nano,
    observed_time_unix_nano, severity_number (int), severity_text, event_name ("" when rotel
    omits it, i.e. when empty), body (decoded like the attribute values), attributes (dict),
    trace_id and span_id (bytes, b"" when unset), flags (int) -- the same names and Python types
    as `otlp_receiver.ReceivedLog`. A record still being written (no "Flags:" line yet) at the
    end of the output is left out.
    """
    records: list[dict[str, object]] = []
    resource: dict[str, object] = {}
    resource_schema_url = ""
    scope = _Scope()
    record: dict[str, object] | None = None
    record_complete = False
    # Where "     -> k: v" lines go, and the value being collected (values may span lines).
    attributes_target: dict[str, object] | None = None
    pending: tuple[str, dict[str, object] | None, list[str]] | None = None

    def flush() -> None:
        nonlocal pending
        if pending is None:
            return
        kind, target, lines = pending
        pending = None
        text = "\n".join(lines)
        if kind == "attribute" and target is not None:
            key, value = _parse_attribute(text)
            target[key] = value
        elif kind == "body" and record is not None:
            record["body"] = _tolerant_value(text)

    def finish_record() -> None:
        nonlocal record, record_complete
        flush()
        if record is not None:
            records.append(record)
        record, record_complete = None, False

    in_logs = False  # with --debug-log metrics/traces too, their sections come in between
    for raw_line in output.splitlines():
        line = _ANSI.sub("", raw_line)
        if _ROTEL_LOG_LINE.match(line):
            continue
        if line.startswith(("ResourceMetrics #", "ResourceSpans #")):
            finish_record()
            in_logs, attributes_target = False, None
        elif line.startswith("ResourceLog #"):
            finish_record()
            resource, resource_schema_url, scope = {}, "", _Scope()
            in_logs, attributes_target = True, None
        elif not in_logs:
            continue
        elif line.startswith("Resource SchemaURL:"):
            flush()
            resource_schema_url = line.partition(":")[2].strip()
        elif line == "Resource attributes:":
            flush()
            attributes_target = resource
        elif line.startswith("ScopeLogs #"):
            finish_record()
            scope = _Scope()
            attributes_target = None
        elif line.startswith("ScopeLogs SchemaURL:"):
            flush()
            scope.schema_url = line.partition(":")[2].strip()
        elif line == "InstrumentationScope attributes:":
            flush()
            attributes_target = scope.attributes
        elif line.startswith("InstrumentationScope "):
            flush()
            # "InstrumentationScope <name> <version>"; names have no spaces in practice.
            name, _, version = line[len("InstrumentationScope ") :].rpartition(" ")
            scope.name, scope.version = name, version
        elif line.startswith("LogRecord #"):
            finish_record()
            record = _new_record(resource, resource_schema_url, scope)
            attributes_target = None
        elif record is not None and line == "Attributes:":
            flush()
            attributes_target = record["attributes"]  # type: ignore[assignment]
        elif record is not None and line.startswith("Body: "):
            flush()
            pending = ("body", None, [line[len("Body: ") :]])
        elif line.startswith("     -> ") and attributes_target is not None:
            flush()
            pending = ("attribute", attributes_target, [line[len("     -> ") :]])
        elif record is not None and (match := _RECORD_FIELD.match(line)):
            flush()
            key = _FIELD_KEYS[match.group("name") or match.group("id")]
            with contextlib.suppress(ValueError):
                record[key] = _convert(key, match.group("value").strip())
            if key == "flags":  # the last line rotel prints for a record
                record_complete = True
        elif pending is not None:
            pending[2].append(line)  # the next line of a multi-line string
    flush()
    if record is not None and record_complete:
        records.append(record)
    return records


# -- the process ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RotelCollector:
    """rotel-agent as a subprocess on two free loopback ports; a context manager.

    `debug_log` is what rotel prints: "logs", "metrics", "traces" or several joined with ","
    (only logs are parsed). `extra_args` are appended to `rotel-agent start`. The process is
    killed at exit and, by a watchdog timer, after `max_seconds`. Its stdout/stderr go to a file
    in a private temporary directory (also holding its pid and log files, so parallel instances
    do not collide on rotel's /tmp/rotel-agent.* defaults).
    """

    def __init__(
        self,
        *,
        max_seconds: float = 600,
        debug_log: str = "logs",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self._max_seconds = max_seconds
        self._debug_log = [part.strip() for part in debug_log.split(",") if part.strip()]
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._tmpdir: Path | None = None
        self._output_path: Path | None = None
        self._output_file: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: threading.Timer | None = None
        self._grpc_port = 0
        self._http_port = 0
        self._final_output = ""

    @property
    def grpc_endpoint(self) -> str:
        self._require_started()
        return f"http://127.0.0.1:{self._grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL; rotel serves /v1/logs, /v1/metrics and /v1/traces under it."""
        self._require_started()
        return f"http://127.0.0.1:{self._http_port}"

    @property
    def pid(self) -> int:
        self._require_started()
        assert self._process is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> RotelCollector:
        if self._process is not None:
            raise RuntimeError("RotelCollector.start() called twice")
        agent = find_rotel_agent()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="rotel-"))
        self._output_path = self._tmpdir / "output.log"
        # Another process may take a port between our probe and rotel's bind; rotel then exits
        # at once ("Address already in use") and we try a fresh pair.
        for attempt in range(3):
            try:
                self._launch(agent)
                break
            except RuntimeError:
                retry = attempt < 2 and "address already in use" in self.output().lower()
                self._kill()
                if not retry:
                    self.stop()
                    raise
        self._watchdog = threading.Timer(self._max_seconds, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _ready(self) -> bool:
        return _accepts(self._grpc_port) and _accepts(self._http_port)

    def _launch(self, agent: Path) -> None:
        assert self._tmpdir is not None
        assert self._output_path is not None
        self._grpc_port, self._http_port = _free_port(), _free_port()
        while self._http_port == self._grpc_port:
            self._http_port = _free_port()
        command = [
            str(agent),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self._grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self._http_port}",
            "--exporter",
            "blackhole",
            # Only used with --daemon, but the defaults are shared /tmp paths: keep ours private.
            "--pid-file",
            str(self._tmpdir / "rotel.pid"),
            "--log-file",
            str(self._tmpdir / "rotel.log"),
            "--debug-log-verbosity",
            "detailed",
        ]
        for kind in self._debug_log:
            command += ["--debug-log", kind]
        command += self._extra_args
        # ROTEL_* variables would silently change the configuration (every flag has one).
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env["NO_COLOR"] = "1"  # rotel colours its own log lines even when not on a terminal
        if self._output_file is not None:
            self._output_file.close()
        self._output_file = open(self._output_path, "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self._tmpdir,
            start_new_session=True,  # a Ctrl-C meant for pytest is not rotel's business
        )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"rotel-agent exited with {self._process.returncode} while starting:\n"
                    + self._tail()
                )
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"rotel-agent did not accept connections on 127.0.0.1:{self._grpc_port} and "
            f":{self._http_port} within {self._startup_timeout} s:\n" + self._tail()
        )

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def _kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        # SIGTERM lets rotel flush; it exits within milliseconds normally.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        """Kill rotel and remove its temporary directory (output() stays readable until then)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._kill()
        if self._output_file is not None:
            self._output_file.close()
            self._output_file = None
        if self._tmpdir is not None:
            # Keep the last output for post-mortems after stop().
            self._final_output = self.output()
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> RotelCollector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def output(self) -> str:
        """Everything rotel printed so far (stdout and stderr interleaved)."""
        if self._tmpdir is None or self._output_path is None:
            return self._final_output
        try:
            return self._output_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def parsed_log_records(self) -> list[dict[str, object]]:
        """The log records printed so far; see `parse_debug_log_records` for the dict keys."""
        return parse_debug_log_records(self.output())

    def wait_for_records(self, n: int, timeout: float) -> list[dict[str, object]]:
        """Poll the output until at least `n` log records are parsed; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.parsed_log_records()
            if len(records) >= n:
                return records
            if self.returncode is not None:
                raise RuntimeError(
                    f"rotel-agent exited ({self.returncode}) with {len(records)} of {n} records:\n"
                    + self._tail()
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"rotel printed {len(records)} of {n} log records within {timeout} s"
                )
            time.sleep(0.05)

    def _require_started(self) -> None:
        if self._process is None:
            raise RuntimeError("RotelCollector is not started")
