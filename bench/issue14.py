"""Issue 14's scenarios: churning meetings, talking + quiet, requests per read, and the CPU
ratio with the page cap (`naive-capped`).
"""

from __future__ import annotations

import argparse
import collections
import math
import statistics
from pathlib import Path
from typing import Any

import conditions
from conditions import MAX_RPS
from figures import Summary, p50_p99, secs_text
from harness import print_table
from live import (
    DEDUP_COUNTER,
    MAX_QUIET,
    POLL,
    REREAD_COUNTER,
    SESSION_GRACE,
    SETTLE_LAG,
    LiveRun,
    first_reads,
    page_cap,
    read_sizes,
    run_live,
    truth_uids,
)
from throughput import run_throughput


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
        f"{conditions.COND.describe()}",
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
    first = first_reads(run)
    discovery = [first.get(sid, math.inf) - m["begins"] for sid, m in churning.items()]
    busy_end = max(m["late_visible_at"] or m["ends"] for m in churning.values()) + 30.0
    n_req = len(run.log)
    busy = [r for r in run.log if r[0] <= busy_end]
    busy_rate = len(busy) / max(1e-9, busy_end - run.t0)
    status = collections.Counter(str(r[4]) for r in run.log)
    p50, p99 = p50_p99(fresh_all)
    _, p99_first = p50_p99(fresh_first)
    late_p50, late_p99 = p50_p99(fresh_late)
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
                secs_text(p50),
                secs_text(p99),
                len(fresh_first),
                secs_text(p99_first),
                f"{late_ok} of {late_total}",
                f"{secs_text(late_p50)} / {secs_text(late_p99)}",
                f"{secs_text(p50_p99(discovery)[0])} / "
                f"{secs_text(max(discovery, default=math.nan))}",
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
        f"{secs_text(p99)} s / {secs_text(p99_first)} s (p50 {secs_text(p50)} s)",
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
        f"daemon mode for {run_s:g} s; {conditions.COND.describe()}",
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
    p50, p99 = p50_p99(fresh)
    sizes = read_sizes(run, talking_ids, lo)
    first = first_reads(run)
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
                secs_text(p50),
                secs_text(p99),
                "<= 23 s",
                len(sizes),
                f"{statistics.mean(sizes):.2f} / {max(sizes)}" if sizes else "no reads",
                "<= 2",
                secs_text(catch_up) if math.isfinite(catch_up) else f"> {run_s:g} ({len(first)})",
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
        f"{secs_text(p99)} s (p50 {secs_text(p50)} s, {missing} of {len(fresh):,} missing)",
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
        f"{secs_text(catch_up)} s",
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
        f"{warm:g} s; {conditions.COND.describe()}",
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
        sizes = read_sizes(run, ids, run.t0 + warm)
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
