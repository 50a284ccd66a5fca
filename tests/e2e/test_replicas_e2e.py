"""Three daemons on one PostgreSQL and four domains (each its own simulator).

Every record is delivered, duplicates stay within one export request per kill, and from
the simulators' request logs no two replicas ever read one domain at the same time; across
SIGKILLs, a PostgreSQL restart and a replica frozen past its lease.

"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.harness import wait_until
from tests.e2e.replicas import ReplicaRig, duplicates, overlapping_readers, replica_rig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def assert_one_reader_at_a_time(rig: ReplicaRig) -> None:
    for d in rig.sims:
        problems = overlapping_readers(rig.requests(d))
        assert not problems, f"{d}: {problems[:5]}"


def start_all(rig: ReplicaRig, n: int = 3) -> None:
    for i in range(1, n + 1):
        rig.add_replica(f"r{i}").start()

    def started() -> bool:
        for r in rig.replicas:
            assert r.running, f"{r.name} exited:\n{r.log()[-3000:]}"
        return all(rig.reader_of(d) for d in rig.sims)

    assert wait_until(started, 60), "not every domain read"


def test_sigkill_of_random_replicas_during_the_drain_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(10)
    with replica_rig(tmp_path) as rig:
        start_all(rig)
        want = rig.truth()
        kills = 0
        for fraction in (0.2, 0.5):
            assert wait_until(
                lambda f=fraction: rig.receiver.count() >= f * sum(want.values()), 300
            )
            owners = [
                r
                for r in rig.replicas
                if r.running and r.name in {rig.reader_of(d) for d in rig.sims}
            ]
            victim = rng.choice(owners)
            taken = [d for d in rig.sims if rig.reader_of(d) == victim.name]
            killed_at = time.time()
            victim.kill()
            kills += 1
            for d in taken:
                assert wait_until(
                    lambda d=d, t=killed_at, v=victim.name: (
                        rig.first_read_after(d, t, v) is not None
                    ),
                    rig.lease + rig.poll + 5 + 5,
                ), f"{d} not taken over"
                first = rig.first_read_after(d, killed_at, victim.name)
                assert first is not None
                assert first - killed_at <= rig.lease + rig.poll + 5
            victim.start()  # back as a standby, or with a share again
        assert rig.wait_all_delivered(300)
        assert duplicates(want, rig.delivered()) <= kills * rig.batch_size
        assert_one_reader_at_a_time(rig)


def test_sigterm_hands_over_within_poll_interval_plus_5s(tmp_path: Path) -> None:
    with replica_rig(tmp_path, lease=30.0) as rig:
        start_all(rig)
        want = rig.truth()
        assert wait_until(lambda: rig.receiver.count() >= 0.2 * sum(want.values()), 300)
        victim = rig.replica(rig.reader_of("d0") or "r1")
        taken = [d for d in rig.sims if rig.reader_of(d) == victim.name]
        stopped_at = time.time()
        assert victim.terminate() == 0
        for d in taken:
            assert wait_until(
                lambda d=d: rig.first_read_after(d, stopped_at, victim.name) is not None, 30
            )
            first = rig.first_read_after(d, stopped_at, victim.name)
            assert first is not None
            assert first - stopped_at <= rig.poll + 5
        assert rig.wait_all_delivered(300)
        # A graceful stop commits what it exported: no duplicate at all.
        assert duplicates(want, rig.delivered()) == 0
        assert_one_reader_at_a_time(rig)


def test_postgres_restart_mid_drain_loses_nothing(tmp_path: Path) -> None:
    with replica_rig(tmp_path) as rig:
        start_all(rig)
        want = rig.truth()
        assert wait_until(lambda: rig.receiver.count() >= 0.3 * sum(want.values()), 300)
        rig.pg.restart(down_for=2.0)
        assert rig.wait_all_delivered(300)
        # Every replica is still alive and ready again (it recovered by itself).
        for replica in rig.replicas:
            assert replica.running, replica.log()[-3000:]
            assert wait_until(lambda r=replica: r.readyz()[0] == 200, 30)
        assert_one_reader_at_a_time(rig)
        # A restart shorter than the lease margin costs no duplicate beyond the export
        # requests in flight (one per domain: max_inflight_exports is 1 here).
        assert duplicates(want, rig.delivered()) <= len(rig.sims) * rig.batch_size


def test_a_frozen_replica_loses_its_domains_and_exports_nothing_when_resumed(
    tmp_path: Path,
) -> None:
    with replica_rig(tmp_path) as rig:
        start_all(rig)
        want = rig.truth()
        assert wait_until(lambda: rig.receiver.count() >= 0.2 * sum(want.values()), 300)
        victim = rig.replica(rig.reader_of("d0") or "r1")
        frozen = [d for d in rig.sims if rig.reader_of(d) == victim.name]
        frozen_at = time.time()
        victim.freeze()
        for d in frozen:
            assert wait_until(
                lambda d=d: rig.first_read_after(d, frozen_at, victim.name) is not None,
                rig.lease + rig.poll + 10,
            )
        time.sleep(1.0)
        victim.resume()
        assert rig.wait_all_delivered(300)
        # Fencing: on waking it found its deadlines passed and stopped those domains.
        losses = victim.metric("daily_otel_bridge_lease_losses_total", {"replica": victim.name})
        assert losses is not None
        assert losses >= len(frozen)
        assert "lease lost" in victim.log()
        assert duplicates(want, rig.delivered()) <= len(frozen) * rig.batch_size
        assert_one_reader_at_a_time(rig)


def test_a_standby_replica_is_ready(tmp_path: Path) -> None:
    with replica_rig(tmp_path, domains=1) as rig:
        start_all(rig, n=2)
        assert wait_until(lambda: sorted(r.readyz()[0] for r in rig.replicas) == [200, 200], 60)
        bodies = [r.readyz()[1] for r in rig.replicas]
        assert sorted(str(b).count("'standby': True") for b in bodies) == [0, 1]
        for r in rig.replicas:
            r.signal(signal.SIGTERM)
