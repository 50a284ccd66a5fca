"""A log stream that fails (a closed terminal, a closed pipe) stops the log, not the bridge."""

from __future__ import annotations

import io

import structlog

from daily_otel_bridge.service.logging import configure_logging


class DeadTerminal(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")  # what a hung-up tty answers


def test_logging_to_a_dead_or_closed_stream_raises_nothing() -> None:
    for stream in (DeadTerminal(), io.StringIO()):
        configure_logging("INFO", stream=stream, log_format="json")
        stream.close() if not isinstance(stream, DeadTerminal) else None
        structlog.get_logger("t").warning("still shipping", n=1)
