"""Benchmark 4: requests per minute of 1,000 tracked sessions, 10 active."""

from __future__ import annotations

import argparse
import collections
import itertools
import math
import statistics
import time
from pathlib import Path
from typing import Any

from conditions import MAX_RPS, config_for, sink_for, start_sim
from figures import Summary
from harness import daemon, print_table

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
