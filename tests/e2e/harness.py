"""Real processes for end-to-end tests: the simulator, the daemon, and their configs.

Everything binds to 127.0.0.1 on free ports, every process is started with a deadline and
killed at the end of the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PYTHON = sys.executable


@dataclass
class SimulatorProcess:
    url: str  # base URL incl. /v1
    process: subprocess.Popen[str]

    @property
    def control(self) -> str:
        return self.url[: -len("/v1")] + "/_sim"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.control + path, timeout=60) as resp:  # noqa: S310
            return json.loads(resp.read())

    def post(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(  # noqa: S310
            self.control + path,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")

    def ground_truth(self, domain: str) -> list[dict[str, Any]]:
        return list(self.get(f"/records?domain={domain}")["records"])

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/stats"))


@contextmanager
def simulator(args: Sequence[str], max_seconds: float = 600) -> Iterator[SimulatorProcess]:
    cmd = [
        PYTHON,
        "-m",
        "daily_otel_bridge.testing.simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--max-seconds",
        str(max_seconds),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            raise RuntimeError(
                f"simulator did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
            )
        yield SimulatorProcess(url=line.split()[-1], process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class BridgeConfig:
    """Writes a daemon config for tests; `domains` entries are merged over defaults."""

    path: Path
    state_path: Path
    export: dict[str, Any]
    domains: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self) -> Path:
        doc = {
            "state_path": str(self.state_path),
            "health": self.health,
            "export": self.export,
            "domains": self.domains,
            **self.extra,
        }
        self.path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.path


def domain(name: str, key: str, api_url: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "api_key": key,
        "api_url": api_url,
        "requests_per_second": 20,
        "page_size": 1000,
        "poll_interval": "1s",
        "settle_lag": "1s",
        "lookback": "2m",
        "initial_lookback": "2h",
        "session_grace": "1m",
        # /logs alone, counted exactly (the summaries have their own tests).
        "meeting_summaries": False,
    }
    base.update(overrides)
    return base


def bridge_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def run_once(
    config: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "daily_otel_bridge", "run", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or bridge_env(),
        check=False,
    )


def start_daemon(
    config: Path, env: dict[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[str]:
    out = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [PYTHON, "-m", "daily_otel_bridge", "run", "--config", str(config)],
        stdout=out,
        stderr=out,
        text=True,
        env=env or bridge_env(),
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def uid_of(record_attributes: dict[str, Any]) -> str:
    return str(record_attributes["log.record.uid"])
