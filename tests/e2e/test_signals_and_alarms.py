"""The real daemon under SIGHUP (reload, a bad file kept out) and with its backend gone
(the warning comes at the first failed attempt, not after the retries)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import BridgeConfig, domain, simulator, start_daemon, stop, wait_until
from tests.e2e.test_bridge_e2e import received_uids
from tests.expectations import expected_uids
from tests.faults._support import events

KEY = "sighup-key-0123456789abcdef"
KEY_B = "sighup-beta-0123456789abcdef"


def of_domain(receiver: OtlpReceiver, name: str) -> list[object]:
    return [r for r in receiver.log_records() if r.resource["daily.domain"] == name]


def test_sighup_reloads_adds_and_removes_domains_and_keeps_a_bad_file_out(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "daemon.log"
    with (
        simulator(
            [
                "--seed",
                "8",
                "--domain",
                f"acme={KEY}",
                "--domain",
                f"beta={KEY_B}",
                "--meetings",
                "3",
                "--records",
                "200",
            ]
        ) as sim,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            domains=[domain("acme", KEY, sim.url)],
        )
        config.write()
        daemon = start_daemon(config.path, log_path=log_path)
        try:
            acme = expected_uids(sim.ground_truth("acme"))
            assert wait_until(lambda: received_uids(of_domain(receiver, "acme")) == acme, 60)
            assert not of_domain(receiver, "beta")

            # A broken file: refused with its reason, the running configuration stays.
            config.path.write_text("domains: [{name: beta, poll_interval: soon}]\n")
            daemon.send_signal(signal.SIGHUP)
            assert wait_until(
                lambda: events(
                    log_path.read_text(),
                    "configuration reload refused; the running configuration stays",
                ),
                20,
            )
            assert daemon.poll() is None, "SIGHUP must not end the daemon"

            # Add beta: it starts, acme goes on untouched.
            config.domains = [domain("acme", KEY, sim.url), domain("beta", KEY_B, sim.url)]
            config.write()
            daemon.send_signal(signal.SIGHUP)
            beta = expected_uids(sim.ground_truth("beta"))
            assert wait_until(lambda: received_uids(of_domain(receiver, "beta")) == beta, 60)
            (reloaded,) = events(log_path.read_text(), "configuration reloaded")
            assert reloaded["added"] == ["beta"]
            assert reloaded["restarted"] == []

            # Remove acme: it stops (after committing), beta goes on.
            config.domains = [domain("beta", KEY_B, sim.url)]
            config.write()
            daemon.send_signal(signal.SIGHUP)
            assert wait_until(
                lambda: len(events(log_path.read_text(), "configuration reloaded")) == 2, 30
            )
            assert events(log_path.read_text(), "configuration reloaded")[1]["removed"] == ["acme"]
        finally:
            assert stop(daemon) == 0
        # Nothing doubled across the reloads, nothing lost.
        assert received_uids(of_domain(receiver, "acme")) == acme
        assert received_uids(of_domain(receiver, "beta")) == beta
        assert "sighup-beta-0123456789abcdef" not in log_path.read_text()


def test_a_backend_gone_is_said_at_the_first_failed_attempt(tmp_path: Path) -> None:
    log_path = tmp_path / "daemon.log"
    with simulator(
        [
            "--seed",
            "9",
            "--domain",
            f"acme={KEY}",
            "--meetings",
            "2",
            "--records",
            "50",
            "--live",
            "--live-rate",
            "5",
        ]
    ) as sim:
        receiver = OtlpReceiver(observe_grpc_compression=False).start()
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint, "timeout": "2s"},
            domains=[domain("acme", KEY, sim.url)],
        ).write()
        daemon = start_daemon(config, log_path=log_path)
        try:
            assert wait_until(lambda: receiver.count() > 50, 60)
            receiver.stop()
            gone = time.monotonic()
            assert wait_until(lambda: events(log_path.read_text(), "export failing"), 30)
            # The exporter retries for max_retry_time (60 s by default): the warning came
            # with the first failed attempt, long before the retries ran out.
            assert time.monotonic() - gone < 30
            (warning,) = events(log_path.read_text(), "export failing")
            assert warning["error_type"] == "export_transient"
            assert "export.endpoint" in warning["hint"]
            assert not events(log_path.read_text(), "export still failing")
        finally:
            assert stop(daemon) == 0
