"""A profile of the daemon draining a backlog (py-spy or pyinstrument)."""

from __future__ import annotations

import argparse
import collections
import shutil
from pathlib import Path

from conditions import sink_for, start_sim
from figures import Summary
from harness import PYTHON, Child, daemon_command, print_table
from throughput import throughput_config

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
    # `--page-cap N`: the simulator answers at most N records a page, as Daily may.
    cap_args = [] if args.page_cap is None else ["--max-limit", str(args.page_cap)]
    print(
        f"\n## Profile ({tool}) of the daemon draining {meetings * 1000:,} records to the "
        f"in-process sink, page cap {args.page_cap or 'none'}",
        flush=True,
    )
    with (
        start_sim(
            ["--meetings", str(meetings), "--records", "1000", *cap_args],
            max_seconds=900,
            workdir=workdir,
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
