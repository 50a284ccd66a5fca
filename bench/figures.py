"""Figures from what a run left behind: the summary table, ack times at the sink, request
rates and bursts in the simulator's request log, percentiles as printed.
"""

from __future__ import annotations

import math
from typing import Any

from harness import percentile


class Summary:
    """Rows of the final 'measured vs target' table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, item: str, measured: str, target: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        self.rows.append((item, measured, target, verdict))


def ack_times(sink: Any) -> list[float]:
    """When each stored log record was acknowledged: its request's arrival + the answer delay.

    The receiver stores a request's records right after recording the request, with no await
    in between, so stored records and successful requests are in the same order even with
    several exports in flight."""
    out: list[float] = []
    for req in sink.requests():
        if req.signal == "logs" and (req.fault is None or not req.fault.is_error):
            rejected = min(req.fault.reject_records, req.records) if req.fault else 0
            out.extend([req.time + req.delay] * (req.records - rejected))
    return out


def span_rate(log: list[tuple[float, str, str, int, int, float]]) -> tuple[int, float, float]:
    """(requests, span s, achieved req/s) from arrival times at the simulator."""
    times = sorted(r[0] for r in log)
    if len(times) < 2:
        return len(times), 0.0, 0.0
    span = times[-1] - times[0]
    return len(times), span, (len(times) - 1) / span if span > 0 else 0.0


def burst_starts(times: list[float], pause: float) -> list[float]:
    """The first of each run of sorted times whose neighbours are at most `pause` apart."""
    starts: list[float] = []
    prev = -math.inf
    for t in times:
        if t - prev > pause:
            starts.append(t)
        prev = t
    return starts


def p50_p99(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return percentile(values, 50), percentile(values, 99)


def secs_text(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return "unbounded" if math.isinf(v) else f"{v:.1f}"
