"""The configuration's public face: every name callers import, from the modules that do the work.

`daily_otel_bridge.config.settings` is the import path the rest of the package, the tests and
the benchmarks have always used; it stays, so that splitting the work did not move anyone's
import. The work itself lives in one module per job:

- `durations`: ``500ms`` / ``15s`` / ``2m`` / ``1h`` parsed and printed;
- `model`: the pydantic models, their defaults and field checks (the YAML contract);
- `errors`: `ConfigError` and pydantic's errors rewritten as ``path: message`` lines;
- `otel_env`: the ``OTEL_EXPORTER_OTLP_*`` variables as the lowest export layer;
- `loading`: YAML, ``${VAR}`` expansion, API key files, the layered export sections and
  validation (`parse_settings`, `load_settings`);
- `render`: the effective configuration for ``check-config`` (`render_effective`).

New code may import from those modules directly; nothing is defined here.
"""

from __future__ import annotations

from daily_otel_bridge.config.durations import format_duration, parse_duration
from daily_otel_bridge.config.errors import ConfigError
from daily_otel_bridge.config.loading import load_settings, parse_settings
from daily_otel_bridge.config.model import (
    DEFAULT_API_URL,
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_SEVERITY_MAP,
    DEFAULT_STATE_PATH,
    MAX_REQUESTS_PER_SECOND,
    READ_LATENCY_ALLOWANCE,
    DomainSettings,
    ExportProtocol,
    ExportSettings,
    HealthSettings,
    LogLevel,
    SelfTelemetrySettings,
    Settings,
    SeverityName,
    default_replica_id,
)
from daily_otel_bridge.config.render import render_effective

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_SEVERITY_MAP",
    "DEFAULT_STATE_PATH",
    "MAX_REQUESTS_PER_SECOND",
    "READ_LATENCY_ALLOWANCE",
    "ConfigError",
    "DomainSettings",
    "ExportProtocol",
    "ExportSettings",
    "HealthSettings",
    "LogLevel",
    "SelfTelemetrySettings",
    "Settings",
    "SeverityName",
    "default_replica_id",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_settings",
    "render_effective",
]
