"""The conditions every benchmark runs under (Daily's latency, the backend's answer delay, the
concurrency keys) and the start-up of the simulator, the sink and the daemon's config under
them. `run.py` sets `COND` from the command line before any benchmark starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness import NEW_EXPORT_KEYS, Simulator, in_process_sink, write_config

MAX_RPS = 20  # Daily's documented per-domain limit, and the highest the config accepts


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The network every benchmark runs under (issue 9: Daily and the backend are a round trip
    away, not a loopback millisecond), and whether the concurrency config keys are written."""

    latency: float = 0.15  # every Daily API answer, s
    jitter: float = 0.03  # +- uniform around it
    backend: float = 0.05  # every answer of the in-process OTLP sink, s
    new_keys: bool = False
    max_concurrent_reads: int | None = None

    def sim_args(self) -> list[str]:
        if self.latency <= 0:
            return []
        return ["--latency", f"{self.latency:g}", "--latency-jitter", f"{self.jitter:g}"]

    def describe(self) -> str:
        keys = "off"
        if self.new_keys:
            reads = self.max_concurrent_reads
            keys = ", ".join(f"{k}={v}" for k, v in NEW_EXPORT_KEYS.items()) + (
                f", max_concurrent_reads={reads}" if reads else ", max_concurrent_reads default"
            )
        return (
            f"Daily latency {1000 * self.latency:g} ms +- {1000 * self.jitter:g} ms, "
            f"backend answer delay {1000 * self.backend:g} ms; concurrency keys: {keys}"
        )


COND = Conditions()  # set by run.py's main() from the command line, before any benchmark


def start_sim(argv: list[str], **kw: Any) -> Simulator:
    """The bench simulator, answering after the configured latency."""
    return Simulator([*argv, *COND.sim_args()], **kw)


def sink_for(keep_records: bool = False, **kw: Any) -> Any:
    """The in-process sink, answering after the configured backend delay."""
    kw.setdefault("answer_delay", COND.backend)
    return in_process_sink(keep_records, **kw)


def config_for(
    workdir: Path,
    *,
    domain: dict[str, Any] | None = None,
    export: dict[str, Any] | None = None,
    **kw: Any,
) -> Path:
    """`write_config`, plus the concurrency keys when the package knows them."""
    if COND.new_keys:
        export = {**NEW_EXPORT_KEYS, **(export or {})}
        if COND.max_concurrent_reads:
            domain = {"max_concurrent_reads": COND.max_concurrent_reads, **(domain or {})}
    return write_config(workdir, domain=domain, export=export, **kw)


def http_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback only
        return bytes(resp.read())
