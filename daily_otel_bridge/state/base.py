"""The state store contract: what the pipeline persists, and the protocols every backend meets.

The pipeline talks to a `CursorStore` only (SQLite by default, PostgreSQL for several
replicas), the `state` commands to a `StateAdmin`, the lease manager to a `LeaseStore`. Their
methods are coroutines so that a networked backend never blocks the event loop; the SQLite
backend answers them synchronously inside (each call is far below a millisecond).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict, Unpack

from daily_otel_bridge.core.cursor import SessionCursor

if TYPE_CHECKING:
    # Types only: a single process on SQLite never loads the PostgreSQL driver.
    from psycopg import AsyncConnection
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool


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


# stream -> the updates of its sessions, as one acknowledged export commits them
Changes = Mapping[str, Sequence[CursorUpdate]]
# A webhook's body as received (bytes), or as text; the inbox keeps it as bytes.
EventBody = bytes | str


class CommitOptions(TypedDict, total=False):
    """What a commit writes besides the cursors, in the same transaction (every key is
    optional; the one list of them, for the protocol and every backend)."""

    # Discovery covered Daily's list of sessions up to here (written with the sessions it
    # found, so that a crash never records "discovered up to T" without them).
    discovered_until_ms: int | None
    # stream -> the opaque position of a source that is not per session (e.g. the last
    # record id of `GET /logs/api`): it moves only with the export that acknowledged it.
    positions: Mapping[str, str] | None
    # Webhook events this export delivered: they leave the inbox, their ids stay
    # remembered for de-duplication (see `CursorStore.inbox_add`).
    inbox_done: Sequence[str]


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit's arguments as a value, what the backends write."""

    domain: str
    changes: Changes
    discovered_until_ms: int | None = None
    positions: Mapping[str, str] = field(default_factory=dict)
    inbox_done: tuple[str, ...] = ()

    @classmethod
    def of(cls, domain: str, changes: Changes, options: CommitOptions) -> Commit:
        return cls(
            domain,
            changes,
            options.get("discovered_until_ms"),
            options.get("positions") or {},
            tuple(options.get("inbox_done", ())),
        )


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A pushed (webhook) event, stored until an acknowledged export takes it out."""

    event_id: str
    body: bytes
    received_at: float  # the receiver's clock (time.time()) when it was accepted


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
    """What one domain's pipeline (and the webhook receiver) needs from the state store."""

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState: ...

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]: ...

    async def load_positions(self, domain: str) -> dict[str, str]:
        """stream -> the position committed last (see `CommitOptions.positions`)."""
        ...

    async def commit(self, domain: str, changes: Changes, **options: Unpack[CommitOptions]) -> None:
        """Persist the updates of every stream of one acknowledged export, and whatever
        `options` name, in one transaction. A store with ownership raises `LeaseLost`
        instead of writing when this replica does not hold the domain's current lease."""
        ...

    async def forget_retired(
        self, domain: str, stream: str, started_before_floor_ms: int
    ) -> int: ...

    async def add_dead_letter(self, letter: DeadLetter) -> bool: ...

    async def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        """Store a pushed event durably (committed when this returns) and say True; or say
        False, storing nothing, when an event with this id was accepted for this domain less
        than `dedupe_window` seconds before `received_at` (pending or exported: a repeat).
        Not fenced: any replica may accept for any domain, accepting is not exporting."""
        ...

    async def inbox_pending(self, domain: str, limit: int) -> list[InboxEvent]:
        """The events not exported yet, oldest first."""
        ...

    async def inbox_stats(self, domain: str) -> tuple[int, float | None]:
        """How many events wait, and when the oldest of them was received (None: none)."""
        ...

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

    async def inbox_stats(self, domain: str) -> tuple[int, float | None]: ...

    async def reset(self, domain: str, session_id: str | None = None) -> int:
        """Forget a domain's cursors, positions and inbox (or one session's cursors):
        the next run delivers them again. Returns the rows removed."""
        ...

    async def close(self) -> None: ...


class StateStore(CursorStore, StateAdmin, Protocol):
    """Both: what `state.factory` opens, on either backend."""


class Fence(Protocol):
    """Who says whether this replica may write a domain: the `LeaseManager`."""

    @property
    def replica_id(self) -> str: ...

    def epoch_of(self, domain: str) -> int | None:
        """The epoch of this replica's lease on `domain`, or None when it holds none (or
        its local deadline has passed)."""
        ...

    def fenced_out(self, domain: str, reason: str) -> None:
        """A fenced write found the lease gone: stop treating `domain` as owned."""
        ...


class LeaseStore(Protocol):
    """What the `LeaseManager` needs of the PostgreSQL store: its pool (heartbeats and
    leases are statements of their own, outside any commit), its way of turning a driver
    error into a `StateError` without the password, and its fence, which the manager sets
    to itself."""

    fence: Fence | None

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]: ...

    def error(self, what: str, exc: BaseException) -> StateError: ...
