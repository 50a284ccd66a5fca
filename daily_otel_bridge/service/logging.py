"""structlog configuration: `--log-format json|console`; by default JSON lines when the
stream is not a terminal (journald, a container runtime, a pipe), readable lines on one.

A last processor masks every registered secret wherever it appears in an event, as a net
under the rule that secrets are never passed to a logger in the first place.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog

from daily_otel_bridge.core.secrets import scrub, scrub_value

_SECRETS: set[str] = set()

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("json", "console")
LogFormat = Literal["json", "console"]


def parse_log_level(value: str) -> str:
    """The canonical name of a log level (case-insensitive, WARN = WARNING); ValueError else.

    Checked, because an unknown level silently meaning INFO hides the mistake exactly when
    someone is trying to see more.
    """
    name = value.strip().upper()
    name = "WARNING" if name == "WARN" else name
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
    return name


def parse_log_format(value: str) -> LogFormat:
    name = value.strip().lower()
    if name == "json":
        return "json"
    if name == "console":
        return "console"
    raise ValueError(f"unknown log format {value!r}; use json or console")


def register_secrets(values: Iterable[str]) -> None:
    """Values that must never be printed (API keys, exporter header values)."""
    for value in values:
        # Very short values would mask ordinary words; real keys are long.
        if value and len(value) >= 6:
            _SECRETS.add(value)


def mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event_dict
    for key in list(event_dict):
        event_dict[key] = scrub_value(event_dict[key], _SECRETS)
    return event_dict


def configure_logging(
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    json_lines: bool | None = None,
    log_format: LogFormat | None = None,
) -> None:
    """Configure structlog (and the stdlib root logger) for the whole process.

    `log_format` wins over `json_lines` (kept for callers that predate it); with neither, JSON
    unless `stream` is a terminal. `level` must be one of `LOG_LEVELS` (ValueError otherwise).
    """
    out = stream or sys.stderr
    if log_format is not None:
        as_json = log_format == "json"
    else:
        as_json = json_lines if json_lines is not None else not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[parse_log_level(level)]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_Unfailing(out)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the stdlib (grpc, aiohttp) go to the same stream at WARNING,
    # through the same mask: their messages (an exception's text, a URL) are not ours.
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(levelname)s %(name)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _MaskFilter) for f in handler.filters):
            handler.addFilter(_MaskFilter())


class _Unfailing:
    """A log stream whose failures are swallowed: a closed terminal (EIO after the SSH
    session ends), a closed pipe or a full disk must stop the log, not the shipping."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False


class _MaskFilter(logging.Filter):
    """Masks registered secrets in a stdlib log record, traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = scrub(record.getMessage(), _SECRETS)
            record.args = None
            if record.exc_info:
                record.exc_text = scrub(
                    logging.Formatter().formatException(record.exc_info), _SECRETS
                )
                record.exc_info = None
        return True
