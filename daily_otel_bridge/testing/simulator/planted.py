"""Secrets planted in the bodies ``GET /v1/logs/api`` serves, for the scrubbing tests.

Daily's API logs carry the request and response bodies of REST calls and webhook deliveries
verbatim (JSON strings), so a customer's meeting tokens, room passwords, storage keys and
``Authorization`` values end up in them. The simulator plants fixed, distinctive values of
each kind; a test asserts that none of ``PLANTED_SECRETS`` reaches the backend.
"""

from __future__ import annotations

import base64
import json


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, object], signature: bytes) -> str:
    # A well-formed (unverifiable) meeting token: what Daily's POST /meeting-tokens returns.
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_b64url(signature)}"


MEETING_TOKEN = _jwt({"r": "standup", "u": "Ana", "o": True, "d": "sim"}, b"planted-token-sig-01")
GUEST_TOKEN = _jwt({"r": "sales-demo", "u": "Bo", "ejt": 3600}, b"planted-token-sig-02")
API_KEY = "sim-planted-api-key-7f3a9c2e41d84b6f"
PASSWORD = "sim-planted-password-Tr0ub4dor&3"  # noqa: S105 (planted on purpose, fake)
SECRET = "sim-planted-secret-9b8e7d6c5b4a3f21"  # noqa: S105 (planted on purpose, fake)
BEARER = "sim-planted-bearer-4f1e2d3c5a6b7c8d"
HMAC = base64.b64encode(b"sim-planted-webhook-hmac-key-32b").decode()

# Every planted value, verbatim: none of them may appear in what the bridge exports.
PLANTED_SECRETS: tuple[str, ...] = (
    MEETING_TOKEN,
    GUEST_TOKEN,
    API_KEY,
    PASSWORD,
    SECRET,
    BEARER,
    HMAC,
)


def api_call_templates(room: str) -> list[tuple[str, str, int, object, object]]:
    """(method, url, status, request body, response body) of REST calls a customer's backend
    makes, each carrying at least one planted secret somewhere in its bodies."""
    return [
        (
            "POST",
            "/v1/meeting-tokens",
            200,
            {"properties": {"room_name": room, "user_name": "Ana", "is_owner": True}},
            {"token": MEETING_TOKEN},
        ),
        (
            "POST",
            "/v1/meeting-tokens",
            200,
            {"properties": {"room_name": room, "eject_after_elapsed": 3600}},
            {"token": GUEST_TOKEN},
        ),
        (
            "POST",
            f"/v1/rooms/{room}",
            200,
            {"properties": {"enable_recording": "cloud", "password": PASSWORD}},
            {"name": room, "privacy": "private", "config": {"enable_recording": "cloud"}},
        ),
        (
            "POST",
            "/v1/domain-config",
            200,
            {"properties": {"recordings_bucket": {"bucket_name": "rec", "api_key": API_KEY}}},
            {"domain_name": "sim", "config": {"recordings_bucket": {"bucket_name": "rec"}}},
        ),
        (
            "POST",
            f"/v1/rooms/{room}/live-streaming/start",
            400,
            {
                "endpoints": [
                    {
                        "endpoint": "rtmp://127.0.0.1/live",
                        "headers": {"Authorization": f"Bearer {BEARER}"},
                    }
                ]
            },
            {"error": "invalid-request-error", "info": "no one is in the room"},
        ),
        (
            "POST",
            "/v1/webhooks",
            200,
            {"url": "https://hooks.invalid/daily", "hmac": HMAC, "secret": SECRET},
            {"uuid": "00000000-0000-4000-8000-000000000001", "hmac": HMAC, "state": "ACTIVE"},
        ),
        ("GET", f"/v1/rooms/{room}", 200, {}, {"name": room, "privacy": "public"}),
        (
            "GET",
            "/v1/meetings",
            401,
            {},
            {"error": "authentication-error", "info": f"bad key {API_KEY[:8]}..."},
        ),
    ]


def webhook_reply_templates() -> list[tuple[int, object]]:
    """(status, response body) a customer's webhook server answers; failures echo headers."""
    return [
        (200, {"ok": True}),
        (200, {"received": True}),
        (500, {"error": "internal", "debug": {"authorization": f"Bearer {BEARER}"}}),
        (401, {"error": "bad signature", "expected_secret": SECRET}),
        (404, "not found"),
    ]
