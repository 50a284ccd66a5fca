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
    python bench/run.py naive-instructions [--quick]  # the same ratio in instructions
                                               # (valgrind callgrind; 20 sessions)
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

# The benchmarks live in one module per family (conditions.py: the network conditions and the
# simulator / sink start-up; figures.py: the summary, percentiles, request-log figures;
# throughput.py, memory.py, api_cost.py, freshness.py, rate.py, issue9.py, stages.py,
# profiling.py, live.py + issue14.py); this file only parses the command line and runs them.
# (The docstring above is `--help`'s text.)

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conditions
from api_cost import run_api_cost
from conditions import Conditions
from figures import Summary
from freshness import run_freshness
from harness import machine_summary, new_keys_supported, print_table
from instructions import run_instructions
from issue9 import run_budget, run_fault_storm, run_many_meetings
from issue14 import run_churn, run_naive_issue14, run_requests_per_read, run_talking_quiet
from live import DEFAULT_PAGE_CAP
from memory import run_memory
from profiling import run_profile
from rate import run_rate
from stages import run_stages
from throughput import run_throughput

from daily_otel_bridge.config.settings import parse_duration

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
    "naive-instructions": run_instructions,
}
# Issue 9's rows, in the order of its table.
ISSUE9 = ["budget", "many-meetings", "fault-storm", "naive", "memory", "api-cost"]
# Issue 14, point 5 (the page cap on: `--page-cap`, default 200).
ISSUE14 = ["churn", "talking-quiet", "requests-per-read", "naive-capped"]
ALL = ["throughput", "memory", "api-cost", "freshness", "rate", "budget", "many-meetings"]
ALL += ["fault-storm", "stages"]


def byte_compile_package() -> None:
    """Byte-compile the package measured, as `pip install` does: a checkout run with
    PYTHONDONTWRITEBYTECODE (this machine sets it) would otherwise compile its modules from
    source at every daemon start (~0.1 CPU s), which an installed bridge never pays and
    the naive path, whose libraries were installed by pip, does not pay either."""
    import compileall

    import daily_otel_bridge

    compileall.compile_dir(Path(daily_otel_bridge.__file__).parent, quiet=1)


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
    conditions.COND = Conditions(
        latency=args.latency,
        jitter=args.latency / 5 if args.latency_jitter is None else args.latency_jitter,
        backend=args.backend_delay,
        new_keys=new_keys,
        max_concurrent_reads=args.max_concurrent_reads,
    )
    summary = Summary()
    byte_compile_package()
    print_table("Machine", ["", ""], machine_summary())
    print(f"\nconditions: {conditions.COND.describe()}", flush=True)
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
