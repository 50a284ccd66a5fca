"""Daemon-mode runs against the simulator for issue 14's scenarios, and what they left behind
(ground-truth uids, first reads, requests per read).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conditions import MAX_RPS, config_for, http_get, sink_for, start_sim
from figures import ack_times, burst_starts
from harness import DOMAIN, daemon, free_port, prometheus_totals

# -- issue 14: churning meetings, talking + quiet, requests per read ---------------------------

DEFAULT_PAGE_CAP = 200  # the largest /logs page the simulator answers in issue 14's scenarios
SESSION_GRACE = 600.0  # the daemon's defaults (config/settings.py, DomainSettings)
SETTLE_LAG = 5.0
MAX_QUIET = 60.0
POLL = 15.0
REREAD_COUNTER = "daily_otel_bridge_records_reread_total"
DEDUP_COUNTER = "daily_otel_bridge_records_deduplicated_total"


def page_cap(args: argparse.Namespace) -> int:
    return int(args.page_cap) if args.page_cap is not None else DEFAULT_PAGE_CAP


@dataclasses.dataclass
class LiveRun:
    """What a daemon-mode run against the simulator leaves behind, for the figures."""

    t0: float
    t_end: float
    log: list[tuple[float, str, str, int, int, float]]
    stats: dict[str, Any]
    meetings: list[dict[str, Any]]
    truth: list[dict[str, Any]]  # every visible record, with `_visible` (Unix s)
    delivered: dict[str, float]  # log.record.uid -> first ack time
    received: int  # log records acked, duplicates included
    metrics: dict[str, float]  # the daemon's /metrics at the end (sums over labels)


def run_live(
    workdir: Path,
    name: str,
    sim_args: list[str],
    run_s: float | Callable[[list[dict[str, Any]]], float],
    domain: dict[str, Any] | None = None,
) -> LiveRun:
    """Simulator (the given args + latency) -> daemon (`once=False`, health server on) -> sink,
    for `run_s` seconds (or as long as `run_s(meetings)` says once the meetings are known)."""
    port = free_port()
    log: list[tuple[float, str, str, int, int, float]] = []
    with (
        start_sim(sim_args, max_seconds=3600, workdir=workdir) as sim,
        sink_for(keep_records=True, max_seconds=3600) as sink,
    ):
        meetings = sim.meetings()
        duration = run_s(meetings) if callable(run_s) else run_s
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={"requests_per_second": MAX_RPS, **(domain or {})},
            health_listen=f"127.0.0.1:{port}",
        )
        proc = daemon(config, workdir, once=False, max_seconds=duration + 120, name=name)
        t0 = time.time()
        metrics: dict[str, float] = {}
        with proc:
            while time.time() - t0 < duration:
                time.sleep(min(5.0, max(0.1, duration - (time.time() - t0))))
                log.extend(sim.new_requests())
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError("daemon died:\n" + proc.log_path.read_text()[-2000:])
            t_end = time.time()
            with contextlib.suppress(OSError):
                metrics = prometheus_totals(http_get(f"http://127.0.0.1:{port}/metrics").decode())
            proc.stop()
            proc.wait()
        log.extend(sim.new_requests())
        stats = sim.stats()
        logs = sink.log_records()
        acks = ack_times(sink)
        truth = json.loads(http_get(f"{sim.base}/_sim/records?domain={DOMAIN}&visible=1"))[
            "records"
        ]
    delivered: dict[str, float] = {}
    for rec, ack in zip(logs, acks, strict=False):
        uid = str(rec.attributes.get("log.record.uid"))
        delivered.setdefault(uid, ack)
    return LiveRun(t0, t_end, log, stats, meetings, truth, delivered, len(logs), metrics)


def truth_uids(truth: list[dict[str, Any]]) -> list[str]:
    """`log.record.uid` of each ground-truth record, as the bridge computes it (content digest,
    plus the occurrence number of byte-identical twins within a session)."""
    from daily_otel_bridge.core.mapping import record_digest, record_uid

    seen: collections.Counter[tuple[str, bytes]] = collections.Counter()
    out = []
    for r in truth:
        raw = {k: v for k, v in r.items() if k != "_visible"}
        digest = record_digest(raw)
        key = (str(r.get("mtgSessionId")), digest)
        seen[key] += 1
        out.append(record_uid(digest, seen[key]))
    return out


def first_reads(run: LiveRun) -> dict[str, float]:
    """Each session's first 200 answer to /logs (answer time)."""
    first: dict[str, float] = {}
    for r in run.log:
        if r[1] == "logs" and r[4] == 200 and r[2]:
            first[r[2]] = min(first.get(r[2], math.inf), r[5])
    return first


def read_sizes(run: LiveRun, ids: set[str], after: float) -> list[int]:
    """Requests per read (a burst of /logs requests for one session, see `burst_starts`) of
    the sessions `ids`, for reads starting at or after `after`."""
    per_session: dict[str, list[float]] = collections.defaultdict(list)
    for r in run.log:
        if r[1] == "logs" and r[2] in ids:
            per_session[r[2]].append(r[0])
    sizes: list[int] = []
    for times in per_session.values():
        times.sort()
        starts = burst_starts(times, POLL / 4)
        for k, start in enumerate(starts):
            if start < after:
                continue
            stop = starts[k + 1] if k + 1 < len(starts) else math.inf
            sizes.append(sum(1 for t in times if start <= t < stop))
    return sizes
