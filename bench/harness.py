"""Plumbing shared by the benchmarks: processes with deadlines, configs, resource usage, tables.

Every process binds to 127.0.0.1, is started with a deadline (its own `--max-seconds` or a
watchdog timer that kills it) and is stopped when its `with` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
DOMAIN = "acme"
API_KEY = "bench-api-key-0123456789"


# -- small helpers -------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port free right now (for the daemon's health server)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_totals(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {metric name: sum over every label set}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0].strip()
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
    return out


def get_json(url: str, timeout: float = 60.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (pastes into bench/README.md as is)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print(f"\n### {title}\n", flush=False)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def machine_summary() -> list[tuple[str, str]]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    import platform

    import daily_otel_bridge

    # Which copy is measured: with PYTHONPATH=/tmp/copy it is not the checkout's commit.
    where = str(Path(daily_otel_bridge.__file__).resolve().parent)
    return [
        ("package", package_revision()),
        ("package imported from", where),
        ("cpus (nproc)", str(os.cpu_count())),
        ("cpu model", cpu),
        ("memory", f"{mem:.1f} GiB"),
        ("python", platform.python_version()),
        ("kernel", platform.release()),
    ]


def package_revision() -> str:
    """The commit being measured, and whether the package has uncommitted changes (read-only
    git commands; "?" outside a checkout)."""
    repo = BENCH_DIR.parent

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "daily_otel_bridge")
    except (OSError, subprocess.SubprocessError):
        return "?"
    if not head:
        return "?"
    return head + (" + uncommitted changes in daily_otel_bridge/" if dirty else "")


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_cpu(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return float("nan")


# -- the simulator ---------------------------------------------------------------------------


class Simulator:
    """`bench/simserver.py` (the package's simulator plus a request log) as a subprocess."""

    def __init__(self, args: Sequence[str], *, max_seconds: float, workdir: Path) -> None:
        self.args = list(args)
        self.max_seconds = max_seconds
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log_next = 0

    def __enter__(self) -> Simulator:
        stderr = open(self.workdir / "simulator.err", "wb")
        cmd = [
            PYTHON,
            str(BENCH_DIR / "simserver.py"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--domain",
            f"{DOMAIN}={API_KEY}",
            "--max-seconds",
            str(self.max_seconds),
            *self.args,
        ]
        self.process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        stderr.close()
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        line = self.process.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.__exit__()
            err = (self.workdir / "simulator.err").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"simulator did not start: {line!r}\n{err}")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        terminate(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def base(self) -> str:
        return self.url[: -len("/v1")]

    def stats(self) -> dict[str, Any]:
        return dict(get_json(self.base + "/_sim/stats"))

    def warm_up(self) -> None:
        """Generate every meeting's records now (the simulator does it lazily, on first use),
        so that no measured run pays for it on the simulator's side of the machine."""
        get_json(f"{self.base}/_sim/records?domain={DOMAIN}&limit=1", timeout=300)

    def meetings(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.base}/_sim/meetings?domain={DOMAIN}")["meetings"])

    def new_requests(self) -> list[tuple[float, str, str, int, int, float]]:
        """Requests logged since the last call: (arrival time, endpoint, session, offset, status,
        answer time); with --latency the answer leaves that much after the arrival."""
        body = get_json(f"{self.base}/_bench/requests?since={self._log_next}")
        self._log_next = body["next"]
        return [tuple(r) for r in body["requests"]]  # type: ignore[misc]

    def cpu(self) -> float:
        return proc_cpu(self.pid)


def terminate(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# -- the daemon ------------------------------------------------------------------------------


def write_config(
    workdir: Path,
    *,
    api_url: str,
    endpoint: str,
    protocol: str = "grpc",
    domain: dict[str, Any] | None = None,
    export: dict[str, Any] | None = None,
    fresh_state: bool = True,
    health_listen: str | None = None,
) -> Path:
    """The daemon's config; `health_listen` (e.g. 127.0.0.1:PORT) turns on the health server
    and its /metrics (off otherwise: no port to collide with)."""
    state = workdir / "state.db"
    if fresh_state:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{state}{suffix}")
    config = {
        "state_path": str(state),
        "health": {"enabled": True, "listen": health_listen}
        if health_listen
        else {"enabled": False},
        "export": {"protocol": protocol, "endpoint": endpoint, **(export or {})},
        "domains": [{"name": DOMAIN, "api_key": API_KEY, "api_url": api_url, **(domain or {})}],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# The keys the pipeline rewrite adds (README, "Running under real conditions"). A daemon
# that predates them refuses them at start-up (unknown key), so they are only written when
# `check-config` accepts them.
NEW_EXPORT_KEYS: dict[str, Any] = {"batch_timeout": "1s", "max_inflight_exports": 2}


def new_keys_supported(workdir: Path) -> bool:
    """Whether this package's config parser knows the concurrency keys."""
    path = workdir / "probe-new-keys.yaml"
    probe = {
        "state_path": str(workdir / "probe.db"),
        "health": {"enabled": False},
        "export": {"protocol": "grpc", "endpoint": "http://127.0.0.1:4317", **NEW_EXPORT_KEYS},
        "domains": [
            {
                "name": DOMAIN,
                "api_key": API_KEY,
                "api_url": "http://127.0.0.1:9/v1",
                "max_concurrent_reads": 4,
            }
        ],
    }
    path.write_text(yaml.safe_dump(probe, sort_keys=False))
    out = subprocess.run(
        [*daemon_command(), "check-config", "--config", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return out.returncode == 0


def daemon_command() -> list[str]:
    """`daily-otel-bridge` from this interpreter's environment (or `python -m`)."""
    script = Path(PYTHON).parent / "daily-otel-bridge"
    if script.exists():
        return [str(script)]
    found = shutil.which("daily-otel-bridge")
    return [found] if found else [PYTHON, "-m", "daily_otel_bridge"]


@dataclass
class ProcResult:
    rc: int
    wall: float
    user: float
    sys: float
    maxrss_mb: float  # ru_maxrss of the process (kB on Linux)
    log_path: Path
    sampled_peak_rss_mb: float = 0.0
    stdout: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def events(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
        return out

    def exported(self) -> int:
        # "sweep done" before the pipeline rewrite, "pass done" (--once) after it.
        done = ("sweep done", "pass done")
        return sum(int(e.get("exported", 0)) for e in self.events() if e.get("event") in done)

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


class Child:
    """A child process measured with `os.wait4` (its own CPU and peak RSS, nothing else's).

    A watchdog kills it after `max_seconds`; `stop()` sends SIGTERM (the daemon's graceful stop).
    psutil samples its RSS every `sample_every` seconds as a cross-check of ru_maxrss.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        log_path: Path,
        max_seconds: float,
        capture_stdout: bool = False,
        sample_every: float = 0.5,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        self.max_seconds = max_seconds
        self.capture_stdout = capture_stdout
        self.sample_every = sample_every
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.killed_by_watchdog = False
        self._peak_rss = 0
        self._done = threading.Event()
        self._stdout_path = log_path.with_suffix(".stdout")

    def start(self) -> Child:
        log = open(self.log_path, "wb")  # noqa: SIM115
        out = open(self._stdout_path, "wb") if self.capture_stdout else subprocess.DEVNULL  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.cmd,
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
        )
        log.close()
        if out is not subprocess.DEVNULL:
            out.close()  # type: ignore[union-attr]
        self._watchdog = threading.Timer(self.max_seconds, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _sample(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            while not self._done.wait(self.sample_every):
                self._peak_rss = max(self._peak_rss, proc.memory_info().rss)
        except psutil.Error:
            pass

    def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.killed_by_watchdog = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self) -> ProcResult:
        assert self.process is not None
        _, status, ru = os.wait4(self.pid, 0)
        wall = time.monotonic() - self.started
        self._done.set()
        self._watchdog.cancel()
        rc = os.waitstatus_to_exitcode(status)
        self.process.returncode = rc  # reaped by wait4: tell Popen
        stdout = ""
        if self.capture_stdout:
            stdout = self._stdout_path.read_text(errors="replace")
        if self.killed_by_watchdog:
            raise RuntimeError(f"{self.cmd[:3]} killed after {self.max_seconds} s")
        return ProcResult(
            rc=rc,
            wall=wall,
            user=ru.ru_utime,
            sys=ru.ru_stime,
            maxrss_mb=ru.ru_maxrss / 1024,
            log_path=self.log_path,
            sampled_peak_rss_mb=self._peak_rss / 2**20,
            stdout=stdout,
        )

    def run(self) -> ProcResult:
        return self.start().wait()

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self._kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(self.pid, 0)
                self.process.returncode = -9
            self._done.set()
            self._watchdog.cancel()


def daemon(
    config: Path,
    workdir: Path,
    *,
    once: bool,
    max_seconds: float,
    name: str = "daemon",
    wrap: Sequence[str] = (),
) -> Child:
    cmd = [*wrap, *daemon_command(), "run", "--config", str(config)]
    if once:
        cmd.append("--once")
    return Child(cmd, log_path=workdir / f"{name}.log", max_seconds=max_seconds)


# -- sinks -----------------------------------------------------------------------------------


@contextlib.contextmanager
def in_process_sink(
    keep_records: bool = False,
    max_seconds: float = 900,
    *,
    answer_delay: float = 0.0,
    failure_ratio: float = 0.0,
) -> Iterator[Any]:
    """The package's OTLP receiver in this process (gRPC + HTTP, no compression-sniffing relay);
    `answer_delay` plays a backend that far away, `failure_ratio` one that fails that often."""
    from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver

    receiver = OtlpReceiver(
        keep_records=keep_records,
        observe_grpc_compression=False,
        max_seconds=max_seconds,
        answer_delay=answer_delay,
        failure_ratio=failure_ratio,
    )
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextlib.contextmanager
def rotel_sink(max_seconds: float = 900) -> Iterator[Any]:
    """The real `rotel` collector, exporting to its blackhole, printing nothing."""
    from daily_otel_bridge.testing.rotel import RotelCollector

    collector = RotelCollector(debug_log="", max_seconds=max_seconds)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@dataclass
class Workdir:
    path: Path
    keep: bool = False
    extra: list[Path] = field(default_factory=list)

    def sub(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p
