"""Call-quality samples end to end: the daemon process, the simulator, a real receiver.

Every sample arrives as its catalogued data points exactly once across graceful restarts,
and `metrics_as_logs` adds one `daily.metrics` log record per sample.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.core.metrics_mapping import CATALOGUE_BY_NAME, GENERIC_METRIC, map_sample
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver, ReceivedPoint
from daily_otel_bridge.testing.rotel import RotelCollector
from tests.e2e.harness import BridgeConfig, domain, run_once, simulator, start_daemon, stop

pytestmark = pytest.mark.e2e

KEY = "metrics-e2e-key-0123456789"
PointKey = tuple[str, int, float, tuple[tuple[str, str], ...]]


def expected_points(samples: list[dict[str, Any]], rooms: dict[str, str]) -> Counter[PointKey]:
    out: Counter[PointKey] = Counter()
    for sample in samples:
        mapping = map_sample(sample, room=rooms.get(sample["mtgSessionId"]))
        for p in mapping.points:
            out[(p.name, p.time_ns, float(p.value), tuple(sorted(p.attributes.items())))] += 1
    return out


def received_points(points: list[ReceivedPoint]) -> Counter[PointKey]:
    return Counter(
        (
            p.metric_name,
            p.time_unix_nano,
            float(p.value),
            tuple(sorted((k, str(v)) for k, v in p.attributes.items())),
        )
        for p in points
    )


def test_every_sample_as_catalogued_points_exactly_once_across_restarts(tmp_path: Path) -> None:
    with (
        simulator(
            [
                "--seed",
                "13",
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "6",
                "--records",
                "300",
                "--history",
                "3600",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        bridge = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint, "batch_size": 50},
            # Small pages at 4 requests/s: the drain spans the restarts below.
            domains=[
                domain(
                    "acme", KEY, sim.url, include_metrics=True, page_size=40, requests_per_second=4
                )
            ],
        )
        config = bridge.write()
        for _ in range(3):
            daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
            time.sleep(2.5)
            assert stop(daemon, signal.SIGTERM) == 0
        bridge.domains = [
            domain(
                "acme", KEY, sim.url, include_metrics=True, page_size=1000, requests_per_second=20
            )
        ]
        final = run_once(bridge.write())
        assert final.returncode == 0, final.stderr[-2000:]

        samples = sim.get("/records?domain=acme&kind=metrics")["records"]
        assert len(samples) > 100
        meetings = sim.get("/meetings?domain=acme")
        items = meetings["meetings"] if isinstance(meetings, dict) else meetings
        rooms = {m["id"]: m["room"] for m in items}
        got = received_points(receiver.metric_points())
        want = expected_points(samples, rooms)
        assert got == want
        names = {key[0] for key in got}
        assert {
            "daily.call.recv.bitrate.avg",
            "daily.call.send.bitrate.max",
            "daily.call.video.recv.packet_loss",
            "daily.call.track.jitter.avg",
            "daily.call.track.packet_loss",
            "daily.call.transport.rtt.avg",
        } <= names
        assert GENERIC_METRIC in names, "unknown numeric fields still become data points"
        for point in receiver.metric_points()[:500]:
            assert point.kind == "gauge"
            assert point.resource["daily.domain"] == "acme"
            attrs = point.attributes
            assert {"daily.mtg_session_id", "daily.user_session_id", "daily.room"} <= set(attrs)
            if point.metric_name.startswith("daily.call.track."):
                assert {"daily.track.kind", "daily.track.direction", "daily.connection"} <= set(
                    attrs
                )
            entry = CATALOGUE_BY_NAME.get(point.metric_name)
            if entry is not None:
                assert point.unit == entry.unit
        # Logs went through as usual next to them.
        assert receiver.count() == len(sim.ground_truth("acme"))


def test_metrics_as_logs_one_record_per_sample(tmp_path: Path) -> None:
    with (
        simulator(
            [
                "--seed",
                "4",
                "--domain",
                f"acme={KEY}",
                "--meetings",
                "2",
                "--records",
                "50",
                "--history",
                "1200",
            ]
        ) as sim,
        RotelCollector() as rotel,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "http/protobuf", "endpoint": rotel.http_endpoint},
            domains=[domain("acme", KEY, sim.url, include_logs=False, metrics_as_logs=True)],
        ).write()
        result = run_once(config)
        assert result.returncode == 0, result.stderr[-2000:]
        samples = sim.get("/records?domain=acme&kind=metrics")["records"]
        records = rotel.wait_for_records(len(samples), timeout=30)
        assert len(records) == len(samples)
        assert {r["event_name"] for r in records} == {"daily.metrics"}
        body = records[0]["body"]
        assert isinstance(body, dict)
        assert "userRecvBitsPerSecAvg" in body
        assert "metrics" in body
        again = run_once(config)
        assert again.returncode == 0
        time.sleep(0.5)
        assert len(rotel.parsed_log_records()) == len(samples)
