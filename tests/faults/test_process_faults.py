"""The process and its host failing: SIGKILL at random moments, a state directory that is
read-only or full. Nothing is lost, duplicates stay within what was in flight, the state
database stays intact, and without a usable cursor store nothing is shipped at all."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import PYTHON, BridgeConfig, bridge_env, domain, run_once, simulator
from tests.expectations import expected_uids
from tests.faults._support import (
    drop_dac_capabilities,
    events,
    file_size_limit,
    received_uids,
)

KEY = "process-faults-key-0123456789"


def integrity(state: Path) -> str:
    db = sqlite3.connect(str(state))
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def daemon(
    config: Path, *, preexec: Callable[[], None] | None = None, once: bool = False
) -> subprocess.Popen[str]:
    args = [PYTHON, "-m", "daily_otel_bridge", "run", "--config", str(config)]
    return subprocess.Popen(
        [*args, "--once"] if once else args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=bridge_env(),
        preexec_fn=preexec,
    )


def test_sigkill_loop_during_a_100k_drain(tmp_path: Path) -> None:
    batch_size, page_size, kills_wanted = 300, 200, 20
    with (
        simulator(
            [
                "--seed",
                "17",
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "50",
                "--records",
                "2000",
                "--tie-ratio",
                "0.5",
                "--duplicate-ratio",
                "0.02",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        truth = sim.ground_truth("acme")
        assert len(truth) == 100_000
        state = tmp_path / "state.db"
        bridge = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=state,
            export={
                "protocol": "grpc",
                "endpoint": receiver.grpc_endpoint,
                "batch_size": batch_size,
            },
            # Paced (10 requests/s of 200 records) so that the kills land mid-drain.
            domains=[domain("acme", KEY, sim.url, page_size=page_size, requests_per_second=10)],
        )
        config = bridge.write()
        rng = random.Random(2026)
        kills = 0
        while kills < kills_wanted:
            proc = daemon(config)
            # Any moment: during start-up, discovery, a fetch, an export or a commit.
            time.sleep(rng.uniform(0.3, 2.5))
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            proc.kill()
            proc.communicate(timeout=30)
            kills += 1
            if state.exists():
                assert integrity(state) == "ok", f"after kill {kills}"
        delivered_by_killed = receiver.count()
        killed_requests = receiver.requests()
        assert delivered_by_killed < len(truth), "the drain finished before the kills ended"
        bridge.domains = [domain("acme", KEY, sim.url, page_size=1000, requests_per_second=20)]
        final = run_once(bridge.write())
        assert final.returncode == 0, final.stderr[-3000:]
        assert integrity(state) == "ok"

        got, want = received_uids(receiver.log_records()), expected_uids(truth)
        assert not (want - got), f"{sum((want - got).values())} records lost"
        duplicates = sum((got - want).values())
        # What a kill can catch in flight: one export request (acknowledged, not committed).
        in_flight = max(r.records for r in killed_requests)
        assert in_flight <= batch_size + page_size  # a batch is flushed after the page filling it
        print(f"kills={kills} delivered while killing={delivered_by_killed} dups={duplicates}")
        assert duplicates <= kills * in_flight


def _small_config(tmp_path: Path, sim_url: str, receiver: OtlpReceiver, state: Path) -> Path:
    return BridgeConfig(
        path=tmp_path / "bridge.yaml",
        state_path=state,
        export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint, "batch_size": 200},
        domains=[domain("acme", KEY, sim_url, page_size=200)],
    ).write()


def _state_error(stderr: str) -> str:
    errors = events(stderr, "state store unusable")
    assert len(errors) == 1, stderr[-3000:]
    return str(errors[0]["error"])


def test_read_only_state_directory_clear_error_nonzero_exit_nothing_shipped(tmp_path: Path) -> None:
    with (
        simulator(
            ["--seed", "4", "--domain", f"acme={KEY}", "--meetings", "3", "--records", "300"]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        # 1. A new state file in a directory the process cannot write.
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        config = _small_config(tmp_path, sim.url, receiver, locked / "state.db")
        for once in (False, True):
            proc = daemon(config, preexec=drop_dac_capabilities, once=once)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 3, err[-2000:]
            message = _state_error(err)
            assert "cannot open the state store" in message
            assert str(locked / "state.db") in message
        assert receiver.count() == 0
        assert sim.stats()["requests"]["logs"] == 0, "not even read from Daily"

        # 2. An existing state, then its directory and file made read-only.
        writable = tmp_path / "state"
        writable.mkdir()
        config = _small_config(tmp_path, sim.url, receiver, writable / "state.db")
        assert run_once(config).returncode == 0
        delivered = receiver.count()
        assert delivered == 900
        for path in writable.iterdir():
            path.chmod(0o444)
        writable.chmod(0o555)
        proc = daemon(config, preexec=drop_dac_capabilities)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err[-2000:]
        assert "state store" in _state_error(err)
        assert receiver.count() == delivered, "shipped without a writable cursor"
        writable.chmod(0o755)


def test_full_state_directory_clear_error_nonzero_exit_then_nothing_lost(tmp_path: Path) -> None:
    with (
        simulator(
            ["--seed", "6", "--domain", f"acme={KEY}", "--meetings", "10", "--records", "1000"]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        truth = sim.ground_truth("acme")
        state = tmp_path / "state.db"
        config = _small_config(tmp_path, sim.url, receiver, state)
        # 1. Full from the start (no file may grow at all): nothing shipped.
        proc = daemon(config, preexec=file_size_limit(0))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err[-2000:]
        assert "cannot open the state store" in _state_error(err)
        assert receiver.count() == 0
        for leftover in tmp_path.glob("state.db*"):
            leftover.unlink()

        # 2. Fills up mid-drain: it stops at the first commit that fails.
        proc = daemon(config, preexec=file_size_limit(192 * 1024))
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 3, err[-2000:]
        assert "cannot write the state store" in _state_error(err)
        shipped = receiver.count()
        assert 0 < shipped < len(truth)
        assert integrity(state) == "ok"

        # 3. Space freed: the rest arrives; only the batch whose commit failed comes twice.
        again = run_once(config)
        assert again.returncode == 0, again.stderr[-2000:]
        got, want = received_uids(receiver.log_records()), expected_uids(truth)
        assert not (want - got)
        in_flight = max(r.records for r in receiver.requests())
        assert sum((got - want).values()) <= in_flight
