"""The probe server listens on loopback unless told otherwise, nothing else listens at all,
and no command ever writes the config file back."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from daily_otel_bridge.config.settings import parse_settings
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.e2e.harness import BridgeConfig, domain, run_once, start_daemon, stop
from tests.faults._support import cli, free_port, wait_for
from tests.faults.hostile_daily import HostileDaily, Hostility
from tests.faults.hostile_data import populate_simple

KEY = "config-safety-key-0123456789"


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            assert len(address) == width
            found.append((_decode(address), int(port, 16)))
    return found


def _decode(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b.hex() for b in words)


def test_probe_server_defaults_to_loopback() -> None:
    settings = parse_settings({"domains": [{"name": "acme", "api_key": KEY}]}, environ={})
    assert settings.health.enabled
    assert settings.health.host == "127.0.0.1"


def test_daemon_listens_on_loopback_only_and_never_writes_its_config(tmp_path: Path) -> None:
    rng = random.Random(5)
    port = free_port()
    with (
        HostileDaily(Hostility.tame()) as daily,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        populate_simple(daily, rng, "acme", KEY, records=50)
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
            health={"enabled": True, "listen": f"127.0.0.1:{port}"},
            domains=[domain("acme", KEY, daily.url)],
        ).write()
        config.chmod(0o640)
        before = (config.read_bytes(), config.stat().st_mtime_ns, config.stat().st_mode)
        time.sleep(0.05)  # an mtime written by anything below would differ

        def unchanged() -> None:
            now = (config.read_bytes(), config.stat().st_mtime_ns, config.stat().st_mode)
            assert now == before, "the config file was written"

        daemon = start_daemon(config, log_path=tmp_path / "daemon.log")
        try:
            assert wait_for(lambda: receiver.count() >= 50, 30)
            addresses = listening_addresses(daemon.pid)
            assert addresses == [("127.0.0.1", port)], addresses
        finally:
            assert stop(daemon, signal.SIGTERM) == 0
        unchanged()
        assert run_once(config).returncode == 0
        unchanged()
        for args in (
            ("check-config",),
            ("state", "show"),
            ("state", "dead-letters"),
            ("state", "reset", "--domain", "acme", "--yes"),
        ):
            assert cli(*args, "--config", str(config)).returncode == 0, args
            unchanged()
        assert not list(tmp_path.glob("bridge.yaml?*")), "no backup or temp copy either"
