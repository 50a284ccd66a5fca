"""The real daemon process, the bundled simulator (a separate process) and real receivers.

These are the "done when" checks of the foundation issue: exactly-once delivery with ties
across page boundaries over gRPC and HTTP, a second `--once` delivering nothing, a revoked
key and a dead receiver each giving one clear error line and a non-zero exit while losing
nothing. (SIGKILL at random moments: tests/faults/test_process_faults.py, 20 kills during a
100,000-record drain.)
"""

from __future__ import annotations

import random
import signal
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.core.mapping import parse_time_ns
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver, ReceivedLog
from daily_otel_bridge.testing.rotel import RotelCollector
from tests.e2e.harness import (
    BridgeConfig,
    SimulatorProcess,
    domain,
    run_once,
    simulator,
    start_daemon,
    stop,
    wait_until,
)
from tests.expectations import expected_uids, records_by_uid

pytestmark = pytest.mark.e2e

KEY = "sim-key-acme-0123456789"


def received_uids(logs: list[ReceivedLog]) -> Counter[str]:
    return Counter(str(log.attributes["log.record.uid"]) for log in logs)


def check_contract_fields(log: ReceivedLog, source: dict[str, Any], room: str | None) -> None:
    assert log.time_unix_nano == parse_time_ns(source["time"])
    assert log.observed_time_unix_nano >= log.time_unix_nano
    assert log.body == source["message"]
    assert log.event_name == "daily.log"
    severity = {0: (17, "ERROR"), 1: (9, "INFO"), 2: (5, "DEBUG")}[source["level"]]
    assert (log.severity_number, log.severity_text) == severity
    attrs = log.attributes
    assert attrs["daily.mtg_session_id"] == source["mtgSessionId"]
    assert attrs["daily.user_session_id"] == source["userSessionId"]
    assert attrs.get("daily.peer_id") == source["peerId"]
    assert attrs.get("daily.log.code") == source["code"]
    assert attrs["daily.log.level"] == source["level"]
    assert attrs["daily.client_time"] == source["clientTime"]
    if room is not None:
        assert attrs["daily.room"] == room
    assert log.resource["service.name"] == "daily"
    assert log.resource["daily.domain"] == "acme"
    assert log.resource["deployment.environment"] == "test"
    assert log.scope_name == "daily_otel_bridge"


def rooms_by_session(sim: SimulatorProcess) -> dict[str, str]:
    meetings = sim.get("/meetings?domain=acme")
    items = meetings["meetings"] if isinstance(meetings, dict) else meetings
    return {m["id"]: m["room"] for m in items}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exactly_once_with_ties_then_nothing_more(tmp_path: Path, protocol: str) -> None:
    # 50 sessions x 2,000 records, 60% of them in tie groups that straddle 500-record pages.
    with (
        simulator(
            [
                "--seed",
                "7",
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "50",
                "--records",
                "2000",
                "--tie-ratio",
                "0.6",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": protocol, "endpoint": endpoint},
            domains=[
                domain(
                    "acme",
                    KEY,
                    sim.url,
                    page_size=500,
                    resource_attributes={"deployment.environment": "test"},
                )
            ],
        ).write()
        truth = sim.ground_truth("acme")
        assert len(truth) == 100_000
        first = run_once(config)
        assert first.returncode == 0, first.stderr[-3000:]
        logs = receiver.log_records()
        assert received_uids(logs) == expected_uids(truth)

        sources = records_by_uid(truth)
        rooms = rooms_by_session(sim)
        for log in random.Random(1).sample(logs, 2000):
            source = sources[str(log.attributes["log.record.uid"])]
            check_contract_fields(log, source, rooms.get(source["mtgSessionId"]))

        second = run_once(config)
        assert second.returncode == 0, second.stderr[-3000:]
        assert receiver.count() == 100_000, "a second --once must deliver nothing"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_rotel_receives_every_record(tmp_path: Path, protocol: str) -> None:
    with (
        simulator(
            ["--seed", "3", "--domain", f"acme={KEY}", "--meetings", "4", "--records", "150"]
        ) as sim,
        RotelCollector() as rotel,
    ):
        endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": protocol, "endpoint": endpoint},
            domains=[domain("acme", KEY, sim.url, page_size=100)],
        ).write()
        truth = sim.ground_truth("acme")
        result = run_once(config)
        assert result.returncode == 0, result.stderr[-3000:]
        records = rotel.wait_for_records(len(truth), timeout=30)
        assert len(records) == len(truth)
        uids = Counter(str(r["attributes"]["log.record.uid"]) for r in records)  # type: ignore[index]
        assert uids == expected_uids(truth)
        sample = records[0]
        attrs = sample["attributes"]
        assert isinstance(attrs, dict)
        assert {"daily.mtg_session_id", "daily.user_session_id", "daily.log.level"} <= set(attrs)
        assert sample["event_name"] == "daily.log"
        assert sample["resource"]["daily.domain"] == "acme"  # type: ignore[index]


def test_revoked_key_fails_one_domain_the_other_delivers(tmp_path: Path) -> None:
    with (
        simulator(
            [
                "--seed",
                "5",
                "--domain",
                f"acme={KEY}",
                "--domain",
                "beta=beta-key-0123456789",
                "--meetings",
                "3",
                "--records",
                "100",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        sim.post("/revoke?domain=beta")
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[
                domain("acme", KEY, sim.url),
                domain("beta", "beta-key-0123456789", sim.url),
            ],
        ).write()
        result = run_once(config)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if '"level": "error"' in line]
        assert len(errors) == 1, result.stderr
        for part in ("beta", "401", "daily_auth"):
            assert part in errors[0]
        assert "beta-key-0123456789" not in result.stderr + result.stdout
        assert received_uids(receiver.log_records()) == expected_uids(sim.ground_truth("acme"))

        sim.post("/restore?domain=beta")
        again = run_once(config)
        assert again.returncode == 0, again.stderr[-2000:]
        beta = [r for r in receiver.log_records() if r.resource["daily.domain"] == "beta"]
        assert received_uids(beta) == expected_uids(sim.ground_truth("beta"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dead_receiver_one_error_nonzero_exit_nothing_lost(tmp_path: Path) -> None:
    port = _closed_port()
    with (
        simulator(
            ["--seed", "9", "--domain", f"acme={KEY}", "--meetings", "3", "--records", "300"]
        ) as sim,
    ):
        config_path = tmp_path / "bridge.yaml"
        config = BridgeConfig(
            path=config_path,
            state_path=tmp_path / "state.db",
            export={
                "protocol": "grpc",
                "endpoint": f"http://127.0.0.1:{port}",
                "max_retry_time": "2s",
                "timeout": "2s",
            },
            domains=[domain("acme", KEY, sim.url)],
        )
        config.write()
        result = run_once(config_path)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if '"level": "error"' in line]
        assert len(errors) == 1, result.stderr
        assert "UNAVAILABLE" in errors[0]
        assert "export_transient" in errors[0]

        with OtlpReceiver(grpc_port=port, observe_grpc_compression=False) as receiver:
            again = run_once(config_path)
            assert again.returncode == 0, again.stderr[-2000:]
            assert received_uids(receiver.log_records()) == expected_uids(sim.ground_truth("acme"))


def test_sigterm_stops_cleanly_and_commits(tmp_path: Path) -> None:
    with (
        simulator(
            ["--seed", "2", "--domain", f"acme={KEY}", "--meetings", "10", "--records", "2000"]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        bridge = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint, "batch_size": 200},
            domains=[domain("acme", KEY, sim.url, page_size=200, requests_per_second=5)],
        )
        daemon = start_daemon(bridge.write(), log_path=tmp_path / "daemon.log")
        assert wait_until(lambda: receiver.count() > 0, timeout=30)
        assert stop(daemon, signal.SIGTERM) == 0
        delivered_at_stop = receiver.count()
        # Whatever was acknowledged was committed: the next run does not send it again.
        bridge.domains = [domain("acme", KEY, sim.url, page_size=1000, requests_per_second=20)]
        final = run_once(bridge.write())
        assert final.returncode == 0
        got = received_uids(receiver.log_records())
        assert got == expected_uids(sim.ground_truth("acme"))
        assert delivered_at_stop < 20_000
