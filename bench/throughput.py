"""Benchmarks 1 and 2: the daemon draining a backlog to the sink / rotel, and the naive SDK
path on the same records (`throughput`, `naive`; `naive-capped` is in issue14.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import conditions
from conditions import MAX_RPS, config_for, sink_for, start_sim
from figures import Summary
from harness import (
    API_KEY,
    BENCH_DIR,
    PYTHON,
    Child,
    Simulator,
    daemon,
    print_table,
    proc_cpu,
    rotel_sink,
    self_cpu,
)

# -- 1 + 2: throughput -----------------------------------------------------------------------


def throughput_config(
    workdir: Path,
    sim: Simulator,
    endpoint: str,
    protocol: str = "grpc",
    export: dict[str, Any] | None = None,
    **domain: Any,
) -> Path:
    return config_for(
        workdir,
        api_url=sim.url,
        endpoint=endpoint,
        protocol=protocol,
        export=export,
        domain={"requests_per_second": MAX_RPS, "page_size": 1000, **domain},
    )


def measure_daemon(
    workdir: Path,
    sim: Simulator,
    endpoint: str,
    name: str,
    count: Callable[[], int] | None,
    other_pid: int | None = None,
    protocol: str = "grpc",
    export: dict[str, Any] | None = None,
    **domain: Any,
) -> dict[str, Any]:
    config = throughput_config(workdir, sim, endpoint, protocol, export, **domain)
    stats0, sim_cpu0, self0 = sim.stats(), sim.cpu(), self_cpu()
    other0 = proc_cpu(other_pid) if other_pid else 0.0
    count0 = count() if count else 0
    result = daemon(config, workdir, once=True, max_seconds=600, name=name).run()
    if result.rc != 0:
        raise RuntimeError(f"daemon {name} exited {result.rc}:\n{result.tail()}")
    stats1 = sim.stats()
    received = (count() - count0) if count else result.exported()
    receiver_cpu = (proc_cpu(other_pid) - other0) if other_pid else self_cpu() - self0
    return {
        "result": result,
        "records": received,
        "requests": sum(stats1["requests"].values()) - sum(stats0["requests"].values()),
        "sim_cpu": sim.cpu() - sim_cpu0,
        "receiver_cpu": receiver_cpu,
    }


def run_throughput(
    args: argparse.Namespace,
    workdir: Path,
    summary: Summary,
    rotel: bool = True,
    cap: int | None = None,
) -> None:
    """`naive` (rotel=False) skips the transport variants too: only what the ratio needs.

    `cap` (default: `--page-cap`, none when not given) is the largest /logs page the simulator
    answers; the bridge keeps asking for 1,000 records a page, the naive reader asks for what
    it gets (a page of `cap`: it stops at the first short page)."""
    variants = rotel
    if cap is None:
        cap = args.page_cap
    meetings, per_meeting = (20, 1000) if args.quick else (200, 1000)
    total = meetings * per_meeting
    print(
        f"\n## Throughput: {total:,} records ({meetings} sessions x {per_meeting}), "
        f"requests_per_second={MAX_RPS}, page_size=1000, batch_size default, page cap "
        f"{cap or 'none'}; {conditions.COND.describe()} (rotel answers at once)",
        flush=True,
    )
    rows: list[list[Any]] = []
    cap_args = [] if cap is None else ["--max-limit", str(cap)]
    naive_page = 1000 if cap is None else min(1000, cap)
    with start_sim(
        ["--meetings", str(meetings), "--records", str(per_meeting), *cap_args],
        max_seconds=900,
        workdir=workdir,
    ) as sim:
        sim.warm_up()
        with sink_for() as sink:
            # Start-up + discovery only (no room matches): subtracted for the "excl." column.
            idle = measure_daemon(
                workdir,
                sim,
                sink.grpc_endpoint,
                "startup",
                sink.count,
                rooms=["bench-selects-nothing"],
            )
            startup_cpu = idle["result"].cpu
            ours = measure_daemon(workdir, sim, sink.grpc_endpoint, "throughput-sink", sink.count)
            rows.append(_throughput_row("bridge -> in-process sink (gRPC)", ours, startup_cpu))
            # The naive path runs twice as well, each run after one of the bridge's (bridge,
            # naive, bridge, naive): the VM's speed drifts by 10-20 % over minutes, and a
            # single naive run after both of the bridge's moved the ratio with the drift.
            naive_first = measure_naive(workdir, sim, sink, page=naive_page)
            if variants:
                # Variants of the export settings, same records: what the transport costs.
                plain = measure_daemon(
                    workdir,
                    sim,
                    sink.grpc_endpoint,
                    "throughput-nogzip",
                    sink.count,
                    export={"compression": "none"},
                )
                rows.append(_throughput_row("  same, compression: none", plain, startup_cpu))
                http = measure_daemon(
                    workdir,
                    sim,
                    sink.http_endpoint,
                    "throughput-http",
                    sink.count,
                    protocol="http/protobuf",
                )
                rows.append(_throughput_row("  same, http/protobuf (gzip)", http, startup_cpu))
            # Run-to-run noise on a small VM is ~10 %: the headline row is run twice and the
            # ratios use the mean of both runs.
            again = measure_daemon(workdir, sim, sink.grpc_endpoint, "throughput-sink2", sink.count)
            rows.append(
                _throughput_row("bridge -> in-process sink (gRPC), run 2", again, startup_cpu)
            )
            ours = _mean_run(ours, again)
        if rotel:
            with rotel_sink() as collector:
                via_rotel = measure_daemon(
                    workdir,
                    sim,
                    collector.grpc_endpoint,
                    "throughput-rotel",
                    None,
                    other_pid=collector.pid,
                )
                rows.append(_throughput_row("bridge -> rotel (gRPC)", via_rotel, startup_cpu))
        with sink_for() as sink:
            naive_idle = measure_naive(workdir, sim, sink, since=2**31 - 1, page=naive_page)
            naive_second = measure_naive(workdir, sim, sink, page=naive_page)
            for label, run in (("", naive_first), (", run 2", naive_second)):
                rows.append(
                    _throughput_row(
                        f"naive: SDK BatchLogRecordProcessor + OTLPLogExporter{label}",
                        run,
                        naive_idle["result"].cpu,
                    )
                )
            naive = _mean_run(naive_first, naive_second)
            # What either run lost in the SDK's queue (records of the mean are the first's).
            naive_lost = sum(r["emitted"] - r["records"] for r in (naive_first, naive_second))
    print_table(
        "Throughput (each row: one process draining the same records from the simulator)",
        [
            "path",
            "records acked",
            "wall s",
            "records/s",
            "CPU s",
            "CPU s/100k",
            "CPU s/100k excl. start-up",
            "records/CPU-s",
            "peak RSS MB",
            "API requests",
            "API floor s",
            "simulator CPU s",
            "receiver CPU s",
        ],
        rows,
    )
    print(
        f"\nstart-up + discovery alone (no session selected): bridge {startup_cpu:.2f} CPU s, "
        f"naive {naive_idle['result'].cpu:.2f} CPU s. 'API floor' = requests / {MAX_RPS} "
        "rps: the shortest wall time the request budget allows."
    )
    r_ours = ours["records"] / ours["result"].wall
    r_naive = naive["records"] / naive["result"].wall
    cpu_ours = ours["result"].cpu / ours["records"]
    cpu_naive = naive["result"].cpu / max(1, naive["emitted"])
    # Per-record CPU without the fixed start-up cost (imports, config, channel set-up).
    cpu_ours_x = (ours["result"].cpu - startup_cpu) / ours["records"]
    cpu_naive_x = (naive["result"].cpu - naive_idle["result"].cpu) / max(1, naive["emitted"])
    lost = naive_lost
    print(
        f"naive (each of 2 runs): emitted {naive['emitted']:,}, acked {naive['records']:,} "
        f"(lost in the SDK queue, both runs: {lost:,}); {naive['requests']} API requests"
    )
    print_table(
        "Bridge vs naive SDK path (same simulator, same records, same 20 req/s budget)",
        ["ratio", "value"],
        [
            ["records/s acked, wall clock (bridge / naive)", f"{r_ours / r_naive:.2f}x"],
            ["CPU per record incl. start-up (naive / bridge)", f"{cpu_naive / cpu_ours:.2f}x"],
            [
                "CPU per record excl. start-up (naive / bridge) = CPU-bound records/s ratio",
                f"{cpu_naive_x / cpu_ours_x:.2f}x",
            ],
            ["records lost by the naive path (2 runs)", f"{lost:,} of {2 * naive['emitted']:,}"],
        ],
    )
    summary.add(
        "1. throughput, bridge -> sink (mean of 2 runs; the ratios: of 2 runs each)",
        f"{r_ours:,.0f} rec/s, {100_000 * cpu_ours:.2f} CPU s/100k",
        "(report)",
        None,
    )
    if rotel:
        summary.add(
            "1. throughput, bridge -> rotel",
            f"{via_rotel['records'] / via_rotel['result'].wall:,.0f} rec/s, "
            f"{100_000 * via_rotel['result'].cpu / via_rotel['records']:.2f} CPU s/100k",
            "(report)",
            None,
        )
    summary.add(
        "2. bridge / naive, records/s (wall, same API budget)",
        f"{r_ours / r_naive:.2f}x",
        ">= 3x",
        r_ours / r_naive >= 3,
    )
    capped = f", page cap {cap}" if cap else ""
    summary.add(
        f"9.5 records per CPU-second incl. start-up, gzip (bridge / naive, same run{capped})",
        f"{cpu_naive / cpu_ours:.2f}x",
        ">= 3x",
        None if args.quick else cpu_naive / cpu_ours >= 3,
    )
    summary.add(
        "2. bridge / naive, records per CPU-second (excl. start-up)",
        f"{cpu_naive_x / cpu_ours_x:.2f}x",
        ">= 3x",
        cpu_naive_x / cpu_ours_x >= 3,
    )


def _mean_run(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The average of two measurements of the same run (records are equal)."""
    ra, rb = a["result"], b["result"]
    mean = dataclasses.replace(
        ra,
        wall=(ra.wall + rb.wall) / 2,
        user=(ra.user + rb.user) / 2,
        sys=(ra.sys + rb.sys) / 2,
        maxrss_mb=max(ra.maxrss_mb, rb.maxrss_mb),
    )
    return {**a, "result": mean}


def _throughput_row(label: str, m: dict[str, Any], startup_cpu: float | None) -> list[Any]:
    r = m["result"]
    n = max(1, m["records"])
    excl = "" if startup_cpu is None else 100_000 * (r.cpu - startup_cpu) / n
    return [
        label,
        m["records"],
        r.wall,
        n / r.wall,
        r.cpu,
        100_000 * r.cpu / n,
        excl,
        n / r.cpu,
        r.maxrss_mb,
        m["requests"],
        m["requests"] / MAX_RPS,
        m["sim_cpu"],
        m["receiver_cpu"],
    ]


def naive_command(sim: Simulator, sink: Any, *, since: int = 0, page: int = 1000) -> list[str]:
    """The naive baseline's command line against `sim`, exporting to `sink` over gRPC."""
    return [
        PYTHON,
        str(BENCH_DIR / "naive_sdk.py"),
        "--api-url",
        sim.url,
        "--api-key",
        API_KEY,
        "--endpoint",
        sink.grpc_endpoint,
        "--rps",
        str(MAX_RPS),
        "--page-size",
        str(page),
        "--since",
        str(since),
    ]


def measure_naive(
    workdir: Path, sim: Simulator, sink: Any, since: int = 0, page: int = 1000
) -> dict[str, Any]:
    stats0, sim_cpu0, self0, count0 = sim.stats(), sim.cpu(), self_cpu(), sink.count()
    cmd = naive_command(sim, sink, since=since, page=page)
    result = Child(cmd, log_path=workdir / "naive.log", max_seconds=600, capture_stdout=True).run()
    if result.rc != 0:
        raise RuntimeError(f"naive baseline exited {result.rc}:\n{result.tail()}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    time.sleep(0.5)  # the sink counts on its own thread
    stats1 = sim.stats()
    return {
        "result": result,
        "records": sink.count() - count0,
        "emitted": out["emitted"],
        "requests": sum(stats1["requests"].values()) - sum(stats0["requests"].values()),
        "sim_cpu": sim.cpu() - sim_cpu0,
        "receiver_cpu": self_cpu() - self0,
    }
