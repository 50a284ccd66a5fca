"""Benchmark: failover between replicas, and the steady cost of coordination.

Three daemons on one throwaway PostgreSQL, four domains (one simulator each, with live
meetings so that records keep arriving). Measured:

* failover after SIGKILL of the owner of a domain: from the kill to the first record of
  that domain acknowledged through the new owner (the receiver's arrival time of the first
  record of the domain not seen before the kill); target <= lease_duration + poll_interval
  + 5 s;
* failover after SIGTERM of the owner: same, target <= poll_interval + 5 s;
* the steady cost of coordination: statements per second per replica for heartbeats and
  leases (`daily_otel_bridge_coordination_queries_total`, cursor commits not included).

    python bench/failover.py [--rounds 3] [--lease 10] [--poll 1] [--quick]
    python bench/failover.py --components [--lease 10]

The first needs the daemon wiring of the lease manager (docs/replicas.md). `--components`
measures the coordination layer alone, in one process (three `LeaseManager`s with dummy
domain loops on a throwaway PostgreSQL): the takeover time without the pipeline's poll, and
the statements per second. Nothing here asserts on timings: it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from daily_otel_bridge.state.leases import DomainTasks, LeaseManager  # noqa: E402
from daily_otel_bridge.state.postgres import PostgresStateStore  # noqa: E402
from daily_otel_bridge.testing.pg_server import pg_server  # noqa: E402
from tests.e2e.replicas import Replica, ReplicaRig, replica_rig  # noqa: E402

SIM_LIVE = ["--live", "--live-meetings", "2", "--live-rate", "5"]


def domain_uids(rig: ReplicaRig, domain: str) -> set[str]:
    return {
        str(r.attributes["log.record.uid"])
        for r in rig.receiver.log_records()
        if r.resource.get("daily.domain") == domain
    }


def first_new_record_after(
    rig: ReplicaRig, domain: str, seen: set[str], start: float, within: float
) -> float:
    """Seconds from `start` (monotonic) until a record of `domain` not in `seen` reached the
    receiver; NaN if none within `within`."""
    while time.monotonic() - start < within:
        if domain_uids(rig, domain) - seen:
            return time.monotonic() - start
        time.sleep(0.05)
    return float("nan")


def owner_of(rig: ReplicaRig, domain: str) -> Replica:
    name = rig.reader_of(domain)
    assert name is not None, f"nobody reads {domain}"
    return rig.replica(name)


def failover(rig: ReplicaRig, *, graceful: bool, within: float) -> float:
    victim = owner_of(rig, "d0")
    seen = domain_uids(rig, "d0")
    t0 = time.monotonic()
    if graceful:
        victim.terminate()
    else:
        victim.kill()
    seen |= domain_uids(rig, "d0")  # what the victim still got acknowledged on its way out
    took = first_new_record_after(rig, "d0", seen, t0, within)
    victim.start()
    time.sleep(3 * rig.poll)  # let it settle (as a standby or with a share again)
    return took


def coordination_qps(rig: ReplicaRig, seconds: float) -> list[float]:
    metric = "daily_otel_bridge_coordination_queries_total"
    before = [r.metric(metric, {"replica": r.name}) or 0.0 for r in rig.replicas]
    time.sleep(seconds)
    after = [r.metric(metric, {"replica": r.name}) or 0.0 for r in rig.replicas]
    return [(b - a) / seconds for a, b in zip(before, after, strict=True)]


async def _components(lease: float, rounds: int, steady: float) -> tuple[list[float], ...]:
    domains = [f"d{i}" for i in range(4)]
    with pg_server(max_seconds=600) as server:
        dsn = server.create_database("bench")
        running: dict[str, str] = {}  # domain -> replica running it
        changed = asyncio.Event()
        managers: dict[str, tuple[LeaseManager, DomainTasks]] = {}

        def main_for(name: str) -> Callable[[str, int, asyncio.Event], Awaitable[None]]:
            async def main(domain: str, epoch: int, stop: asyncio.Event) -> None:
                running[domain] = name
                changed.set()
                await stop.wait()

            return main

        async def join(name: str) -> None:
            store = await PostgresStateStore.open(dsn)
            tasks = DomainTasks(main_for(name))
            manager = LeaseManager(store, name, domains, lease, tasks)
            await manager.start()
            managers[name] = (manager, tasks)

        async def takeover(graceful: bool) -> float:
            victim = running["d0"]
            manager, tasks = managers.pop(victim)
            t0 = time.monotonic()
            if graceful:
                await manager.shutdown()
            else:
                await manager.close()
                await tasks.close()
            await manager.store.close()
            while running.get("d0") in (victim, None):
                changed.clear()
                await asyncio.wait_for(changed.wait(), lease * 3)
            took = time.monotonic() - t0
            await join(victim + "'")
            await asyncio.sleep(lease / 2)
            return took

        for i in range(1, 4):
            await join(f"r{i}")
        await asyncio.sleep(2)
        kill = [await takeover(False) for _ in range(rounds)]
        term = [await takeover(True) for _ in range(rounds)]
        counter = "daily_otel_bridge_coordination_queries_total"

        def queries() -> list[float]:
            return [
                m.metrics.registry.get_sample_value(counter, {"replica": m.replica_id}) or 0.0
                for m, _ in managers.values()
            ]

        before = queries()
        await asyncio.sleep(steady)
        qps = [(b - a) / steady for a, b in zip(before, queries(), strict=True)]
        for manager, tasks in managers.values():
            await manager.close()
            await tasks.close()
            await manager.store.close()
    return kill, term, qps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lease", type=float, default=10.0)
    p.add_argument("--poll", type=float, default=1.0)
    p.add_argument("--steady", type=float, default=60.0, help="seconds of steady state")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--components", action="store_true", help="the lease layer alone")
    args = p.parse_args()
    rounds, steady = (1, 15.0) if args.quick else (args.rounds, args.steady)
    if args.components:
        kill, term, qps = asyncio.run(_components(args.lease, rounds, steady))
        print("| measure (lease layer alone, no poll) | value | target (whole bridge) |")
        print("| --- | --- | --- |")
        print(
            f"| takeover after SIGKILL (s, worst of {rounds}) | {max(kill):.1f} | "
            f"<= {args.lease + args.poll + 5:.0f} |"
        )
        print(
            f"| takeover after SIGTERM (s, worst of {rounds}) | {max(term):.1f} | "
            f"<= {args.poll + 5:.0f} |"
        )
        print(f"| coordination statements/s per replica | {max(qps):.2f} | |")
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp,
        replica_rig(
            Path(tmp), lease=args.lease, poll=args.poll, meetings=1, records=50, sim_args=SIM_LIVE
        ) as rig,
    ):
        for i in range(1, 4):
            rig.add_replica(f"r{i}").start()
        deadline = time.monotonic() + 60
        while not all(rig.reader_of(d) for d in rig.sims):
            dead = [r for r in rig.replicas if not r.running]
            if dead:
                sys.stderr.write(f"{dead[0].name} exited:\n{dead[0].log()[-2000:]}\n")
                return 1
            if time.monotonic() > deadline:
                sys.stderr.write("the replicas never read every domain (wired?)\n")
                return 1
            time.sleep(0.2)
        kill = [failover(rig, graceful=False, within=args.lease * 3) for _ in range(rounds)]
        term = [failover(rig, graceful=True, within=args.lease * 3) for _ in range(rounds)]
        qps = coordination_qps(rig, steady)
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(
        f"| failover after SIGKILL (s, worst of {rounds}) | {max(kill):.1f} | "
        f"<= {args.lease + args.poll + 5:.0f} |"
    )
    print(
        f"| failover after SIGTERM (s, worst of {rounds}) | {max(term):.1f} | "
        f"<= {args.poll + 5:.0f} |"
    )
    print(f"| coordination statements/s per replica | {max(qps):.2f} | (lower is better) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
