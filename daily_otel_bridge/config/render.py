"""``check-config`` output: the effective configuration as YAML, secrets masked.

Kept apart from the model because what ``check-config`` prints is a contract of its own:
durations in the config's own spelling, only the state store in use, one of ``api_key`` /
``api_key_file`` as the input had it, the ``state_url`` password and every other secret as
``***``. Pure: it returns text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from daily_otel_bridge.config.dsn import redact_url
from daily_otel_bridge.config.durations import format_duration
from daily_otel_bridge.config.model import DomainSettings, Settings, WebhookSettings
from daily_otel_bridge.core.secrets import MASK as _MASK

__all__ = ["render_effective"]

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
        "timestamp_tolerance",
        "dedupe_window",
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
            _one_of(out, "webhook_secret", "webhook_secret_file")
        if isinstance(value, WebhookSettings):
            _one_of(out, "basic_auth_password", "basic_auth_password_file")
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


def _one_of(out: dict[str, Any], key: str, file_key: str) -> None:
    """An optional secret as the input had it: from its file (the path shown), given inline
    (masked), or not at all (neither key shown)."""
    if out.get(file_key) is not None:
        out.pop(key, None)
    elif out.get(key) is not None:
        out.pop(file_key, None)
    else:
        out.pop(key, None)
        out.pop(file_key, None)


def render_effective(settings: Settings) -> str:
    """YAML of the effective configuration, every secret shown as ***."""
    origin = f" of {settings.config_path}" if settings.config_path is not None else ""
    origin = origin.replace("\n", "\\n")
    header = f"# effective configuration{origin}; secrets are shown as {_MASK}\n"
    body = yaml.safe_dump(
        _render(settings), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return header + body
