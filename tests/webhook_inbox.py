"""A minimal durable webhook inbox on SQLite, and Daily-like signed posts, for the receiver's
tests and `bench/webhooks_accept.py`.

The state stores (SQLite and PostgreSQL) are gaining the real `inbox_add`; until then this is
the same contract on a real file (WAL, synchronous=FULL: committed means on disk), not a mock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from daily_otel_bridge.core.webhook_signature import decode_secret, sign

SECRET = base64.b64encode(b"test webhook secret, 32 bytes!!!").decode()
OTHER_SECRET = base64.b64encode(b"another secret of thirty-two b.s").decode()


class SqliteInbox:
    """`inbox_add` on a SQLite file: one row per (domain, event id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS inbox (domain TEXT, event_id TEXT, body BLOB,"
            " received_at REAL, PRIMARY KEY (domain, event_id))"
        )
        self._lock = threading.Lock()
        self.fail: Exception | None = None  # set to make the next calls raise it
        self.delay = 0.0  # seconds each call takes on top

    def _add(
        self, domain: str, event_id: str, body: bytes, received_at: float, window: float
    ) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT received_at FROM inbox WHERE domain = ? AND event_id = ?",
                    (domain, event_id),
                ).fetchone()
                if row is not None and received_at - row[0] < window:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO inbox VALUES (?, ?, ?, ?)",
                    (domain, event_id, body, received_at),
                )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    async def inbox_add(
        self, domain: str, event_id: str, body: bytes, received_at: float, dedupe_window: float
    ) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return await asyncio.to_thread(
            self._add, domain, event_id, body, received_at, dedupe_window
        )

    def rows(self, domain: str | None = None) -> list[tuple[str, str, bytes]]:
        """What a fresh connection reads back from the file (what survived)."""
        with sqlite3.connect(self.path) as db:
            query = "SELECT domain, event_id, body FROM inbox"
            if domain is not None:
                return list(db.execute(query + " WHERE domain = ?", (domain,)))
            return list(db.execute(query))

    def close(self) -> None:
        self._db.close()


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
