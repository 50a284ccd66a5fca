"""Configuration: the YAML contract (README.md, "Configuration"), its model and its loading.

Loading is a small pipeline, each step kept apart so that every problem can be reported with
the YAML path a user has to fix:

1. ``yaml`` (a ``SafeLoader`` that also refuses duplicate keys) -> plain tree;
2. ``${VAR}`` expansion on the tree's string values (never on the raw text, so an environment
   value cannot inject YAML structure);
3. a pre-pass that reads ``api_key_file``, resolves relative paths against the config file's
   directory and builds each domain's *effective* export section (``OTEL_EXPORTER_OTLP_*``
   environment < global ``export`` < the domain's ``export``);
4. pydantic validation; its errors are rewritten into ``path: message`` lines.

A secret (an API key, an export header value) is never echoed: the messages below are our own
and never quote the input, pydantic is told to hide inputs, and as a last line of defence every
known secret string is scrubbed from the final error text.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from daily_otel_bridge.config.dsn import password_of, redact_url
from daily_otel_bridge.core.secrets import MASK as _MASK
from daily_otel_bridge.core.secrets import scrub

__all__ = [
    "DEFAULT_SEVERITY_MAP",
    "ConfigError",
    "DomainSettings",
    "ExportSettings",
    "HealthSettings",
    "SelfTelemetrySettings",
    "Settings",
    "SeverityName",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_settings",
    "render_effective",
]

SeverityName = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
LogLevel = Literal["ERROR", "INFO", "DEBUG"]
ExportProtocol = Literal["grpc", "http/protobuf", "console"]

DEFAULT_SEVERITY_MAP: Mapping[int, SeverityName] = {0: "ERROR", 1: "INFO", 2: "DEBUG"}
DEFAULT_STATE_PATH = Path("/var/lib/daily-otel-bridge/state.db")
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_API_URL = "https://api.daily.co/v1"
# Daily documents 20 requests/s per domain for the REST API; asking for more only buys 429s.
MAX_REQUESTS_PER_SECOND = 20.0

# An API key file bigger than this is certainly the wrong file; do not slurp it.
_MAX_KEY_FILE_BYTES = 4096
# Secrets shorter than this are not scrubbed from error text: they would mangle ordinary words,
# and no real credential is that short.
_MIN_SCRUB_LEN = 8


class ConfigError(Exception):
    """An invalid configuration: one ``path: message`` line per problem.

    ``problems`` keeps the (path, message) pairs for callers that want to format them.
    """

    def __init__(self, problems: str | Iterable[tuple[str, str]]) -> None:
        if isinstance(problems, str):
            self.problems: list[tuple[str, str]] = [("", problems)]
        else:
            self.problems = list(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


# --------------------------------------------------------------------------------------------
# Durations


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DURATION_HINT = "(use 500ms, 15s, 2m, 1h or seconds)"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``500ms``, ``15s``, ``2m``, ``1h``, a plain number or a numeric string."""
    # bool is an int subclass; `poll_interval: yes` is a mistake, not 1 second.
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {_show(value)} {_DURATION_HINT}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("-") and _DURATION_RE.match(stripped[1:]):
            raise ValueError(f"duration must not be negative: {_show(value)}")
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"invalid duration {_show(value)} {_DURATION_HINT}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {_show(value)} {_DURATION_HINT}")
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {_show(value)} {_DURATION_HINT}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration string that `parse_duration` reads back to the same value."""
    ms = seconds * 1000.0
    whole_ms = round(ms)
    if abs(ms - whole_ms) > 1e-6:
        # Sub-millisecond: plain decimal seconds (never exponent notation, which we don't parse).
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if whole_ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if whole_ms % size == 0:
            return f"{whole_ms // size}{unit}"
    return f"{whole_ms}ms"


# --------------------------------------------------------------------------------------------
# Field validators. Every error is a PydanticCustomError with our own wording and without the
# input value; `_message` below passes their text through unchanged.


def _fail(message: str) -> PydanticCustomError:
    # The message goes in the context, not the template, so braces in it are never interpreted.
    return PydanticCustomError("config", "{msg}", {"msg": message})


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _optional_duration(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _duration(value)


def _min_lease(value: float) -> float:
    # Renewals run every lease_duration / 3 with a safety margin: below a second, one slow
    # round trip would already lose the lease.
    if value < 1.0:
        raise _fail("must be at least 1s")
    return value


def _positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise _fail("must be greater than 0")
    return value


def _empty_to_none(value: Any) -> Any:
    # `key: ${VAR:-}` is the natural way to leave an optional setting unset from the environment.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _protocol(value: Any) -> Any:
    value = _lower(value)
    if value == "http/json":
        raise _fail("'http/json' is not supported, use http/protobuf")
    return value


def _log_level(value: Any) -> Any:
    value = _empty_to_none(value)
    return _upper(value)


def _severity_name(value: Any) -> Any:
    value = _upper(value)
    return "WARN" if value == "WARNING" else value


def _check_url(value: str) -> str:
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _fail("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(
            "must be a URL with an http:// or https:// scheme and a host "
            "(e.g. http://127.0.0.1:4317)"
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and in check-config output; headers are masked.
        raise _fail("must not contain credentials; send them as a header instead")
    # A trailing slash would make the exporter's appended "/v1/logs" a "//v1/logs".
    return url.rstrip("/")


def _check_optional_url(value: str | None) -> str | None:
    return None if value is None else _check_url(value)


def _split_listen(value: str) -> tuple[str, int]:
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError
    return host, int(port_text)


def _check_listen(value: str) -> str:
    try:
        _split_listen(value)
    except ValueError:
        raise _fail(
            "must be host:port with a port from 0 to 65535 (e.g. 127.0.0.1:9464 or [::1]:9464)"
        ) from None
    return value.strip()


_DOMAIN_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _check_domain_name(value: str) -> str:
    if not _DOMAIN_NAME_RE.match(value):
        raise _fail("must be a Daily domain name (letters, digits, '-', '_' and '.')")
    return value


def _strip_secret(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


_CONTROL_OR_SPACE_RE = re.compile(r"[\s\x00-\x1f\x7f]")


def _check_api_key(value: SecretStr) -> SecretStr:
    key = value.get_secret_value()
    if not key:
        raise _fail("must not be empty")
    if _CONTROL_OR_SPACE_RE.search(key):
        # It goes into an Authorization header: a newline there is a header injection.
        raise _fail("must not contain whitespace or control characters")
    return value


# gRPC metadata keys allow only these (lower-case) characters; HTTP field names are a superset.
_HEADER_NAME_RE = re.compile(r"^[a-z0-9_.-]+$")


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME_RE.match(value):
        raise _fail("header names may use only letters, digits, '-', '_' and '.'")
    return value


def _header_value_in(value: Any) -> Any:
    # `X-Scope-OrgID: 1` is an int to YAML and a string to everyone else.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _strip_secret(value)


_HEADER_VALUE_RE = re.compile(r"^[\x20-\x7e]*$")


def _check_header_value(value: SecretStr) -> SecretStr:
    if not _HEADER_VALUE_RE.match(value.get_secret_value()):
        raise _fail("header values must be printable ASCII without control characters")
    return value


def _attribute_value(value: Any) -> Any:
    # Checked up front so that a bad value gives one clear error instead of one per union member.
    if not isinstance(value, str | int | float | bool):
        raise _fail("must be a string, a number or a boolean")
    return value


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise _fail("must not be empty")
    return value


def _check_rps(value: float) -> float:
    if not 0 < value <= MAX_REQUESTS_PER_SECOND:
        raise _fail(
            f"must be greater than 0 and at most {MAX_REQUESTS_PER_SECOND:g} "
            "(Daily's documented API rate limit)"
        )
    return value


def _check_page_size(value: int) -> int:
    # At least 2: every request after the first re-reads one record (the anchor), so a page
    # of 1 could never bring anything new.
    if not 2 <= value <= 1000:
        raise _fail("must be from 2 to 1000")
    return value


def _merge_severity(value: dict[int, SeverityName]) -> dict[int, SeverityName]:
    # A user remapping one level should not lose the defaults of the others.
    return {**DEFAULT_SEVERITY_MAP, **value}


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_duration), AfterValidator(_positive)]
OptionalPositiveDuration = Annotated[
    float | None, BeforeValidator(_optional_duration), AfterValidator(_positive)
]
OptionalPath = Annotated[Path | None, BeforeValidator(_empty_to_none)]
OptionalUrl = Annotated[
    str | None, BeforeValidator(_empty_to_none), AfterValidator(_check_optional_url)
]
Url = Annotated[str, AfterValidator(_check_url)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
HeaderName = Annotated[str, BeforeValidator(_lower), AfterValidator(_check_header_name)]
HeaderValue = Annotated[
    SecretStr, BeforeValidator(_header_value_in), AfterValidator(_check_header_value)
]
AttributeValue = Annotated[str | int | float | bool, BeforeValidator(_attribute_value)]
SeverityValue = Annotated[SeverityName, BeforeValidator(_severity_name)]


# --------------------------------------------------------------------------------------------
# The model


# The round trip to Daily that the default `max_concurrent_reads` keeps the budget busy at.
READ_LATENCY_ALLOWANCE = 0.5


class _Model(BaseModel):
    # Frozen: settings are shared by every task of the daemon and must not drift at run time.
    # hide_input_in_errors: a ValidationError printed by someone else must not leak a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _default_endpoint_for(protocol: object) -> str:
    return DEFAULT_HTTP_ENDPOINT if _lower(protocol) == "http/protobuf" else DEFAULT_GRPC_ENDPOINT


class ExportSettings(_Model):
    """Where and how records are exported. Built directly, it applies no environment fallback:
    `parse_settings` does that."""

    protocol: Annotated[ExportProtocol, BeforeValidator(_protocol)] = "grpc"
    # grpc: the target URL; http/protobuf: the base URL, the exporter appends /v1/logs.
    endpoint: Url = DEFAULT_GRPC_ENDPOINT
    logs_endpoint: OptionalUrl = None  # full URL, used as is
    metrics_endpoint: OptionalUrl = None  # full URL, used as is
    # Names are lower-cased: gRPC metadata requires it and it makes per-key overrides exact.
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    compression: Annotated[Literal["gzip", "none"], BeforeValidator(_lower)] = "gzip"
    timeout: PositiveDuration = 10.0
    insecure: Annotated[bool | None, BeforeValidator(_empty_to_none)] = None
    certificate_file: OptionalPath = None
    client_certificate_file: OptionalPath = None
    client_key_file: OptionalPath = None
    batch_size: Annotated[int, Field(ge=1)] = 2000
    # A batch also leaves this long after its first record, like the SDK's schedule delay,
    # so that a trickle of records is not held back until `batch_size` fills.
    batch_timeout: PositiveDuration = 1.0
    # Export requests of one domain in flight at once, overlapping with the reads.
    max_inflight_exports: Annotated[int, Field(ge=1, le=64)] = 2
    max_retry_time: Duration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _fill_endpoint(cls, data: Any) -> Any:
        # The default port depends on the protocol, so it cannot be a static field default.
        if isinstance(data, dict) and _empty_to_none(data.get("endpoint")) is None:
            data = {**data, "endpoint": _default_endpoint_for(data.get("protocol", "grpc"))}
        return data

    @model_validator(mode="after")
    def _client_pair(self) -> ExportSettings:
        if (self.client_certificate_file is None) != (self.client_key_file is None):
            raise _fail("client_certificate_file and client_key_file must be set together")
        return self

    def header_items(self) -> list[tuple[str, str]]:
        """Header names and revealed values, for the transport only (never log these)."""
        return [(name, value.get_secret_value()) for name, value in self.headers.items()]


class HealthSettings(_Model):
    enabled: bool = True
    listen: Annotated[str, AfterValidator(_check_listen)] = "127.0.0.1:9464"
    staleness: OptionalPositiveDuration = None  # None: 3 x poll_interval of each domain

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class SelfTelemetrySettings(_Model):
    otlp: bool = False
    interval: PositiveDuration = 60.0


class DomainSettings(_Model):
    name: Annotated[str, AfterValidator(_check_domain_name)]
    api_key: Annotated[SecretStr, BeforeValidator(_strip_secret), AfterValidator(_check_api_key)]
    # Where `api_key` was read from (already read by `parse_settings`); informational.
    api_key_file: Path | None = None
    api_url: Url = DEFAULT_API_URL
    ca_file: OptionalPath = None
    enabled: bool = True
    poll_interval: PositiveDuration = 15.0
    initial_lookback: Duration = 3600.0
    lookback: Duration = 120.0
    settle_lag: Duration = 5.0
    session_grace: Duration = 600.0
    max_quiet_interval: PositiveDuration = 60.0
    log_level: Annotated[LogLevel | None, BeforeValidator(_log_level)] = None
    include_logs: bool = True
    include_metrics: bool = False
    metrics_as_logs: bool = False
    rooms: list[NonEmptyStr] = Field(default_factory=list)
    requests_per_second: Annotated[float, AfterValidator(_check_rps)] = 5.0
    page_size: Annotated[int, AfterValidator(_check_page_size)] = 500
    request_timeout: PositiveDuration = 30.0
    # Session reads in flight at once; None: derived from requests_per_second
    # (`concurrent_reads`).
    max_concurrent_reads: Annotated[int | None, Field(ge=1, le=256)] = None
    severity_map: Annotated[dict[int, SeverityValue], AfterValidator(_merge_severity)] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_MAP)
    )
    resource_attributes: dict[NonEmptyStr, AttributeValue] = Field(default_factory=dict)
    # The effective export of this domain (global section with the domain's keys laid over it).
    export: ExportSettings = Field(default_factory=ExportSettings)

    @property
    def concurrent_reads(self) -> int:
        """`max_concurrent_reads`, or enough reads to spend the request budget when Daily
        answers in up to half a second (Little's law: requests in flight = rate x latency),
        at least 2 and at most 32."""
        if self.max_concurrent_reads is not None:
            return self.max_concurrent_reads
        return max(2, min(32, math.ceil(self.requests_per_second * READ_LATENCY_ALLOWANCE)))


_REPLICA_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def _check_state_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    url = value.get_secret_value().strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _fail("is not a valid URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise _fail(
            "must be a postgresql:// URL (e.g. postgresql://bridge@db.internal:5432/bridge)"
        )
    if _CONTROL_OR_SPACE_RE.search(url):
        raise _fail("must not contain whitespace or control characters")
    return SecretStr(url)


def _check_replica_id(value: str | None) -> str | None:
    if value is not None and not _REPLICA_ID_RE.match(value):
        # It goes into a User-Agent header and the lease table: keep it plain.
        raise _fail("must be 1 to 128 letters, digits, '-', '_', '.', ':' or '@'")
    return value


def default_replica_id() -> str:
    """Host name + pid: unique per process on a host, readable in `state show`."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:100] or "host"
    return f"{host}-{os.getpid()}"


class Settings(_Model):
    state_path: Annotated[Path, BeforeValidator(_non_empty_path)] = DEFAULT_STATE_PATH
    # Several replicas share one PostgreSQL instead of a SQLite file (DESIGN.md, "Several
    # replicas"). A SecretStr: the URL may carry a password (from ${VAR}).
    state_url: Annotated[
        SecretStr | None, BeforeValidator(_empty_to_none), AfterValidator(_check_state_url)
    ] = None
    lease_duration: Annotated[float, BeforeValidator(_duration), AfterValidator(_min_lease)] = 30.0
    replica_id: Annotated[
        str | None, BeforeValidator(_empty_to_none), AfterValidator(_check_replica_id)
    ] = None
    health: HealthSettings = Field(default_factory=HealthSettings)
    self_telemetry: SelfTelemetrySettings = Field(default_factory=SelfTelemetrySettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    # Uniqueness of names is checked by `parse_settings`, where it can name both entries.
    domains: Annotated[list[DomainSettings], Field(min_length=1)]
    config_path: Path | None = None  # not a YAML key: set by `load_settings`

    @model_validator(mode="after")
    def _one_state_store(self) -> Settings:
        if self.state_url is not None and "state_path" in self.model_fields_set:
            raise PydanticCustomError(
                "config", "{msg}", {"msg": "set state_path or state_url, not both"}
            )
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.state_url is None else "postgresql"

    def effective_replica_id(self) -> str:
        """`replica_id`, or host name + pid of this process."""
        return self.replica_id or default_replica_id()


# --------------------------------------------------------------------------------------------
# Problem collection


def _join(path: str, part: object) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


class _Problems:
    """Collects (path, message) pairs; a problem under an already reported path is dropped, so
    one mistake is reported once even when several later steps trip over it."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.secrets: set[str] = set()
        self.silenced: set[str] = set()

    def covered(self, path: str) -> bool:
        return any(
            path == seen or path.startswith((seen + ".", seen + "["))
            for seen in [*(p for p, _ in self.items), *self.silenced]
            if seen
        )

    def silence(self, path: str) -> None:
        """Drop later problems under `path`: their cause is already reported elsewhere."""
        self.silenced.add(path)

    def add(self, path: str, message: str) -> None:
        if not self.covered(path):
            self.items.append((path, message))

    def secret(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= _MIN_SCRUB_LEN:
            self.secrets.add(value)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        raise ConfigError([(scrub(p, self.secrets), scrub(m, self.secrets)) for p, m in self.items])


def _loc_path(prefix: str, loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """`prefix` joined with a pydantic loc; also says whether the error is about a dict key."""
    is_key = bool(loc) and loc[-1] == "[key]"
    path = prefix
    for part in loc[:-1] if is_key else loc:
        path = _join(path, part)
    return path, is_key


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if (
        get_origin(annotation) is None
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    ):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        found = _find_model(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _fmt_number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(error: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        if model is not None and isinstance(loc[-1], str):
            names = [n for n in model.model_fields if n != "config_path"]
            close = difflib.get_close_matches(loc[-1], names, n=1)
            if close:
                return f"unknown key (did you mean {close[0]}?)"
        return "unknown key"
    simple = {
        "missing": "missing (required)",
        "string_type": "must be a string",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "path_type": "must be a file path",
        "string_too_short": "must not be empty",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    bounds = {
        "greater_than": ("gt", "greater than"),
        "greater_than_equal": ("ge", "at least"),
        "less_than": ("lt", "less than"),
        "less_than_equal": ("le", "at most"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {_fmt_number(ctx.get(key))}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "value_error":
        return str(ctx.get("error", "invalid value"))
    # Our own PydanticCustomErrors, and any other pydantic message: pydantic keeps the input out
    # of `msg` (it lives in `input`, which we never read).
    return str(error.get("msg", "invalid value"))


def _pydantic_problems(
    exc: ValidationError, root: type[BaseModel]
) -> list[tuple[tuple[int | str, ...], str]]:
    out: list[tuple[tuple[int | str, ...], str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        message = _message(error, root)
        if loc and loc[-1] == "[key]":
            message = f"key {message}"
        out.append((loc, message))
    return out


# --------------------------------------------------------------------------------------------
# Step 1: YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one, and two
    `export:` sections or two `api_key:` lines are always a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the base class report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # Never str(exc): PyYAML quotes the offending line, which may hold a secret.
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise ConfigError([(source, f"invalid YAML{where}: {exc.problem}")]) from None
    except yaml.YAMLError:
        raise ConfigError([(source, "invalid YAML")]) from None


# --------------------------------------------------------------------------------------------
# Step 2: ${VAR} expansion

_VAR_RE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{")


def _expand_str(value: str, environ: Mapping[str, str], path: str, problems: _Problems) -> str:
    unset: list[str] = []
    malformed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal malformed
        matched = match.group(0)
        if matched == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            malformed = True
            return matched
        found = environ.get(name)
        default = match.group("default")
        if default is not None:
            # Shell semantics of ":-": the default also replaces an empty value.
            return found if found else default
        if found is None:
            unset.append(name)
            return matched
        return found

    expanded = _VAR_RE.sub(replace, value)
    if unset:
        names = ", ".join(dict.fromkeys(unset))
        noun = "variable" if len(unset) == 1 else "variables"
        problems.add(path, f"environment {noun} {names} not set")
    elif malformed:
        problems.add(
            path,
            "malformed ${...}: write ${NAME} or ${NAME:-default}, or $${ for a literal ${",
        )
    return expanded


def _expand(node: Any, environ: Mapping[str, str], path: str, problems: _Problems) -> Any:
    if isinstance(node, str):
        return _expand_str(node, environ, path, problems)
    if isinstance(node, dict):
        return {k: _expand(v, environ, _join(path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, environ, _join(path, i), problems) for i, v in enumerate(node)]
    return node


# --------------------------------------------------------------------------------------------
# Step 3: the pre-pass

_ENV = "OTEL_EXPORTER_OTLP_"
# field -> environment variables, most specific first.
_ENV_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("protocol", (_ENV + "LOGS_PROTOCOL", _ENV + "PROTOCOL")),
    ("endpoint", (_ENV + "ENDPOINT",)),
    ("logs_endpoint", (_ENV + "LOGS_ENDPOINT",)),
    ("metrics_endpoint", (_ENV + "METRICS_ENDPOINT",)),
    ("compression", (_ENV + "LOGS_COMPRESSION", _ENV + "COMPRESSION")),
    ("certificate_file", (_ENV + "LOGS_CERTIFICATE", _ENV + "CERTIFICATE")),
    (
        "client_certificate_file",
        (_ENV + "LOGS_CLIENT_CERTIFICATE", _ENV + "CLIENT_CERTIFICATE"),
    ),
    ("client_key_file", (_ENV + "LOGS_CLIENT_KEY", _ENV + "CLIENT_KEY")),
    ("insecure", (_ENV + "LOGS_INSECURE", _ENV + "INSECURE")),
)
_ENV_TIMEOUT = (_ENV + "LOGS_TIMEOUT", _ENV + "TIMEOUT")
# General headers first, so that the logs-specific ones win per key.
_ENV_HEADERS = (_ENV + "HEADERS", _ENV + "LOGS_HEADERS")

_EXPORT_PATH_KEYS = ("certificate_file", "client_certificate_file", "client_key_file")

# Where a value of an export layer came from when not from YAML: loc prefix -> env var name.
_Provenance = dict[tuple[str, ...], str]


def _env_value(environ: Mapping[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name)
        # The OTel spec treats an empty variable as unset.
        if value is not None and value.strip():
            return name, value.strip()
    return None


def _parse_env_headers(value: str, name: str, problems: _Problems) -> dict[str, str]:
    headers: dict[str, str] = {}
    for index, item in enumerate(value.split(","), start=1):
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            # Never quote the item: its value is probably a credential.
            problems.add(name, f"item {index} is not key=value")
            continue
        headers[key.strip().lower()] = unquote(raw.strip())
    return headers


def _env_export_layer(
    environ: Mapping[str, str], problems: _Problems
) -> tuple[dict[str, Any], _Provenance]:
    layer: dict[str, Any] = {}
    provenance: _Provenance = {}
    for field, names in _ENV_FIELDS:
        found = _env_value(environ, names)
        if found is not None:
            layer[field], provenance[(field,)] = found[1], found[0]
    found = _env_value(environ, _ENV_TIMEOUT)
    if found is not None:
        try:
            millis = float(found[1])
        except ValueError:
            millis = math.nan
        if not math.isfinite(millis) or millis < 0:
            problems.add(found[0], "must be a number of milliseconds")
        else:
            layer["timeout"], provenance[("timeout",)] = millis / 1000.0, found[0]
    headers: dict[str, str] = {}
    for name in _ENV_HEADERS:
        value = environ.get(name)
        if value and value.strip():
            for key, header_value in _parse_env_headers(value, name, problems).items():
                problems.secret(header_value)
                headers[key] = header_value
                provenance[("headers", key)] = name
    if headers:
        layer["headers"] = headers
    return layer, provenance


def _resolve(value: Any, base_dir: Path | None) -> Any:
    if base_dir is None or not isinstance(value, str) or not value.strip():
        return value
    path = Path(value)
    return value if path.is_absolute() else str(base_dir / path)


def _overlay(
    base: Mapping[str, Any], provenance: _Provenance, over: Mapping[Any, Any]
) -> tuple[dict[str, Any], _Provenance, set[tuple[Any, ...]]]:
    """`over` laid over `base` key by key; `headers` merged per (lower-cased) name, a null
    header value removing an inherited header. Returns the layer, what of it still came from
    the environment, and which locs `over` provided."""
    layer = dict(base)
    prov = dict(provenance)
    provided: set[tuple[Any, ...]] = set()
    for key, value in over.items():
        if key == "headers" and isinstance(value, dict):
            inherited = layer.get("headers")
            headers = dict(inherited) if isinstance(inherited, dict) else {}
            for name, header_value in value.items():
                norm = name.strip().lower() if isinstance(name, str) else name
                prov.pop(("headers", norm), None)
                if header_value is None:
                    headers.pop(norm, None)
                else:
                    headers[norm] = header_value
                    provided.add(("headers", norm))
            layer["headers"] = headers
        elif key == "headers" and value is None:
            continue
        else:
            layer[key] = value
            prov.pop((key,), None)
            provided.add((key,))
    return layer, prov, provided


def _validate_export(
    layer: Mapping[str, Any],
    label: Callable[[tuple[int | str, ...]], str | None],
    problems: _Problems,
) -> ExportSettings | None:
    try:
        return ExportSettings.model_validate(dict(layer))
    except ValidationError as exc:
        for loc, message in _pydantic_problems(exc, ExportSettings):
            path = label(loc)
            if path is not None:
                problems.add(path, message)
        return None


def _export_mapping(value: Any, path: str, problems: _Problems) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, "must be a mapping")
        return {}
    return value


def _secrets_of_headers(section: Any, problems: _Problems) -> None:
    if isinstance(section, dict) and isinstance(section.get("headers"), dict):
        for value in section["headers"].values():
            problems.secret(value)


def _read_key_file(path: Path) -> str:
    """The API key in `path`; ValueError with a user-facing message (never the content)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):  # also keeps a FIFO from blocking start-up
        raise ValueError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            # fstat the opened file, not the name, so the check and the read see the same file.
            mode = os.fstat(handle.fileno()).st_mode
            if os.name == "posix" and mode & 0o077:
                raise ValueError(f"{path} is readable by other users; chmod 600 it")
            raw = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ValueError(f"{path} is too large to hold an API key")
    try:
        key = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not key:
        raise ValueError(f"{path} is empty")
    return key


def _take_api_key(
    domain: dict[Any, Any], path: str, base_dir: Path | None, problems: _Problems
) -> None:
    """Replace `api_key_file` by the key it holds (its resolved path stays as a record)."""
    has_key = domain.get("api_key") is not None
    has_file = domain.get("api_key_file") is not None
    if has_key and has_file:
        problems.add(f"{path}.api_key", "set api_key or api_key_file, not both")
        domain.pop("api_key_file")
    elif has_file:
        raw = domain["api_key_file"]
        if not isinstance(raw, str) or not raw.strip():
            problems.add(f"{path}.api_key_file", "must be a file path")
            problems.silence(f"{path}.api_key")
            return
        key_path = Path(_resolve(raw.strip(), base_dir))
        try:
            key = _read_key_file(key_path)
        except ValueError as exc:
            problems.add(f"{path}.api_key_file", str(exc))
            # Without the file there is no key: "api_key: missing" would only add noise.
            problems.silence(f"{path}.api_key")
            return
        problems.secret(key)
        domain["api_key"] = key
        domain["api_key_file"] = str(key_path)
    elif not has_key:
        problems.add(f"{path}.api_key", "missing; set api_key or api_key_file")
    else:
        problems.secret(domain["api_key"])


def _check_unique_names(domains: list[Any], problems: _Problems) -> None:
    first: dict[str, int] = {}
    for index, domain in enumerate(domains):
        name = domain.get("name") if isinstance(domain, dict) else None
        if not isinstance(name, str):
            continue
        # Daily domains are DNS labels: case does not make two different domains.
        key = name.strip().lower()
        if key in first:
            problems.add(
                f"domains[{index}].name", f"duplicate domain {name!r} (also domains[{first[key]}])"
            )
        else:
            first[key] = index


def parse_settings(
    data: object,
    environ: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
    *,
    secrets: bool = True,
) -> Settings:
    """Settings from an already-parsed YAML document. Raises ConfigError.

    Relative `state_path`, `api_key_file`, `ca_file` and certificate paths in the document
    resolve against `base_dir` (left relative when it is None); paths from OTEL_* variables stay
    as given, relative to the working directory like any environment path.

    `secrets=False` is for the `state` commands: they need the state store, not Daily or the
    backend, so domain API keys and every export section are neither read nor required
    (`DAILY_API_KEY` may be unset); each domain's `api_key` is then a placeholder.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    problems = _Problems()
    if data is None:
        raise ConfigError([(source, "empty configuration; at least one domain is required")])
    if not isinstance(data, dict):
        raise ConfigError([(source, "must be a mapping of settings")])
    if not secrets:
        data, env = _without_secrets(data, env)
    top: dict[Any, Any] = _expand(data, env, "", problems)
    if isinstance(top.get("state_url"), str):
        password = password_of(top["state_url"])
        problems.secret(password)
        problems.secret(unquote(password or ""))

    # Secrets first, so that every message produced below can be scrubbed of them.
    _secrets_of_headers(top.get("export"), problems)
    for domain in top.get("domains") or []:
        if isinstance(domain, dict):
            if isinstance(domain.get("api_key"), str):
                problems.secret(domain["api_key"])
            _secrets_of_headers(domain.get("export"), problems)

    if "config_path" in top:
        problems.add("config_path", "unknown key")
        del top["config_path"]
    for section in ("health", "self_telemetry"):
        if section in top and top[section] is None:  # every line of it commented out
            del top[section]
    if "state_path" in top:
        top["state_path"] = _resolve(top["state_path"], base_dir)

    env_layer, env_provenance = _env_export_layer(env, problems)
    global_yaml = _export_mapping(top.get("export"), "export", problems)
    global_yaml = {
        k: _resolve(v, base_dir) if k in _EXPORT_PATH_KEYS else v for k, v in global_yaml.items()
    }
    global_layer, global_prov, _ = _overlay(env_layer, env_provenance, global_yaml)

    def global_label(loc: tuple[int | str, ...]) -> str:
        # A bad value from an OTEL_* variable is reported under the variable's name.
        for size in (2, 1):
            if len(loc) >= size:
                var = global_prov.get(tuple(str(part) for part in loc[:size]))
                if var is not None:
                    return var
        return _loc_path("export", loc)[0]

    global_export = _validate_export(global_layer, global_label, problems)
    global_ok = global_export is not None
    # A placeholder keeps validation of the rest going, so all problems are reported at once.
    top["export"] = global_export or ExportSettings()

    domains = top.get("domains")
    if "domains" in top and not domains:
        problems.add("domains", "at least one domain is required")
    if isinstance(domains, list):
        _check_unique_names(domains, problems)
        effective: list[Any] = []
        for index, raw_domain in enumerate(domains):
            if not isinstance(raw_domain, dict):
                effective.append(raw_domain)
                continue
            domain = dict(raw_domain)
            path = f"domains[{index}]"
            _take_api_key(domain, path, base_dir, problems)
            if "ca_file" in domain:
                domain["ca_file"] = _resolve(domain["ca_file"], base_dir)
            for key in ("rooms", "resource_attributes", "severity_map"):
                if key in domain and domain[key] is None:
                    del domain[key]
            override = _export_mapping(domain.get("export"), f"{path}.export", problems)
            override = {
                k: _resolve(v, base_dir) if k in _EXPORT_PATH_KEYS else v
                for k, v in override.items()
            }
            layer, _, provided = _overlay(global_layer, global_prov, override)

            def domain_label(
                loc: tuple[int | str, ...],
                path: str = path,
                provided: set[tuple[Any, ...]] = provided,
            ) -> str | None:
                # An error in a value inherited from a broken global section is already
                # reported there; repeating it for every domain would only bury it.
                if loc[:2] not in provided and loc[:1] not in provided and not global_ok:
                    return None
                return _loc_path(f"{path}.export", loc)[0]

            domain_export = _validate_export(layer, domain_label, problems)
            domain["export"] = domain_export or top["export"]
            effective.append(domain)
        top["domains"] = effective

    try:
        settings = Settings.model_validate(top)
    except ValidationError as exc:
        for loc, message in _pydantic_problems(exc, Settings):
            problems.add(_loc_path("", loc)[0] or source, message)
        problems.raise_if_any()
        # Only reachable if every error was silenced; still never leak pydantic's text.
        raise ConfigError([(source, "invalid configuration")]) from None
    problems.raise_if_any()
    return settings


_NOT_LOADED = "not-loaded-state-command"


def _without_secrets(
    data: dict[Any, Any], environ: Mapping[str, str]
) -> tuple[dict[Any, Any], Mapping[str, str]]:
    top = {k: v for k, v in data.items() if k != "export"}
    domains = top.get("domains")
    if isinstance(domains, list):
        top["domains"] = [
            {
                **{k: v for k, v in d.items() if k not in ("api_key", "api_key_file", "export")},
                "api_key": _NOT_LOADED,
            }
            if isinstance(d, dict)
            else d
            for d in domains
        ]
    return top, {k: v for k, v in environ.items() if not k.startswith(_ENV)}


def load_settings(
    path: str | Path, environ: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Settings:
    """Read, expand and validate the YAML config file at `path`. Raises ConfigError.
    `secrets=False`: see `parse_settings`."""
    config_path = Path(path).absolute()
    source = str(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(source, "config file not found")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(source, "config file is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError([(source, f"cannot read config file: {exc.strerror}")]) from None
    data = _load_yaml(text, source)
    settings = parse_settings(
        data, environ, source=source, base_dir=config_path.parent, secrets=secrets
    )
    return settings.model_copy(update={"config_path": config_path})


# --------------------------------------------------------------------------------------------
# check-config output

_DURATION_FIELDS = frozenset(
    {
        "poll_interval",
        "initial_lookback",
        "lookback",
        "settle_lag",
        "session_grace",
        "max_quiet_interval",
        "request_timeout",
        "timeout",
        "max_retry_time",
        "staleness",
        "interval",
        "lease_duration",
    }
)


def _render(value: Any, field: str | None = None) -> Any:
    if field == "state_url" and isinstance(value, SecretStr):
        # Host and database help an operator; the password never shows.
        return redact_url(value.get_secret_value())
    if isinstance(value, SecretStr):
        return _MASK
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name in type(value).model_fields:
            if name == "config_path":
                continue
            out[name] = _render(getattr(value, name), name)
        if isinstance(value, DomainSettings):
            # Mirror the input: one of the two, never both.
            out.pop("api_key_file" if value.api_key_file is None else "api_key")
        if isinstance(value, Settings):
            # One state store is in use; showing the other's default would only mislead.
            out.pop("state_path" if value.state_url is not None else "state_url")
        return out
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if field in _DURATION_FIELDS and isinstance(value, float):
        return format_duration(value)
    return value


def render_effective(settings: Settings) -> str:
    """YAML of the effective configuration, every secret shown as ***."""
    origin = f" of {settings.config_path}" if settings.config_path is not None else ""
    origin = origin.replace("\n", "\\n")
    header = f"# effective configuration{origin}; secrets are shown as {_MASK}\n"
    body = yaml.safe_dump(
        _render(settings), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return header + body
