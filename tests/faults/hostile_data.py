"""Record bodies for the hostile server: well-formed, weird-but-valid, and malformed ones.

Each malformed body comes with the word its dead letter's reason must contain.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from tests.faults.hostile_daily import iso_ns

MIB = 1024 * 1024

UNICODE_MESSAGES = [
    "emoji \U0001f600\U0001f469\U0001f3fd\u200d\U0001f4bb\U0001f3f3\ufe0f\u200d\U0001f308 done",
    "CJK \u4e2d\u6587\u65e5\u5fd7\uff1a\u53c2\u4e0e\u8005\u5df2\u79bb\u5f00",
    "RTL \u05e2\u05d1\u05e8\u05d9\u05ea and \u0628\u0627\u0644\u0639\u0631\u0628\u064a\u0629 mixed",
    "combining e\u0301 a\u0308 and zero\u200bwidth\u200djoiner",
    "NUL \u0000 inside, line\u2028separator, tab\tand newline\n",
    "astral \U0001d518\U0001d52b\U0001d526 \U00013000 \U0001f004",
    "\ufeffBOM-led message",
]


def good(
    rng: random.Random,
    domain: str,
    session: str,
    user: str,
    time_ms: int,
    *,
    message: str | None = None,
    clock_skew_ms: int = 0,
) -> dict[str, Any]:
    return {
        "time": iso_ns(time_ms),
        "clientTime": iso_ns(time_ms - rng.randint(0, 2500) + clock_skew_ms),
        "message": message if message is not None else f"line {rng.randint(0, 10**9)}",
        "mtgSessionId": session,
        "userSessionId": user,
        "peerId": rng.choice([None, str(uuid.UUID(int=rng.getrandbits(128)))]),
        "domainName": domain,
        "level": rng.choice([0, 1, 2]),
        "code": rng.choice([None, 7991, 8000, 8020]),
    }


def weird_but_valid(
    rng: random.Random, domain: str, session: str, user: str, time_ms: int
) -> list[dict[str, Any]]:
    """Records that must be delivered although they look odd."""
    base = good(rng, domain, session, user, time_ms)
    second, ms = divmod(time_ms, 1000)
    plain = iso_ns(second * 1000)[:19]
    out = [{**base, "message": m} for m in UNICODE_MESSAGES]
    out += [
        {k: v for k, v in base.items() if k != "message"},  # no message: an empty body
        {**base, "message": None, "level": None, "code": None, "peerId": None, "clientTime": None},
        {**base, "level": 99, "message": "unknown level"},
        {**base, "level": -1, "message": "negative level"},
        {**base, "extra": {"nested": [1, 2, {"deep": True}]}, "message": "unknown keys"},
        # Beyond 64 bits: must decode to the same value on every page, whatever is near it.
        {**base, "extra_big": 2**70, "message": "a big integer in an unknown key"},
        {**base, "clientTime": iso_ns(time_ms - 7 * 3600 * 1000), "message": "client 7h behind"},
        {**base, "clientTime": iso_ns(time_ms + 9 * 3600 * 1000), "message": "client 9h ahead"},
        {**base, "time": f"{plain}.{ms:03d}Z", "message": "three fractional digits"},
        {**base, "time": f"{plain}.{ms:03d}000+00:00", "message": "explicit offset"},
    ]
    return out


def malformed(
    rng: random.Random, domain: str, session: str, user: str, time_ms: int
) -> list[tuple[Any, str]]:
    """(body, a word the dead letter's reason contains)."""
    base = good(rng, domain, session, user, time_ms)
    no_time = {k: v for k, v in base.items() if k != "time"}
    no_mtg = {k: v for k, v in base.items() if k != "mtgSessionId"}
    return [
        (no_time, "time"),
        ({**base, "time": None}, "time"),
        ({**base, "time": "yesterday at noon"}, "time"),
        ({**base, "time": time_ms}, "time"),
        ({**base, "time": "2026-02-30T10:00:00.000000000Z"}, "time"),  # no such day
        ({**base, "time": "2026-03-23T25:61:00.000000000Z"}, "time"),  # no such hour
        (no_mtg, "mtgSessionId"),
        ({**base, "userSessionId": None}, "userSessionId"),
        ({**base, "level": "1"}, "level"),
        ({**base, "code": "7991"}, "code"),
        ({**base, "code": 2**70}, "encode"),
        ({**base, "peerId": 5}, "peerId"),
        ({**base, "message": {"nested": True}}, "message"),
        ({**base, "clientTime": 12345}, "clientTime"),
        ({**base, "message": "lone surrogate \ud800 here"}, "encode"),
        ("just a string", "record"),
        (None, "record"),
        ([1, 2, 3], "record"),
    ]


def populate_simple(
    server: Any, rng: random.Random, domain: str, key: str, *, sessions: int = 1, records: int = 30
) -> list[dict[str, Any]]:
    """A domain with ended sessions full of well-formed records; returns every body."""
    now_ms = int(server.clock() * 1000)
    server.add_domain(domain, key)
    bodies = []
    for n in range(sessions):
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        user = str(uuid.UUID(int=rng.getrandbits(128)))
        start_ms = now_ms - 30 * 60_000 + n * 1000
        server.add_session(
            domain, sid, f"room-{n}", start_ms // 1000, start_ms // 1000 + 600, [user]
        )
        for i in range(records):
            body = good(rng, domain, sid, user, start_ms + 1000 + i * 7)
            server.add_record(domain, sid, start_ms + 1000 + i * 7, body)
            bodies.append(body)
    return bodies
