"""TLS is verified by default, towards Daily and towards https:// OTLP endpoints; a CA bundle
option adds trust; a certificate that does not verify stops the bridge with a clear error and
never makes it fall back to plaintext (nothing reaches the receiver)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.e2e.harness import BridgeConfig, domain, run_once
from tests.faults._support import events
from tests.faults.hostile_daily import HostileDaily, Hostility
from tests.faults.hostile_data import populate_simple
from tests.security._tls import TlsOtlpReceiver, make_pki

KEY = "tls-test-key-0123456789abcdef"


def _config(tmp_path: Path, daily_url: str, receiver: TlsOtlpReceiver, **opts: Any) -> Path:
    """Domain `grpc` exports over gRPC/TLS, domain `http` over HTTPS."""
    ca_file = opts.get("ca_file")
    cert = opts.get("certificate_file")
    common: dict[str, Any] = {"max_retry_time": "1s", "timeout": "3s"}
    if cert is not None:
        common["certificate_file"] = str(cert)
    doms = []
    for name, protocol, endpoint in (
        ("grpc", "grpc", receiver.grpc_endpoint),
        ("http", "http/protobuf", receiver.http_endpoint),
    ):
        extra: dict[str, Any] = {"export": {"protocol": protocol, "endpoint": endpoint, **common}}
        if ca_file is not None:
            extra["ca_file"] = str(ca_file)
        doms.append(domain(name, f"{KEY}-{name}", daily_url, **extra))
    return BridgeConfig(
        path=tmp_path / "bridge.yaml",
        state_path=tmp_path / "state.db",
        export={"protocol": "grpc", "endpoint": receiver.grpc_endpoint},
        domains=doms,
    ).write()


def test_tls_is_verified_towards_daily_and_otlp_and_a_ca_bundle_makes_it_work(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    rng = random.Random(3)
    with (
        HostileDaily(Hostility.tame(), ssl_context=pki.server_context()) as daily,
        TlsOtlpReceiver(pki) as receiver,
    ):
        total = sum(
            len(populate_simple(daily, rng, name, f"{KEY}-{name}", records=40))
            for name in ("grpc", "http")
        )
        assert daily.url.startswith("https://")

        # 1. Daily's certificate is not trusted by default: a clear error, nothing shipped.
        result = run_once(_config(tmp_path, daily.url, receiver))
        assert result.returncode == 1, result.stderr[-2000:]
        failures = events(result.stderr, "domain failed")
        assert len(failures) == 2, result.stderr[-3000:]
        for failure in failures:
            assert "TLS certificate" in failure["error"], failure
            assert "ca_file" in failure["error"], failure
        assert receiver.records == 0

        # 2. A CA bundle that did not sign it does not help either.
        other = _config(tmp_path, daily.url, receiver, ca_file=pki.other_ca_file)
        result = run_once(other)
        assert result.returncode == 1
        assert all("TLS certificate" in f["error"] for f in events(result.stderr, "domain failed"))
        assert receiver.records == 0

        # 3. Daily trusted through ca_file, the OTLP endpoints not (no certificate_file): the
        # exporters refuse to send, over gRPC and over HTTPS alike; no plaintext fallback.
        result = run_once(_config(tmp_path, daily.url, receiver, ca_file=pki.ca_file))
        assert result.returncode == 1
        failures = {f["domain"]: f for f in events(result.stderr, "domain failed")}
        assert set(failures) == {"grpc", "http"}, result.stderr[-3000:]
        assert "CERTIFICATE_VERIFY_FAILED" in failures["grpc"]["error"] or (
            "handshake" in failures["grpc"]["error"].lower()
        ), failures["grpc"]
        assert "TLS certificate" in failures["http"]["error"], failures["http"]
        assert "certificate_file" in failures["http"]["error"]
        assert receiver.records == 0

        # 4. With both CA bundles configured everything arrives.
        ok = _config(
            tmp_path, daily.url, receiver, ca_file=pki.ca_file, certificate_file=pki.ca_file
        )
        result = run_once(ok)
        assert result.returncode == 0, result.stderr[-3000:]
        assert receiver.records == total
