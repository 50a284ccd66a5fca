"""Benchmarks of daily-otel-bridge: one entry point, one Markdown table per figure.

    python bench/run.py all [--quick]          # every benchmark, then a summary vs targets
    python bench/run.py throughput [--quick]   # 1 + 2: daemon -> sink / rotel, naive SDK path
    python bench/run.py naive [--quick]        # 2 only: daemon -> sink vs naive SDK path
    python bench/run.py memory [--quick]       # 3: peak RSS draining 1,000,000 records
    python bench/run.py api-cost [--quick]     # 4: requests/min, 1,000 sessions, 10 active
    python bench/run.py freshness [--quick]    # 5: visible-at-Daily -> acked-at-receiver delay
    python bench/run.py rate [--quick]         # 6: share of requests_per_second used, 429s
    python bench/run.py budget [--quick]       # 9.1: budget share of a backlog drain, slow API
    python bench/run.py many-meetings [--quick]  # 9.2 + 9.3: 100 talking + 1,000 silent
    python bench/run.py fault-storm [--quick]  # 9.4: every record through 429s, 5xx, failures
    python bench/run.py issue9 [--quick]       # issue 9's rows: the three above, naive,
                                               # memory, api-cost
    python bench/run.py churn [--quick]        # 14.5: 300 meetings starting/ending + 200 silent
    python bench/run.py talking-quiet [--quick]  # 14.5: 100 talking + 1,000 that spoke once
    python bench/run.py requests-per-read [--quick]  # 14.5: talking only, page caps 200 and 100
    python bench/run.py naive-capped [--quick]  # 14.5: the CPU ratio row with the page cap on
    python bench/run.py issue14 [--quick]      # the four above (--page-cap N, default 200)
    python bench/run.py stages [--quick]       # in-process cost of each hot-path step
    python bench/run.py profile [--tool pyinstrument|py-spy] [--quick]

Every scenario runs under `--latency 150ms` (+- `--latency-jitter`, default 20 %) at the
simulator and `--backend-delay 50ms` at the in-process sink (`--latency 0 --backend-delay 0`:
loopback, the conditions of the figures before issue 9). `--new-keys auto|on|off` writes
`export.batch_timeout` / `export.max_inflight_exports` (and `--max-concurrent-reads N` as
`domains[].max_concurrent_reads`) when the package's `check-config` accepts them.

Each measured program runs as its own process (simulator, daemon, naive baseline, rotel);
the daemon's CPU and peak RSS come from `os.wait4` on its pid, so nothing else is counted.
See bench/README.md for what each benchmark does and the figures of the reference machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    API_KEY,
    BENCH_DIR,
    DOMAIN,
    NEW_EXPORT_KEYS,
    PYTHON,
    Child,
    Simulator,
    daemon,
    daemon_command,
    free_port,
    in_process_sink,
    machine_summary,
    new_keys_supported,
    percentile,
    print_table,
    proc_cpu,
    prometheus_totals,
    rotel_sink,
    self_cpu,
    write_config,
)

from daily_otel_bridge.config.settings import parse_duration

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


COND = Conditions()  # set by main() from the command line


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


class Summary:
    """Rows of the final 'measured vs target' table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, item: str, measured: str, target: str, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        self.rows.append((item, measured, target, verdict))


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
        f"{cap or 'none'}; {COND.describe()} (rotel answers at once)",
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
            naive = measure_naive(workdir, sim, sink, page=naive_page)
            rows.append(
                _throughput_row(
                    "naive: SDK BatchLogRecordProcessor + OTLPLogExporter",
                    naive,
                    naive_idle["result"].cpu,
                )
            )
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
    lost = naive["emitted"] - naive["records"]
    print(
        f"naive: emitted {naive['emitted']:,}, acked {naive['records']:,} "
        f"(lost in the SDK queue: {lost:,}); {naive['requests']} API requests"
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
            ["records lost by the naive path", f"{lost:,} of {naive['emitted']:,}"],
        ],
    )
    summary.add(
        "1. throughput, bridge -> sink (mean of 2 runs)",
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


def measure_naive(
    workdir: Path, sim: Simulator, sink: Any, since: int = 0, page: int = 1000
) -> dict[str, Any]:
    stats0, sim_cpu0, self0, count0 = sim.stats(), sim.cpu(), self_cpu(), sink.count()
    cmd = [
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
    concurrency = "concurrency keys on" if COND.new_keys else "concurrency keys unsupported"
    summary.add(
        f"9.6 / 3. peak RSS, {total:,} records / {meetings:,} sessions, {concurrency}",
        f"{r.maxrss_mb:.0f} MB",
        "<= 150 MB",
        ok,
    )


# -- 4: API cost -----------------------------------------------------------------------------


def run_api_cost(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    if args.quick:
        quiet, live, run_s, window_s = 99, 1, 45.0, 20.0
    else:
        quiet, live, run_s, window_s = 990, 10, 330.0, 120.0
    poll, max_quiet = 15.0, 60.0
    print(
        f"\n## API cost: {quiet + live:,} tracked sessions, {live} active, "
        f"poll_interval={poll:g}s, max_quiet_interval={max_quiet:g}s, "
        f"requests_per_second={MAX_RPS}; {run_s:g} s run, steady-state window = last "
        f"{window_s:g} s",
        flush=True,
    )
    sim_args = [
        "--meetings",
        str(quiet),
        "--records",
        "5",
        "--history",
        "240",
        "--live",
        "--live-meetings",
        str(live),
        "--live-rate",
        "1",
    ]
    timeline: list[tuple[float, dict[str, Any]]] = []
    with (
        start_sim(sim_args, max_seconds=run_s + 120, workdir=workdir) as sim,
        sink_for() as sink,
    ):
        live_ids = {m["id"] for m in sim.meetings() if m["live"]}
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={
                "requests_per_second": MAX_RPS,
                "page_size": 1000,
                "poll_interval": f"{poll:g}s",
                "max_quiet_interval": f"{max_quiet:g}s",
            },
        )
        proc = daemon(config, workdir, once=False, max_seconds=run_s + 60, name="api-cost")
        log: list[tuple[float, str, str, int, int, float]] = []
        with proc:
            start = time.time()
            while time.time() - start < run_s:
                time.sleep(5.0)
                timeline.append((time.time() - start, sim.stats()))
                log.extend(sim.new_requests())
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError("daemon died:\n" + proc.log_path.read_text()[-2000:])
            end = time.time()
            proc.stop()
            proc.wait()
        log.extend(sim.new_requests())
    lo, hi = end - window_s, end
    win = [r for r in log if lo <= r[0] < hi]
    minutes = window_s / 60.0
    meetings_req = sum(1 for r in win if r[1] == "meetings")
    live_req = [r for r in win if r[1] == "logs" and r[2] in live_ids]
    quiet_req = [r for r in win if r[1] == "logs" and r[2] not in live_ids]
    status = collections.Counter(str(r[4]) for r in log)
    live_reads = [r for r in live_req if r[3] == 0]  # a read starts at offset 0
    gaps: list[float] = []
    # The interval still open at the end counts towards the maximum (as a lower bound): a
    # session not read at all in the window has waited at least that long.
    open_gaps: list[float] = []
    # The worst interval (gap, session, its start), printed request by request below.
    worst: tuple[float, str, float] | None = None
    for sid in live_ids:
        starts = sorted(
            r[0]
            for r in log
            if r[1] == "logs" and r[2] == sid and r[3] == 0 and lo - 60 <= r[0] < hi
        )
        for a, b in itertools.pairwise(starts):
            gaps.append(b - a)
            if worst is None or b - a > worst[0]:
                worst = (b - a, sid, a)
        open_gaps.append(hi - (starts[-1] if starts else lo - 60))
    max_gap = max(gaps + open_gaps) if live_ids else math.inf
    long_gaps = sorted((g for g in gaps if g > 1.2 * poll), reverse=True)
    if long_gaps:
        print(
            f"intervals over {1.2 * poll:g} s: {len(long_gaps)} of {len(gaps)}: "
            + ", ".join(f"{g:.1f}" for g in long_gaps[:20])
        )
    if worst is not None and worst[0] > 1.2 * poll:
        gap, sid, at = worst
        print(f"longest interval between two reads of an active session: {gap:.1f} s ({sid})")
        for r in log:
            if r[1] == "logs" and r[2] == sid and at - 20 <= r[0] <= at + gap + 1:
                print(f"  t={r[0] - lo:8.2f}s offset={r[3]} status={r[4]} {r[5:]}")
    gap_text = (
        f"; read every {statistics.mean(gaps):.1f} s on average, max {max_gap:.1f} s"
        if gaps
        else f"; no two reads in the window: max interval >= {max_gap:.0f} s"
    )
    per_quiet = collections.Counter(r[2] for r in quiet_req)
    spread = collections.Counter(per_quiet.values())
    print("quiet sessions by requests in the window:", dict(sorted(spread.items())))
    usual = spread.most_common(1)[0][0] if spread else 0
    for sid, n in per_quiet.most_common(2):
        if n > usual:
            print(
                f"  {sid}: "
                + ", ".join(f"t={r[0] - lo:.1f} offset={r[3]}" for r in quiet_req if r[2] == sid)
            )
    quiet_polled = len(per_quiet)
    total = len(win)
    rows = [
        ["all", total / minutes, total / window_s, ""],
        ["GET /meetings (discovery)", meetings_req / minutes, meetings_req / window_s, ""],
        [
            f"GET /logs, {live} active sessions",
            len(live_req) / minutes,
            len(live_req) / window_s,
            f"{len(live_reads) / minutes / max(1, live):.2f} reads/min per session "
            f"({len(live_req) / max(1, len(live_reads)):.2f} requests per read){gap_text}",
        ],
        [
            f"GET /logs, {quiet} quiet sessions",
            len(quiet_req) / minutes,
            len(quiet_req) / window_s,
            f"{len(quiet_req) / minutes / max(1, quiet):.2f} requests/min per session; "
            f"{quiet_polled} of {quiet} polled in the window",
        ],
    ]
    print_table(
        f"API requests at the simulator, steady-state window "
        f"({window_s:g} s ending at {run_s:g} s)",
        ["requests", "per minute", "per second", "detail"],
        rows,
    )
    # Timeline, from /_sim/stats, to show the warm-up and when steady state was reached.
    trows = []
    prev_t, prev = 0.0, {"meetings": 0, "logs": 0}
    for t, st in timeline:
        if int(t) % 30 < 5 or t == timeline[-1][0]:
            req = st["requests"]
            dt = t - prev_t
            trows.append(
                [
                    f"{prev_t:.0f}-{t:.0f}",
                    (req["logs"] - prev["logs"]) / dt * 60,
                    (req["meetings"] - prev["meetings"]) / dt * 60,
                ]
            )
            prev_t, prev = t, req
    print_table(
        "Timeline (from /_sim/stats)",
        ["seconds since start", "logs req/min", "meetings req/min"],
        trows,
    )
    print(f"status codes over the whole run: {dict(status)}")
    # Target: active polled every poll_interval, quiet at most once per max_quiet_interval.
    ideal = (live * 60 / poll) + quiet * 60 / max_quiet
    print(
        f"reference: one request per poll would be {live * 60 / poll:.0f}/min for the active "
        f"sessions + at most {quiet * 60 / max_quiet:.0f}/min for the quiet ones = "
        f"{ideal:.0f}/min before discovery"
    )
    # Requests per minute of a quiet session from its polls: requests per poll x polls per
    # minute (60 / the mean interval between two polls' first requests; a request less
    # than 5 s after the previous one belongs to the same poll). A count in a fixed window
    # catches three polls of a 60 s period when the first lands on its start edge and the
    # third just before its end (a request's arrival moves with its wait for the budget),
    # which reads as more than one a minute.
    poll_gaps: list[float] = []
    polls = 0
    for sid in per_quiet:
        times = sorted(r[0] for r in quiet_req if r[2] == sid)
        firsts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 5.0]
        polls += len(firsts)
        poll_gaps.extend(b - a for a, b in itertools.pairwise(firsts))
    counted_rate = len(quiet_req) / minutes / max(1, quiet)
    quiet_rate = counted_rate
    if poll_gaps:
        quiet_rate = len(quiet_req) / polls * 60 / statistics.mean(poll_gaps)
    print(
        f"quiet sessions: {counted_rate:.3f} requests/min counted in the window, "
        f"{quiet_rate:.3f} from their polls ({len(quiet_req) / max(1, polls):.2f} requests a "
        f"poll, {statistics.mean(poll_gaps) if poll_gaps else float('nan'):.1f} s apart)"
    )
    live_read_rate = len(live_reads) / minutes / max(1, live)
    q = args.quick
    summary.add(
        "4. API cost, total",
        f"{total / minutes:,.0f} req/min "
        f"(logs {(len(live_req) + len(quiet_req)) / minutes:,.0f}, "
        f"meetings {meetings_req / minutes:,.0f})",
        f"~{ideal:,.0f}/min + discovery",
        None,
    )
    summary.add(
        "4. quiet session",
        f"{quiet_rate:.2f} req/min each",
        f"<= {60 / max_quiet:g} req/min",
        None if q else quiet_rate <= 60 / max_quiet,
    )
    summary.add(
        "4. active session",
        f"{live_read_rate:.2f} reads/min each",
        f"{60 / poll:g} reads/min",
        None if q else live_read_rate >= 0.9 * 60 / poll,
    )
    mean_text = f"{statistics.mean(gaps):.1f} s avg" if gaps else "< 2 reads"
    summary.add(
        f"9.7 quiet session cost / active read interval ({quiet + live:,} tracked, {live} active)",
        f"{quiet_rate:.2f} req/min / {mean_text}, max {max_gap:.1f} s",
        f"<= 1 req/min / every {poll:g} s (max {1.2 * poll:g} s)",
        None if q else quiet_rate <= 1 and max_gap <= 1.2 * poll,
    )


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
        truth = [r for r in json.loads(_get(sim.base + "/_sim/records?domain=acme"))["records"]]
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


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback only
        return bytes(resp.read())


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


# -- issue 9: the core under real conditions ---------------------------------------------------


def _span_rate(log: list[tuple[float, str, str, int, int, float]]) -> tuple[int, float, float]:
    """(requests, span s, achieved req/s) from arrival times at the simulator."""
    times = sorted(r[0] for r in log)
    if len(times) < 2:
        return len(times), 0.0, 0.0
    span = times[-1] - times[0]
    return len(times), span, (len(times) - 1) / span if span > 0 else 0.0


def _burst_starts(times: list[float], pause: float) -> list[float]:
    """The first of each run of sorted times whose neighbours are at most `pause` apart."""
    starts: list[float] = []
    prev = -math.inf
    for t in times:
        if t - prev > pause:
            starts.append(t)
        prev = t
    return starts


def run_budget(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """9.1: how much of the request budget a backlog drain uses when every answer is slow."""
    sessions, per = (10, 2000) if args.quick else (40, 2000)
    print(
        f"\n## Budget: drain {sessions} sessions x {per:,} records (--once), "
        f"requests_per_second={MAX_RPS} (also enforced by the simulator), page_size=1000; "
        f"{COND.describe()}",
        flush=True,
    )
    sim_args = ["--meetings", str(sessions), "--records", str(per), "--rate-limit", str(MAX_RPS)]
    with start_sim(sim_args, max_seconds=1200, workdir=workdir) as sim, sink_for() as sink:
        sim.warm_up()
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={"requests_per_second": MAX_RPS, "page_size": 1000},
        )
        result = daemon(config, workdir, once=True, max_seconds=1100, name="budget").run()
        if result.rc != 0:
            raise RuntimeError(f"daemon exited {result.rc}:\n{result.tail()}")
        log = sim.new_requests()
        stats = sim.stats()
        acked = sink.count()
        exports_inflight = sink.max_inflight()
    n, span, achieved = _span_rate(log)
    dom = stats["domains"][DOMAIN]
    share = 100 * achieved / MAX_RPS
    print_table(
        "Share of the request budget used (arrivals at the simulator, first to last request)",
        [
            "records acked",
            "wall s",
            "records/s",
            "API requests",
            "API floor s",
            "span s",
            "achieved req/s",
            "% of limit",
            "max reads in flight at Daily",
            "max exports in flight",
            "429 (simulator's limiter)",
            "target",
        ],
        [
            [
                acked,
                result.wall,
                acked / result.wall,
                n,
                n / MAX_RPS,
                span,
                achieved,
                share,
                dom["max_inflight"],
                exports_inflight,
                dom["limiter_429"],
                ">= 90 %",
            ]
        ],
    )
    summary.add(
        f"9.1 share of requests_per_second used, backlog drain ({sessions} x {per:,})",
        f"{share:.0f} % ({achieved:.1f} req/s, {dom['limiter_429']} x 429)",
        ">= 90 %",
        None if args.quick else share >= 90,
    )


def run_many_meetings(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """9.2 + 9.3: 100 talking + 1,000 silent ongoing meetings under the defaults."""
    if args.quick:
        talking, silent, run_s = 10, 100, 75.0
    else:
        talking, silent, run_s = 100, 1000, 300.0
    rate, poll, settle = 2.0, 15.0, 5.0
    total = talking + silent
    print(
        f"\n## Many meetings: {talking} talking ({rate:g} records/s each) + {silent:,} silent "
        f"ongoing meetings, defaults (poll_interval {poll:g}s, settle_lag {settle:g}s), "
        f"requests_per_second={MAX_RPS} (also enforced by the simulator), daemon mode for "
        f"{run_s:g} s; {COND.describe()}",
        flush=True,
    )
    sim_args = [
        *("--meetings", "0", "--live", "--live-meetings", str(talking)),
        *("--live-rate", f"{rate:g}", "--live-silent-meetings", str(silent)),
        *("--rate-limit", str(MAX_RPS)),
    ]
    log: list[tuple[float, str, str, int, int, float]] = []
    with (
        start_sim(sim_args, max_seconds=run_s + 300, workdir=workdir) as sim,
        sink_for(keep_records=True, max_seconds=run_s + 300) as sink,
    ):
        talking_ids = {m["id"] for m in sim.meetings() if m["index"] < talking}
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={"requests_per_second": MAX_RPS},
        )
        proc = daemon(config, workdir, once=False, max_seconds=run_s + 60, name="many-meetings")
        t0 = time.time()
        with proc:
            while time.time() - t0 < run_s:
                time.sleep(5.0)
                log.extend(sim.new_requests())
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError("daemon died:\n" + proc.log_path.read_text()[-2000:])
            t_end = time.time()
            proc.stop()
            proc.wait()
        log.extend(sim.new_requests())
        stats = sim.stats()
        logs = sink.log_records()
        acks = ack_times(sink)
        truth = json.loads(_get(f"{sim.base}/_sim/records?domain={DOMAIN}"))["records"]
    from daily_otel_bridge.core.mapping import parse_time_ns

    # First pass: when each meeting's first /logs request was answered with a 200.
    first_ok: dict[str, float] = {}
    for r in log:
        if r[1] == "logs" and r[4] == 200 and r[2]:
            first_ok[r[2]] = min(first_ok.get(r[2], math.inf), r[5])
    firsts = sorted(t - t0 for t in first_ok.values())
    pass_done = len(first_ok) >= total
    pass_s = firsts[-1] if pass_done else math.inf
    # Freshness after the pass: records that became visible once every meeting had been read,
    # and early enough before the end that poll_interval + settle_lag could have brought them.
    lo = t0 + (pass_s if pass_done else run_s / 2)
    hi = t_end - (poll + settle + 10.0)
    window_truth = [
        r
        for r in truth
        if r["mtgSessionId"] in talking_ids and lo <= parse_time_ns(r["time"]) / 1e9 < hi
    ]
    delays: list[float] = []
    seen: set[str] = set()
    for rec, ack in zip(logs, acks, strict=False):
        uid = str(rec.attributes.get("log.record.uid"))
        if uid in seen:
            continue
        seen.add(uid)
        t = rec.time_unix_nano / 1e9
        if lo <= t < hi:
            delays.append(ack - t)
    missing = max(0, len(window_truth) - len(delays))
    padded = delays + [math.inf] * missing  # a record never acked is infinitely late
    p50, p99 = (percentile(padded, q) if padded else math.inf for q in (50, 99))

    def secs(v: float) -> str:
        return "unbounded" if math.isinf(v) else f"{v:.1f}"

    # Read intervals after the pass. A read is a burst of requests for one session (its pages
    # follow each other within a latency or two); a pause longer than a quarter of
    # poll_interval starts the next read. Not "offset=0": a quiet poll may start elsewhere.
    per_session: dict[str, list[float]] = collections.defaultdict(list)
    for r in log:
        if r[1] == "logs" and r[2] in talking_ids:
            per_session[r[2]].append(r[0])
    gaps: list[float] = []
    for times in per_session.values():
        starts = _burst_starts(sorted(times), poll / 4)
        gaps.extend(b - a for a, b in itertools.pairwise(t for t in starts if t >= lo))
    after = [r for r in log if r[0] >= lo]
    quiet_after = [r for r in after if r[1] == "logs" and r[2] not in talking_ids]
    minutes_after = max(1e-9, (t_end - lo) / 60)
    dom = stats["domains"][DOMAIN]
    print_table(
        "First pass over every meeting (time from daemon start to its first 200 /logs answer)",
        [
            "meetings",
            "read by the end",
            "p50 s",
            "last (the pass) s",
            "target",
            "max reads in flight",
            "429 (limiter)",
            "requests",
            "req/s",
        ],
        [
            [
                total,
                len(first_ok),
                percentile(firsts, 50) if firsts else math.inf,
                secs(pass_s) if pass_done else f"> {run_s:g} (not done)",
                "<= 70 s",
                dom["max_inflight"],
                dom["limiter_429"],
                len(log),
                _span_rate(log)[2],
            ]
        ],
    )
    since = f"from {secs(pass_s)} s" if pass_done else f"pass not done: from {run_s / 2:g} s"
    print_table(
        f"After the first pass ({since} to {hi - t0:.0f} s after start)",
        [
            "talking records",
            "acked",
            "missing",
            "p50 s",
            "p99 s",
            "target p99",
            "talking read interval avg / max s",
            "silent req/min each",
        ],
        [
            [
                len(window_truth),
                len(delays),
                missing,
                secs(p50),
                secs(p99),
                "<= 23 s",
                f"{statistics.mean(gaps):.1f} / {max(gaps):.1f}" if gaps else "no reads",
                len(quiet_after) / minutes_after / max(1, silent),
            ]
        ],
    )
    summary.add(
        f"9.2 first pass over {total:,} meetings ({talking} talking)",
        f"{secs(pass_s)} s" if pass_done else f"> {run_s:g} s ({len(first_ok):,} read)",
        "<= 70 s",
        None if args.quick else pass_s <= 70,
    )
    summary.add(
        "9.3 freshness p99 after the first pass",
        f"{secs(p99)} s ({missing} of {len(window_truth):,} missing)",
        "<= 23 s",
        None if args.quick else p99 <= 23,
    )


def run_fault_storm(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """9.4: every record delivered through a storm of Daily and backend errors."""
    if args.quick:
        sessions, per, cap = 4, 1500, 150.0
    else:
        sessions, per, cap = 12, 1500, 330.0
    target = 240.0
    failure = 0.2
    print(
        f"\n## Fault storm: {sessions} sessions x {per:,} records, pages capped at 37, "
        "15 % of answers 429 (half with Retry-After), 10 % 5xx, lookback 1m, "
        f"receiver failing {100 * failure:g} % of exports, daemon mode (cap {cap:g} s); "
        f"{COND.describe()}",
        flush=True,
    )
    sim_args = [
        *("--meetings", str(sessions), "--records", str(per), "--history", "600"),
        *("--max-limit", "37", "--error-429-ratio", "0.15", "--error-5xx-ratio", "0.10"),
        *("--error-retry-after-ratio", "0.5"),
    ]
    progress: list[tuple[float, int]] = []
    done_at: float | None = None
    with (
        start_sim(sim_args, max_seconds=cap + 300, workdir=workdir) as sim,
        sink_for(keep_records=True, max_seconds=cap + 300, failure_ratio=failure) as sink,
    ):
        expected = sum(m["visible_records"] for m in sim.meetings())
        config = config_for(
            workdir,
            api_url=sim.url,
            endpoint=sink.grpc_endpoint,
            domain={"requests_per_second": MAX_RPS, "lookback": "1m"},
        )
        proc = daemon(config, workdir, once=False, max_seconds=cap + 60, name="fault-storm")
        uids: set[str] = set()
        taken = 0
        t0 = time.time()
        with proc:
            while time.time() - t0 < cap:
                time.sleep(1.0)
                logs = sink.log_records()
                for rec in logs[taken:]:
                    uids.add(str(rec.attributes.get("log.record.uid")))
                taken = len(logs)
                elapsed = time.time() - t0
                if not progress or elapsed - progress[-1][0] >= 30:
                    progress.append((elapsed, len(uids)))
                if len(uids) >= expected:
                    done_at = elapsed
                    break
                if proc.process is not None and proc.process.poll() is not None:
                    raise RuntimeError("daemon died:\n" + proc.log_path.read_text()[-2000:])
            proc.stop()
            proc.wait()
        stats = sim.stats()
        received = sink.count()
        failed_exports = sink.failed_count()
        exports = sink.request_count()
    dom = stats["domains"][DOMAIN]
    status = stats["status_counts"]
    api = sum(stats["requests"].values())
    print_table(
        "Delivery through the storm (unique log.record.uid at the receiver vs the ground truth)",
        [
            "records",
            "delivered",
            "all delivered after s",
            "target",
            "duplicates",
            "API requests",
            "429 (random, limiter)",
            "5xx",
            "exports",
            "failed exports",
            "max reads in flight",
        ],
        [
            [
                expected,
                len(uids),
                f"{done_at:.1f}" if done_at is not None else f"> {cap:g} (not done)",
                f"<= {target:g} s",
                received - len(uids),
                api,
                f"{dom['random_429']}, {dom['limiter_429']}",
                sum(v for k, v in status.items() if k.startswith("5")),
                exports,
                failed_exports,
                dom["max_inflight"],
            ]
        ],
    )
    print_table(
        "Progress",
        ["seconds since start", "unique records delivered"],
        [[f"{t:.0f}", n] for t, n in progress],
    )
    summary.add(
        f"9.4 fault storm ({sessions} x {per:,}): every record delivered",
        f"after {done_at:.0f} s"
        if done_at is not None
        else f"not after {cap:g} s ({len(uids):,} of {expected:,})",
        f"within {target:g} s",
        None if args.quick else done_at is not None and done_at <= target,
    )


# -- hot-path stages ---------------------------------------------------------------------------


def run_stages(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """CPU of each per-record step, in this process, on records rendered by the simulator."""
    import gzip

    from daily_otel_bridge.core.cursor import SessionCursor, SessionRead
    from daily_otel_bridge.core.encoding import LogBatch
    from daily_otel_bridge.core.mapping import (
        DEFAULT_SEVERITY,
        encode_log_record,
        fill_log_record,
        record_digest,
        record_uid,
        validate,
    )
    from daily_otel_bridge.otlp.resource import domain_resource
    from daily_otel_bridge.testing.simulator import Simulator as Sim
    from daily_otel_bridge.testing.simulator import SimulatorConfig

    n_meetings = 5 if args.quick else 20
    sim = Sim(
        SimulatorConfig(
            domains={"acme": "k"},
            meetings_per_domain=n_meetings,
            records_per_meeting=1000,
            include_metrics_samples=False,
        )
    )
    now_ms = int(time.time() * 1000) + 10**7
    pages = []
    for m in sim.domain_meetings("acme"):
        recs, idx = sim.select_logs(m, now_ms)
        pages.append(json.dumps({"logs": [sim.render_log(m, recs, i) for i in idx]}).encode())
    n = 1000 * n_meetings
    resource = domain_resource("acme", {})

    def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
        best = float("inf")
        for _ in range(repeat):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best

    decoded = [json.loads(p)["logs"] for p in pages]
    records = [r for page in decoded for r in page]
    digests = [record_digest(r) for r in records]
    uids = [record_uid(d, 1) for d in digests]
    valid = [validate(r) for r in records]

    def build() -> LogBatch:
        batch = LogBatch(resource)
        obs = time.time_ns()
        for r, v, u in zip(records, valid, uids, strict=True):
            fill_log_record(
                batch.add(),
                r,
                time_ns=v.time_ns,
                observed_ns=obs,
                uid=u,
                room="standup",
                severity=DEFAULT_SEVERITY,
            )
        return batch

    def build_encoded() -> LogBatch:
        batch = LogBatch(resource)
        obs = time.time_ns()
        for r, v, u in zip(records, valid, uids, strict=True):
            batch.add_encoded(
                encode_log_record(
                    r,
                    time_ns=v.time_ns,
                    observed_ns=obs,
                    uid=u,
                    room="standup",
                    severity=DEFAULT_SEVERITY,
                )
            )
        return batch

    batch = build()
    raw = batch.encode()

    def bookkeeping() -> None:
        cursor = SessionCursor(session_id="s", room="r", start_floor_ms=0)
        read = SessionRead.begin(cursor, now_ms=now_ms, lookback_ms=120_000, settle_lag_ms=5000)
        for d, v in zip(digests, valid, strict=True):
            uid = read.identify(d)
            if not read.is_delivered(uid):
                read.mark(uid, v.time_ns)

    def sqlite_commit() -> None:
        from daily_otel_bridge.state.base import CursorUpdate
        from daily_otel_bridge.state.sqlite import SqliteCursorStore

        path = workdir / "stages.db"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")
        store = SqliteCursorStore(path)
        cursor = SessionCursor(session_id="s", room="r", start_floor_ms=0)
        for i in range(0, n, 2000):
            upd = CursorUpdate(
                cursor=cursor,
                new_seen=list(
                    zip(uids[i : i + 2000], (v.time_ns for v in valid[i : i + 2000]), strict=False)
                ),
            )
            store.commit("acme", "logs", [upd])
        store.close()

    def gzip6() -> None:
        for i in range(0, len(raw), len(raw) // max(1, n // 2000)):
            gzip.compress(raw[i : i + len(raw) // max(1, n // 2000)], compresslevel=6)

    def gzip1() -> None:
        for i in range(0, len(raw), len(raw) // max(1, n // 2000)):
            gzip.compress(raw[i : i + len(raw) // max(1, n // 2000)], compresslevel=1)

    steps = [
        ("json.loads of the /logs bodies", lambda: [json.loads(p) for p in pages]),
        ("record_digest (canonical JSON + blake2b)", lambda: [record_digest(r) for r in records]),
        ("record_uid (hex)", lambda: [record_uid(d, 1) for d in digests]),
        ("validate", lambda: [validate(r) for r in records]),
        ("cursor bookkeeping (identify, seen, mark)", bookkeeping),
        ("fill_log_record into LogBatch (messages, then serialised)", lambda: build().encode()),
        (
            "encode_log_record into LogBatch (the hot path) + encode",
            lambda: build_encoded().encode(),
        ),
        ("SerializeToString of the same request as a message", batch.request.SerializeToString),
        ("gzip level 6 (what grpc core uses)", gzip6),
        ("gzip level 1 (what the HTTP transport uses)", gzip1),
        ("SQLite commit of every uid (2,000 per transaction)", sqlite_commit),
    ]
    rows: list[list[Any]] = []
    for label, fn in steps:
        try:
            cpu = timed(fn)
        except Exception as exc:  # the package's internals move; report, don't die
            rows.append([label, f"n/a ({type(exc).__name__})", ""])
            continue
        rows.append([label, 1e6 * cpu / n, 100_000 * cpu / n])
    print_table(
        f"In-process CPU per step ({n:,} simulator records, best of 3)",
        ["step", "us/record", "CPU s/100k"],
        rows,
    )
    print(f"request size: {len(raw) / n:.0f} bytes/record uncompressed")


# -- profiling -------------------------------------------------------------------------------


def run_profile(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    meetings = 20 if args.quick else 200
    tool = args.tool
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if tool == "auto":
        tool = "py-spy" if Path(spy).exists() else "pyinstrument"
    out_dir = Path(args.profile_dir or workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tool == "py-spy":
        if not Path(spy).exists():
            raise SystemExit("py-spy is not installed: pip install py-spy")
        out = out_dir / "daemon.pyspy.txt"
        native = ["--native"] if args.native else []
        wrap = [
            spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            *native,
            "--output",
            str(out),
            "--",
        ]
    else:
        out = out_dir / "daemon.pyinstrument.txt"
        wrap = [
            PYTHON,
            "-m",
            "pyinstrument",
            "--renderer",
            "text",
            "--outfile",
            str(out),
            "--show",
            "*/daily_otel_bridge/*",
            "-p",
            "processor_options.filter_threshold=0.01",
        ]
    print(
        f"\n## Profile ({tool}) of the daemon draining {meetings * 1000:,} records to the "
        "in-process sink",
        flush=True,
    )
    with (
        start_sim(
            ["--meetings", str(meetings), "--records", "1000"], max_seconds=900, workdir=workdir
        ) as sim,
        sink_for() as sink,
    ):
        config = throughput_config(workdir, sim, sink.grpc_endpoint)
        cmd = list(daemon_command())
        if tool != "py-spy":
            cmd = ["-m", "daily_otel_bridge"]
        full = [*wrap, *cmd, "run", "--config", str(config), "--once"]
        result = Child(full, log_path=workdir / "profile.log", max_seconds=600).run()
        if result.rc != 0:
            raise RuntimeError(f"profiled daemon exited {result.rc}:\n{result.tail()}")
        print(f"acked {sink.count():,} records; profile written to {out}")
    if tool == "py-spy":
        print_pyspy_summary(out)
    else:
        print(out.read_text()[:12000])


def print_pyspy_summary(path: Path, top: int = 25) -> None:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    print_table(
        f"py-spy: self time (share of {total:,} non-idle samples)",
        ["function (file)", "self %"],
        [[f, 100 * c / total] for f, c in self_c.most_common(top)],
    )
    # The bridge's own functions: any frame from the package, whatever its modules are
    # called today (a list of file names goes stale with the first rename).
    ours = [
        (f, c)
        for f, c in incl.most_common()
        if "(" in f and ("daily_otel_bridge/" in f or "daily_otel_bridge." in f)
    ]
    print_table(
        "py-spy: inclusive time of the bridge's own functions",
        ["function (file)", "inclusive %"],
        [[f, 100 * c / total] for f, c in ours[:top]],
    )


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
                metrics = prometheus_totals(_get(f"http://127.0.0.1:{port}/metrics").decode())
            proc.stop()
            proc.wait()
        log.extend(sim.new_requests())
        stats = sim.stats()
        logs = sink.log_records()
        acks = ack_times(sink)
        truth = json.loads(_get(f"{sim.base}/_sim/records?domain={DOMAIN}&visible=1"))["records"]
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


def _pcts(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return percentile(values, 50), percentile(values, 99)


def _secs(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return "unbounded" if math.isinf(v) else f"{v:.1f}"


def _first_reads(run: LiveRun) -> dict[str, float]:
    """Each session's first 200 answer to /logs (answer time)."""
    first: dict[str, float] = {}
    for r in run.log:
        if r[1] == "logs" and r[4] == 200 and r[2]:
            first[r[2]] = min(first.get(r[2], math.inf), r[5])
    return first


def _reads(run: LiveRun, ids: set[str], after: float) -> list[int]:
    """Requests per read (a burst of /logs requests for one session, see `_burst_starts`) of
    the sessions `ids`, for reads starting at or after `after`."""
    per_session: dict[str, list[float]] = collections.defaultdict(list)
    for r in run.log:
        if r[1] == "logs" and r[2] in ids:
            per_session[r[2]].append(r[0])
    sizes: list[int] = []
    for times in per_session.values():
        times.sort()
        starts = _burst_starts(times, POLL / 4)
        for k, start in enumerate(starts):
            if start < after:
                continue
            stop = starts[k + 1] if k + 1 < len(starts) else math.inf
            sizes.append(sum(1 for t in times if start <= t < stop))
    return sizes


def run_churn(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """Issue 14: meetings that start and end during the run, some uploading a late batch."""
    cap = page_cap(args)
    if args.quick:
        churn, over, dmin, dmax, silent, grace, margin = 30, 15.0, 10.0, 20.0, 20, 30.0, 5.0
    else:
        churn, over, dmin, dmax, silent, grace, margin = 300, 150.0, 15.0, 60.0, 200, 600.0, 20.0
    rate, late_ratio, late_records, late_delay = 2.0, 0.2, 20, 10.0
    cutoff = grace + SETTLE_LAG + MAX_QUIET + 10.0  # no read of a session after end + this
    print(
        f"\n## Churn: {churn} meetings starting over {over:g} s (each {dmin:g}-{dmax:g} s, "
        f"{rate:g} records/s, {late_ratio:.0%} uploading {late_records} records {late_delay:g} s "
        f"after the end) beside {silent} silent ongoing meetings; page cap {cap}, "
        f"requests_per_second={MAX_RPS} (also enforced by the simulator), session_grace "
        f"{grace:g}s{' (quick: shortened)' if grace != SESSION_GRACE else ' (default)'}, other "
        f"keys default; daemon mode until every meeting's end + {cutoff:g} s + {margin:g} s; "
        f"{COND.describe()}",
        flush=True,
    )
    sim_args = [
        *("--meetings", "0", "--live", "--live-meetings", "0"),
        *("--live-silent-meetings", str(silent)),
        *("--churn-meetings", str(churn), "--churn-over", f"{over:g}"),
        *("--churn-min-duration", f"{dmin:g}", "--churn-max-duration", f"{dmax:g}"),
        *("--churn-rate", f"{rate:g}", "--churn-late-ratio", f"{late_ratio:g}"),
        *("--churn-late-records", str(late_records), "--churn-late-delay", f"{late_delay:g}"),
        *("--rate-limit", str(MAX_RPS), "--max-limit", str(cap)),
    ]

    def how_long(meetings: list[dict[str, Any]]) -> float:
        last_end = max(m["ends"] for m in meetings if m["churn"])
        return float(last_end - min(m["begins"] for m in meetings) + cutoff + margin)

    domain = {} if grace == SESSION_GRACE else {"session_grace": f"{grace:g}s"}
    run = run_live(workdir, "churn", sim_args, how_long, domain)
    from daily_otel_bridge.core.mapping import parse_time_ns

    churning = {m["id"]: m for m in run.meetings if m["churn"]}
    uids = truth_uids(run.truth)
    fresh_all: list[float] = []
    fresh_first: list[float] = []
    fresh_late: list[float] = []
    late_total = late_ok = lost = 0
    for rec, uid in zip(run.truth, uids, strict=True):
        m = churning.get(rec["mtgSessionId"])
        if m is None:
            continue
        ack = run.delivered.get(uid)
        delay = math.inf if ack is None else ack - rec["_visible"]
        lost += ack is None
        fresh_all.append(delay)
        t = parse_time_ns(rec["time"]) / 1e9
        if t < m["begins"] + 15.0:
            fresh_first.append(delay)
        if rec["_visible"] > t + 0.5:  # a late upload
            late_total += 1
            late_ok += ack is not None
            fresh_late.append(delay)
    all_uids = set(uids)
    lost_any = len(all_uids - set(run.delivered))
    dups = run.received - len(run.delivered)
    extra = len(set(run.delivered) - all_uids)
    # Reads later than a session's end + grace + settle_lag + max_quiet_interval + 10 s.
    late_reads: collections.Counter[str] = collections.Counter()
    observed = 0
    for sid, m in churning.items():
        limit = m["ends"] + cutoff
        observed += limit < run.t_end
        late_reads[sid] = sum(1 for r in run.log if r[1] == "logs" and r[2] == sid and r[0] > limit)
    n_late_reads = sum(late_reads.values())
    first = _first_reads(run)
    discovery = [first.get(sid, math.inf) - m["begins"] for sid, m in churning.items()]
    busy_end = max(m["late_visible_at"] or m["ends"] for m in churning.values()) + 30.0
    n_req = len(run.log)
    busy = [r for r in run.log if r[0] <= busy_end]
    busy_rate = len(busy) / max(1e-9, busy_end - run.t0)
    status = collections.Counter(str(r[4]) for r in run.log)
    p50, p99 = _pcts(fresh_all)
    _, p99_first = _pcts(fresh_first)
    late_p50, late_p99 = _pcts(fresh_late)
    print_table(
        "Freshness of the churning meetings' records (visible at Daily -> acked at the sink)",
        [
            "records",
            "p50 s",
            "p99 s",
            "first 15 s: records",
            "first 15 s: p99 s",
            "late uploads delivered",
            "late uploads p50 / p99 s",
            "first read after start p50 / max s",
            "target p99",
        ],
        [
            [
                len(fresh_all),
                _secs(p50),
                _secs(p99),
                len(fresh_first),
                _secs(p99_first),
                f"{late_ok} of {late_total}",
                f"{_secs(late_p50)} / {_secs(late_p99)}",
                f"{_secs(_pcts(discovery)[0])} / {_secs(max(discovery, default=math.nan))}",
                "<= 23 s",
            ]
        ],
    )
    print_table(
        "Losses, duplicates, reads after the grace, budget",
        [
            "records lost (churning)",
            "lost (all)",
            "duplicates",
            "unknown uids",
            f"reads later than end + {cutoff:g} s",
            "sessions with such reads",
            "sessions whose limit passed in the run",
            "requests",
            f"req/s (until {busy_end - run.t0:.0f} s)",
            "req/s (whole run)",
            "429s",
            "run s",
        ],
        [
            [
                lost,
                lost_any,
                dups,
                extra,
                n_late_reads,
                sum(1 for v in late_reads.values() if v),
                f"{observed} of {len(churning)}",
                n_req,
                busy_rate,
                n_req / max(1e-9, run.t_end - run.t0),
                status.get("429", 0),
                run.t_end - run.t0,
            ]
        ],
    )
    if n_late_reads:
        worst = late_reads.most_common(3)
        print(
            "most reads after the limit: "
            + ", ".join(
                f"{sid} ({n}, ended {churning[sid]['ends'] - run.t0:.0f} s)" for sid, n in worst
            )
        )
    q = args.quick
    summary.add(
        f"14.5 churn ({churn} meetings + {silent} silent, cap {cap}): freshness p99 all / "
        "first 15 s",
        f"{_secs(p99)} s / {_secs(p99_first)} s (p50 {_secs(p50)} s)",
        "<= 23 s",
        None if q else p99 <= 23 and p99_first <= 23,
    )
    summary.add(
        "14.5 churn: lost / duplicated / reads after end + grace + settle + quiet + 10 s",
        f"{lost_any} / {dups} / {n_late_reads} (late uploads {late_ok} of {late_total})",
        "0 / 0 / 0",
        lost_any == 0 and dups == 0 and n_late_reads == 0 and late_ok == late_total,
    )
    summary.add(
        "14.5 churn: requests/s used",
        f"{busy_rate:.1f} req/s while meetings churn, {status.get('429', 0)} x 429",
        f"<= {MAX_RPS}",
        None,
    )


def _reread(run: LiveRun) -> tuple[str, float | None]:
    """The daemon's re-read counter at the end of the run, and which one it was."""
    if REREAD_COUNTER in run.metrics:
        return REREAD_COUNTER, run.metrics[REREAD_COUNTER]
    if DEDUP_COUNTER in run.metrics:
        return DEDUP_COUNTER, run.metrics[DEDUP_COUNTER]
    return "none (no /metrics)", None


def run_talking_quiet(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """Issue 14: 100 talking meetings + 1,000 ongoing ones that said three words 30 s before
    the start."""
    cap = page_cap(args)
    if args.quick:
        talking, quiet, run_s = 10, 100, 110.0
    else:
        talking, quiet, run_s = 100, 1000, 300.0
    rate, words, ago, warm = 2.0, 3, 30.0, 60.0
    print(
        f"\n## Talking + quiet: {talking} talking meetings ({rate:g} records/s) + {quiet:,} "
        f"ongoing ones that said {words} words {ago:g} s before the start; page cap {cap}, "
        f"requests_per_second={MAX_RPS} (also enforced by the simulator), other keys default; "
        f"daemon mode for {run_s:g} s; {COND.describe()}",
        flush=True,
    )
    sim_args = [
        *("--meetings", "0", "--live", "--live-meetings", str(talking)),
        *("--live-rate", f"{rate:g}", "--live-silent-meetings", str(quiet)),
        *("--live-silent-words", str(words), "--live-silent-words-ago", f"{ago:g}"),
        *("--rate-limit", str(MAX_RPS), "--max-limit", str(cap)),
    ]
    run = run_live(workdir, "talking-quiet", sim_args, run_s)
    from daily_otel_bridge.core.mapping import parse_time_ns

    talking_ids = {m["id"] for m in run.meetings if m["index"] < talking}
    lo, hi = run.t0 + warm, run.t_end - (POLL + SETTLE_LAG + 10.0)
    uids = truth_uids(run.truth)
    fresh: list[float] = []
    for rec, uid in zip(run.truth, uids, strict=True):
        if rec["mtgSessionId"] not in talking_ids:
            continue
        if lo <= parse_time_ns(rec["time"]) / 1e9 < hi:
            ack = run.delivered.get(uid)
            fresh.append(math.inf if ack is None else ack - rec["_visible"])
    missing = sum(1 for d in fresh if math.isinf(d))
    p50, p99 = _pcts(fresh)
    sizes = _reads(run, talking_ids, lo)
    first = _first_reads(run)
    catch_up = max(first.values()) - run.t0 if len(first) >= talking + quiet else math.inf
    minutes = (run.t_end - run.t0) / 60
    delivered = len(run.delivered)
    counter, reread = _reread(run)
    logs_ok = sum(1 for r in run.log if r[1] == "logs" and r[4] == 200)
    served = int(run.stats["records_served"])
    sim_reread = served - delivered - logs_ok
    # Lost: visible early enough that the daemon had a poll + settle_lag + 10 s to bring it.
    lost = sum(
        1
        for rec, uid in zip(run.truth, uids, strict=True)
        if rec["_visible"] < hi and uid not in run.delivered
    )
    print_table(
        f"Talking meetings: freshness of records from {warm:g} s to {hi - run.t0:.0f} s, "
        "requests per read after it",
        [
            "records",
            "missing",
            "p50 s",
            "p99 s",
            "target p99",
            "reads",
            "requests/read mean / max",
            "target",
            "catch-up (every meeting read once) s",
        ],
        [
            [
                len(fresh),
                missing,
                _secs(p50),
                _secs(p99),
                "<= 23 s",
                len(sizes),
                f"{statistics.mean(sizes):.2f} / {max(sizes)}" if sizes else "no reads",
                "<= 2",
                _secs(catch_up) if math.isfinite(catch_up) else f"> {run_s:g} ({len(first)})",
            ]
        ],
    )
    share = None if reread is None else 100 * reread / max(1, delivered)
    print_table(
        "Records read again (whole run)",
        [
            "source",
            "re-read",
            "per minute",
            "% of delivered",
            "delivered",
            f"lost (visible before {hi - run.t0:.0f} s)",
            "duplicates",
            "target",
        ],
        [
            [
                f"daemon /metrics: {counter}",
                "n/a" if reread is None else int(reread),
                "n/a" if reread is None else reread / minutes,
                "n/a" if share is None else f"{share:.1f}",
                delivered,
                lost,
                run.received - delivered,
                "<= 5 %",
            ],
            [
                f"simulator: served {served:,} - delivered - {logs_ok:,} anchors (1 a request)",
                sim_reread,
                sim_reread / minutes,
                f"{100 * sim_reread / max(1, delivered):.1f}",
                delivered,
                lost,
                run.received - delivered,
                "<= 5 %",
            ],
        ],
    )
    q = args.quick
    summary.add(
        f"14.5 talking + quiet ({talking} + {quiet:,}, cap {cap}): freshness p99 from {warm:g} s",
        f"{_secs(p99)} s (p50 {_secs(p50)} s, {missing} of {len(fresh):,} missing)",
        "<= 23 s",
        None if q else p99 <= 23,
    )
    summary.add(
        f"14.5 talking + quiet: requests per read of a talking session (cap {cap})",
        f"{statistics.mean(sizes):.2f} mean, max {max(sizes)}" if sizes else "no reads",
        "<= 2",
        None if q or not sizes else statistics.mean(sizes) <= 2,
    )
    reread_text = "n/a (no /metrics)"
    if reread is not None and share is not None:
        which = "reread_total" if counter == REREAD_COUNTER else "deduplicated_total (fallback)"
        reread_text = f"{share:.1f} % ({reread / minutes:,.0f}/min, {which})"
    summary.add(
        "14.5 talking + quiet: records read again",
        reread_text,
        "<= 5 %",
        None if q or share is None else share <= 5,
    )
    summary.add(
        "14.5 talking + quiet: catch-up (every meeting read once)",
        f"{_secs(catch_up)} s",
        "(report)",
        None,
    )


def run_requests_per_read(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """Issue 14: requests per read of talking sessions only, at page caps 200 and 100."""
    if args.quick:
        talking, run_s, warm = 10, 60.0, 20.0
    else:
        talking, run_s, warm = 100, 150.0, 30.0
    rate = 2.0
    caps = sorted({page_cap(args), 100}, reverse=True)
    print(
        f"\n## Requests per read: {talking} talking meetings ({rate:g} records/s), page caps "
        f"{' and '.join(map(str, caps))}, requests_per_second={MAX_RPS} (also enforced by the "
        f"simulator), other keys default; daemon mode for {run_s:g} s each, reads after "
        f"{warm:g} s; {COND.describe()}",
        flush=True,
    )
    rows = []
    for cap in caps:
        sim_args = [
            *("--meetings", "0", "--live", "--live-meetings", str(talking)),
            *("--live-rate", f"{rate:g}", "--rate-limit", str(MAX_RPS), "--max-limit", str(cap)),
        ]
        run = run_live(workdir, f"rpr-{cap}", sim_args, run_s)
        ids = {m["id"] for m in run.meetings}
        sizes = _reads(run, ids, run.t0 + warm)
        mean = statistics.mean(sizes) if sizes else math.nan
        rows.append(
            [
                cap,
                len(sizes),
                mean,
                max(sizes, default=0),
                collections.Counter(sizes).most_common(4),
                len(run.delivered),
                run.received - len(run.delivered),
                "<= 2",
            ]
        )
        summary.add(
            f"14.5 requests per read, talking sessions only ({talking}), page cap {cap}",
            f"{mean:.2f} mean, max {max(sizes, default=0)}",
            "<= 2",
            None if args.quick or not sizes else mean <= 2,
        )
    print_table(
        "Requests per read of a talking session (a read = a burst of /logs requests)",
        [
            "page cap",
            "reads",
            "mean",
            "max",
            "most common (requests, reads)",
            "delivered",
            "duplicates",
            "target",
        ],
        rows,
    )


def run_naive_issue14(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """The CPU ratio row (bridge vs naive SDK path, incl. start-up) with the page cap on."""
    run_throughput(args, workdir, summary, rotel=False, cap=page_cap(args))


# -- main ------------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[argparse.Namespace, Path, Summary], None]] = {
    "throughput": run_throughput,
    "naive": lambda a, w, s: run_throughput(a, w, s, rotel=False),
    "memory": run_memory,
    "api-cost": run_api_cost,
    "freshness": run_freshness,
    "rate": run_rate,
    "budget": run_budget,
    "many-meetings": run_many_meetings,
    "fault-storm": run_fault_storm,
    "stages": run_stages,
    "profile": run_profile,
    "churn": run_churn,
    "talking-quiet": run_talking_quiet,
    "requests-per-read": run_requests_per_read,
    "naive-capped": run_naive_issue14,
}
# Issue 9's rows, in the order of its table.
ISSUE9 = ["budget", "many-meetings", "fault-storm", "naive", "memory", "api-cost"]
# Issue 14, point 5 (the page cap on: `--page-cap`, default 200).
ISSUE14 = ["churn", "talking-quiet", "requests-per-read", "naive-capped"]
ALL = ["throughput", "memory", "api-cost", "freshness", "rate", "budget", "many-meetings"]
ALL += ["fault-storm", "stages"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", choices=[*SCENARIOS, "all", "issue9", "issue14"])
    parser.add_argument("--quick", action="store_true", help="small smoke-test sizes (< 1 min)")
    parser.add_argument(
        "--tool",
        choices=["auto", "pyinstrument", "py-spy"],
        default="auto",
        help="profiler for `profile` (auto: py-spy if installed)",
    )
    parser.add_argument("--profile-dir", help="where `profile` writes its output")
    parser.add_argument(
        "--native", action="store_true", help="py-spy: include native (C) frames, e.g. inside grpc"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--page-cap",
        type=int,
        default=None,
        help=f"largest /logs page the simulator answers (--max-limit); issue 14's scenarios "
        f"default to {DEFAULT_PAGE_CAP}, the others to none",
    )
    parser.add_argument(
        "--latency",
        type=parse_duration,
        default=Conditions.latency,
        help="Daily API answer delay (simulator), e.g. 150ms; 0 = loopback (the old figures)",
    )
    parser.add_argument(
        "--latency-jitter", type=parse_duration, default=None, help="+- uniform (default 20 %%)"
    )
    parser.add_argument(
        "--backend-delay",
        type=parse_duration,
        default=Conditions.backend,
        help="answer delay of the in-process OTLP sink, e.g. 50ms",
    )
    parser.add_argument(
        "--new-keys",
        choices=["auto", "on", "off"],
        default="auto",
        help="write export.batch_timeout / max_inflight_exports (and --max-concurrent-reads): "
        "auto = when `check-config` accepts them",
    )
    parser.add_argument(
        "--max-concurrent-reads", type=int, default=None, help="domains[].max_concurrent_reads"
    )
    args = parser.parse_args(argv)
    names = {"all": ALL, "issue9": ISSUE9, "issue14": ISSUE14}.get(args.benchmark, [args.benchmark])
    workdir = Path(tempfile.mkdtemp(prefix="daily-otel-bench-"))
    new_keys = args.new_keys == "on" or (args.new_keys == "auto" and new_keys_supported(workdir))
    global COND
    COND = Conditions(
        latency=args.latency,
        jitter=args.latency / 5 if args.latency_jitter is None else args.latency_jitter,
        backend=args.backend_delay,
        new_keys=new_keys,
        max_concurrent_reads=args.max_concurrent_reads,
    )
    summary = Summary()
    print_table("Machine", ["", ""], machine_summary())
    print(f"\nconditions: {COND.describe()}", flush=True)
    started = time.monotonic()
    try:
        for name in names:
            t = time.monotonic()
            try:
                SCENARIOS[name](args, workdir, summary)
            except Exception as exc:
                if len(names) == 1:
                    raise
                # One broken benchmark must not cost the others' figures.
                print(f"\n{name} FAILED: {type(exc).__name__}: {exc}", flush=True)
                summary.add(name, f"FAILED ({type(exc).__name__})", "", False)
            print(f"\n({name}: {time.monotonic() - t:.0f} s)", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if summary.rows:
        print_table(
            f"Summary{' (--quick sizes: not the reference figures)' if args.quick else ''}",
            ["item", "measured", "target", "verdict"],
            summary.rows,
        )
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
