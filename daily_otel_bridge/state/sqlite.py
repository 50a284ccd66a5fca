"""Persisted cursors in SQLite: the default `CursorStore` (see `state.base`).

SQLite in WAL mode with `synchronous=NORMAL`: a process crash (even SIGKILL) loses no
committed transaction; a power loss may lose the last few, which re-sends records that the
backend already has (duplicates, never losses). Calls are short and made from the event
loop directly: one transaction per acknowledged export is far below a millisecond.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state.base import (
    CursorUpdate,
    DeadLetter,
    DomainState,
    LeaseInfo,
    ReplicaInfo,
    SessionRow,
    StateError,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY,
    floor_ms INTEGER NOT NULL,
    discovered_until_ms INTEGER,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    start_floor_ms INTEGER NOT NULL,
    watermark_ns INTEGER,
    drained_until_ms INTEGER,
    ended_at_ms INTEGER,
    retired INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (domain, stream, session_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    PRIMARY KEY (domain, stream, session_id, uid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (domain, stream, session_id, uid)
);
"""


# What `export_rows` gives and `PostgresStateStore.import_rows` takes.
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "domains": ("domain", "floor_ms", "discovered_until_ms", "updated_at"),
    "sessions": (
        "domain",
        "stream",
        "session_id",
        "room",
        "start_floor_ms",
        "watermark_ns",
        "drained_until_ms",
        "ended_at_ms",
        "retired",
        "updated_at",
    ),
    "delivered": ("domain", "stream", "session_id", "uid", "time_ns"),
    "dead_letters": ("domain", "stream", "session_id", "uid", "reason", "raw", "created_at"),
}


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
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(
                f"the state store at {self.path} has schema version {row[0]}, newer than this "
                f"program's {SCHEMA_VERSION}; upgrade daily-otel-bridge"
            )

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        row = self._db.execute(
            "SELECT floor_ms, discovered_until_ms FROM domains WHERE domain=?", (domain,)
        ).fetchone()
        if row is not None:
            return DomainState(floor_ms=row[0], discovered_until_ms=row[1])
        self._write(
            "INSERT INTO domains (domain, floor_ms, discovered_until_ms, updated_at)"
            " VALUES (?,?,?,?)",
            (domain, default_floor_ms, None, time.time()),
        )
        return DomainState(floor_ms=default_floor_ms, discovered_until_ms=None)

    def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        cursors: dict[str, SessionCursor] = {}
        for row in self._db.execute(
            "SELECT session_id, room, start_floor_ms, watermark_ns, drained_until_ms, ended_at_ms,"
            " retired FROM sessions WHERE domain=? AND stream=?",
            (domain, stream),
        ):
            cursors[row[0]] = SessionCursor(
                session_id=row[0],
                room=row[1],
                start_floor_ms=row[2],
                watermark_ns=row[3],
                drained_until_ms=row[4],
                ended_at_ms=row[5],
                retired=bool(row[6]),
            )
        for session_id, uid, time_ns in self._db.execute(
            "SELECT session_id, uid, time_ns FROM delivered WHERE domain=? AND stream=?",
            (domain, stream),
        ):
            cursor = cursors.get(session_id)
            if cursor is not None:
                cursor.seen[uid] = time_ns
        return cursors

    def commit(
        self,
        domain: str,
        stream: str,
        updates: Sequence[CursorUpdate],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        self.commit_streams(domain, {stream: updates}, discovered_until_ms=discovered_until_ms)

    def commit_streams(
        self,
        domain: str,
        changes: Mapping[str, Sequence[CursorUpdate]],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        """Persist every session of one acknowledged export in a single transaction.

        Discovery commits through here too: the sessions it found and the time it covered
        are written together, so a crash can never record "discovered up to T" without the
        sessions found before T.
        """
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if discovered_until_ms is not None:
                self._db.execute(
                    "UPDATE domains SET discovered_until_ms=?, updated_at=? WHERE domain=?",
                    (discovered_until_ms, now, domain),
                )
            for stream, updates in changes.items():
                self._write_updates(domain, stream, updates, now)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc
        except BaseException:
            # Whatever else went wrong (a value SQLite cannot take, a cancellation), never
            # leave the transaction open: every later BEGIN would fail.
            self._rollback()
            raise

    def _write_updates(
        self, domain: str, stream: str, updates: Sequence[CursorUpdate], now: float
    ) -> None:
        for update in updates:
            c = update.cursor
            self._db.execute(
                "INSERT INTO sessions (domain, stream, session_id, room, start_floor_ms,"
                " watermark_ns, drained_until_ms, ended_at_ms, retired, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (domain, stream, session_id) DO UPDATE SET room=excluded.room,"
                " watermark_ns=excluded.watermark_ns,"
                " drained_until_ms=excluded.drained_until_ms,"
                " ended_at_ms=excluded.ended_at_ms, retired=excluded.retired,"
                " updated_at=excluded.updated_at",
                (
                    domain,
                    stream,
                    c.session_id,
                    c.room,
                    c.start_floor_ms,
                    c.watermark_ns,
                    c.drained_until_ms,
                    c.ended_at_ms,
                    int(c.retired),
                    now,
                ),
            )
            if update.new_seen:
                self._db.executemany(
                    "INSERT OR IGNORE INTO delivered (domain, stream, session_id, uid, time_ns)"
                    " VALUES (?,?,?,?,?)",
                    [(domain, stream, c.session_id, uid, t) for uid, t in update.new_seen],
                )
            if c.retired:
                self._db.execute(
                    "DELETE FROM delivered WHERE domain=? AND stream=? AND session_id=?",
                    (domain, stream, c.session_id),
                )
            elif update.prune_before_ms is not None:
                self._db.execute(
                    "DELETE FROM delivered WHERE domain=? AND stream=? AND session_id=?"
                    " AND time_ns < ?",
                    (domain, stream, c.session_id, update.prune_before_ms * NS_PER_MS),
                )

    def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        """Drop rows of retired sessions that discovery can no longer return."""
        cur = self._write(
            "DELETE FROM sessions WHERE domain=? AND stream=? AND retired=1"
            " AND drained_until_ms IS NOT NULL AND drained_until_ms < ?",
            (domain, stream, started_before_floor_ms),
        )
        return cur.rowcount

    def add_dead_letter(self, letter: DeadLetter) -> bool:
        """Keep a record that could not be shipped; False when it was kept already."""
        cur = self._write(
            "INSERT OR IGNORE INTO dead_letters (domain, stream, session_id, uid, reason, raw,"
            " created_at) VALUES (?,?,?,?,?,?,?)",
            (
                letter.domain,
                letter.stream,
                _storable(letter.session_id),
                letter.uid,
                _storable(letter.reason),
                _storable(letter.raw),
                letter.created_at,
            ),
        )
        return cur.rowcount > 0

    def dead_letters(self, domain: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        query = "SELECT domain, stream, session_id, uid, reason, raw, created_at FROM dead_letters"
        args: tuple[object, ...] = ()
        if domain is not None:
            query += " WHERE domain=?"
            args = (domain,)
        query += " ORDER BY id LIMIT ?"
        return [DeadLetter(*row) for row in self._db.execute(query, (*args, limit))]

    def session_rows(self, domain: str | None = None) -> list[SessionRow]:
        query = (
            "SELECT s.domain, s.stream, s.session_id, s.room, s.watermark_ns, s.drained_until_ms,"
            " s.ended_at_ms, s.retired, (SELECT COUNT(*) FROM delivered d WHERE d.domain=s.domain"
            " AND d.stream=s.stream AND d.session_id=s.session_id), s.updated_at FROM sessions s"
        )
        args: tuple[object, ...] = ()
        if domain is not None:
            query += " WHERE s.domain=?"
            args = (domain,)
        query += " ORDER BY s.domain, s.stream, s.session_id"
        return [
            SessionRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8], r[9])
            for r in self._db.execute(query, args)
        ]

    def domains(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT domain FROM domains ORDER BY domain")]

    def reset(self, domain: str, session_id: str | None = None) -> int:
        """Forget cursors so that the next run starts again (re-delivers) from scratch."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if session_id is None:
                tables: Iterable[str] = ("delivered", "sessions")
                count = 0
                for table in tables:
                    count += self._db.execute(
                        f"DELETE FROM {table} WHERE domain=?",  # noqa: S608 - fixed names
                        (domain,),
                    ).rowcount
                self._db.execute("DELETE FROM domains WHERE domain=?", (domain,))
            else:
                self._db.execute(
                    "DELETE FROM delivered WHERE domain=? AND session_id=?", (domain, session_id)
                )
                count = self._db.execute(
                    "DELETE FROM sessions WHERE domain=? AND session_id=?", (domain, session_id)
                ).rowcount
            self._db.execute("COMMIT")
            return count
        except sqlite3.Error as exc:
            self._rollback()
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc

    def export_rows(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, in the column order of `EXPORT_COLUMNS` (for
        `state migrate`, which copies a single replica's state into PostgreSQL)."""
        out: dict[str, list[tuple[object, ...]]] = {}
        for table, columns in EXPORT_COLUMNS.items():
            out[table] = [
                tuple(row)
                for row in self._db.execute(
                    # Dead letters keep their order (PostgreSQL numbers them as they come).
                    f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 - fixed names
                    + (" ORDER BY id" if table == "dead_letters" else "")
                )
            ]
        return out

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()
        self._release_lock()

    def _write(self, sql: str, args: Sequence[object]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc

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


def _storable(text: str) -> str:
    """`text` as valid UTF-8 for SQLite: a lone surrogate (JSON allows `\\ud800`, Python
    decodes it, UTF-8 cannot hold it) becomes its `\\uXXXX` escape instead of an error that
    would fail every read at the same record forever."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class SqliteStateStore:
    """`SqliteCursorStore` behind the async `CursorStore` protocol the pipeline uses."""

    def __init__(self, store: SqliteCursorStore) -> None:
        self.sync = store

    async def load_domain(self, domain: str, default_floor_ms: int) -> DomainState:
        return self.sync.load_domain(domain, default_floor_ms)

    async def load_cursors(self, domain: str, stream: str) -> dict[str, SessionCursor]:
        return self.sync.load_cursors(domain, stream)

    async def commit(
        self,
        domain: str,
        changes: Mapping[str, Sequence[CursorUpdate]],
        *,
        discovered_until_ms: int | None = None,
    ) -> None:
        self.sync.commit_streams(domain, changes, discovered_until_ms=discovered_until_ms)

    async def forget_retired(self, domain: str, stream: str, started_before_floor_ms: int) -> int:
        return self.sync.forget_retired(domain, stream, started_before_floor_ms)

    async def add_dead_letter(self, letter: DeadLetter) -> bool:
        return self.sync.add_dead_letter(letter)

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
