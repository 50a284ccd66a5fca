"""The webhook inbox for the receiver's tests and `bench/webhooks_accept.py`: the real state
stores (`SqliteInbox` is the SQLite store's own `inbox_add`, `open_inbox` also gives the
PostgreSQL one), with two levers a test needs, and Daily-like signed posts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from daily_otel_bridge.core.webhook_signature import decode_secret, sign
from daily_otel_bridge.state.base import CursorStore, EventBody
from daily_otel_bridge.state.sqlite import SqliteCursorStore, SqliteStateStore

SECRET = base64.b64encode(b"test webhook secret, 32 bytes!!!").decode()
OTHER_SECRET = base64.b64encode(b"another secret of thirty-two b.s").decode()


class Inbox:
    """A real store's `inbox_add`, plus `fail` (set: the next calls raise it, as a store
    that cannot write) and `delay` (seconds each call takes on top, as a slow store)."""

    def __init__(self, store: CursorStore) -> None:
        self.store = store
        self.fail: Exception | None = None
        self.delay = 0.0

    async def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return await self.store.inbox_add(domain, event_id, body, received_at, dedupe_window)

    async def aclose(self) -> None:
        await self.store.close()


class SqliteInbox(Inbox):
    """The SQLite state store at `path` (WAL; committed when `inbox_add` returns)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sqlite = SqliteCursorStore(path, lock=False)
        super().__init__(SqliteStateStore(self.sqlite))

    def rows(self, domain: str | None = None) -> list[tuple[str, str, bytes]]:
        """The events waiting, as a fresh connection reads them back (what survived)."""
        with sqlite3.connect(self.path) as db:
            query = "SELECT domain, event_id, body FROM inbox WHERE pending"
            if domain is not None:
                rows = db.execute(query + " AND domain = ? ORDER BY received_at", (domain,))
            else:
                rows = db.execute(query + " ORDER BY received_at")
            return [(str(d), str(e), bytes(b)) for d, e, b in rows]

    def close(self) -> None:
        self.sqlite.close()


async def postgres_inbox(dsn: str) -> Inbox:
    """The PostgreSQL state store at `dsn` with the daemon's pool (schema created if need
    be); `aclose()` it."""
    from daily_otel_bridge.state.postgres import PostgresStateStore

    return Inbox(await PostgresStateStore.open(dsn, application_name="webhook-inbox-test"))


def event_body(event_id: str, event_type: str = "meeting.started", **payload: Any) -> bytes:
    """A Daily webhook body, compact as Daily sends it."""
    document = {
        "version": "1.0.0",
        "type": event_type,
        "id": event_id,
        "payload": payload or {"meeting_id": "mtg-1", "room": "room-a", "start_ts": 1_760_000_000},
        "event_ts": time.time(),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(
    body: bytes, secret: str = SECRET, timestamp: float | None = None
) -> dict[str, str]:
    """The headers Daily sends with `body`."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    return {
        "Content-Type": "application/json",
        "X-Webhook-Timestamp": stamp,
        "X-Webhook-Signature": sign(decode_secret(secret), stamp, body),
    }
