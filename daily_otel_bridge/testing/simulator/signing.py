"""Signing a webhook body the way Daily does, pure (tests of the receiver sign with it).

https://docs.daily.co/reference/rest-api/webhooks: the ``X-Webhook-Signature`` header is
``base64(HMAC-SHA256(key = base64decode(hmac secret), msg = timestamp + "." + raw body))``
and ``X-Webhook-Timestamp`` carries that timestamp. Written apart from the bridge's own
verifier on purpose: the two must agree because both follow the docs, not each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"


def sign_webhook(secret_b64: str, timestamp: str, body: bytes) -> str:
    """The ``X-Webhook-Signature`` value for ``body`` sent at ``timestamp``.

    ``secret_b64`` is the hook's ``hmac`` as Daily shows it (base64); a value that is not
    valid base64 raises ``ValueError``.
    """
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("the hmac secret must be base64") from exc
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(secret_b64: str, timestamp: str, body: bytes) -> dict[str, str]:
    """The headers of one signed delivery (the signature, the timestamp, the body type)."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_webhook(secret_b64, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
    }
