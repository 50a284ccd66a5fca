"""Benchmark 5: visible at the simulator -> acked at the receiver."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from conditions import MAX_RPS, config_for, http_get, sink_for, start_sim
from figures import Summary, ack_times
from harness import daemon, percentile, print_table

# -- 5: freshness ----------------------------------------------------------------------------


def run_freshness(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    poll, settle = 1.0, 5.0
    live, rate = 3, 5.0
    warm, window = (6.0, 15.0) if args.quick else (10.0, 45.0)
    target = poll + settle + 1.0
    print(
        f"\n## Freshness: {live} live sessions x {rate:g} records/s, poll_interval={poll:g}s, "
        f"settle_lag={settle:g}s (default), requests_per_second={MAX_RPS}",
        flush=True,
    )
    with (
        start_sim(
            ["--meetings", "0", "--live", "--live-meetings", str(live), "--live-rate", str(rate)],
            max_seconds=warm + window + 120,
            workdir=workdir,
        ) as sim,
        sink_for(keep_records=True) as sink,
    ):
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={
                "requests_per_second": MAX_RPS,
                "poll_interval": f"{poll:g}s",
                "settle_lag": f"{settle:g}s",
            },
        )
        proc = daemon(config, workdir, once=False, max_seconds=warm + window + 90, name="freshness")
        with proc:
            t0 = time.time()
            time.sleep(warm + window + poll + settle + 3.0)
            proc.stop()
            proc.wait()
        w_lo, w_hi = t0 + warm, t0 + warm + window
        logs = sink.log_records()
        arrivals = ack_times(sink)
        truth = [r for r in json.loads(http_get(sim.base + "/_sim/records?domain=acme"))["records"]]
    from daily_otel_bridge.core.mapping import parse_time_ns

    expected = sum(1 for r in truth if w_lo <= parse_time_ns(r["time"]) / 1e9 < w_hi)
    delays = []
    seen: set[str] = set()
    dups = 0
    for log, arrived in zip(logs, arrivals, strict=False):
        t = log.time_unix_nano / 1e9
        uid = str(log.attributes.get("log.record.uid"))
        if uid in seen:
            dups += 1
            continue
        seen.add(uid)
        if w_lo <= t < w_hi:
            delays.append(arrived - t)
    missing = expected - len(delays)
    p50, p90, p99 = (percentile(delays, q) for q in (50, 90, 99))
    print_table(
        f"Delay from visible at the simulator to acked at the receiver ({window:g} s window "
        f"after {warm:g} s warm-up)",
        ["records", "missing", "duplicates", "p50 s", "p90 s", "p99 s", "max s", "target p99"],
        [[len(delays), missing, dups, p50, p90, p99, max(delays), f"<= {target:g} s"]],
    )
    summary.add(
        "5. freshness p50 / p99",
        f"{p50:.2f} s / {p99:.2f} s",
        f"p99 <= {target:g} s",
        p99 <= target and missing == 0,
    )
