"""The CPU ratio row in instructions (`naive-instructions`): bridge vs naive SDK path, each
run under valgrind's callgrind, which counts the instructions a process executes.

CPU seconds on these VMs move by up to 10 % between two identical runs (the bridge's own
figure went 6.1-7.0 s in one afternoon), so a ratio near its target cannot be read from one
run. An instruction count does not move with the machine's load (two identical runs differ
by 0.05 %), so this benchmark is the cross-check: the same records, the same page cap and
latency, both processes counted whole (start-up included) and their start-up alone (a run
that selects nothing). It is no substitute for the CPU row (an instruction of zlib is not
an instruction of the interpreter), and valgrind slows each process ~50x, hence the small
default workload (20 sessions x 1,000 records). Needs valgrind (Debian: `valgrind`).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Any

from conditions import sink_for, start_sim
from figures import Summary
from harness import Child, daemon, print_table
from live import page_cap
from throughput import naive_command, throughput_config

_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(log: Path) -> int:
    found = _COLLECTED.findall(log.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"callgrind printed no instruction count in {log}")
    return int(found[-1])  # the process itself (a child would print its own line first)


def _callgrind(workdir: Path, name: str) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={workdir / (name + '.callgrind')}",
    ]


def run_instructions(args: argparse.Namespace, workdir: Path, summary: Summary) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("naive-instructions needs valgrind (Debian package `valgrind`)")
    cap = page_cap(args)
    meetings = 5 if args.quick else 20
    total = meetings * 1000
    print(
        f"\n## Instructions (callgrind): {total:,} records ({meetings} sessions x 1,000), "
        f"page cap {cap}, bridge vs naive SDK path, start-up included",
        flush=True,
    )
    rows: list[list[Any]] = []
    counts: dict[str, int] = {}
    with (
        start_sim(
            ["--meetings", str(meetings), "--records", "1000", "--max-limit", str(cap)],
            max_seconds=3600,
            workdir=workdir,
        ) as sim,
        sink_for() as sink,
    ):
        sim.warm_up()
        for name, rooms in (("bridge-startup", ["bench-selects-nothing"]), ("bridge", None)):
            # The CPU row's own config (`throughput_config`), so both count the same daemon.
            selected: dict[str, Any] = {} if rooms is None else {"rooms": rooms}
            config = throughput_config(workdir, sim, sink.grpc_endpoint, **selected)
            before = sink.count()
            result = daemon(
                config,
                workdir,
                once=True,
                max_seconds=3000,
                name=name,
                wrap=_callgrind(workdir, name),
            ).run()
            if result.rc != 0:
                raise RuntimeError(f"{name} exited {result.rc}:\n{result.tail()}")
            counts[name] = _instructions(workdir / f"{name}.log")
            rows.append([name, sink.count() - before, counts[name] / 1e9, result.cpu])
        for name, since in (("naive-startup", 2**31 - 1), ("naive", 0)):
            before = sink.count()
            cmd = [
                *_callgrind(workdir, name),
                *naive_command(sim, sink, since=since, page=min(1000, cap)),
            ]
            log = workdir / f"{name}.log"
            result = Child(cmd, log_path=log, max_seconds=3000, capture_stdout=True).run()
            if result.rc != 0:
                raise RuntimeError(f"{name} exited {result.rc}:\n{result.tail()}")
            counts[name] = _instructions(log)
            rows.append([name, sink.count() - before, counts[name] / 1e9, result.cpu])
    print_table(
        "Instructions per process (valgrind callgrind; CPU s is under valgrind, ~50x)",
        ["process", "records acked", "G instructions", "CPU s (valgrind)"],
        rows,
    )
    incl = counts["naive"] / counts["bridge"]
    per_naive = (counts["naive"] - counts["naive-startup"]) / total
    per_bridge = (counts["bridge"] - counts["bridge-startup"]) / total
    excl = per_naive / per_bridge
    # The CPU row drains 200,000 records: start-up weighs ten times less there than here.
    big = 200_000
    scaled = (counts["naive-startup"] + big * per_naive) / (
        counts["bridge-startup"] + big * per_bridge
    )
    print_table(
        "Ratio in instructions (naive / bridge)",
        ["what", "value"],
        [
            ["per record, start-up included", f"{incl:.2f}x"],
            ["per record, start-up excluded", f"{excl:.2f}x"],
            [
                f"start-up once + {big:,} records (the CPU row's size), extrapolated",
                f"{scaled:.2f}x",
            ],
            [
                "instructions per record (bridge / naive)",
                f"{per_bridge / 1e3:.0f}k / {per_naive / 1e3:.0f}k",
            ],
            [
                "start-up alone (bridge / naive), G instructions",
                f"{counts['bridge-startup'] / 1e9:.2f} / {counts['naive-startup'] / 1e9:.2f}",
            ],
        ],
    )
    summary.add(
        f"14.5 instructions incl. start-up (naive / bridge, callgrind, cap {cap}), measured on "
        f"{total:,} records / extrapolated to {big:,}",
        f"{incl:.2f}x / {scaled:.2f}x",
        ">= 3x (cross-check)",
        scaled >= 3,
    )
