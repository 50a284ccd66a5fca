"""Webhooks, the pure part: a hook as ``/v1/webhooks`` shows it, the validation of what a
client sends, and the timeline of events the simulated meetings produce.

Transcribed from https://docs.daily.co/reference/rest-api/webhooks (and its create, get,
update and delete pages, and the webhook events pages): a hook has ``uuid``, ``url``,
``hmac`` (base64; generated when not given), ``basicAuth``, ``retryType``
(``circuit-breaker``, the default, or ``exponential``), ``eventTypes``, ``state``
(``ACTIVE`` / ``FAILED``), ``failedCount``, ``lastMomentPushed``, ``domainId``,
``createdAt``, ``updatedAt``. An event is ``{version, type, id, payload, event_ts}``.
Where the docs are silent the simulator chooses (and says so here): timestamps of the hook
are ISO 8601 strings, ``lastMomentPushed`` null until the first acknowledged push, an
empty or absent ``eventTypes`` subscribes to every event, unknown event types are a 400.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ApiError
from .model import Meeting
from .vocabulary import iso_ms, new_uuid

RETRY_TYPES = ("circuit-breaker", "exponential")
EVENT_TYPES = (
    "meeting.started",
    "meeting.ended",
    "participant.joined",
    "participant.left",
    "recording.error",
    "dialout.error",
)
# Accepted in eventTypes although the simulator never produces them (Daily has many more).
OTHER_EVENT_TYPES = (
    "waiting-participant.joined",
    "waiting-participant.left",
    "recording.started",
    "recording.ready-to-download",
    "transcript.started",
    "transcript.ready-to-download",
    "transcript.error",
    "streaming.started",
    "streaming.ended",
    "streaming.error",
    "dialout.connected",
    "dialout.answered",
    "dialout.stopped",
    "dialin.connected",
    "dialin.stopped",
    "dialin.error",
    "batch-processor.job-finished",
    "batch-processor.error",
)
EVENT_VERSION = "1.0.0"


@dataclass(slots=True)
class Hook:
    uuid: str
    domain: str
    domain_id: str
    url: str
    hmac: str
    basic_auth: str | None
    retry_type: str
    event_types: list[str]
    created: float  # Unix s, simulator clock
    updated: float
    state: str = "ACTIVE"
    failed_count: int = 0
    last_pushed: float | None = None
    # Events at or before this instant (simulator clock) are not sent: a hook hears only
    # what happens after it was created, or re-activated.
    cursor: float = 0.0
    counters: dict[str, int] = field(
        default_factory=lambda: {
            "events": 0,
            "sent": 0,
            "acknowledged": 0,
            "failed": 0,
            "retried": 0,
            "dropped": 0,
        }
    )

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    def as_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "url": self.url,
            "hmac": self.hmac,
            "basicAuth": self.basic_auth,
            "retryType": self.retry_type,
            "eventTypes": list(self.event_types),
            "state": self.state,
            "failedCount": self.failed_count,
            "lastMomentPushed": _iso(self.last_pushed),
            "domainId": self.domain_id,
            "createdAt": _iso(self.created),
            "updatedAt": _iso(self.updated),
        }

    def stats(self) -> dict[str, Any]:
        return {"state": self.state, "failedCount": self.failed_count, **self.counters}


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else iso_ms(math.floor(seconds * 1000))[:23] + "Z"


def new_hmac() -> str:
    """A fresh secret, as Daily generates one: 32 random bytes, base64."""
    return base64.b64encode(os.urandom(32)).decode()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bad(info: str) -> ApiError:
    return ApiError(400, "invalid-request-error", info)


def validate_settings(body: Any, creating: bool) -> dict[str, Any]:
    """The settings a create (``creating``) or update body asks for, checked; 400 otherwise."""
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    known = {"url", "hmac", "basicAuth", "retryType", "eventTypes"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _bad(f"unknown fields: {unknown}")
    out: dict[str, Any] = {}
    if "url" in body or creating:
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise _bad("url is required")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad("url must be an http(s) URL")
        if not _loopback(parts.hostname):
            # Not Daily's rule: the simulator's own, so that nothing it sends leaves the
            # machine (a fuzzer posting random URLs included).
            raise _bad("the simulator delivers to loopback URLs only (127.0.0.1, ::1, localhost)")
        out["url"] = url
    if body.get("hmac") is not None:
        secret = body["hmac"]
        try:
            if not isinstance(secret, str) or not base64.b64decode(secret, validate=True):
                raise ValueError
        except ValueError:
            raise _bad("hmac must be a non-empty base64 string") from None
        out["hmac"] = secret
    if body.get("basicAuth") is not None:
        if not isinstance(body["basicAuth"], str):
            raise _bad("basicAuth must be a string")
        out["basicAuth"] = body["basicAuth"]
    if "retryType" in body:
        if body["retryType"] not in RETRY_TYPES:
            raise _bad("retryType must be circuit-breaker or exponential")
        out["retryType"] = body["retryType"]
    if "eventTypes" in body:
        types = body["eventTypes"]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise _bad("eventTypes must be a list of strings")
        bad = sorted(set(types) - set(EVENT_TYPES) - set(OTHER_EVENT_TYPES))
        if bad:
            raise _bad(f"unknown event types: {bad}")
        out["eventTypes"] = list(dict.fromkeys(types))
    return out


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # when it happens (Unix s, simulator clock)
    seq: int
    type: str
    id: str
    payload: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "version": EVENT_VERSION,
            "type": self.type,
            "id": self.id,
            "payload": self.payload,
            "event_ts": self.at,
        }


def timeline(meetings: list[Meeting], seed: int, domain: str, domain_id: str) -> list[Event]:
    """Every event the domain's meetings produce, in time order (a pure function of them).

    ``meeting.started`` at the start, ``participant.joined`` / ``participant.left`` at each
    join and leave, ``meeting.ended`` 0-20 s after the end (Daily: "up to 20 s after the last
    participant leaves"), and for about one meeting in four a ``recording.error``, one in six
    a ``dialout.error``, part-way through.
    """
    raw: list[tuple[float, str, dict[str, Any]]] = []
    for m in sorted(meetings, key=lambda m: m.index):
        rng = random.Random(f"{seed}:{domain}:{m.index}:events")
        start = m.begins
        raw.append(
            (start, "meeting.started", {"start_ts": start, "meeting_id": m.id, "room": m.room})
        )
        for p in m.participants:
            joined = max(float(p.join_time), start)
            base: dict[str, Any] = {"session_id": p.participant_id, "room": m.room}
            if p.user_id is not None:
                base["user_id"] = p.user_id  # left out without a meeting token, as Daily does
            base["user_name"] = p.user_name
            base.update({"owner": False, "will_eject_at": None, "joined_at": joined})
            raw.append((joined, "participant.joined", dict(base)))
            if p.leave_time is not None and m.ends is not None:
                left = max(joined, min(float(p.leave_time), m.ends))
                raw.append((left, "participant.left", {**base, "duration": left - joined}))
        span = (m.ends - start) if m.ends is not None else 60.0
        if rng.random() < 0.25:
            at = start + rng.uniform(0.1, 0.9) * span
            raw.append(
                (
                    at,
                    "recording.error",
                    {
                        "action": "cloud-recording-err",
                        "error_msg": "simulated: recording stopped unexpectedly",
                        "instance_id": new_uuid(rng),
                        "room_name": m.room,
                        "timestamp": int(at),
                    },
                )
            )
        if rng.random() < 1 / 6:
            at = start + rng.uniform(0.1, 0.9) * span
            raw.append(
                (
                    at,
                    "dialout.error",
                    {
                        "timestamp": int(at),
                        "session_id": new_uuid(rng),
                        "domain_id": domain_id,
                        "room": m.room,
                        "error_msg": "simulated: the callee did not answer",
                    },
                )
            )
        if m.ends is not None:
            end = m.ends + rng.uniform(0.0, 20.0)
            raw.append(
                (
                    end,
                    "meeting.ended",
                    {"start_ts": start, "end_ts": m.ends, "meeting_id": m.id, "room": m.room},
                )
            )
    ids = random.Random(f"{seed}:{domain}:event-ids")
    events = [
        Event(at=at, seq=n, type=kind, id=new_uuid(ids), payload=payload)
        for n, (at, kind, payload) in enumerate(raw)
    ]
    events.sort(key=lambda e: (e.at, e.seq))
    return events
