"""Secrets (API keys, exporter header values) never appear in logs, errors, check-config
output, state commands, /healthz, /readyz or /metrics, even when a careless Daily quotes the
key back in its error body; a key file others can read is refused."""

from __future__ import annotations

import os
import random
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import structlog
import yaml

from daily_otel_bridge.testing.otlp_receiver import Fault, OtlpReceiver
from tests.e2e.harness import BridgeConfig, bridge_env, domain, run_once, start_daemon, stop
from tests.faults._support import cli, events, free_port, wait_for
from tests.faults.hostile_daily import HostileDaily, Hostility
from tests.faults.hostile_data import populate_simple

# Distinctive values, so that any leak is found by a plain substring search.
KEY_INLINE = "sk_PLANTED_inline_7f3a9c2e5b1d4086"
KEY_IN_FILE = "sk_PLANTED_file_0c8e6a4f2d9b1735"
KEY_REVOKED = "sk_PLANTED_revoked_5e2b8d0a7c4f9163"
HEADER_GLOBAL = "hdr_PLANTED_global_3d9f1b7e5a2c8046"
HEADER_DOMAIN = "hdr_PLANTED_domain_8a4c2e0f6b9d1357"
HEADER_ENV = "hdr_PLANTED_env_1b7d3f9a5c0e2468"
SECRETS = [KEY_INLINE, KEY_IN_FILE, KEY_REVOKED, HEADER_GLOBAL, HEADER_DOMAIN, HEADER_ENV]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret"
        # Also no recognisable fragment of one (a truncated echo is still a leak).
        assert secret[:20] not in text, f"{where} shows part of a secret"


def test_planted_secrets_appear_in_no_output(tmp_path: Path) -> None:
    rng = random.Random(11)
    key_file = tmp_path / "daily.key"
    key_file.write_text(KEY_IN_FILE + "\n")
    key_file.chmod(0o600)
    port = free_port()
    with (
        HostileDaily(Hostility.tame(reflect_credentials=True)) as daily,
        OtlpReceiver(observe_grpc_compression=False) as receiver,
    ):
        populate_simple(daily, rng, "acme", KEY_INLINE, records=40)
        populate_simple(daily, rng, "filed", KEY_IN_FILE, records=40)
        populate_simple(daily, rng, "leaky", KEY_REVOKED, records=10)
        daily.revoke("leaky")  # 401 whose body quotes "Bearer <key>"
        config = BridgeConfig(
            path=tmp_path / "bridge.yaml",
            state_path=tmp_path / "state.db",
            export={
                "protocol": "grpc",
                "endpoint": receiver.grpc_endpoint,
                "headers": {"dd-api-key": HEADER_GLOBAL},
                "max_retry_time": "1s",
            },
            health={"enabled": True, "listen": f"127.0.0.1:{port}"},
            domains=[
                domain("acme", KEY_INLINE, daily.url),
                {
                    **{k: v for k, v in domain("filed", "x", daily.url).items() if k != "api_key"},
                    "api_key_file": str(key_file),
                    "export": {
                        "protocol": "http/protobuf",
                        "endpoint": receiver.http_endpoint,
                        "headers": {"authorization": f"Bearer {HEADER_DOMAIN}"},
                    },
                },
                domain("leaky", KEY_REVOKED, daily.url),
            ],
        ).write()
        env = bridge_env(OTEL_EXPORTER_OTLP_HEADERS=f"x-env-token={HEADER_ENV}")
        outputs: dict[str, str] = {}

        checked = cli("check-config", "--config", str(config), env=env)
        assert checked.returncode == 0, checked.stderr
        assert "***" in checked.stdout
        outputs["check-config"] = checked.stdout + checked.stderr

        log_path = tmp_path / "daemon.log"
        # The receiver refuses the first requests, so export errors are logged as well.
        receiver.set_fault(Fault(grpc_status="UNAUTHENTICATED", http_status=401, count=2))
        daemon = start_daemon(config, env=env, log_path=log_path)
        try:
            assert wait_for(lambda: receiver.count() >= 80, 60), log_path.read_text()[-3000:]
            assert wait_for(lambda: "daily_auth" in log_path.read_text(), 30)
            for path in ("/healthz", "/readyz", "/metrics"):
                status, body = _get(f"http://127.0.0.1:{port}{path}")
                assert status in (200, 503), (path, status)
                outputs[path] = body
            assert "daily_auth" in outputs["/readyz"]  # the error *type* is there
            assert "daily_otel_bridge_records_exported" in outputs["/metrics"]
        finally:
            assert stop(daemon, signal.SIGTERM) == 0
        outputs["daemon log"] = log_path.read_text()
        # Headers did reach the backend (they are there to be sent, just never shown).
        got = {k: v for r in receiver.requests() for k, v in r.headers.items()}
        assert HEADER_GLOBAL in got.values()
        assert HEADER_ENV in got.values()

        once = run_once(config, env=env)
        outputs["run --once"] = once.stdout + once.stderr
        assert once.returncode == 1  # the revoked domain
        for args in (("state", "show"), ("state", "dead-letters")):
            result = cli(*args, "--config", str(config), env=env)
            assert result.returncode == 0, result.stderr
            outputs[" ".join(args)] = result.stdout + result.stderr

    # The key Daily echoed back was really in the error path (so masking was exercised).
    auth_errors = [
        e for e in events(outputs["daemon log"], "domain failed") if e["domain"] == "leaky"
    ]
    assert auth_errors
    assert "***" in auth_errors[0]["error"]
    for where, text in outputs.items():
        _assert_clean(where, text)


def test_config_errors_never_echo_a_secret(tmp_path: Path) -> None:
    """Invalid values next to (or made of) secrets: every message names the path only."""
    doc: dict[str, Any] = {
        "state_path": str(tmp_path / "state.db"),
        "export": {"headers": {"dd-api-key": HEADER_GLOBAL + "\n"}, "endpoint": "nope"},
        "domains": [
            {"name": "acme", "api_key": KEY_INLINE + " with a space", "api_url": "ftp://x"},
            {"name": "beta", "api_key": KEY_REVOKED, "api_kee": KEY_IN_FILE, "poll_interval": "x"},
            {"name": "gamma", "api_key": HEADER_DOMAIN, "rooms": HEADER_ENV},
        ],
    }
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(doc))
    for args in (("check-config",), ("run", "--once")):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert "domains[1]" in result.stderr  # the paths are named
        _assert_clean(" ".join(args), result.stdout + result.stderr)


def test_an_api_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "daily.key"
    key_file.write_text(KEY_IN_FILE)
    key_file.chmod(0o644)
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_path": str(tmp_path / "state.db"),
                "domains": [{"name": "acme", "api_key_file": str(key_file)}],
            }
        )
    )
    for args in (("check-config",), ("run", "--once")):
        result = cli(*args, "--config", str(config))
        assert result.returncode == 2
        assert "domains[0].api_key_file" in result.stderr
        assert "readable by other users" in result.stderr
        assert "chmod 600" in result.stderr
        _assert_clean(" ".join(args), result.stdout + result.stderr)
    assert not (tmp_path / "state.db").exists(), "refused before touching any state"
    key_file.chmod(0o600)
    assert cli("check-config", "--config", str(config)).returncode == 0
    assert os.stat(key_file).st_mode & 0o077 == 0


def test_library_log_lines_are_masked_too() -> None:
    """grpc and aiohttp log through the stdlib, around structlog's mask: masked as well."""
    import io
    import logging

    from daily_otel_bridge.service.logging import configure_logging, register_secrets

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    saved_structlog = structlog.get_config()
    root.handlers = []
    try:
        configure_logging("INFO", stream=stream, json_lines=True)
        register_secrets([KEY_INLINE])
        library = logging.getLogger("aiohttp.client")
        library.warning("request to %s failed", f"https://x/?token={KEY_INLINE}")
        try:
            raise RuntimeError(f"Authorization: Bearer {KEY_INLINE}")
        except RuntimeError:
            library.exception("unexpected")
    finally:
        root.handlers = saved
        structlog.configure(**saved_structlog)
    text = stream.getvalue()
    assert "request to https://x/?token=*** failed" in text
    assert "Bearer ***" in text
    _assert_clean("stdlib logging", text)
