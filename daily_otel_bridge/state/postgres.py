"""Persisted cursors in PostgreSQL, for several replicas: a `CursorStore` (see `state.base`)
with the SQLite store's exact semantics, and every write fenced by the domain's lease.

Why psycopg 3 (with psycopg_pool) rather than asyncpg: it speaks through libpq, so a DSN,
`PGPASSWORD`/`PGPASSFILE`/`~/.pgpass`, `PGSSLMODE`, service files and multi-host URLs behave
exactly as in `psql`; it ships type hints (mypy strict without stubs); its pool reconnects by
itself after a server restart. asyncpg is faster per query, which does not matter at one
transaction per acknowledged export.

Fencing: the pipeline's store is built with a `Fence` (the `LeaseManager`). Every write runs in
one transaction that first locks the domain's lease row and checks that this replica still
owns it at the epoch it acquired and that it has not expired (PostgreSQL's clock, not ours);
otherwise `LeaseLost` is raised and nothing is written. The row lock also orders a commit
before a peer's takeover of the same domain, so a peer always reads cursors that include it.

Writes are idempotent (upserts, INSERT ... ON CONFLICT DO NOTHING, deletes), so a commit that
fails on a broken connection, even one whose COMMIT may have reached the server, is simply
retried on a fresh connection until the lease's local deadline: a PostgreSQL restart shorter
than the lease costs a pause, not a record.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, Unpack
from urllib.parse import unquote

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from daily_otel_bridge.config.dsn import describe_target, password_of, redact_url
from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state import sql
from daily_otel_bridge.state.base import (
    Changes,
    Commit,
    CommitOptions,
    DeadLetter,
    DomainState,
    EventBody,
    Fence,
    InboxEvent,
    LeaseInfo,
    LeaseLost,
    ReplicaInfo,
    SessionRow,
    StateError,
)

# Arbitrary, fixed: the advisory lock every replica takes while migrating ("dob-mig").
MIGRATION_LOCK_KEY = 0x646F_622D_6D69_67

# Each migration runs once, in its own transaction, under the advisory lock; never edit one
# that has shipped, add the next instead.
_LEASE_TABLES = """
CREATE TABLE leases (
    domain TEXT PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ,
    acquired_at TIMESTAMPTZ,
    renewed_at TIMESTAMPTZ
);
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    version TEXT NOT NULL
);
"""

# Each migration runs once, in its own transaction, under the advisory lock; never edit one
# that has shipped, add the next instead. The tables both backends have come from
# `state.sql` (the same text as SQLite's); leases and replicas are PostgreSQL's own.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "cursors, delivered identities, dead letters, leases, replicas",
        sql.render(sql.TABLES_V1, sql.POSTGRES) + _LEASE_TABLES,
    ),
    (2, "source positions, webhook inbox", sql.render(sql.TABLES_V2, sql.POSTGRES)),
    (
        3,
        "delivered identities in blocks",
        sql.render(sql.TABLES_V3, sql.POSTGRES) + sql.MOVE_DELIVERED_PG,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

T = TypeVar("T")

# Pauses between attempts of an idempotent write whose connection broke.
_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 1.0, 2.0)


class PostgresStateStore:
    """The `CursorStore` of several replicas (async); also the admin API of `state` commands.

    Build it with `await PostgresStateStore.open(url, fence=manager)`. Without a fence
    (`fence=None`: the `state` commands and `state migrate`) writes are not fenced.
    """

    def __init__(
        self, pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]], url: str
    ) -> None:
        self.pool = pool
        self._url = url
        self._secret = password_of(url) or ""
        self.target = describe_target(url)
        self.fence: Fence | None = None
        self._prune = sql.PruneClock()

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        fence: Fence | None = None,
        min_size: int = 4,
        max_size: int = 4,
        connect_timeout: float = 10.0,
        migrate: bool = True,
        application_name: str = "daily-otel-bridge",
        idle_transaction_timeout: float | None = None,
    ) -> PostgresStateStore:
        """`min_size`: connections opened at once and kept. As many as `max_size` by
        default: a webhook accepted while the pipeline commits gets a connection at once
        instead of waiting for a new one (tens of milliseconds, the accept's whole budget).

        `idle_transaction_timeout`: PostgreSQL ends a transaction of ours left idle this
        long. A replica frozen (SIGSTOP, VM pause) inside a fenced commit holds its lease
        row's lock; without this, a peer's claim of the expired lease would wait on that
        lock until the frozen process wakes, however long that is."""
        timeout_ms = str(max(int((idle_transaction_timeout or 0) * 1000), 100))

        async def bound_idle_transactions(conn: psycopg.AsyncConnection[TupleRow]) -> None:
            # set_config, not SET: SET cannot take a bound parameter.
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (timeout_ms,),
            )

        pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            # A request for a connection waits at most this long: the caller's retry and
            # deadline logic, not the pool, decides how long to keep trying.
            timeout=5.0,
            reconnect_timeout=0,  # keep trying in the background forever
            kwargs={
                "autocommit": True,
                "connect_timeout": max(int(connect_timeout), 1),
                "application_name": application_name,
            },
            name="daily-otel-bridge-state",
            configure=None if idle_transaction_timeout is None else bound_idle_transactions,
        )
        store = cls(pool, url)
        try:
            # One plain connection first: a wrong password or a missing database fails now
            # with libpq's own reason, instead of the pool retrying it until its timeout.
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(int(connect_timeout), 1), autocommit=True
            )
            await probe.close()
            await pool.open(wait=True, timeout=connect_timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise store.error("cannot connect to", exc) from None
        store.fence = fence
        if migrate:
            try:
                await store.migrate()
            except BaseException:
                await pool.close()
                raise
        return store

    def _scrub(self, text: str) -> str:
        for secret in {self._secret, unquote(self._secret)} - {""}:
            text = text.replace(secret, "***")
        # libpq quotes the connection string in a few messages; never let one through whole.
        return re.sub(r"postgres(?:ql)?://\S+", lambda m: redact_url(m.group(0)), text)

    def error(self, what: str, exc: BaseException) -> StateError:
        """A StateError for `exc`, naming host and database only, never the password."""
        detail = self._scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        kind = type(exc).__name__
        return StateError(f"{what} the PostgreSQL state store at {self.target}: {kind} {detail}")

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self.error("cannot reach", exc) from None

    async def migrate(self) -> int:
        """Apply missing migrations; safe when several replicas start at once."""
        applied = 0
        try:
            async with self._conn() as conn:
                for version, description, sql in MIGRATIONS:
                    async with conn.transaction():
                        # Serialises concurrent start-ups; released with the transaction.
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,)
                        )
                        await conn.execute(_MIGRATIONS_TABLE)
                        cur = await conn.execute("SELECT max(version) FROM schema_migrations")
                        row = await cur.fetchone()
                        current = int(row[0]) if row and row[0] is not None else 0
                        if current > SCHEMA_VERSION:
                            raise StateError(
                                f"the PostgreSQL state store at {self.target} has schema "
                                f"version {current}, newer than this program's "
                                f"{SCHEMA_VERSION}; upgrade daily-otel-bridge"
                            )
                        if current >= version:
                            continue
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                            (version, description),
                        )
                        applied += 1
        except psycopg.Error as exc:
            raise self.error("cannot migrate", exc) from None
        return applied

    async def schema_version(self) -> int:
        row = await self._fetchone("SELECT max(version) FROM schema_migrations", ())
        return int(row[0]) if row and row[0] is not None else 0

    # -- the CursorStore protocol ---------------------------------------------------------

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        row = await self._fetchone(sql.SELECT_DOMAIN, (domain,))
        if row is not None:
            return sql.domain_state(row)

        async def write(conn: psycopg.AsyncConnection[TupleRow]) -> DomainState:
            await conn.execute(_pg(sql.INSERT_DOMAIN), (domain, default_floor_ms, time.time()))
            cur = await conn.execute(_pg(sql.SELECT_DOMAIN), (domain,))
            row = await cur.fetchone()
            assert row is not None
            return sql.domain_state(row)

        return await self._fenced_write(domain, write)

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> dict[str, SessionCursor]:
            async with conn.transaction():
                # One snapshot for both reads, like SQLite's single connection.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                sessions = await conn.execute(_pg(sql.SELECT_SESSIONS), (domain, stream))
                delivered = await conn.execute(_pg(sql.SELECT_DELIVERED), (domain, stream))
                return sql.cursors_from_rows(await sessions.fetchall(), await delivered.fetchall())

        return await self._retrying(read)

    async def load_positions(self, domain: str) -> dict[str, str]:
        return {r[0]: r[1] for r in await self._fetchall(sql.SELECT_POSITIONS, (domain,))}

    async def commit(self, domain: str, changes: Changes, **options: Unpack[CommitOptions]) -> None:
        """Every session of one acknowledged export, and what `options` name, in one
        transaction, conditional on this replica's lease (see the module docstring)."""
        steps = sql.commit_steps(Commit.of(domain, changes, options), time.time())
        await self._fenced_write(domain, lambda conn: _run(conn, steps))

    async def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        """Drop rows of retired sessions that discovery can no longer return."""
        step = sql.Step(
            sql.FORGET_RETIRED, [(domain, stream, True, started_before_floor_ms)], counted=True
        )
        return await self._fenced_write(domain, lambda conn: _run(conn, [step]))

    async def add_dead_letter(self, letter: DeadLetter) -> bool:
        """Keep a record that could not be shipped; False when it was kept already."""
        step = sql.Step(sql.INSERT_DEAD_LETTER, [sql.dead_letter_args(letter)], counted=True)
        return await self._fenced_write(letter.domain, lambda conn: _run(conn, [step])) > 0

    async def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        """See `CursorStore.inbox_add`: one statement in autocommit, not fenced. Tried again
        on a broken connection: should the first attempt have committed after all, the
        second finds it and answers "a repeat", which the receiver answers 200 all the
        same: the event is stored either way."""
        steps = [
            sql.Step(
                sql.INBOX_ADD,
                [sql.inbox_add_args(domain, event_id, body, received_at, dedupe_window)],
                counted=True,
            )
        ]
        if self._prune.due(domain, received_at):
            steps.append(sql.Step(sql.INBOX_PRUNE, [(domain, False, received_at - dedupe_window)]))
        try:
            return await self._retrying(lambda conn: _run(conn, steps), "cannot write") > 0
        except (UnicodeEncodeError, ValueError) as exc:
            raise StateError(f"cannot write the state store at {self.target}: {exc}") from None

    async def inbox_pending(self, domain: str, limit: int) -> list[InboxEvent]:
        rows = await self._fetchall(sql.INBOX_PENDING, (domain, True, limit))
        return [sql.inbox_event(r) for r in rows]

    async def inbox_stats(self, domain: str) -> tuple[int, float | None]:
        return sql.inbox_stats(await self._fetchone(sql.INBOX_STATS, (domain, True)))

    async def close(self) -> None:
        await self.pool.close()

    # -- fencing and retries --------------------------------------------------------------

    async def _fenced_write(
        self,
        domain: str,
        write: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[T]],
    ) -> T:
        attempt = 0
        while True:
            fence = self.fence
            epoch = None
            if fence is not None:
                epoch = fence.epoch_of(domain)
                if epoch is None:
                    raise LeaseLost(f"this replica does not hold the lease of domain {domain}")
            try:
                async with self._conn() as conn, conn.transaction():
                    if fence is not None:
                        cur = await conn.execute(
                            "SELECT owner, epoch, expires_at > clock_timestamp() FROM leases"
                            " WHERE domain=%s FOR UPDATE",
                            (domain,),
                        )
                        row = await cur.fetchone()
                        if row is None or (row[0], row[1], row[2]) != (
                            fence.replica_id,
                            epoch,
                            True,
                        ):
                            raise self._lost(fence, domain, epoch, row)
                    return await write(conn)
            except (psycopg.OperationalError, StateError) as exc:
                if isinstance(exc, LeaseLost):
                    raise
                # The connection broke (or none could be had): all or nothing of the
                # transaction is in and the write is idempotent, so try again, while the
                # lease lasts (fenced) or a few times (the state commands).
                if fence is None and attempt >= len(_RETRY_DELAYS):
                    raise (
                        exc if isinstance(exc, StateError) else self.error("cannot write", exc)
                    ) from None
                await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
                attempt += 1
            except psycopg.Error as exc:
                raise self.error("cannot write", exc) from None
            except (UnicodeEncodeError, ValueError) as exc:
                raise StateError(f"cannot write the state store at {self.target}: {exc}") from None

    def _lost(self, fence: Fence, domain: str, epoch: int | None, row: Any) -> LeaseLost:
        if row is None:
            why = "no lease row"
        elif row[0] != fence.replica_id:
            why = f"owned by {row[0] or 'nobody'}"
        elif row[1] != epoch:
            why = f"epoch moved from {epoch} to {row[1]}"
        else:
            why = "expired"
        fence.fenced_out(domain, f"fenced commit refused: {why}")
        return LeaseLost(f"lease of domain {domain} lost ({why}); nothing was written")

    # -- reads for the state commands -----------------------------------------------------

    async def _retrying(
        self,
        work: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[T]],
        what: str = "cannot read",
    ) -> T:
        """`work` (a read, or a write that may be repeated) on a pooled connection, tried
        again a few times when the connection breaks (a PostgreSQL restart leaves every
        pooled connection dead)."""
        attempt = 0
        while True:
            try:
                async with self._conn() as conn:
                    return await work(conn)
            except (psycopg.OperationalError, StateError) as exc:
                if attempt >= len(_RETRY_DELAYS):
                    raise (exc if isinstance(exc, StateError) else self.error(what, exc)) from None
                await asyncio.sleep(_RETRY_DELAYS[attempt])
                attempt += 1
            except psycopg.Error as exc:
                raise self.error(what, exc) from None

    async def _fetchone(self, template: str, args: Sequence[object]) -> TupleRow | None:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> TupleRow | None:
            cur = await conn.execute(_pg(template), args)
            return await cur.fetchone()

        return await self._retrying(read)

    async def _fetchall(self, template: str, args: Sequence[object]) -> list[TupleRow]:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> list[TupleRow]:
            cur = await conn.execute(_pg(template), args)
            return await cur.fetchall()

        return await self._retrying(read)

    async def dead_letters(self, domain: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        rows = await self._fetchall(*sql.dead_letters_query(domain, limit))
        return [sql.dead_letter(r) for r in rows]

    async def session_rows(self, domain: str | None = None) -> list[SessionRow]:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> list[SessionRow]:
            async with conn.transaction():
                # One snapshot for both reads, like SQLite's single connection.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                query, args = sql.session_rows_query(domain)
                rows = await conn.execute(_pg(query), args)
                query, args = sql.seen_blocks_query(domain)
                blocks = await conn.execute(_pg(query), args)
                return sql.session_rows_from(await rows.fetchall(), await blocks.fetchall())

        return await self._retrying(read)

    async def domains(self) -> list[str]:
        return [r[0] for r in await self._fetchall(sql.SELECT_DOMAINS, ())]

    async def leases(self) -> dict[str, LeaseInfo]:
        rows = await self._fetchall(
            "SELECT domain, owner, epoch,"
            " EXTRACT(EPOCH FROM (expires_at - clock_timestamp()))::float8 FROM leases",
            (),
        )
        return {
            r[0]: LeaseInfo(r[0], r[1], int(r[2]), None if r[3] is None else float(r[3]))
            for r in rows
        }

    async def import_rows(self, rows: Mapping[str, Sequence[Sequence[object]]]) -> dict[str, int]:
        """Copy a SQLite state (`SqliteCursorStore.export_rows`) in, in one transaction.

        Refused (StateError, nothing written) unless this store holds no cursor, delivered
        identity or dead letter yet: merging two histories could move a cursor backwards
        (re-delivery) or forwards (loss)."""
        counts: dict[str, int] = {}
        try:
            async with self._conn() as conn, conn.transaction():
                # Nobody may start writing while the copy is made.
                tables = ", ".join(sql.EXPORT_COLUMNS)
                await conn.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
                for table in sql.EXPORT_COLUMNS:
                    cur = await conn.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {table})"  # noqa: S608 - fixed names
                    )
                    row = await cur.fetchone()
                    if row is not None and row[0]:
                        raise StateError(
                            f"the PostgreSQL state store at {self.target} already holds state "
                            f"({table}); migrate into an empty database"
                        )
                for table, columns in sql.EXPORT_COLUMNS.items():
                    data = rows.get(table, [])
                    async with conn.cursor().copy(
                        f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                    ) as copy:
                        for item in data:
                            await copy.write_row(sql.importable(table, item))
                    counts[table] = len(data)
        except psycopg.Error as exc:
            raise self.error("cannot write", exc) from None
        return counts

    async def replicas(self) -> list[ReplicaInfo]:
        rows = await self._fetchall(
            "SELECT replica_id, version,"
            " EXTRACT(EPOCH FROM (clock_timestamp() - heartbeat_at))::float8,"
            " EXTRACT(EPOCH FROM (expires_at - clock_timestamp()))::float8"
            ' FROM replicas ORDER BY replica_id COLLATE "C"',
            (),
        )
        return [ReplicaInfo(r[0], r[1], float(r[2]), float(r[3])) for r in rows]

    async def reset(self, domain: str, session_id: str | None = None) -> int:
        """Forget cursors so that the next run starts again (re-delivers) from scratch.

        Not fenced: an operator's command. The owner keeps its cursors in memory, so reset
        a domain while no replica runs it (see docs/replicas.md)."""
        try:
            async with self._conn() as conn, conn.transaction():
                return await _run(conn, sql.reset_steps(domain, session_id))
        except psycopg.Error as exc:
            raise self.error("cannot write", exc) from None


def _pg(template: str) -> str:
    return sql.render(template, sql.POSTGRES)


async def _run(conn: psycopg.AsyncConnection[TupleRow], steps: Sequence[sql.Step]) -> int:
    """`steps` on `conn` (in the caller's transaction); the rows the counted ones changed."""
    count = 0
    async with conn.cursor() as cur:
        for step in steps:
            if len(step.rows) == 1:
                await cur.execute(_pg(step.sql), step.rows[0])
            else:
                # Pipelined by psycopg: one round trip for the lot.
                await cur.executemany(_pg(step.sql), step.rows)
            if step.counted:
                count += cur.rowcount
    return count
