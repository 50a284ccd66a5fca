"""Daily's webhook signature, as tables of requests -> outcomes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from daily_otel_bridge.core.webhook_signature import (
    Verdict,
    decode_secret,
    sign,
    timestamp_seconds,
    verify,
)

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
KEY = decode_secret(SECRET)
OTHER_KEY = b"another key of thirty-two bytes!"
BODY = b'{"version":"1.0.0","type":"meeting.started","id":"evt-1","payload":{},"event_ts":1}'
NOW = 1_760_000_000.0
TS = "1760000000"


def daily_signature(key: bytes, timestamp: str, body: bytes) -> str:
    """Written out independently of `sign`, from Daily's description."""
    message = timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


GOOD = daily_signature(KEY, TS, BODY)


def check(
    *,
    timestamp: str | None = TS,
    signature: str | None = GOOD,
    body: bytes = BODY,
    keys: tuple[bytes, ...] | bytes = KEY,
    now: float = NOW,
    tolerance: float = 300.0,
) -> Verdict:
    return verify(
        keys, timestamp=timestamp, signature=signature, body=body, now=now, tolerance=tolerance
    )


def test_sign_is_dailys_scheme() -> None:
    assert sign(KEY, TS, BODY) == GOOD


@pytest.mark.parametrize(
    ("case", "kwargs", "refusal"),
    [
        ("authentic", {}, None),
        ("authentic, clock 299 s ahead", {"now": NOW + 299}, None),
        ("authentic, clock 299 s behind", {"now": NOW - 299}, None),
        ("tampered body", {"body": BODY.replace(b"evt-1", b"evt-2")}, "signature"),
        ("body with a byte appended", {"body": BODY + b" "}, "signature"),
        ("wrong secret", {"keys": OTHER_KEY}, "signature"),
        (
            "timestamp changed (signature kept)",
            {"timestamp": "1760000001"},
            "signature",
        ),
        ("signature of another body", {"signature": sign(KEY, TS, b"{}")}, "signature"),
        ("signature not base64", {"signature": "%%%"}, "signature"),
        ("signature too short", {"signature": base64.b64encode(b"abc").decode()}, "signature"),
        ("signature absurdly long", {"signature": "A" * 5000}, "signature"),
        ("empty signature", {"signature": ""}, "signature"),
        ("stale: 301 s old", {"now": NOW + 301}, "stale"),
        ("stale: an hour old", {"now": NOW + 3600}, "stale"),
        ("stale: 301 s in the future", {"now": NOW - 301}, "stale"),
        ("no timestamp header", {"timestamp": None}, "malformed"),
        ("no signature header", {"signature": None}, "malformed"),
        ("timestamp not a number", {"timestamp": "yesterday"}, "malformed"),
        ("timestamp empty", {"timestamp": ""}, "malformed"),
        ("timestamp negative", {"timestamp": "-5"}, "malformed"),
        ("timestamp infinite", {"timestamp": "inf"}, "malformed"),
        ("timestamp absurdly long", {"timestamp": "1" * 100}, "malformed"),
    ],
)
def test_outcomes(case: str, kwargs: dict[str, object], refusal: str | None) -> None:
    verdict = check(**kwargs)  # type: ignore[arg-type]
    assert verdict.refusal == refusal, case
    assert verdict.ok is (refusal is None)


def test_stale_is_only_said_of_an_authentic_request() -> None:
    # An hour old *and* signed with the wrong key: a forgery first, not a replay.
    assert check(keys=OTHER_KEY, now=NOW + 3600).refusal == "signature"


@pytest.mark.parametrize(
    ("timestamp", "seconds"),
    [
        ("1760000000", 1_760_000_000.0),
        ("1760000000.25", 1_760_000_000.25),
        ("1760000000123", 1_760_000_000.123),  # milliseconds
        (" 1760000000 ", 1_760_000_000.0),
    ],
)
def test_timestamp_units(timestamp: str, seconds: float) -> None:
    assert timestamp_seconds(timestamp) == pytest.approx(seconds)


def test_milliseconds_timestamp_is_accepted_and_signed_as_sent() -> None:
    ms = "1760000000123"
    verdict = check(timestamp=ms, signature=daily_signature(KEY, ms, BODY))
    assert verdict.ok


def test_any_of_several_keys() -> None:
    # While a secret is being replaced both are accepted.
    assert check(keys=(OTHER_KEY, KEY)).ok
    assert check(keys=(OTHER_KEY,)).refusal == "signature"


def test_details_never_quote_the_headers_or_secret() -> None:
    for verdict in (
        check(signature="%%%"),
        check(keys=OTHER_KEY),
        check(now=NOW + 3600),
        check(timestamp="yesterday"),
    ):
        assert verdict.detail
        for secret_text in (SECRET, GOOD, "%%%", "yesterday"):
            assert secret_text not in verdict.detail


@pytest.mark.parametrize(("secret", "ok"), [(SECRET, True), ("@@@", False), ("", False)])
def test_decode_secret(secret: str, ok: bool) -> None:
    if ok:
        assert decode_secret(secret) == b"0123456789abcdef0123456789abcdef"
    else:
        with pytest.raises(ValueError, match="must") as info:
            decode_secret(secret)
        assert secret not in str(info.value) or not secret
