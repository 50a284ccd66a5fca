"""Benchmark 3: peak RSS of the daemon draining 1,000,000 records."""

from __future__ import annotations

import argparse
from pathlib import Path

import conditions
from conditions import MAX_RPS, sink_for, start_sim
from figures import Summary
from harness import print_table
from throughput import measure_daemon

# -- 3: memory -------------------------------------------------------------------------------


def run_memory(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    meetings, per_meeting = (100, 1000) if args.quick else (1000, 1000)
    total = meetings * per_meeting
    print(
        f"\n## Memory: drain a backlog of {total:,} records over {meetings:,} sessions "
        f"(--once, requests_per_second={MAX_RPS}, page_size=1000)",
        flush=True,
    )
    with (
        start_sim(
            ["--meetings", str(meetings), "--records", str(per_meeting)],
            max_seconds=900,
            workdir=workdir,
        ) as sim,
        sink_for() as sink,
    ):
        sim.warm_up()
        # The same process with nothing to drain: what imports and set-up cost.
        idle = measure_daemon(
            workdir,
            sim,
            sink.grpc_endpoint,
            "memory-startup",
            sink.count,
            rooms=["bench-selects-nothing"],
        )
        m = measure_daemon(workdir, sim, sink.grpc_endpoint, "memory", sink.count)
    r, i = m["result"], idle["result"]
    state_mb = sum(p.stat().st_size for p in workdir.glob("state.db*")) / 2**20
    print_table(
        "Peak memory of the daemon process",
        [
            "run",
            "records acked",
            "sessions",
            "wall s",
            "CPU s",
            "peak RSS MB (ru_maxrss)",
            "peak RSS MB (psutil, 0.5 s samples)",
            "state.db MB",
            "target",
        ],
        [
            [
                "start-up + discovery only",
                0,
                0,
                i.wall,
                i.cpu,
                i.maxrss_mb,
                i.sampled_peak_rss_mb,
                "",
                "",
            ],
            [
                "drain the backlog",
                m["records"],
                meetings,
                r.wall,
                r.cpu,
                r.maxrss_mb,
                r.sampled_peak_rss_mb,
                state_mb,
                "<= 150 MB",
            ],
        ],
    )
    ok = r.maxrss_mb <= 150 if not args.quick else None
    concurrency = (
        "concurrency keys on" if conditions.COND.new_keys else "concurrency keys unsupported"
    )
    summary.add(
        f"9.6 / 3. peak RSS, {total:,} records / {meetings:,} sessions, {concurrency}",
        f"{r.maxrss_mb:.0f} MB",
        "<= 150 MB",
        ok,
    )
