"""`tls.client_context`, the one TLS context of the Daily client and OTLP/HTTP: verified
always; a CA bundle adds trust; a client certificate is loaded for mutual TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from daily_otel_bridge.tls import client_context


def test_default_context_verifies() -> None:
    context = client_context(None)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_ca_bundle_adds_trust_and_keeps_verification(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = client_context(ca_file)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 1


def test_client_certificate_with_separate_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("bridge.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    client_context(None, cert_file, key_file)  # loads, or raises
    with pytest.raises(ssl.SSLError):
        client_context(None, cert_file)  # no key anywhere: refused, not ignored
