"""Fault injection: the queue of scripted failures ``POST /_sim/faults`` fills, the sessions
that answer 404, and the ``Retry-After`` format every 429/503 uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

FAULT_KEYS = frozenset(
    {
        "status",
        "count",
        "hang_seconds",
        "invalid_json",
        "endpoint",
        "retry_after",
        "not_found_session",
        "clear",
    }
)
# The API endpoints a fault can be scoped to ("any": the next API request whatever it is);
# the names `Simulator.api` counts requests under.
FAULT_ENDPOINTS = ("any", "logs", "meetings", "presence", "participants", "logs_api")


@dataclass(slots=True)
class Fault:
    kind: str  # "status" | "hang" | "invalid_json"
    remaining: int
    endpoint: str  # "logs" | "meetings" | "any"
    status: int = 0
    hang_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "status": self.status,
            "hang_seconds": self.hang_seconds,
        }


class Faults:
    """Scripted failures, consumed in order, one per API request they apply to."""

    def __init__(self, retry_after: bool, clock: Callable[[], float]) -> None:
        self._default_mode = "seconds" if retry_after else "none"
        self._clock = clock
        self.queued: list[Fault] = []
        self.not_found: set[str] = set()
        self.retry_after_mode = self._default_mode

    def retry_after_headers(self) -> dict[str, str]:
        if self.retry_after_mode == "none":
            return {}
        if self.retry_after_mode == "http-date":
            return {"Retry-After": formatdate(self._clock() + 1, usegmt=True)}
        return {"Retry-After": "1"}

    def take(self, endpoint: str) -> Fault | None:
        for n, fault in enumerate(self.queued):
            if fault.endpoint in ("any", endpoint):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.queued[n]
                return fault
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "queued": [f.as_json() for f in self.queued],
            "retry_after": self.retry_after_mode,
            "not_found_sessions": sorted(self.not_found),
        }

    def apply(self, body: Any) -> None:
        """Apply one ``POST /_sim/faults`` body (see the package docstring)."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(body) - FAULT_KEYS
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        if body.get("clear"):
            self.queued.clear()
            self.not_found.clear()
            self.retry_after_mode = self._default_mode
        count = int(body.get("count", 1))
        endpoint = str(body.get("endpoint", "any"))
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        if "status" in body:
            status = int(body["status"])
            if not 400 <= status <= 599:
                raise ValueError("status must be a 4xx or 5xx code")
            self.queued.append(Fault("status", count, endpoint, status=status))
        if "hang_seconds" in body:
            hang = float(body["hang_seconds"])
            self.queued.append(Fault("hang", count, endpoint, hang_seconds=hang))
        if body.get("invalid_json"):
            self.queued.append(Fault("invalid_json", count, endpoint))
        if "retry_after" in body:
            mode = str(body["retry_after"])
            if mode not in ("seconds", "http-date", "none"):
                raise ValueError("retry_after must be seconds, http-date or none")
            self.retry_after_mode = mode
        if "not_found_session" in body:
            self.not_found.add(str(body["not_found_session"]))
