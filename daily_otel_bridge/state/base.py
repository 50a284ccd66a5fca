"""The state store contract: what the pipeline persists, and the protocol every backend meets.

The pipeline talks to a `CursorStore` only (SQLite by default, PostgreSQL for several
replicas). Its methods are coroutines so that a networked backend never blocks the event
loop; the SQLite backend answers them synchronously inside (each call is far below a
millisecond).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from daily_otel_bridge.core.cursor import SessionCursor


class StateError(RuntimeError):
    """The state store cannot be opened or written; shipping without a cursor is refused."""


@dataclass(frozen=True, slots=True)
class DomainState:
    floor_ms: int  # where sessions of a domain with no history start (now - initial_lookback)
    discovered_until_ms: int | None


@dataclass(slots=True)
class CursorUpdate:
    """Everything to persist for one session after an acknowledged export."""

    cursor: SessionCursor
    new_seen: list[tuple[str, int]] = field(default_factory=list)
    prune_before_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    domain: str
    stream: str
    session_id: str
    uid: str
    reason: str
    raw: str
    created_at: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    domain: str
    stream: str
    session_id: str
    room: str
    watermark_ns: int | None
    drained_until_ms: int | None
    ended_at_ms: int | None
    retired: bool
    seen: int
    updated_at: float


class LeaseLost(StateError):
    """This replica no longer owns the domain (fencing): nothing of it may be committed."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who owns a domain (PostgreSQL only), as `state show` reports it."""

    domain: str
    owner: str | None
    epoch: int
    expires_in: float | None  # seconds from now, PostgreSQL's clock; <= 0: expired


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A replica's heartbeat row (PostgreSQL only)."""

    replica_id: str
    version: str
    seconds_since_heartbeat: float
    expires_in: float  # <= 0: not live any more


class CursorStore(Protocol):
    """What one domain's pipeline needs from the state store."""

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState: ...

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]: ...

    async def commit(
        self,
        domain: str,
        changes: Mapping[str, Sequence[CursorUpdate]],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        """Persist the updates of every stream of one acknowledged export, in one
        transaction. A store with ownership raises `LeaseLost` instead of writing when this
        replica does not hold the domain's current lease."""
        ...

    async def forget_retired(
        self, domain: str, stream: str, started_before_floor_ms: int
    ) -> int: ...

    async def add_dead_letter(self, letter: DeadLetter) -> bool: ...

    async def close(self) -> None: ...


class StateAdmin(Protocol):
    """What the `state` commands need, on either backend."""

    async def session_rows(self, domain: str | None = None) -> list[SessionRow]: ...

    async def dead_letters(
        self, domain: str | None = None, limit: int = 1000
    ) -> list[DeadLetter]: ...

    async def domains(self) -> list[str]: ...

    async def leases(self) -> dict[str, LeaseInfo]: ...

    async def replicas(self) -> list[ReplicaInfo]: ...

    async def reset(self, domain: str, session_id: str | None = None) -> int: ...

    async def close(self) -> None: ...
