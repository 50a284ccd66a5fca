"""Issue 9's scenarios under real conditions: the budget of a backlog drain (9.1), many
meetings (9.2 + 9.3), the fault storm (9.4).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import statistics
import time
from pathlib import Path

import conditions
from conditions import MAX_RPS, config_for, http_get, sink_for, start_sim
from figures import Summary, ack_times, burst_starts, span_rate
from harness import DOMAIN, daemon, percentile, print_table

# -- issue 9: the core under real conditions ---------------------------------------------------


def run_budget(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    """9.1: how much of the request budget a backlog drain uses when every answer is slow."""
    sessions, per = (10, 2000) if args.quick else (40, 2000)
    print(
        f"\n## Budget: drain {sessions} sessions x {per:,} records (--once), "
        f"requests_per_second={MAX_RPS} (also enforced by the simulator), page_size=1000; "
        f"{conditions.COND.describe()}",
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
    n, span, achieved = span_rate(log)
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
        f"{run_s:g} s; {conditions.COND.describe()}",
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
        truth = json.loads(http_get(f"{sim.base}/_sim/records?domain={DOMAIN}"))["records"]
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
        starts = burst_starts(sorted(times), poll / 4)
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
                span_rate(log)[2],
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
        f"{conditions.COND.describe()}",
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
