"""Opening the state store the settings ask for, for the daemon and the `state` commands
alike: SQLite (one process) or PostgreSQL (several replicas, with a `LeaseManager` for the
daemon). Nothing else builds a store; callers get the protocols of `state.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from prometheus_client import CollectorRegistry

from daily_otel_bridge.config.dsn import password_of
from daily_otel_bridge.config.settings import Settings
from daily_otel_bridge.state.base import StateStore
from daily_otel_bridge.state.sqlite import SqliteCursorStore, SqliteStateStore

if TYPE_CHECKING:
    # Imported when used: a single process on SQLite never loads the PostgreSQL driver
    # (some 13 MB of resident memory).
    from daily_otel_bridge.state.leases import LeaseManager, OwnershipListener
    from daily_otel_bridge.state.postgres import PostgresStateStore


def state_secrets(settings: Settings) -> list[str]:
    """The password of `state_url` (as written and URL-decoded), for the log scrubber
    (`service.logging.register_secrets`), next to the API keys and export headers."""
    if settings.state_url is None:
        return []
    password = password_of(settings.state_url.get_secret_value())
    return sorted({password, unquote(password)}) if password else []


@dataclass(slots=True)
class StateBackend:
    store: StateStore
    # None with SQLite: this process owns every configured domain, no lease involved.
    leases: LeaseManager | None
    replica_id: str | None  # None with SQLite (the User-Agent then names no replica)

    async def close(self) -> None:
        if self.leases is not None:
            await self.leases.close()
        await self.store.close()


async def open_store(settings: Settings, *, writing: bool) -> StateStore:
    """The store of a `state` command. SQLite: `writing` takes the exclusive lock (a reset
    behind a running daemon's back would be overwritten by its next commit) and may create
    the file; reading takes no lock, so `state show` works next to the daemon, and refuses
    a missing file. PostgreSQL: one connection, not fenced. Raises StateError."""
    if settings.state_url is None:
        return _sqlite(settings.state_path, writing=writing)
    return await _postgres(settings.state_url.get_secret_value())


async def open_state(
    settings: Settings,
    listener: OwnershipListener | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> StateBackend:
    """The daemon's store (and, for PostgreSQL, the lease manager, not started yet: call
    `backend.leases.start()` once the listener can start domains). Raises StateError."""
    if settings.state_url is None:
        return StateBackend(_sqlite(settings.state_path, writing=True), None, None)
    if listener is None:
        raise ValueError("a PostgreSQL state store needs an OwnershipListener")
    from daily_otel_bridge.state.leases import LeaseManager, LeaseMetrics

    replica_id = settings.effective_replica_id()
    store = await _postgres(
        settings.state_url.get_secret_value(),
        replica_id=replica_id,
        # Well inside the lease: a frozen replica's open commit must not outlast its lease.
        idle_transaction_timeout=settings.lease_duration / 4,
    )
    manager = LeaseManager(
        store,
        replica_id,
        [d.name for d in settings.domains if d.enabled],
        settings.lease_duration,
        listener,
        metrics=LeaseMetrics(registry),
    )
    return StateBackend(store, manager, replica_id)


async def copy_sqlite_into_postgres(settings: Settings, source: Path) -> tuple[dict[str, int], str]:
    """`state migrate`: a single replica's SQLite state into the (empty) PostgreSQL store of
    `settings`, in one transaction. Returns rows copied per table and where they went."""
    if settings.state_url is None:
        raise ValueError("no state_url to copy into")
    # The lock: a daemon still writing the SQLite file would make the copy stale at once.
    sqlite = SqliteCursorStore(source, lock=True, create=False)
    try:
        rows = sqlite.export_rows()
        store = await _postgres(settings.state_url.get_secret_value())
        try:
            return await store.import_rows(rows), store.target
        finally:
            await store.close()
    finally:
        sqlite.close()


def _sqlite(path: Path, *, writing: bool) -> SqliteStateStore:
    return SqliteStateStore(SqliteCursorStore(path, lock=writing, create=writing))


async def _postgres(
    url: str, *, replica_id: str | None = None, idle_transaction_timeout: float | None = None
) -> PostgresStateStore:
    """The daemon's pool (`replica_id`), or a state command's single connection (None)."""
    from daily_otel_bridge.state.leases import application_name
    from daily_otel_bridge.state.postgres import PostgresStateStore

    if replica_id is None:
        return await PostgresStateStore.open(
            url, min_size=1, max_size=1, application_name="daily-otel-bridge-state"
        )
    return await PostgresStateStore.open(
        url,
        # application_name shows in pg_stat_activity: which replica holds which connection.
        application_name=application_name(replica_id),
        idle_transaction_timeout=idle_transaction_timeout,
    )
