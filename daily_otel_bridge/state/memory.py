"""A `CursorStore` in memory, with the SQLite store's semantics: for tests, benches and a
backfill (which moves no cursor).

`before_commit` / `after_commit` hooks let a test "crash" the process at the two moments
that matter for the delivery guarantee: after the backend acknowledged a batch but before
its cursors were written, and right after they were.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state.base import CursorUpdate, DeadLetter, DomainState


class MemoryCursorStore:
    def __init__(self) -> None:
        self.domains: dict[str, DomainState] = {}
        # (domain, stream) -> session id -> cursor, `seen` holding the delivered identities
        self.cursors: dict[tuple[str, str], dict[str, SessionCursor]] = {}
        self.dead_letters: dict[tuple[str, str, str, str], DeadLetter] = {}
        self.commits = 0
        self.before_commit: Callable[[], None] | None = None
        self.after_commit: Callable[[], None] | None = None

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        return self.domains.setdefault(domain, DomainState(default_floor_ms, None))

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        return copy.deepcopy(self.cursors.get((domain, stream), {}))

    async def commit(
        self,
        domain: str,
        changes: Mapping[str, Sequence[CursorUpdate]],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        if self.before_commit is not None:
            self.before_commit()
        if discovered_until_ms is not None:
            floor = self.domains[domain].floor_ms
            self.domains[domain] = DomainState(floor, discovered_until_ms)
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

    async def close(self) -> None:
        return None
