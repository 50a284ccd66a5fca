"""Benchmark 6: the share of `requests_per_second` used, and 429s."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from conditions import config_for, sink_for, start_sim
from figures import Summary
from harness import daemon, print_table

# -- 6: rate discipline ----------------------------------------------------------------------


def run_rate(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    cases = [(5.0, 15 if args.quick else 60)]
    if not args.quick:
        cases.append((20.0, 150))
    print(
        "\n## Rate discipline: simulator enforces the limit; the daemon drains a backlog "
        "(--once) with requests_per_second = the limit",
        flush=True,
    )
    rows = []
    for limit, meetings in cases:
        with (
            start_sim(
                ["--meetings", str(meetings), "--records", "1000", "--rate-limit", str(limit)],
                max_seconds=600,
                workdir=workdir,
            ) as sim,
            sink_for() as sink,
        ):
            config = config_for(
                workdir,
                api_url=sim.url,
                endpoint=sink.grpc_endpoint,
                domain={"requests_per_second": limit, "page_size": 1000},
            )
            result = daemon(config, workdir, once=True, max_seconds=600, name="rate").run()
            if result.rc != 0:
                raise RuntimeError(f"daemon exited {result.rc}:\n{result.tail()}")
            log = sim.new_requests()
            stats = sim.stats()
        times = sorted(r[0] for r in log)
        span = times[-1] - times[0]
        achieved = (len(times) - 1) / span
        n429 = int(stats["status_counts"].get("429", 0))
        # The busiest and the idlest 5 s of the drain, as a check on steadiness.
        buckets = collections.Counter(int((t - times[0]) // 5) for t in times[:-1])
        full = [buckets.get(i, 0) / 5 for i in range(int(span // 5))]
        rows.append(
            [
                f"{limit:g}",
                len(times),
                span,
                achieved,
                100 * achieved / limit,
                min(full) if full else achieved,
                max(full) if full else achieved,
                n429,
                sink.count(),
            ]
        )
        if limit == 5.0:
            summary.add(
                "6. rate discipline at 5 req/s",
                f"{100 * achieved / limit:.1f}% used, {n429} x 429",
                ">= 90%, zero 429",
                achieved / limit >= 0.9 and n429 == 0,
            )
    print_table(
        "Requests per second while draining (from the simulator's request log)",
        [
            "limit req/s",
            "requests",
            "span s",
            "achieved req/s",
            "% of limit",
            "min 5 s req/s",
            "max 5 s req/s",
            "429s",
            "records acked",
        ],
        rows,
    )
