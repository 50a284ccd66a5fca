"""The ``OTEL_EXPORTER_OTLP_*`` environment variables as an export layer.

The OpenTelemetry spec names these variables for every exporter; the bridge honours them as
the lowest layer of each domain's export section (environment < global ``export`` < the
domain's ``export``, laid over each other in `loading`). Kept apart because it is a contract of
its own (which variables, which wins, milliseconds for timeouts, percent-encoded headers) and
because a value from here is reported under the variable's name, not a YAML path. Pure: the
environment comes in as a mapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from daily_otel_bridge.config.errors import Problems

__all__ = ["ENV_PREFIX", "Provenance", "env_export_layer"]

ENV_PREFIX = "OTEL_EXPORTER_OTLP_"
# field -> environment variables, most specific first.
_ENV_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("protocol", (ENV_PREFIX + "LOGS_PROTOCOL", ENV_PREFIX + "PROTOCOL")),
    ("endpoint", (ENV_PREFIX + "ENDPOINT",)),
    ("logs_endpoint", (ENV_PREFIX + "LOGS_ENDPOINT",)),
    ("metrics_endpoint", (ENV_PREFIX + "METRICS_ENDPOINT",)),
    ("compression", (ENV_PREFIX + "LOGS_COMPRESSION", ENV_PREFIX + "COMPRESSION")),
    ("certificate_file", (ENV_PREFIX + "LOGS_CERTIFICATE", ENV_PREFIX + "CERTIFICATE")),
    (
        "client_certificate_file",
        (ENV_PREFIX + "LOGS_CLIENT_CERTIFICATE", ENV_PREFIX + "CLIENT_CERTIFICATE"),
    ),
    ("client_key_file", (ENV_PREFIX + "LOGS_CLIENT_KEY", ENV_PREFIX + "CLIENT_KEY")),
    ("insecure", (ENV_PREFIX + "LOGS_INSECURE", ENV_PREFIX + "INSECURE")),
)
_ENV_TIMEOUT = (ENV_PREFIX + "LOGS_TIMEOUT", ENV_PREFIX + "TIMEOUT")
# General headers first, so that the logs-specific ones win per key.
_ENV_HEADERS = (ENV_PREFIX + "HEADERS", ENV_PREFIX + "LOGS_HEADERS")

# Where a value of an export layer came from when not from YAML: loc prefix -> env var name.
Provenance = dict[tuple[str, ...], str]


def _env_value(environ: Mapping[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name)
        # The OTel spec treats an empty variable as unset.
        if value is not None and value.strip():
            return name, value.strip()
    return None


def _parse_env_headers(value: str, name: str, problems: Problems) -> dict[str, str]:
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


def env_export_layer(
    environ: Mapping[str, str], problems: Problems
) -> tuple[dict[str, Any], Provenance]:
    """The export keys the variables in `environ` set, and which variable set each. A bad
    value is added to `problems` under the variable's name; header values become secrets."""
    layer: dict[str, Any] = {}
    provenance: Provenance = {}
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
