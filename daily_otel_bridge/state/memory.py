"""A `CursorStore` in memory, with the SQLite store's semantics: for tests, benches and a
backfill (which moves no cursor).

`before_commit` / `after_commit` hooks let a test "crash" the process at the two moments
that matter for the delivery guarantee: after the backend acknowledged a batch but before
its cursors were written, and right after they were.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Unpack

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state import base
from daily_otel_bridge.state.base import Commit, DeadLetter, DomainState, EventBody, InboxEvent
from daily_otel_bridge.state.sql import storable


@dataclass(slots=True)
class _Accepted:
    event: InboxEvent
    pending: bool


class MemoryCursorStore:
    def __init__(self) -> None:
        self.domains: dict[str, DomainState] = {}
        # (domain, stream) -> session id -> cursor, `seen` holding the delivered identities
        self.cursors: dict[tuple[str, str], dict[str, SessionCursor]] = {}
        self.dead_letters: dict[tuple[str, str, str, str], DeadLetter] = {}
        self.positions: dict[str, dict[str, str]] = {}  # domain -> stream -> position
        # domain -> event id -> the event, pending or exported (remembered for de-duplication)
        self.inbox: dict[str, dict[str, _Accepted]] = {}
        self.commits = 0
        self.before_commit: Callable[[], None] | None = None
        self.after_commit: Callable[[], None] | None = None

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        return self.domains.setdefault(domain, DomainState(default_floor_ms, None))

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        return copy.deepcopy(self.cursors.get((domain, stream), {}))

    async def load_positions(self, domain: str) -> dict[str, str]:
        return dict(self.positions.get(domain, {}))

    async def commit(
        self, domain: str, changes: base.Changes, **options: Unpack[base.CommitOptions]
    ) -> None:
        if self.before_commit is not None:
            self.before_commit()
        commit = Commit.of(domain, changes, options)
        if commit.discovered_until_ms is not None:
            floor = self.domains[domain].floor_ms
            self.domains[domain] = DomainState(floor, commit.discovered_until_ms)
        self.positions.setdefault(domain, {}).update(
            {stream: storable(p) for stream, p in commit.positions.items()}
        )
        inbox = self.inbox.get(domain, {})
        for event_id in map(storable, commit.inbox_done):
            if event_id in inbox:
                inbox[event_id].pending = False
        for stream, updates in changes.items():
            table = self.cursors.setdefault((domain, stream), {})
            for update in updates:
                c = update.cursor
                old = table.get(c.session_id)
                seen = dict(old.seen) if old is not None else {}
                seen.update(update.new_seen)
                if c.retired:
                    seen = {}
                elif update.prune_before_ms is not None:
                    horizon = update.prune_before_ms * NS_PER_MS
                    seen = {uid: t for uid, t in seen.items() if t >= horizon}
                stored = copy.deepcopy(c)
                stored.seen = seen
                # What the SQL stores keep: no in-memory-only fields.
                stored.end_seen_mono = None
                stored.tail = None
                stored.last_count = None
                table[c.session_id] = stored
        self.commits += 1
        if self.after_commit is not None:
            self.after_commit()

    async def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        table = self.cursors.get((domain, stream), {})
        gone = [
            sid
            for sid, c in table.items()
            if c.retired
            and c.drained_until_ms is not None
            and c.drained_until_ms < started_before_floor_ms
        ]
        for sid in gone:
            del table[sid]
        return len(gone)

    async def add_dead_letter(self, letter: DeadLetter) -> bool:
        key = (letter.domain, letter.stream, letter.session_id, letter.uid)
        if key in self.dead_letters:
            return False
        self.dead_letters[key] = letter
        return True

    async def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        inbox = self.inbox.setdefault(domain, {})
        event_id = storable(event_id)
        known = inbox.get(event_id)
        if known is not None and known.event.received_at > received_at - dedupe_window:
            return False
        data = body if isinstance(body, bytes) else storable(body).encode("utf-8")
        inbox[event_id] = _Accepted(InboxEvent(event_id, data, received_at), pending=True)
        return True

    async def inbox_pending(self, domain: str, limit: int) -> list[InboxEvent]:
        pending = [a.event for a in self.inbox.get(domain, {}).values() if a.pending]
        return sorted(pending, key=lambda e: (e.received_at, e.event_id))[:limit]

    async def inbox_stats(self, domain: str) -> tuple[int, float | None]:
        times = [a.event.received_at for a in self.inbox.get(domain, {}).values() if a.pending]
        return len(times), min(times, default=None)

    async def close(self) -> None:
        return None
