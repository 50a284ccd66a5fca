"""The in-process CPU of each per-record step of the hot path (not a target)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from figures import Summary
from harness import print_table

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
