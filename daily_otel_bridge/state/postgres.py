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
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from daily_otel_bridge.config.dsn import describe_target, password_of, redact_url
from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state.base import (
    CursorUpdate,
    DeadLetter,
    DomainState,
    LeaseInfo,
    LeaseLost,
    ReplicaInfo,
    SessionRow,
    StateError,
)
from daily_otel_bridge.state.sqlite import EXPORT_COLUMNS

# Arbitrary, fixed: the advisory lock every replica takes while migrating ("dob-mig").
MIGRATION_LOCK_KEY = 0x646F_622D_6D69_67

# Each migration runs once, in its own transaction, under the advisory lock; never edit one
# that has shipped, add the next instead.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "cursors, delivered identities, dead letters, leases, replicas",
        """
CREATE TABLE domains (
    domain TEXT PRIMARY KEY,
    floor_ms BIGINT NOT NULL,
    discovered_until_ms BIGINT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE sessions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    start_floor_ms BIGINT NOT NULL,
    watermark_ns BIGINT,
    drained_until_ms BIGINT,
    ended_at_ms BIGINT,
    retired BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (domain, stream, session_id)
);
CREATE TABLE delivered (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    PRIMARY KEY (domain, stream, session_id, uid)
);
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (domain, stream, session_id, uid)
);
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
""",
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

    # -- opening --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        fence: Fence | None = None,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout: float = 10.0,
        migrate: bool = True,
        application_name: str = "daily-otel-bridge",
        idle_transaction_timeout: float | None = None,
    ) -> PostgresStateStore:
        """`idle_transaction_timeout`: PostgreSQL ends a transaction of ours left idle this
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
        async def write(conn: psycopg.AsyncConnection[TupleRow]) -> DomainState:
            await conn.execute(
                "INSERT INTO domains (domain, floor_ms, discovered_until_ms, updated_at)"
                " VALUES (%s, %s, NULL, %s) ON CONFLICT (domain) DO NOTHING",
                (domain, default_floor_ms, time.time()),
            )
            cur = await conn.execute(
                "SELECT floor_ms, discovered_until_ms FROM domains WHERE domain=%s", (domain,)
            )
            row = await cur.fetchone()
            assert row is not None
            return DomainState(floor_ms=int(row[0]), discovered_until_ms=_opt_int(row[1]))

        row = await self._fetchone(
            "SELECT floor_ms, discovered_until_ms FROM domains WHERE domain=%s", (domain,)
        )
        if row is not None:
            return DomainState(floor_ms=int(row[0]), discovered_until_ms=_opt_int(row[1]))
        return await self._fenced_write(domain, write)

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> dict[str, SessionCursor]:
            cursors: dict[str, SessionCursor] = {}
            async with conn.transaction():
                # One snapshot for both reads, like SQLite's single connection.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(
                    "SELECT session_id, room, start_floor_ms, watermark_ns, drained_until_ms,"
                    " ended_at_ms, retired FROM sessions WHERE domain=%s AND stream=%s",
                    (domain, stream),
                )
                for row in await cur.fetchall():
                    cursors[row[0]] = SessionCursor(
                        session_id=row[0],
                        room=row[1],
                        start_floor_ms=int(row[2]),
                        watermark_ns=_opt_int(row[3]),
                        drained_until_ms=_opt_int(row[4]),
                        ended_at_ms=_opt_int(row[5]),
                        retired=bool(row[6]),
                    )
                cur = await conn.execute(
                    "SELECT session_id, uid, time_ns FROM delivered WHERE domain=%s AND stream=%s",
                    (domain, stream),
                )
                for session_id, uid, time_ns in await cur.fetchall():
                    cursor = cursors.get(session_id)
                    if cursor is not None:
                        cursor.seen[uid] = int(time_ns)
            return cursors

        return await self._read(read)

    async def commit(
        self,
        domain: str,
        changes: Mapping[str, Sequence[CursorUpdate]],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        """Every session of one acknowledged export (and discovery's watermark) in one
        transaction, conditional on this replica's lease (see the module docstring)."""
        now = time.time()

        async def write(conn: psycopg.AsyncConnection[TupleRow]) -> None:
            if discovered_until_ms is not None:
                await conn.execute(
                    "UPDATE domains SET discovered_until_ms=%s, updated_at=%s WHERE domain=%s",
                    (discovered_until_ms, now, domain),
                )
            for stream, updates in changes.items():
                await self._write_updates(conn, domain, stream, updates, now)

        await self._fenced_write(domain, write)

    async def _write_updates(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        domain: str,
        stream: str,
        updates: Sequence[CursorUpdate],
        now: float,
    ) -> None:
        if not updates:
            return
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO sessions (domain, stream, session_id, room, start_floor_ms,"
                " watermark_ns, drained_until_ms, ended_at_ms, retired, updated_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (domain, stream, session_id) DO UPDATE SET room=excluded.room,"
                " watermark_ns=excluded.watermark_ns,"
                " drained_until_ms=excluded.drained_until_ms,"
                " ended_at_ms=excluded.ended_at_ms, retired=excluded.retired,"
                " updated_at=excluded.updated_at",
                [
                    (
                        domain,
                        stream,
                        u.cursor.session_id,
                        u.cursor.room,
                        u.cursor.start_floor_ms,
                        u.cursor.watermark_ns,
                        u.cursor.drained_until_ms,
                        u.cursor.ended_at_ms,
                        u.cursor.retired,
                        now,
                    )
                    for u in updates
                ],
            )
            seen = [
                (domain, stream, u.cursor.session_id, uid, t)
                for u in updates
                for uid, t in u.new_seen
            ]
            if seen:
                await cur.executemany(
                    "INSERT INTO delivered (domain, stream, session_id, uid, time_ns)"
                    " VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                    seen,
                )
            retired = [u.cursor.session_id for u in updates if u.cursor.retired]
            if retired:
                await cur.execute(
                    "DELETE FROM delivered WHERE domain=%s AND stream=%s AND session_id = ANY(%s)",
                    (domain, stream, retired),
                )
            pruned = [
                (domain, stream, u.cursor.session_id, u.prune_before_ms * NS_PER_MS)
                for u in updates
                if not u.cursor.retired and u.prune_before_ms is not None
            ]
            if pruned:
                await cur.executemany(
                    "DELETE FROM delivered WHERE domain=%s AND stream=%s AND session_id=%s"
                    " AND time_ns < %s",
                    pruned,
                )

    async def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        """Drop rows of retired sessions that discovery can no longer return."""

        async def write(conn: psycopg.AsyncConnection[TupleRow]) -> int:
            cur = await conn.execute(
                "DELETE FROM sessions WHERE domain=%s AND stream=%s AND retired"
                " AND drained_until_ms IS NOT NULL AND drained_until_ms < %s",
                (domain, stream, started_before_floor_ms),
            )
            return cur.rowcount

        return await self._fenced_write(domain, write)

    async def add_dead_letter(self, letter: DeadLetter) -> bool:
        """Keep a record that could not be shipped; False when it was kept already."""

        async def write(conn: psycopg.AsyncConnection[TupleRow]) -> bool:
            cur = await conn.execute(
                "INSERT INTO dead_letters (domain, stream, session_id, uid, reason, raw,"
                " created_at) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (
                    letter.domain,
                    letter.stream,
                    _storable(letter.session_id),
                    _storable(letter.uid),
                    _storable(letter.reason),
                    _storable(letter.raw),
                    letter.created_at,
                ),
            )
            return cur.rowcount > 0

        return await self._fenced_write(letter.domain, write)

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

    async def _read(self, read: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[T]]) -> T:
        """`read` on a pooled connection, tried again a few times when the connection
        breaks (a PostgreSQL restart leaves every pooled connection dead)."""
        attempt = 0
        while True:
            try:
                async with self._conn() as conn:
                    return await read(conn)
            except (psycopg.OperationalError, StateError) as exc:
                if attempt >= len(_RETRY_DELAYS):
                    raise (
                        exc if isinstance(exc, StateError) else self.error("cannot read", exc)
                    ) from None
                await asyncio.sleep(_RETRY_DELAYS[attempt])
                attempt += 1
            except psycopg.Error as exc:
                raise self.error("cannot read", exc) from None

    async def _fetchone(self, sql: str, args: Sequence[object]) -> TupleRow | None:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> TupleRow | None:
            cur = await conn.execute(sql, args)
            return await cur.fetchone()

        return await self._read(read)

    async def _fetchall(self, sql: str, args: Sequence[object]) -> list[TupleRow]:
        async def read(conn: psycopg.AsyncConnection[TupleRow]) -> list[TupleRow]:
            cur = await conn.execute(sql, args)
            return await cur.fetchall()

        return await self._read(read)

    async def dead_letters(self, domain: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        query = "SELECT domain, stream, session_id, uid, reason, raw, created_at FROM dead_letters"
        args: tuple[object, ...] = ()
        if domain is not None:
            query += " WHERE domain=%s"
            args = (domain,)
        query += " ORDER BY id LIMIT %s"
        return [DeadLetter(*row) for row in await self._fetchall(query, (*args, limit))]

    async def session_rows(self, domain: str | None = None) -> list[SessionRow]:
        query = (
            "SELECT s.domain, s.stream, s.session_id, s.room, s.watermark_ns, s.drained_until_ms,"
            " s.ended_at_ms, s.retired, (SELECT COUNT(*) FROM delivered d WHERE d.domain=s.domain"
            " AND d.stream=s.stream AND d.session_id=s.session_id), s.updated_at FROM sessions s"
        )
        args: tuple[object, ...] = ()
        if domain is not None:
            query += " WHERE s.domain=%s"
            args = (domain,)
        # COLLATE "C": the byte order SQLite uses, so both backends list rows alike.
        query += ' ORDER BY s.domain COLLATE "C", s.stream COLLATE "C", s.session_id COLLATE "C"'
        return [
            SessionRow(
                r[0],
                r[1],
                r[2],
                r[3],
                _opt_int(r[4]),
                _opt_int(r[5]),
                _opt_int(r[6]),
                bool(r[7]),
                int(r[8]),
                float(r[9]),
            )
            for r in await self._fetchall(query, args)
        ]

    async def domains(self) -> list[str]:
        rows = await self._fetchall('SELECT domain FROM domains ORDER BY domain COLLATE "C"', ())
        return [r[0] for r in rows]

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
                await conn.execute(
                    "LOCK TABLE domains, sessions, delivered, dead_letters IN EXCLUSIVE MODE"
                )
                for table in EXPORT_COLUMNS:
                    cur = await conn.execute(
                        f"SELECT EXISTS (SELECT 1 FROM {table})"  # noqa: S608 - fixed names
                    )
                    row = await cur.fetchone()
                    if row is not None and row[0]:
                        raise StateError(
                            f"the PostgreSQL state store at {self.target} already holds state "
                            f"({table}); migrate into an empty database"
                        )
                for table, columns in EXPORT_COLUMNS.items():
                    data = rows.get(table, [])
                    async with conn.cursor().copy(
                        f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                    ) as copy:
                        for item in data:
                            await copy.write_row(_importable(table, item))
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
                if session_id is None:
                    count = 0
                    for table in ("delivered", "sessions"):
                        cur = await conn.execute(
                            f"DELETE FROM {table} WHERE domain=%s",  # noqa: S608 - fixed names
                            (domain,),
                        )
                        count += cur.rowcount
                    await conn.execute("DELETE FROM domains WHERE domain=%s", (domain,))
                    return count
                await conn.execute(
                    "DELETE FROM delivered WHERE domain=%s AND session_id=%s", (domain, session_id)
                )
                cur = await conn.execute(
                    "DELETE FROM sessions WHERE domain=%s AND session_id=%s", (domain, session_id)
                )
                return cur.rowcount
        except psycopg.Error as exc:
            raise self.error("cannot write", exc) from None


def _importable(table: str, row: Sequence[object]) -> tuple[object, ...]:
    values = list(row)
    if table == "sessions":
        values[8] = bool(values[8])  # SQLite keeps booleans as 0/1
    if table == "dead_letters":
        values = [_storable(v) if isinstance(v, str) else v for v in values]
    return tuple(values)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _storable(text: str) -> str:
    """`text` as PostgreSQL can hold it: a lone surrogate becomes its `\\uXXXX` escape (as in
    the SQLite store) and so does NUL, which PostgreSQL text refuses; otherwise one hostile
    record would fail every read at the same place forever."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\u0000")
