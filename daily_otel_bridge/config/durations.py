"""Durations as the config writes them (``500ms``, ``15s``, ``2m``, ``1h``) and back.

Kept apart from the model because more than the model reads them: the CLI's ``--since`` and
backfill windows, the simulator and the benchmarks parse the same spelling, and
``check-config`` prints durations in it. Pure string handling, no I/O.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration"]

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
