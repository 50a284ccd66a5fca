"""Persisted cursors in SQLite: the default `CursorStore` (see `state.base`).

SQLite in WAL mode with `synchronous=NORMAL`: a process crash (even SIGKILL) loses no
committed transaction; a power loss may lose the last few, which re-sends records that the
backend already has (duplicates, never losses). Calls are short and made from the event
loop directly: one transaction per acknowledged export is far below a millisecond.
"""

from __future__ import annotations

import contextlib
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


class SqliteCursorStore:
    """The default store: one SQLite file at `state_path`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            # Prove the file is writable now rather than after the first export.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"cannot open the state store at {self.path}: {exc}") from exc

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

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: Sequence[object]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the state store at {self.path}: {exc}") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


def _storable(text: str) -> str:
    """`text` as valid UTF-8 for SQLite: a lone surrogate (JSON allows `\\ud800`, Python
    decodes it, UTF-8 cannot hold it) becomes its `\\uXXXX` escape instead of an error that
    would fail every sweep at the same record forever."""
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

    async def reset(self, domain: str, session_id: str | None = None) -> int:
        return self.sync.reset(domain, session_id)
