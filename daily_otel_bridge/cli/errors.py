"""Errors the command line reports itself (kept apart so that any command module can raise
them without importing `cli.main`)."""

from __future__ import annotations


class UsageError(Exception):
    """A command-line mistake found after parsing (a --domain not in the config, say).

    Reported as such (`daily-otel-bridge backfill: command-line error: ...`, exit 2), never as
    "configuration error", so that nobody looks in the YAML for what is wrong on the command line.
    """
