"""Daily's webhook signature: checked (and, for tests and the simulator, made). Pure: the clock
is passed in.

Daily signs each POST with two headers (https://docs.daily.co/reference/rest-api/webhooks):
`X-Webhook-Timestamp` and `X-Webhook-Signature`, the latter being
base64(HMAC-SHA256(key, timestamp + "." + raw body)) where the key is the hook's `hmac` secret
*base64-decoded*. The body is signed as sent, so it must be checked before any parsing.

The timestamp's unit: Daily's docs give every other time of a webhook (`event_ts`, `start_ts`,
...) in Unix seconds and do not name the header's unit; we read a number below 10^11 as
seconds and anything larger as milliseconds (10^11 s is the year 5138, 10^11 ms 1973), so
whichever Daily sends is accepted, fractions included. The signed text is the header exactly
as received, whatever its unit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Refusal",
    "Verdict",
    "decode_secret",
    "sign",
    "timestamp_seconds",
    "verify",
]

SIGNATURE_HEADER: Final = "X-Webhook-Signature"
TIMESTAMP_HEADER: Final = "X-Webhook-Timestamp"

# Seconds below this, milliseconds above (see the module's docstring).
_MS_THRESHOLD: Final = 1e11
# A timestamp header longer than this is not a number anyone sends.
_MAX_TIMESTAMP_CHARS: Final = 32
# base64 of a 32-byte digest is 44 characters; anything far longer is not a signature.
_MAX_SIGNATURE_CHARS: Final = 256

# `malformed`: a header missing or unreadable; `signature`: the HMAC does not match (a wrong
# secret, a tampered body or timestamp); `stale`: authentic, but signed further from now than
# the tolerance (a replay, or a clock off).
Refusal = Literal["malformed", "signature", "stale"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of `verify`: `refusal` is None when the request is authentic and fresh.
    `detail` says what was wrong in words safe to log (never a header's or secret's value)."""

    refusal: Refusal | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.refusal is None


_OK: Final = Verdict(None)


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a webhook secret as Daily gives it (base64). ValueError, without the
    secret in its text, when it is not base64 or decodes to nothing."""
    try:
        key = base64.b64decode(secret.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("must be base64 (Daily's `hmac` secret as given)") from None
    if not key:
        raise ValueError("must not be empty")
    return key


def timestamp_seconds(value: str) -> float:
    """`X-Webhook-Timestamp` as Unix seconds (seconds or milliseconds accepted); ValueError
    when it is not a finite, positive number."""
    text = value.strip()
    if not text or len(text) > _MAX_TIMESTAMP_CHARS:
        raise ValueError("not a number")
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError("not a positive number")
    return number / 1000.0 if number >= _MS_THRESHOLD else number


def _digest(key: bytes, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, timestamp.encode("utf-8") + b"." + body, hashlib.sha256).digest()


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Webhook-Signature` Daily would send (for tests and the simulator)."""
    return base64.b64encode(_digest(key, timestamp, body)).decode("ascii")


def verify(
    keys: tuple[bytes, ...] | bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float,
) -> Verdict:
    """Whether a POST is Daily's, signed within `tolerance` seconds of `now` (either way).

    `keys`: the accepted HMAC keys (more than one while a secret is being replaced). The
    signature is checked before the time, so that `stale` only ever names an authentic
    request; the comparison is constant-time.
    """
    if timestamp is None or signature is None:
        missing = TIMESTAMP_HEADER if timestamp is None else SIGNATURE_HEADER
        return Verdict("malformed", f"{missing} header missing")
    try:
        signed_at = timestamp_seconds(timestamp)
    except ValueError as exc:
        return Verdict("malformed", f"{TIMESTAMP_HEADER} is {exc}")
    given = _signature_bytes(signature)
    if given is None:
        return Verdict("signature", f"{SIGNATURE_HEADER} is not base64 of a SHA-256 HMAC")
    matched = False
    for key in (keys,) if isinstance(keys, bytes) else keys:
        # No early exit: every key is tried, so the time taken says nothing of which matched.
        matched |= hmac.compare_digest(_digest(key, timestamp, body), given)
    if not matched:
        return Verdict("signature", "the signature does not match the body and timestamp")
    skew = now - signed_at
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        return Verdict("stale", f"signed {abs(skew):.0f}s {direction} (tolerance {tolerance:g}s)")
    return _OK


def _signature_bytes(signature: str) -> bytes | None:
    text = signature.strip()
    if not text or len(text) > _MAX_SIGNATURE_CHARS:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return raw if len(raw) == hashlib.sha256().digest_size else None
