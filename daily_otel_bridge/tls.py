"""The one TLS context builder for the bridge's outgoing HTTPS: Daily's API and OTLP/HTTP.

(OTLP/gRPC takes its trust from `grpc.ssl_channel_credentials` instead, from the same files.)
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client context that always verifies the server.

    `ca_file` adds trust (a private CA bundle) instead of the system's; it never turns
    verification off. `cert_file` (with `key_file`, unless the key is inside it) is the
    client certificate for mutual TLS.
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context
