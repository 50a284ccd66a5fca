"""Opening the state backend the settings ask for: SQLite (one process) or PostgreSQL with
a `LeaseManager` (several replicas). The daemon's wiring calls `open_state` once at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from prometheus_client import CollectorRegistry

from daily_otel_bridge.config.dsn import password_of
from daily_otel_bridge.config.settings import Settings
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
    store: SqliteStateStore | PostgresStateStore
    # None with SQLite: this process owns every configured domain, no lease involved.
    leases: LeaseManager | None
    replica_id: str | None  # None with SQLite (the User-Agent then names no replica)

    async def close(self) -> None:
        if self.leases is not None:
            await self.leases.close()
        await self.store.close()


async def open_state(
    settings: Settings,
    listener: OwnershipListener | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> StateBackend:
    """The store (and, for PostgreSQL, the lease manager, not started yet: call
    `backend.leases.start()` once the listener can start domains). Raises StateError."""
    if settings.state_url is None:
        return StateBackend(SqliteStateStore(SqliteCursorStore(settings.state_path)), None, None)
    if listener is None:
        raise ValueError("a PostgreSQL state store needs an OwnershipListener")
    from daily_otel_bridge.state.leases import LeaseManager, LeaseMetrics, application_name
    from daily_otel_bridge.state.postgres import PostgresStateStore

    replica_id = settings.effective_replica_id()
    store = await PostgresStateStore.open(
        settings.state_url.get_secret_value(),
        # application_name shows in pg_stat_activity: which replica holds which connection.
        application_name=application_name(replica_id),
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
