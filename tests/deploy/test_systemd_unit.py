"""deploy/systemd: the unit passes `systemd-analyze verify`, is hardened, and its example
config is accepted by the bridge.

`systemd-analyze verify` insists that ExecStart's binary exists. Rather than rewrite the unit,
the test builds a throwaway filesystem root in tmp_path holding the unit *unchanged*, a stand-in
executable at ExecStart's path (/usr/local/bin/daily-otel-bridge) and a copy of the system's
unit directory (for sysinit.target and friends), and verifies with `--root`. Nothing is
installed on the machine and no service manager is involved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.deploy._helpers import DEPLOY, find_tool, run_check_config, write_key_file

UNIT_NAME = "daily-otel-bridge.service"
UNIT = DEPLOY / "systemd" / UNIT_NAME
CONFIG = DEPLOY / "systemd" / "config.yaml"
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
# The score `systemd-analyze security` gives; 0 is fully locked down, 10 is "UNSAFE".
MAX_EXPOSURE = 2.0


def analyze() -> str:
    return find_tool(
        "systemd-analyze", "`apt-get install -y systemd` (Debian's systemd package ships it)"
    )


def run_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [analyze(), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def parse_unit(text: str) -> dict[str, list[str]]:
    """`Key` -> every value it is given in [Service] (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def exec_start_binary() -> str:
    return parse_unit(UNIT.read_text())["ExecStart"][0].split()[0]


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A filesystem root with the unit, a stand-in daemon and the system's own units."""
    root = tmp_path / "root"
    source = next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if source is None:
        pytest.fail("no systemd unit directory here; .ci/run must `apt-get install -y systemd`")
    shutil.copytree(source, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / UNIT_NAME)
    binary = root / exec_start_binary().lstrip("/")
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return root


def verify(root: Path) -> subprocess.CompletedProcess[str]:
    return run_analyze("verify", "--man=no", "--generators=no", f"--root={root}", UNIT_NAME)


def test_unit_passes_systemd_analyze_verify(fake_root: Path) -> None:
    result = verify(fake_root)
    # verify exits 0 on unknown keys and unparsable values and only complains on stderr: any
    # output at all is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_verify_would_catch_a_broken_unit(fake_root: Path) -> None:
    """Guards the test above against passing vacuously."""
    unit = fake_root / "etc/systemd/system" / UNIT_NAME
    unit.write_text(
        unit.read_text()
        .replace("ProtectSystem=strict", "ProtectSystm=strict")
        .replace("WatchdogSec=30", "WatchdogSec=soon")
    )
    result = verify(fake_root)
    assert "ProtectSystm" in result.stderr
    assert "soon" in result.stderr
    (fake_root / exec_start_binary().lstrip("/")).unlink()
    assert verify(fake_root).returncode != 0


def test_security_exposure_is_low(fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_analyze("security", "--offline=yes", f"--root={fake_root}", UNIT_NAME)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    assert match is not None, result.stdout
    with capsys.disabled():
        print(f"\nsystemd-analyze security {UNIT_NAME}: {match[1]} {match[2]}")
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout


def test_unit_settings() -> None:
    unit = parse_unit(UNIT.read_text())
    required = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "StateDirectory": "daily-otel-bridge",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "TimeoutStopSec": "30",
        "KillSignal": "SIGTERM",
        "EnvironmentFile": "-/etc/daily-otel-bridge/env",
        "LoadCredential": "daily-api-key:/etc/daily-otel-bridge/daily-api-key",
        "ExecStart": (
            "/usr/local/bin/daily-otel-bridge run --config /etc/daily-otel-bridge/config.yaml"
        ),
    }
    for key, value in required.items():
        assert unit.get(key) == [value], key
    assert "@system-service" in unit["SystemCallFilter"]


def test_config_matches_the_unit() -> None:
    unit = parse_unit(UNIT.read_text())
    credential = unit["LoadCredential"][0].split(":", 1)[0]
    config = yaml.safe_load(CONFIG.read_text())
    domains = config["domains"]
    assert [d["api_key_file"] for d in domains] == [f"${{CREDENTIALS_DIRECTORY}}/{credential}"]
    assert all("api_key" not in d for d in domains)
    assert config["state_path"].startswith("${STATE_DIRECTORY:-/var/lib/daily-otel-bridge}/")
    assert config["health"]["listen"].startswith("127.0.0.1:")
    assert "--config /etc/daily-otel-bridge/config.yaml" in unit["ExecStart"][0]


def test_config_passes_check_config(tmp_path: Path) -> None:
    """As systemd would run it: $CREDENTIALS_DIRECTORY holds the key as a 0400 file."""
    secret = f"daily-key-{uuid.uuid4().hex}"
    credentials = tmp_path / "credentials"
    write_key_file(credentials, "daily-api-key", secret)
    result = run_check_config(
        CONFIG.read_text(),
        tmp_path,
        {"CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(tmp_path / "state")},
        secrets=[secret],
    )
    assert "your-daily-domain" in result.stdout
