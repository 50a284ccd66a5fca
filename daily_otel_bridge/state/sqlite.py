"""Persisted cursors in SQLite: the default `CursorStore` (see `state.base`).

SQLite in WAL mode with `synchronous=NORMAL`: a process crash (even SIGKILL) loses no
committed transaction; a power loss may lose the last few, which re-sends records that the
backend already has (duplicates, never losses); a webhook's `inbox_add`, whose 200 nobody
asks about again, is written with `synchronous=FULL` and survives a power loss too. Calls
are short and made from the event loop directly: one transaction per acknowledged export is
far below a millisecond, and so is a webhook's `inbox_add` (one statement). Being on the
loop's thread is also what keeps them apart: one connection, and no call yields in the
middle of a transaction.

The SQL is `state.sql`'s, shared with PostgreSQL; what is SQLite's own is here: the file,
its lock, the pragmas, the schema version in `meta`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state import sql
from daily_otel_bridge.state.base import (
    Changes,
    Commit,
    CommitOptions,
    CursorStore,
    CursorUpdate,
    DeadLetter,
    DomainState,
    EventBody,
    InboxEvent,
    LeaseInfo,
    ReplicaInfo,
    SessionRow,
    StateError,
)

# 2: positions and the webhook inbox (tables added to a version 1 file when it is opened).
# 3: delivered identities in blocks (`sql.TABLES_V3`; an older file's rows are moved).
SCHEMA_VERSION = 3

# Errors of a value the driver cannot bind (an int beyond 64 bits, a lone surrogate): the
# transaction is rolled back like on any SQLite error.
_BAD_VALUE = (sqlite3.Error, ValueError, OverflowError)


class StateInUse(StateError):
    """Another process holds the state file (a second daemon on the same state_path)."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def check_state_directory(path: Path) -> None:
    """StateError unless the directory of `path` exists: created by the package, the systemd
    unit (StateDirectory=) or the volume, never by us, so that a typo in state_path is an
    error instead of a fresh, empty state somewhere else (which would re-deliver)."""
    if not path.parent.is_dir():
        raise StateError(
            f"the state directory {path.parent} does not exist; create it (owned by the "
            "bridge's user, mode 0700) or fix state_path"
        )


class SqliteCursorStore:
    """The default store: one SQLite file at `state_path`.

    `lock=True` (the daemon, `state reset`): an exclusive `flock` on `<state_path>.lock`,
    held until `close()`, that holds this process's pid. A second process gets
    `StateInUse` ("state store in use by pid N") instead of two writers interleaving
    cursors. `lock=False` (`state show`, `state dead-letters`): read-only use next to a
    running daemon, which SQLite's WAL mode allows; `create=False` refuses a missing file.
    Files are created 0600: cursors say which meetings happened, and dead letters hold
    whole records.
    """

    def __init__(self, path: Path | str, *, lock: bool = True, create: bool = True) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._prune = sql.PruneClock()
        memory = str(path) == ":memory:"
        if not memory:
            check_state_directory(self.path)
            if not create and not self.path.exists():
                raise StateError(f"no state store at {self.path} (has the bridge run yet?)")
            if lock:
                self._lock_fd = _acquire_lock(lock_path(self.path))
        try:
            if not memory and create and not self.path.exists():
                # Created here with 0600, whatever the umask; SQLite gives its -wal and -shm
                # files the mode of the database file.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            if lock:
                # Prove the file is writable now rather than after the first export.
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._release_lock()
            raise StateError(f"cannot open the state store at {self.path}: {exc}") from exc

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StateError(
                f"the state store at {self.path} has schema version {row[0]}, newer than this "
                f"program's {SCHEMA_VERSION}; upgrade daily-otel-bridge"
            )
        # Every version's tables, each created unless it exists (a file of an older
        # version gets the newer tables; nothing of version 1 ever changes).
        self._db.executescript(
            "".join(
                sql.render(tables, sql.SQLITE)
                for tables in (sql.TABLES_V1, sql.TABLES_V2, sql.TABLES_V3)
            )
        )
        if row is None or int(row[0]) < SCHEMA_VERSION:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if row is not None and int(row[0]) < 3:
                    self._move_delivered_into_blocks()
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _move_delivered_into_blocks(self) -> None:
        """Version 2 -> 3: the rows of `delivered`, one block per session (what
        `sql.MOVE_DELIVERED_PG` does on PostgreSQL), then none left in `delivered`."""
        rows = self._db.execute(
            "SELECT domain, stream, session_id, uid, time_ns FROM delivered"
            " ORDER BY domain, stream, session_id, uid"
        ).fetchall()
        sessions: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
        for domain, stream, session_id, uid, time_ns in rows:
            sessions.setdefault((domain, stream, session_id), []).append((uid, int(time_ns)))
        self._db.executemany(
            sql.INSERT_DELIVERED,
            [sql.delivered_block(*key, seen) for key, seen in sessions.items()],
        )
        self._db.execute("DELETE FROM delivered")

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        row = self._query(sql.SELECT_DOMAIN, (domain,))
        if not row:
            self._write(sql.INSERT_DOMAIN, (domain, default_floor_ms, time.time()))
            row = self._query(sql.SELECT_DOMAIN, (domain,))
        return sql.domain_state(row[0])

    def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        # One connection, no write in between: both reads see the same state.
        return sql.cursors_from_rows(
            self._query(sql.SELECT_SESSIONS, (domain, stream)),
            self._query(sql.SELECT_DELIVERED, (domain, stream)),
        )

    def load_positions(self, domain: str) -> dict[str, str]:
        return dict(self._query(sql.SELECT_POSITIONS, (domain,)))

    def commit(
        self,
        domain: str,
        stream: str,
        updates: Sequence[CursorUpdate],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        """One stream's updates (tests and benches; the pipeline commits every stream)."""
        self.commit_streams(domain, {stream: updates}, discovered_until_ms=discovered_until_ms)

    def commit_streams(
        self, domain: str, changes: Changes, **options: Unpack[CommitOptions]
    ) -> None:
        """Persist every session of one acknowledged export, and what `options` name, in a
        single transaction (see `CommitOptions`)."""
        self._run(sql.commit_steps(Commit.of(domain, changes, options), time.time()))

    def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        """Drop rows of retired sessions that discovery can no longer return."""
        args = (domain, stream, True, started_before_floor_ms)
        return self._write(sql.FORGET_RETIRED, args).rowcount

    def add_dead_letter(self, letter: DeadLetter) -> bool:
        """Keep a record that could not be shipped; False when it was kept already."""
        return self._write(sql.INSERT_DEAD_LETTER, sql.dead_letter_args(letter)).rowcount > 0

    def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        """See `CursorStore.inbox_add`: one statement in autocommit, committed (WAL) when
        this returns.

        With `synchronous=FULL` for this statement alone: the 200 it allows is a promise
        Daily will not ask about again, so the event must survive a power loss too, not
        only a crash (the cursors' NORMAL may lose the last commits to a power loss, which
        re-sends records, never loses them)."""
        args = sql.inbox_add_args(domain, event_id, body, received_at, dedupe_window)
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            added = self._write(sql.INBOX_ADD, args).rowcount > 0
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        if self._prune.due(domain, received_at):
            self._write(sql.INBOX_PRUNE, (domain, False, received_at - dedupe_window))
        return added

    def inbox_pending(self, domain: str, limit: int) -> list[InboxEvent]:
        return [sql.inbox_event(r) for r in self._query(sql.INBOX_PENDING, (domain, True, limit))]

    def inbox_stats(self, domain: str) -> tuple[int, float | None]:
        rows = self._query(sql.INBOX_STATS, (domain, True))
        return sql.inbox_stats(rows[0] if rows else None)

    def dead_letters(self, domain: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        return [sql.dead_letter(r) for r in self._query(*sql.dead_letters_query(domain, limit))]

    def session_rows(self, domain: str | None = None) -> list[SessionRow]:
        # One connection, no write in between: both reads see the same state.
        return sql.session_rows_from(
            self._query(*sql.session_rows_query(domain)),
            self._query(*sql.seen_blocks_query(domain)),
        )

    def domains(self) -> list[str]:
        return [r[0] for r in self._query(sql.SELECT_DOMAINS, ())]

    def reset(self, domain: str, session_id: str | None = None) -> int:
        """Forget cursors so that the next run starts again (re-delivers) from scratch."""
        return self._run(sql.reset_steps(domain, session_id))

    def export_rows(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, in the column order of `sql.EXPORT_COLUMNS` (for
        `state migrate`, which copies a single replica's state into PostgreSQL)."""
        return {
            table: [tuple(row) for row in self._db.execute(sql.export_query(table))]
            for table in sql.EXPORT_COLUMNS
        }

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()
        self._release_lock()

    def _query(self, template: str, args: Sequence[object]) -> list[Any]:
        try:
            return self._db.execute(sql.render(template, sql.SQLITE), args).fetchall()
        except _BAD_VALUE as exc:
            raise StateError(f"cannot read the state store at {self.path}: {exc}") from exc

    def _write(self, template: str, args: Sequence[object]) -> sqlite3.Cursor:
        """One statement, its own transaction."""
        try:
            return self._db.execute(sql.render(template, sql.SQLITE), args)
        except _BAD_VALUE as exc:
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc

    def _run(self, steps: Sequence[sql.Step]) -> int:
        """`steps` in one transaction; the rows the counted ones changed."""
        count = 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for step in steps:
                cur = self._db.executemany(sql.render(step.sql, sql.SQLITE), step.rows)
                count += cur.rowcount if step.counted else 0
            self._db.execute("COMMIT")
        except _BAD_VALUE as exc:
            self._rollback()
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc
        except BaseException:
            # Whatever else went wrong (a cancellation), never leave the transaction open:
            # every later BEGIN would fail.
            self._rollback()
            raise
        return count

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


def _acquire_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the state store lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f"pid {holder}" if holder else "another process"
            raise StateInUse(f"state store in use by {who} ({path.with_suffix('')})") from None
        raise StateError(f"cannot lock the state store {path}: {exc.strerror}") from None
    # The lock is the flock, not the file's content: a pid left by a killed process is
    # harmless (the kernel dropped its lock) and simply overwritten here.
    with contextlib.suppress(OSError):  # informational only: a full disk must not matter
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class SqliteStateStore:
    """`SqliteCursorStore` behind the async protocols (`CursorStore`, `StateAdmin`)."""

    def __init__(self, store: SqliteCursorStore) -> None:
        self.sync = store

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        return self.sync.load_domain(domain, default_floor_ms)

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        return self.sync.load_cursors(domain, stream)

    async def load_positions(self, domain: str) -> dict[str, str]:
        return self.sync.load_positions(domain)

    async def commit(self, domain: str, changes: Changes, **options: Unpack[CommitOptions]) -> None:
        self.sync.commit_streams(domain, changes, **options)

    async def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        return self.sync.forget_retired(domain, stream, started_before_floor_ms)

    async def add_dead_letter(self, letter: DeadLetter) -> bool:
        return self.sync.add_dead_letter(letter)

    async def inbox_add(
        self, domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
    ) -> bool:
        return self.sync.inbox_add(domain, event_id, body, received_at, dedupe_window)

    async def inbox_pending(self, domain: str, limit: int) -> list[InboxEvent]:
        return self.sync.inbox_pending(domain, limit)

    async def inbox_stats(self, domain: str) -> tuple[int, float | None]:
        return self.sync.inbox_stats(domain)

    async def close(self) -> None:
        self.sync.close()

    # -- StateAdmin (the `state` commands) ------------------------------------------------

    async def session_rows(self, domain: str | None = None) -> list[SessionRow]:
        return self.sync.session_rows(domain)

    async def dead_letters(self, domain: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        return self.sync.dead_letters(domain, limit)

    async def domains(self) -> list[str]:
        return self.sync.domains()

    async def leases(self) -> dict[str, LeaseInfo]:
        return {}  # one process, no leases

    async def replicas(self) -> list[ReplicaInfo]:
        return []

    async def reset(self, domain: str, session_id: str | None = None) -> int:
        return self.sync.reset(domain, session_id)


def as_cursor_store(store: CursorStore | SqliteCursorStore) -> CursorStore:
    """The pipeline's store: a `SqliteCursorStore` (what in-process tests and benches hold,
    to look at it synchronously) behind the async protocol; any other store as it is."""
    return SqliteStateStore(store) if isinstance(store, SqliteCursorStore) else store
