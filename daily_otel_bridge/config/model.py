"""The configuration model: every key of the YAML contract (README.md, "Configuration"), its
default and its check.

Field validators raise `PydanticCustomError`s with our own wording and never the input value;
`errors.pydantic_problems` passes their text through unchanged. Built directly (as tests do),
a model applies no environment fallback and reads no file: `loading.parse_settings` does both
before it validates.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from daily_otel_bridge.config.durations import parse_duration
from daily_otel_bridge.core.webhook_signature import decode_secret

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_SEVERITY_MAP",
    "DEFAULT_STATE_PATH",
    "MAX_REQUESTS_PER_SECOND",
    "READ_LATENCY_ALLOWANCE",
    "DomainSettings",
    "ExportProtocol",
    "ExportSettings",
    "HealthSettings",
    "LogLevel",
    "SelfTelemetrySettings",
    "Settings",
    "SeverityName",
    "WebhookSettings",
    "default_replica_id",
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


# --------------------------------------------------------------------------------------------
# Field validators. Every error is a PydanticCustomError with our own wording and without the
# input value; `errors.pydantic_problems` passes their text through unchanged.


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


def _check_webhook_secret(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    _check_api_key(value)
    try:
        decode_secret(value.get_secret_value())
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return value


def _check_optional_secret(value: SecretStr | None) -> SecretStr | None:
    return None if value is None else _check_api_key(value)


def _check_path_prefix(value: str) -> str:
    prefix = value.strip()
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
        raise _fail("must be a URL path like /webhooks (letters, digits, '.', '_', '~', '-')")
    return prefix


def _check_max_body(value: int) -> int:
    # Daily's events are a few KB; below 1 KiB even the smallest would be refused.
    if not 1024 <= value <= 16 * 1024 * 1024:
        raise _fail("must be from 1024 to 16777216 bytes")
    return value


def _check_stretch(value: float) -> float:
    if not 1.0 <= value <= 10.0:
        raise _fail("must be from 1 (never stretch) to 10")
    return value


def _check_basic_user(value: str | None) -> str | None:
    if value is not None and (not value or ":" in value or _CONTROL_OR_SPACE_RE.search(value)):
        # RFC 7617: the user-id cannot hold a colon; whitespace would be a typo.
        raise _fail("must be non-empty, without ':', whitespace or control characters")
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


DEFAULT_WEBHOOK_LISTEN = "127.0.0.1:8090"
DEFAULT_WEBHOOK_MAX_BODY = 1024 * 1024


class WebhookSettings(_Model):
    """The receiver of Daily's webhooks (`service/webhooks.py`). Off unless the section is
    there (`enabled: false` keeps it written but off)."""

    enabled: bool = True
    # Loopback by default, like health.listen: Daily reaches it through a reverse proxy or an
    # Ingress; 0.0.0.0:8090 in a container.
    listen: Annotated[str, AfterValidator(_check_listen)] = DEFAULT_WEBHOOK_LISTEN
    path_prefix: Annotated[str, AfterValidator(_check_path_prefix)] = "/webhooks"
    # How far X-Webhook-Timestamp may be from this host's clock, either way.
    timestamp_tolerance: PositiveDuration = 300.0
    # An event id seen this long ago is answered 200 and not stored again (Daily retries under
    # the same id for up to 15 minutes).
    dedupe_window: PositiveDuration = 3600.0
    max_body_bytes: Annotated[int, AfterValidator(_check_max_body)] = DEFAULT_WEBHOOK_MAX_BODY
    tls_cert_file: OptionalPath = None
    tls_key_file: OptionalPath = None
    basic_auth_user: Annotated[
        str | None, BeforeValidator(_empty_to_none), AfterValidator(_check_basic_user)
    ] = None
    basic_auth_password: Annotated[
        SecretStr | None,
        BeforeValidator(_empty_to_none),
        BeforeValidator(_strip_secret),
        AfterValidator(_check_optional_secret),
    ] = None
    # Where `basic_auth_password` was read from (already read by `parse_settings`).
    basic_auth_password_file: Path | None = None
    # While webhooks arrive, the discovery poll (GET /meetings) may run up to this many times
    # less often; 1 never stretches it. Polling stays the source of truth.
    discovery_stretch: Annotated[float, AfterValidator(_check_stretch)] = 2.0

    @model_validator(mode="after")
    def _pairs(self) -> WebhookSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise _fail("tls_cert_file and tls_key_file must be set together")
        if (self.basic_auth_user is None) != (self.basic_auth_password is None):
            raise _fail(
                "basic_auth_user and basic_auth_password (or basic_auth_password_file) "
                "must be set together"
            )
        return self

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


class DomainSettings(_Model):
    name: Annotated[str, AfterValidator(_check_domain_name)]
    api_key: Annotated[SecretStr, BeforeValidator(_strip_secret), AfterValidator(_check_api_key)]
    # Where `api_key` was read from (already read by `parse_settings`); informational.
    api_key_file: Path | None = None
    api_url: Url = DEFAULT_API_URL
    # The HMAC secret of this domain's Daily webhook (base64, as Daily gives it); None: the
    # receiver does not serve this domain.
    webhook_secret: Annotated[
        SecretStr | None,
        BeforeValidator(_empty_to_none),
        BeforeValidator(_strip_secret),
        AfterValidator(_check_webhook_secret),
    ] = None
    # Where `webhook_secret` was read from (already read by `parse_settings`), and where
    # `webhooks register` writes a new one.
    webhook_secret_file: Path | None = None
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
    # The sources beside the call logs (README, "Sources"). Summaries cost no request of their
    # own (they ride on discovery's GET /meetings); presence one GET /presence per
    # poll_interval; API logs one GET /logs/api (or more while catching up) per poll_interval
    # and source, all inside requests_per_second.
    meeting_summaries: bool = True
    presence: bool = False
    api_logs: bool = False
    # Request and response bodies of /logs/api entries, scrubbed (`core.scrub`): off by
    # default, since a body may hold what no rule knows to be secret.
    api_logs_bodies: bool = False
    # A `room` label on the meeting and presence metrics: unbounded (one series per room),
    # so opt-in; off, the label is there with the value "" (one family either way).
    room_label: bool = False

    @model_validator(mode="after")
    def _bodies_need_api_logs(self) -> DomainSettings:
        if self.api_logs_bodies and not self.api_logs:
            raise _fail("api_logs_bodies needs api_logs: true")
        return self

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
    # Several replicas share one PostgreSQL instead of a SQLite file (README, "Several
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
    # None: no webhook receiver (the default).
    webhooks: WebhookSettings | None = None
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

    @model_validator(mode="after")
    def _webhooks_served(self) -> Settings:
        hooks = self.webhooks
        if hooks is None or not hooks.enabled:
            return self
        if not any(d.webhook_secret or d.webhook_secret_file for d in self.domains):
            raise _fail(
                "webhooks is enabled but no domain has a webhook_secret or webhook_secret_file"
            )
        if self.health.enabled and hooks.port != 0 and self.health.listen == hooks.listen:
            raise _fail("webhooks.listen must differ from health.listen")
        return self

    @property
    def webhooks_enabled(self) -> bool:
        """True when the webhook receiver runs (the section is there and not disabled)."""
        return self.webhooks is not None and self.webhooks.enabled

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.state_url is None else "postgresql"

    def effective_replica_id(self) -> str:
        """`replica_id`, or host name + pid of this process."""
        return self.replica_id or default_replica_id()
