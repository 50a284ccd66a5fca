"""Several real daemons on one PostgreSQL, one simulator per domain, one OTLP receiver.

Used by `tests/e2e/test_replicas_e2e.py` and the failover bench. Everything binds to
127.0.0.1 on free ports; PostgreSQL and the simulators stop by themselves after a deadline;
every daemon is killed at the end.

The assertion helpers work from the simulators' request logs (`/_sim/requests`): each API
request's arrival and finish time and the User-Agent, which names the replica
(`daily-otel-bridge/<v> (replica <id>)`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from daily_otel_bridge.testing.pg_server import PgServer, free_port, pg_server
from tests.e2e.harness import PYTHON, SimulatorProcess, bridge_env, domain, simulator
from tests.expectations import expected_uids

_REPLICA_RE = re.compile(r"\(replica ([^)]+)\)")


@dataclass
class Replica:
    name: str
    config: Path
    health_port: int
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    starts: int = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        out = open(self.log_path, "a")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "daily_otel_bridge", "run", "--config", str(self.config)],
            stdout=out,
            stderr=out,
            text=True,
            env=self.env,
        )
        out.close()
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def get(self, path: str) -> tuple[int, str]:
        try:
            url = f"http://127.0.0.1:{self.health_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/readyz")
        return status, json.loads(body)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The sum of the /metrics samples of `name` whose labels include `labels` (None
        when there is none)."""
        _, text = self.get("/metrics")
        wanted = labels or {}
        found: list[float] = []
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            have = dict(re.findall(r'(\w+)="([^"]*)"', head))
            if head.split("{")[0] == name and wanted.items() <= have.items():
                found.append(float(value))
        return sum(found) if found else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class ReplicaRig:
    tmp: Path
    pg: PgServer
    dsn: str
    receiver: OtlpReceiver
    sims: dict[str, SimulatorProcess]  # domain -> its own simulator
    keys: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)
    lease: float = 6.0
    poll: float = 1.0
    batch_size: int = 200

    # -- set-up ---------------------------------------------------------------------------

    def add_replica(self, name: str, **top: Any) -> Replica:
        port = free_port()
        doc = {
            "state_url": self.dsn.replace(self.pg.password, "${TEST_PG_PASSWORD}"),
            "lease_duration": f"{self.lease}s",
            "replica_id": name,
            "health": {"enabled": True, "listen": f"127.0.0.1:{port}"},
            "export": {
                "protocol": "grpc",
                "endpoint": self.receiver.grpc_endpoint,
                "batch_size": self.batch_size,
                # As the HA overlay: a kill duplicates at most the one request in flight.
                "max_inflight_exports": 1,
            },
            "domains": [
                domain(d, self.keys[d], sim.url, page_size=200, poll_interval=f"{self.poll}s")
                for d, sim in self.sims.items()
            ],
            **top,
        }
        config = self.tmp / f"{name}.yaml"
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        env = bridge_env(TEST_PG_PASSWORD=self.pg.password)
        replica = Replica(name, config, port, self.tmp / f"{name}.log", env)
        self.replicas.append(replica)
        return replica

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    # -- observations ---------------------------------------------------------------------

    def requests(self, domain: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.sims[domain].get("/requests")["requests"]
        for entry in entries:
            entry["replica"] = replica_of(entry.get("user_agent", ""))
        return entries

    def reader_of(self, domain: str) -> str | None:
        """The replica of the latest request for `domain`."""
        entries = self.requests(domain)
        return entries[-1]["replica"] if entries else None

    def first_read_after(self, domain: str, t: float, by_other_than: str) -> float | None:
        for entry in self.requests(domain):
            if entry["arrived"] >= t and entry["replica"] != by_other_than:
                return float(entry["arrived"])
        return None

    def truth(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for d, sim in self.sims.items():
            total += expected_uids(sim.ground_truth(d))
        return total

    def delivered(self) -> Counter[str]:
        return Counter(str(r.attributes["log.record.uid"]) for r in self.receiver.log_records())

    def wait_all_delivered(self, timeout: float) -> bool:
        want = self.truth()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (want - self.delivered()):
                return True
            time.sleep(0.5)
        return not (want - self.delivered())

    def close(self) -> None:
        for replica in self.replicas:
            if replica.running:
                replica.resume()
                replica.kill()


def replica_of(user_agent: str) -> str | None:
    match = _REPLICA_RE.search(user_agent)
    return match.group(1) if match else None


def reading_periods(entries: Sequence[dict[str, Any]]) -> list[tuple[str | None, float, float]]:
    """Maximal runs of consecutive requests (by arrival) from one replica: (replica, first
    arrival, last finish)."""
    periods: list[tuple[str | None, float, float]] = []
    for entry in sorted(entries, key=lambda e: e["arrived"]):
        who, start, end = entry["replica"], entry["arrived"], entry["finished"]
        if periods and periods[-1][0] == who:
            prev = periods[-1]
            periods[-1] = (who, prev[1], max(prev[2], end))
        else:
            periods.append((who, start, end))
    return periods


def overlapping_readers(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Problems found: a replica's reading period starting before the previous reader's
    last request has finished means two replicas read the domain at the same time."""
    problems = []
    periods = reading_periods(entries)
    for (a, _, a_end), (b, b_start, _) in itertools.pairwise(periods):
        if b_start < a_end:
            problems.append(f"{b} started at {b_start:.3f} while {a} read until {a_end:.3f}")
    return problems


def duplicates(want: Counter[str], got: Counter[str]) -> int:
    return sum((got - want).values())


@contextmanager
def replica_rig(
    tmp_path: Path,
    *,
    domains: int = 4,
    meetings: int = 4,
    records: int = 1500,
    lease: float = 6.0,
    poll: float = 1.0,
    batch_size: int = 200,
    max_seconds: float = 900,
    sim_args: Sequence[str] = (),
) -> Iterator[ReplicaRig]:
    with ExitStack() as stack:
        pg = stack.enter_context(pg_server(max_seconds=max_seconds))
        dsn = pg.create_database("bridge")
        receiver = stack.enter_context(OtlpReceiver(observe_grpc_compression=False))
        sims: dict[str, SimulatorProcess] = {}
        keys: dict[str, str] = {}
        for i in range(domains):
            name = f"d{i}"
            keys[name] = f"key-{name}-{os.getpid()}"
            sims[name] = stack.enter_context(
                simulator(
                    [
                        "--seed",
                        str(100 + i),
                        "--domain",
                        f"{name}={keys[name]}",
                        "--meetings",
                        str(meetings),
                        "--records",
                        str(records),
                        "--tie-ratio",
                        "0.4",
                        *sim_args,
                    ],
                    max_seconds=max_seconds,
                )
            )
        rig = ReplicaRig(tmp_path, pg, dsn, receiver, sims, keys, lease=lease, poll=poll)
        rig.batch_size = batch_size
        try:
            yield rig
        finally:
            rig.close()
