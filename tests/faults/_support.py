"""Helpers shared by the fault, property and security suites (no test here)."""

from __future__ import annotations

import ctypes
import json
import resource
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from daily_otel_bridge.testing.otlp_receiver import ReceivedLog
from tests.e2e.harness import PYTHON, bridge_env

# Linux capability numbers and prctl(PR_CAPBSET_DROP).
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_rss_kb(pid: int) -> int:
    """Resident set size of a live process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def drop_dac_capabilities() -> None:
    """preexec_fn: the child is root but without the power to ignore file permissions, so a
    0555 directory is really read-only for it (tests run as root here and in CI)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def file_size_limit(max_bytes: int) -> Callable[[], None]:
    """preexec_fn: no file the child writes may grow past `max_bytes` (a full disk, seen
    from the process: writes fail with EFBIG; Python ignores SIGXFSZ)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def received_uids(logs: Iterable[ReceivedLog]) -> Counter[str]:
    return Counter(str(log.attributes["log.record.uid"]) for log in logs)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def events(text: str, name: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(text) if e.get("event") == name]


def cli(
    *args: str, timeout: float = 120, env: Mapping[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m daily_otel_bridge ARGS`, captured."""
    return subprocess.run(
        [PYTHON, "-m", "daily_otel_bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else bridge_env(),
        check=False,
        **kwargs,
    )


def dead_letters(config: Path) -> list[dict[str, Any]]:
    result = cli("state", "dead-letters", "--config", str(config), "--limit", "100000")
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
