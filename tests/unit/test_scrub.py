"""`core.secrets`, the one scrubber behind the log mask and configuration error text; and
`core.scrub`, the body scrubber of /logs/api entries (planted secrets of every kind)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daily_otel_bridge.core.scrub import (
    MAX_DEPTH,
    is_secret_key,
    scrub_body,
    scrub_json,
    scrub_text,
)
from daily_otel_bridge.core.secrets import MASK, scrub, scrub_value


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("nothing here", {"sekrit-value"}, "nothing here"),
        ("key=sekrit-value;", {"sekrit-value"}, f"key={MASK};"),
        ("a sekrit-value and sekrit-value", {"sekrit-value"}, f"a {MASK} and {MASK}"),
        # Longest first: the longer secret is masked whole, not left with a visible tail.
        ("tok=abcdef123456", {"abcdef", "abcdef123456"}, f"tok={MASK}"),
        ("anything", set(), "anything"),
    ],
)
def test_scrub(text: str, secrets: set[str], expected: str) -> None:
    assert scrub(text, secrets) == expected


def test_scrub_value_walks_containers_and_keeps_types() -> None:
    value = {"a": ["x sekrit-value", ("sekrit-value", 3)], "b": 1.5, "c": None}
    assert scrub_value(value, {"sekrit-value"}) == {
        "a": [f"x {MASK}", (MASK, 3)],
        "b": 1.5,
        "c": None,
    }


# -- `core.scrub`: bodies of /logs/api entries, scrubbed of what nobody named ----------------

# Planted secrets, one of each kind; none may survive a scrub.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyIjoicm9vbS1QTEFOVEVEIiwibyI6dHJ1ZX0"
    ".c2lnbmF0dXJlLVBMQU5URUQtand0"
)
JWE = "eyJhbGciOiJSU0EtT0FFUCJ9.ZW5jcnlwdGVk.aXY.Y2lwaGVydGV4dA.dGFn"
API_KEY_HEX = "7d1f0c9a4b3e2d1c0b9a8f7e6d5c4b3a2918f7e6d5c4b3a29180f7e6d5c4b3a2"
PASSWORD = "hunter2-PLANTED-pw"
HMAC = "aG1hYy1QTEFOVEVELXNlY3JldA=="
BEARER = "sk_PLANTED_bearer_0123456789"
BASIC = "Ym9iOlBMQU5URUQtYmFzaWM="
URL_PASSWORD = "PLANTEDurlpw"
QUERY_TOKEN = "PLANTEDquerytoken"
PIN = 482913
PEM = "-----BEGIN PRIVATE KEY-----\nMIIPLANTEDkeymaterial\n-----END PRIVATE KEY-----"
PLANTED = [JWT, JWE, API_KEY_HEX, PASSWORD, HMAC, BEARER, BASIC, URL_PASSWORD, QUERY_TOKEN]

HARMLESS = {
    "name": "support-room-7",
    "privacy": "private",
    "room_name": "support-room-7",
    "user_name": "sean",
    "is_owner": True,
    "exp": 1_774_003_600,
    "enable_recording": "cloud",
    "created_at": "2026-03-23T16:32:55.473Z",
    "id": "16e9701a-93e0-4933-83c9-223e7c40d552",
    "eject_at_token_exp": True,  # a flag under a token-ish name: no secret, kept
    "url": "https://hooks.example.com/daily",
}


def planted_body() -> dict[str, Any]:
    return {
        **HARMLESS,
        "token": JWT,
        "properties": {"room_name": "support-room-7", "meeting_token": JWT, "password": PASSWORD},
        "API_KEY": API_KEY_HEX,
        "webhook": {"hmac": HMAC, "basicAuth": BASIC, "retryType": "circuit-breaker"},
        "headers": {"Authorization": f"Bearer {BEARER}", "Content-Type": "application/json"},
        "note": f"called with Authorization: Bearer {BEARER} and key {API_KEY_HEX}",
        "callback": f"https://bob:{URL_PASSWORD}@hooks.example.com/x?token={QUERY_TOKEN}&a=1",
        "dialin": {"pin": PIN},
        "sip": {"credentials": {"user": "u", "secret": "s3cr3t-PLANTED"}},
        "payload": json.dumps({"meeting_token": JWT, "room": "support-room-7", "jwe": JWE}),
        "tls": {"private_key": PEM},
        "list": [{"apiKey": API_KEY_HEX}, JWT, "plain text"],
    }


def assert_clean(text: str) -> None:
    for secret in [*PLANTED, "s3cr3t-PLANTED", "MIIPLANTEDkeymaterial", str(PIN)]:
        assert secret not in text
    assert "PLANTED" not in text


def test_every_planted_secret_is_masked_and_harmless_fields_survive() -> None:
    scrubbed = scrub_body(json.dumps(planted_body()))
    assert scrubbed is not None
    assert_clean(scrubbed)
    out = json.loads(scrubbed)
    for key, value in HARMLESS.items():
        assert out[key] == value, key
    assert out["properties"]["room_name"] == "support-room-7"
    assert out["webhook"]["retryType"] == "circuit-breaker"
    assert out["headers"]["Content-Type"] == "application/json"
    assert out["list"][2] == "plain text"
    # JSON held as a string is scrubbed inside and stays a string
    inner = json.loads(out["payload"])
    assert inner == {"meeting_token": MASK, "room": "support-room-7", "jwe": MASK}
    assert out["callback"] == f"https://{MASK}@hooks.example.com/x?token={MASK}&a=1"


@pytest.mark.parametrize(
    "body",
    [
        # not JSON at all: the value rules, as text
        f"token={QUERY_TOKEN}&password={PASSWORD}&room=support-room-7",
        f"Authorization: Bearer {BEARER}\nX-Other: fine",
        f"Authorization: Basic {BASIC}",
        f"the meeting token is {JWT}.",
        f"key {API_KEY_HEX} leaked",
        # JSON cut short (Daily may truncate a long body): quoted pairs by name
        f'{{"room":"support-room-7","password":"{PASSWORD}","hmac":"{HMAC}","token":"{JWT}"',
        f'{{"password": "{PASSWORD}", "api_key":"{API_KEY_HEX}", "pin": {PIN}',
        f"connect to postgresql://app:{URL_PASSWORD}@db:5432/x",
        PEM + " trailing",
    ],
)
def test_text_bodies(body: str) -> None:
    scrubbed = scrub_body(body)
    assert scrubbed is not None
    assert_clean(scrubbed)


def test_harmless_text_is_unchanged() -> None:
    text = "GET /rooms/support-room-7 at 2026-03-23T16:32:55.473Z took 12 ms; status=200"
    assert scrub_text(text) == text
    assert scrub_body('{"name":"support-room-7","privacy":"public"}') == (
        '{"name":"support-room-7","privacy":"public"}'
    )


def test_body_encoded_twice_and_non_string_bodies() -> None:
    twice = json.dumps(json.dumps({"token": JWT, "room": "r"}))
    scrubbed = scrub_body(twice)
    assert scrubbed is not None
    assert_clean(scrubbed)
    assert json.loads(json.loads(scrubbed)) == {"token": MASK, "room": "r"}
    assert scrub_body(None) is None
    assert scrub_body({"password": PASSWORD, "n": 1}) == f'{{"password":"{MASK}","n":1}}'
    assert scrub_body("") == ""
    assert scrub_body("null") == "null"


def test_nesting_deeper_than_the_limit_is_scrubbed_as_text() -> None:
    value: Any = {"password": PASSWORD, "token": JWT}
    for _ in range(MAX_DEPTH + 5):
        value = {"inner": value}
    scrubbed = scrub_body(json.dumps(value))
    assert scrubbed is not None
    assert_clean(scrubbed)


def test_the_input_is_not_changed() -> None:
    body = planted_body()
    before = json.dumps(body)
    scrub_json(body)
    assert json.dumps(body) == before


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("meeting_token", True),
        ("Meeting-Token", True),
        ("secret", True),
        ("webhook_secret", True),
        ("password", True),
        ("PASSWORD", True),
        ("passwordHash", True),
        ("api_key", True),
        ("apikey", True),
        ("X-Api-Key", True),
        ("key", True),
        ("private_key", True),
        ("authorization", True),
        ("Proxy-Authorization", True),
        ("basicAuth", True),
        ("hmac", True),
        ("x-hub-signature", True),
        ("cookie", True),
        ("credentials", True),
        ("pin", True),
        ("name", False),
        ("room_name", False),
        ("user_name", False),
        ("privacy", False),
        ("author", False),
        ("monkeyish", False),
        ("mtgSessionId", False),
        ("session_id", False),
        ("exp", False),
        ("", False),
    ],
)
def test_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret
