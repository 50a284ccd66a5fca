"""The real daemon with the backend absent at start, then down mid-stream while a large
backlog waits: memory stays flat, delivery resumes within one backoff step of recovery,
nothing is lost.

Scaling: the issue's "down for two minutes" is scaled to OUTAGE_SECONDS (20 s) of real
outage. That is long enough for several steps of the scheduler's exponential backoff
(1-2 s, 2-4 s, 4-8 s, ...; the test asserts at least three) and for grpc's own reconnect
backoff to grow, which is what a longer outage would add; beyond that the steps are capped
at 60 s and nothing new happens.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from pathlib import Path

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import BridgeConfig, domain, simulator, start_daemon, stop
from tests.expectations import expected_uids
from tests.faults._support import (
    events,
    free_port,
    received_uids,
    vm_rss_kb,
    wait_for,
)

KEY = "outage-key-0123456789abcdef"
OUTAGE_SECONDS = 20.0
MAX_RETRY_TIME = 2.0
GRPC_RECONNECT_MAX = 5.0  # otlp.RECONNECT_BACKOFF_MAX_MS


def export_failures(port: int) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:  # not listening yet
        return 0.0
    match = re.search(
        r"^daily_otel_bridge_export_failures_total"
        r'\{domain="acme",kind="transient",signal="logs"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(match.group(1)) if match else 0.0


def test_backend_absent_then_down_mid_stream_memory_flat_nothing_lost(tmp_path: Path) -> None:
    with simulator(
        ["--seed", "13", "--domain", f"acme={KEY}", "--meetings", "30", "--records", "2000"]
    ) as sim:
        truth = sim.ground_truth("acme")
        assert len(truth) == 60_000
        grpc_port, health_port = free_port(), free_port()
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={
                "protocol": "grpc",
                "endpoint": f"http://127.0.0.1:{grpc_port}",
                "batch_size": 1000,
                "timeout": "2s",
                "max_retry_time": f"{MAX_RETRY_TIME}s",
            },
            health={"enabled": True, "listen": f"127.0.0.1:{health_port}"},
            domains=[domain("acme", KEY, sim.url, page_size=500)],
        ).write()
        log_path = tmp_path / "daemon.log"
        daemon = start_daemon(config, log_path=log_path)
        receiver = OtlpReceiver(grpc_port=grpc_port, http=False, observe_grpc_compression=False)
        try:
            # 1. No receiver at all: the daemon keeps trying, ships nothing, stays up.
            assert wait_for(lambda: export_failures(health_port) >= 1, 30, 0.3), _tail(log_path)
            assert daemon.poll() is None
            receiver.start()
            up = time.monotonic()
            assert wait_for(lambda: receiver.count() > 0, 60, 0.1), _tail(log_path)
            print(f"first delivery {time.monotonic() - up:.1f}s after the receiver appeared")

            # 2. Down mid-stream, with most of the 60,000 records still to send.
            assert wait_for(lambda: receiver.count() >= 10_000, 60, 0.1)
            receiver.stop_serving()
            before = export_failures(health_port)
            rss_at_start = vm_rss_kb(daemon.pid)
            samples = []
            down = time.monotonic()
            while time.monotonic() - down < OUTAGE_SECONDS:
                samples.append(vm_rss_kb(daemon.pid))
                time.sleep(0.25)
            during = export_failures(health_port) - before
            delivered_before = receiver.count()
            # A reconnect blip as the outage began may have logged a recovery already: the
            # one that counts is the first logged after the backend is back.
            recoveries_before = len(events(_tail(log_path, 0), "domain recovered"))
            receiver.resume_serving()
            up = time.monotonic()
            assert wait_for(lambda: receiver.count() > delivered_before, 90, 0.1)
            resumed = time.monotonic() - up
            # How many failed sweeps in a row the scheduler backed off from (the first sweep,
            # still draining the backlog, had not completed when the outage began).
            assert wait_for(
                lambda: len(events(_tail(log_path, 0), "domain recovered")) > recoveries_before,
                60,
            )
            # The longest run of failures is the outage's (a reconnect blip right after it
            # can add a short run of its own).
            steps = max(
                int(e["after_failures"]) for e in events(_tail(log_path, 0), "domain recovered")
            )
            # After `steps` failures the scheduler sleeps at most 2**steps s (capped at 60 s):
            # delivery resumes within that step, plus the exporter's retry window, grpc's
            # capped reconnect wait, and a few seconds to read again what memory dropped.
            bound = min(60.0, 2.0**steps) + MAX_RETRY_TIME + GRPC_RECONNECT_MAX + 5.0
            print(
                f"outage: {during:.0f} failed sweeps during it, {steps} in a row in all;"
                f" RSS {rss_at_start} -> max {max(samples)} kB;"
                f" resumed after {resumed:.1f}s (bound {bound:.0f}s)"
            )
            assert during >= 2
            assert steps >= 3, "the outage did not exercise several backoff steps"
            assert resumed <= bound
            # Memory: no queue grows with the backlog while the receiver is down.
            assert max(samples) <= rss_at_start * 1.2 + 16_000, (rss_at_start, max(samples))
            assert max(samples) < 300_000

            assert wait_for(lambda: receiver.count() >= len(truth), 120, 0.5), _tail(log_path)
            assert daemon.poll() is None
        finally:
            stop(daemon, signal.SIGTERM)
            receiver.stop()
        want = expected_uids(truth)
        got = received_uids(receiver.log_records())
        assert not (want - got), f"{sum((want - got).values())} records lost"


def _tail(path: Path, size: int = 3000) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    return text[-size:] if size else text
