"""Daily's API logs (``GET /v1/logs/api``): REST calls (``source=api``) and webhook deliveries
(``source=webhook``) of one domain, as a book of entries paged by entry id.

Paging, as Daily documents it and where it does not
---------------------------------------------------
https://docs.daily.co/reference/rest-api/logs/list-api-logs: ``starting_after`` "Given the
log ID, will return all records after that ID", ``ending_before`` "... all records before
that ID", ``limit`` default 20, ``source`` ``api`` (default) or ``webhook``, ``url`` "Either
the webhook server URL, or the API endpoint that was logged". Daily's list endpoints
(https://docs.daily.co/reference/rest-api/rooms/list-rooms) return newest first and say
``starting_after`` returns objects *created after* the given id (newer), ``ending_before``
objects *created before* it (older). Not documented, so the simulator takes the less
convenient reading:

* the answer is newest first whatever the cursor, and when more than ``limit`` entries
  match, the newest ``limit`` of them are returned: ``starting_after=X`` alone skips the
  entries just after X when more than a page arrived since (a client tailing forward must
  notice a full page and walk back with ``ending_before`` = the oldest it got, bounded by
  ``starting_after`` = X, until the gap is closed);
* both cursors together bound the range on both sides;
* an unknown id is a 400 ``invalid-request-error``; the largest page is
  ``api_logs_max_limit`` (100 by default; Daily may answer fewer than asked);
* the body is a JSON array of entries (the page lists the entry fields only, no envelope);
  ``status`` is a string and ``request`` / ``response`` are JSON *strings*, as documented.
"""

from __future__ import annotations

import bisect
import json
import random
from dataclasses import dataclass
from typing import Any

from .planted import api_call_templates, webhook_reply_templates
from .vocabulary import iso_ms, new_uuid

SOURCES = ("api", "webhook")


@dataclass(frozen=True, slots=True)
class ApiLogEntry:
    created_ms: int
    seq: int
    id: str
    source: str
    ip: str
    method: str
    url: str
    status: str
    request: str  # a JSON string
    response: str  # a JSON string

    def as_json(self, user_id: str, domain_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": user_id,
            "domainId": domain_id,
            "source": self.source,
            "ip": self.ip,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "createdAt": iso_ms(self.created_ms)[:23] + "Z",
            "request": self.request,
            "response": self.response,
        }


class ApiLogBook:
    """One domain's API log: seeded history plus what happens while the simulator runs."""

    def __init__(self, seed: int, domain: str, rooms: list[str]) -> None:
        rng = random.Random(f"{seed}:{domain}:apilog")
        self.domain = domain
        self.user_id = new_uuid(rng)
        self.domain_id = new_uuid(rng)
        self._rng = rng
        self._rooms = rooms
        self._entries: list[ApiLogEntry] = []  # sorted by (created_ms, seq)
        self._by_id: dict[str, ApiLogEntry] = {}
        self._seq = 0

    def add(
        self,
        created_ms: int,
        source: str,
        method: str,
        url: str,
        status: int | str,
        request: object,
        response: object,
        ip: str = "127.0.0.1",
    ) -> ApiLogEntry:
        """Log one call (bodies as ``as_json_string`` keeps them)."""
        self._seq += 1
        entry = ApiLogEntry(
            created_ms=created_ms,
            seq=self._seq,
            id=new_uuid(self._rng),
            source=source,
            ip=ip,
            method=method,
            url=url,
            status=str(status),
            request=as_json_string(request),
            response=as_json_string(response),
        )
        bisect.insort(self._entries, entry, key=lambda e: (e.created_ms, e.seq))
        self._by_id[entry.id] = entry
        return entry

    def seed_history(self, start_ms: int, end_ms: int, api_calls: int, deliveries: int) -> None:
        """Seeded past entries between ``start_ms`` and ``end_ms`` (each with planted secrets)."""
        rng = random.Random(f"{self.domain}:{start_ms}:history")
        span = max(1, end_ms - start_ms)
        for _ in range(api_calls):
            room = rng.choice(self._rooms)
            method, url, status, req, resp = rng.choice(api_call_templates(room))
            ip = f"198.51.100.{rng.randint(1, 254)}"
            self.add(start_ms + rng.randrange(span), "api", method, url, status, req, resp, ip)
        for _ in range(deliveries):
            status, reply = rng.choice(webhook_reply_templates())
            event = {
                "version": "1.0.0",
                "type": "meeting.started",
                "id": new_uuid(rng),
                "payload": {"room": rng.choice(self._rooms), "start_ts": start_ms // 1000},
                "event_ts": start_ms / 1000,
            }
            created = start_ms + rng.randrange(span)
            self.add(
                created, "webhook", "POST", "https://hooks.invalid/daily", status, event, reply
            )

    def new_id(self) -> str:
        """A fresh id from the book's seeded stream (entries, hooks)."""
        return new_uuid(self._rng)

    def lookup(self, entry_id: str) -> ApiLogEntry | None:
        return self._by_id.get(entry_id)

    def page(
        self,
        now_ms: int,
        source: str,
        url: str | None,
        starting_after: ApiLogEntry | None,
        ending_before: ApiLogEntry | None,
        limit: int,
    ) -> list[ApiLogEntry]:
        """The answer to one request: newest first, the newest ``limit`` in range."""
        return select(self._entries, now_ms, source, url, starting_after, ending_before, limit)


def as_json_string(body: object) -> str:
    """A body as the JSON string Daily logs: JSON text is kept verbatim (the signed bytes of a
    delivery), anything else is encoded (a receiver's plain-text answer becomes a string)."""
    if isinstance(body, str):
        try:
            json.loads(body)
        except ValueError:
            return json.dumps(body)
        return body
    return json.dumps(body)


def select(
    entries: list[ApiLogEntry],
    now_ms: int,
    source: str,
    url: str | None,
    starting_after: ApiLogEntry | None,
    ending_before: ApiLogEntry | None,
    limit: int,
) -> list[ApiLogEntry]:
    """Pure paging over ``entries`` (sorted oldest first); see the module docstring."""

    def key(e: ApiLogEntry) -> tuple[int, int]:
        return (e.created_ms, e.seq)

    out: list[ApiLogEntry] = []
    for e in reversed(entries):
        if len(out) >= limit:
            break
        if e.created_ms > now_ms or e.source != source or (url is not None and e.url != url):
            continue
        if ending_before is not None and key(e) >= key(ending_before):
            continue
        if starting_after is not None and key(e) <= key(starting_after):
            break
        out.append(e)
    return out
