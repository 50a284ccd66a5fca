"""The SQL of the state store, written once for SQLite and PostgreSQL: schema, statements,
what a commit or a reset writes, and rows back into objects. Pure: no connection here.

Statements are written with `?` placeholders and a few `{word}`s where the two dialects
differ (column types, the byte order of text); `render` makes either dialect's text. The
backends keep only what truly differs: connections, locking (flock or leases), fencing,
retries, migrations' bookkeeping.

Both backends run the same statements, so they answer alike; the contract tests
(`tests/integration/test_state_contract.py`) hold them to it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from daily_otel_bridge.core.cursor import NS_PER_MS, SessionCursor
from daily_otel_bridge.state.base import (
    Commit,
    DeadLetter,
    DomainState,
    EventBody,
    InboxEvent,
    SessionRow,
)

# word: (SQLite's, PostgreSQL's). `param` is the driver's placeholder (sqlite3 "?", psycopg
# "%s"); the others fill the `{word}`s of the SQL below.
_WORDS: dict[str, tuple[str, str]] = {
    "param": ("?", "%s"),
    "integer": ("INTEGER", "BIGINT"),
    "real": ("REAL", "DOUBLE PRECISION"),
    "boolean": ("INTEGER", "BOOLEAN"),
    "false": ("0", "FALSE"),
    "blob": ("BLOB", "BYTEA"),
    "serial_key": ("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"),  # numbered as inserted
    "without_rowid": (" WITHOUT ROWID", ""),  # SQLite's compact tables keyed by their key
    "byte_order": ("BINARY", '"C"'),  # the collation that orders text by its bytes
}


class Dialect(enum.Enum):
    SQLITE = 0
    POSTGRES = 1

    def word(self, name: str) -> str:
        return _WORDS[name][self.value]


SQLITE = Dialect.SQLITE
POSTGRES = Dialect.POSTGRES


@cache
def render(template: str, dialect: Dialect) -> str:
    """`template` in `dialect`: its `{word}`s filled in, its `?` turned into the driver's
    placeholder (psycopg's `%s`, after doubling any literal `%`). Every `?` of a template
    is a placeholder: none stands in a literal."""
    text = template.format_map({name: dialect.word(name) for name in _WORDS})
    param = dialect.word("param")
    return text if param == "?" else text.replace("%", "%%").replace("?", param)


# -- schema -------------------------------------------------------------------------------

# Version 1: what every state file and database has had since the first release. Never
# edit it (SQLite files and PostgreSQL migration 1 were made from it); add a version.
TABLES_V1 = """
CREATE TABLE IF NOT EXISTS domains (
    domain TEXT PRIMARY KEY,
    floor_ms {integer} NOT NULL,
    discovered_until_ms {integer},
    updated_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    start_floor_ms {integer} NOT NULL,
    watermark_ns {integer},
    drained_until_ms {integer},
    ended_at_ms {integer},
    retired {boolean} NOT NULL DEFAULT {false},
    updated_at {real} NOT NULL,
    PRIMARY KEY (domain, stream, session_id)
){without_rowid};
CREATE TABLE IF NOT EXISTS delivered (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    time_ns {integer} NOT NULL,
    PRIMARY KEY (domain, stream, session_id, uid)
){without_rowid};
CREATE TABLE IF NOT EXISTS dead_letters (
    id {serial_key},
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    created_at {real} NOT NULL,
    UNIQUE (domain, stream, session_id, uid)
);
"""

# Version 2: positions of sources that are not per session, and the webhook inbox. An
# exported event keeps its row (body emptied, `pending` false) until its de-duplication
# window has passed: a repeat of it is then still recognised.
TABLES_V2 = """
CREATE TABLE IF NOT EXISTS positions (
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    position TEXT NOT NULL,
    updated_at {real} NOT NULL,
    PRIMARY KEY (domain, stream)
){without_rowid};
CREATE TABLE IF NOT EXISTS inbox (
    domain TEXT NOT NULL,
    event_id TEXT NOT NULL,
    body {blob} NOT NULL,
    received_at {real} NOT NULL,
    pending {boolean} NOT NULL,
    PRIMARY KEY (domain, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_by_age ON inbox (domain, pending, received_at);
"""

# Version 3: the delivered identities of a session in blocks, one row per session and
# commit, instead of one row per identity (`delivered`, kept empty: a B-tree insert per
# record and a delete per record at retirement were the commit's main cost). `uids` is the
# block's identities joined by newlines (ours are hex digests, with `-N` for twins: never a
# newline); `times` their times, 8 bytes each, big-endian (PostgreSQL's `int8send`, which
# its migration uses). A prune deletes the blocks wholly older than its horizon and raises
# `floor_ns` of the others: identities below a block's floor count as pruned.
TABLES_V3 = """
CREATE TABLE IF NOT EXISTS delivered_blocks (
    id {serial_key},
    domain TEXT NOT NULL,
    stream TEXT NOT NULL,
    session_id TEXT NOT NULL,
    last_ns {integer} NOT NULL,
    floor_ns {integer} NOT NULL,
    uids TEXT NOT NULL,
    times {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS delivered_blocks_by_session
    ON delivered_blocks (domain, stream, session_id, last_ns);
"""

# Version 2 -> 3 on PostgreSQL: the rows of `delivered`, one block per session.
MOVE_DELIVERED_PG = """
INSERT INTO delivered_blocks (domain, stream, session_id, last_ns, floor_ns, uids, times)
SELECT domain, stream, session_id, MAX(time_ns), MIN(time_ns),
    string_agg(uid, E'\\n' ORDER BY uid), string_agg(int8send(time_ns), ''::bytea ORDER BY uid)
FROM delivered GROUP BY domain, stream, session_id;
DELETE FROM delivered;
"""

# The tables of both backends, in the order `state migrate` copies them, with the columns
# it copies (dead letters and identity blocks are renumbered by the target).
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
    "delivered_blocks": (
        "domain",
        "stream",
        "session_id",
        "last_ns",
        "floor_ns",
        "uids",
        "times",
    ),
    "dead_letters": ("domain", "stream", "session_id", "uid", "reason", "raw", "created_at"),
    "positions": ("domain", "stream", "position", "updated_at"),
    "inbox": ("domain", "event_id", "body", "received_at", "pending"),
}
# Columns SQLite keeps as 0/1 and PostgreSQL as booleans.
BOOL_COLUMNS = {("sessions", "retired"), ("inbox", "pending")}


def export_query(table: str) -> str:
    # Dead letters and identity blocks keep their order (PostgreSQL numbers them as they
    # come; a block read later wins nothing over an earlier one, but keep them alike).
    order = " ORDER BY id" if table in ("dead_letters", "delivered_blocks") else ""
    return f"SELECT {', '.join(EXPORT_COLUMNS[table])} FROM {table}{order}"  # noqa: S608


# -- statements ---------------------------------------------------------------------------

SELECT_DOMAIN = "SELECT floor_ms, discovered_until_ms FROM domains WHERE domain = ?"
INSERT_DOMAIN = (
    "INSERT INTO domains (domain, floor_ms, discovered_until_ms, updated_at)"
    " VALUES (?, ?, NULL, ?) ON CONFLICT (domain) DO NOTHING"
)
SELECT_SESSIONS = (
    "SELECT session_id, room, start_floor_ms, watermark_ns, drained_until_ms, ended_at_ms,"
    " retired FROM sessions WHERE domain = ? AND stream = ?"
)
SELECT_DELIVERED = (
    "SELECT session_id, floor_ns, uids, times FROM delivered_blocks"
    " WHERE domain = ? AND stream = ? ORDER BY id"
)
SELECT_POSITIONS = "SELECT stream, position FROM positions WHERE domain = ?"
SET_DISCOVERED = "UPDATE domains SET discovered_until_ms = ?, updated_at = ? WHERE domain = ?"
UPSERT_SESSION = (
    "INSERT INTO sessions (domain, stream, session_id, room, start_floor_ms, watermark_ns,"
    " drained_until_ms, ended_at_ms, retired, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (domain, stream, session_id) DO UPDATE SET room = excluded.room,"
    " watermark_ns = excluded.watermark_ns, drained_until_ms = excluded.drained_until_ms,"
    " ended_at_ms = excluded.ended_at_ms, retired = excluded.retired,"
    " updated_at = excluded.updated_at"
)
INSERT_DELIVERED = (
    "INSERT INTO delivered_blocks (domain, stream, session_id, last_ns, floor_ns, uids, times)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
FORGET_DELIVERED = "DELETE FROM delivered_blocks WHERE domain = ? AND stream = ? AND session_id = ?"
# A prune: the blocks wholly before the horizon go, the others' floor rises to it.
PRUNE_DELIVERED = FORGET_DELIVERED + " AND last_ns < ?"
RAISE_DELIVERED_FLOOR = (
    "UPDATE delivered_blocks SET floor_ns = ?"
    " WHERE domain = ? AND stream = ? AND session_id = ? AND floor_ns < ?"
)
UPSERT_POSITION = (
    "INSERT INTO positions (domain, stream, position, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (domain, stream) DO UPDATE SET position = excluded.position,"
    " updated_at = excluded.updated_at"
)
FORGET_RETIRED = (
    "DELETE FROM sessions WHERE domain = ? AND stream = ? AND retired = ?"
    " AND drained_until_ms IS NOT NULL AND drained_until_ms < ?"
)
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (domain, stream, session_id, uid, reason, raw, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
SELECT_DOMAINS = "SELECT domain FROM domains ORDER BY domain COLLATE {byte_order}"

# One statement, so one short transaction however many replicas accept at once: a new id
# is inserted; a known one is taken again (and counts as accepted) only when it was
# accepted `dedupe_window` or longer ago, otherwise the row stays as it is and the
# statement changes no row: a repeat.
INBOX_ADD = (
    "INSERT INTO inbox (domain, event_id, body, received_at, pending) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (domain, event_id) DO UPDATE SET body = excluded.body,"
    " received_at = excluded.received_at, pending = excluded.pending"
    " WHERE inbox.received_at <= ?"
)
INBOX_DONE = "UPDATE inbox SET pending = ?, body = ? WHERE domain = ? AND event_id = ?"
INBOX_PRUNE = "DELETE FROM inbox WHERE domain = ? AND pending = ? AND received_at < ?"
INBOX_PENDING = (
    "SELECT event_id, body, received_at FROM inbox WHERE domain = ? AND pending = ?"
    " ORDER BY received_at, event_id COLLATE {byte_order} LIMIT ?"
)
INBOX_STATS = "SELECT COUNT(*), MIN(received_at) FROM inbox WHERE domain = ? AND pending = ?"

# How often (seconds of `received_at`) `inbox_add` also deletes the exported events whose
# window has passed: rarely enough to cost nothing per event.
INBOX_PRUNE_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a transaction and the rows it runs for (`executemany`)."""

    sql: str
    rows: Sequence[tuple[object, ...]]
    counted: bool = False  # its rowcount is part of what a reset reports


def commit_steps(commit: Commit, now: float) -> list[Step]:
    """What one commit writes, in one transaction.

    The positions and the inbox go first: a statement that fails later (a cursor value no
    column can hold) takes them back with the rest, which the contract tests rely on."""
    domain = commit.domain
    steps: list[Step] = []
    if commit.discovered_until_ms is not None:
        steps.append(Step(SET_DISCOVERED, [(commit.discovered_until_ms, now, domain)]))
    if commit.positions:
        steps.append(
            Step(
                UPSERT_POSITION,
                [(domain, s, storable(p), now) for s, p in commit.positions.items()],
            )
        )
    if commit.inbox_done:
        done = [(False, b"", domain, storable(e)) for e in commit.inbox_done]
        steps.append(Step(INBOX_DONE, done))
    for stream, updates in commit.changes.items():
        if not updates:
            continue
        steps.append(
            Step(
                UPSERT_SESSION,
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
        )
        seen: list[tuple[object, ...]] = [
            delivered_block(domain, stream, u.cursor.session_id, u.new_seen)
            for u in updates
            if u.new_seen and not u.cursor.retired
        ]
        # A retired session forgets every identity (a retired one writes none); a live one
        # those older than the overlap.
        retired: list[tuple[object, ...]] = [
            (domain, stream, u.cursor.session_id) for u in updates if u.cursor.retired
        ]
        pruned: list[tuple[object, ...]] = []
        floors: list[tuple[object, ...]] = []
        for u in updates:
            if not u.cursor.retired and u.prune_before_ms is not None:
                before_ns = u.prune_before_ms * NS_PER_MS
                pruned.append((domain, stream, u.cursor.session_id, before_ns))
                floors.append((before_ns, domain, stream, u.cursor.session_id, before_ns))
        for sql, rows in (
            (INSERT_DELIVERED, seen),
            (FORGET_DELIVERED, retired),
            (PRUNE_DELIVERED, pruned),
            (RAISE_DELIVERED_FLOOR, floors),
        ):
            if rows:
                steps.append(Step(sql, rows))
    return steps


def delivered_block(
    domain: str, stream: str, session_id: str, seen: Sequence[tuple[str, int]]
) -> tuple[object, ...]:
    """The row of `INSERT_DELIVERED` holding `seen` (identity, time ns): see TABLES_V3."""
    times = [t for _, t in seen]
    return (
        domain,
        stream,
        session_id,
        max(times),
        min(times),
        "\n".join([uid for uid, _ in seen]),
        struct.pack(f">{len(times)}q", *times),
    )


def block_identities(floor_ns: int, uids: str, times: bytes) -> Iterable[tuple[str, int]]:
    """A block's identities (uid, time ns) not pruned, in the order they were written."""
    values = struct.unpack(f">{len(times) // 8}q", bytes(times))
    return ((u, t) for u, t in zip(uids.split("\n"), values, strict=True) if t >= floor_ns)


def reset_steps(domain: str, session_id: str | None) -> list[Step]:
    """Forget a domain (cursors, identities, positions, inbox; every row counted but the
    domain's own) or one of its sessions (only its cursor rows counted, as always)."""
    if session_id is not None:
        args = [(domain, session_id)]
        return [
            Step("DELETE FROM delivered_blocks WHERE domain = ? AND session_id = ?", args),
            Step("DELETE FROM sessions WHERE domain = ? AND session_id = ?", args, counted=True),
        ]
    steps = [
        Step(f"DELETE FROM {table} WHERE domain = ?", [(domain,)], counted=True)  # noqa: S608
        for table in ("delivered_blocks", "sessions", "positions", "inbox")
    ]
    return [*steps, Step("DELETE FROM domains WHERE domain = ?", [(domain,)])]


def dead_letter_args(letter: DeadLetter) -> tuple[object, ...]:
    return (
        letter.domain,
        letter.stream,
        storable(letter.session_id),
        storable(letter.uid),
        storable(letter.reason),
        storable(letter.raw),
        letter.created_at,
    )


def inbox_add_args(
    domain: str, event_id: str, body: EventBody, received_at: float, dedupe_window: float
) -> tuple[object, ...]:
    data = body if isinstance(body, bytes) else storable(body).encode("utf-8")
    return (domain, storable(event_id), data, received_at, True, received_at - dedupe_window)


@dataclass(slots=True)
class PruneClock:
    """When `inbox_add` should also prune a domain's remembered ids (per process)."""

    every: float = INBOX_PRUNE_EVERY
    last: dict[str, float] = field(default_factory=dict)

    def due(self, domain: str, now: float) -> bool:
        if now - self.last.get(domain, float("-inf")) < self.every:
            return False
        self.last[domain] = now
        return True


def dead_letters_query(domain: str | None, limit: int) -> tuple[str, tuple[object, ...]]:
    where, args = _where_domain("", domain)
    sql = "SELECT domain, stream, session_id, uid, reason, raw, created_at FROM dead_letters"
    return f"{sql}{where} ORDER BY id LIMIT ?", (*args, limit)


def session_rows_query(domain: str | None) -> tuple[str, tuple[object, ...]]:
    where, args = _where_domain("s.", domain)
    sql = (
        "SELECT s.domain, s.stream, s.session_id, s.room, s.watermark_ns, s.drained_until_ms,"
        " s.ended_at_ms, s.retired, s.updated_at FROM sessions s"
    )
    # Byte order on both backends, so that both list rows alike.
    order = " ORDER BY " + ", ".join(
        f"s.{c} COLLATE {{byte_order}}" for c in ("domain", "stream", "session_id")
    )
    return f"{sql}{where}{order}", args


def seen_blocks_query(domain: str | None) -> tuple[str, tuple[object, ...]]:
    """The identity blocks `session_rows` counts (see `session_rows_from`)."""
    where, args = _where_domain("", domain)
    sql = "SELECT domain, stream, session_id, floor_ns, uids, times FROM delivered_blocks"
    return f"{sql}{where}", args


def _where_domain(prefix: str, domain: str | None) -> tuple[str, tuple[object, ...]]:
    if domain is None:
        return "", ()
    return f" WHERE {prefix}domain = ?", (domain,)


# -- rows back into objects ---------------------------------------------------------------
# Drivers differ in what they give back (PostgreSQL: bool and big ints; SQLite: 0/1), so
# every value is converted here, once.


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def domain_state(row: Sequence[Any]) -> DomainState:
    return DomainState(floor_ms=int(row[0]), discovered_until_ms=opt_int(row[1]))


def cursors_from_rows(
    sessions: Iterable[Sequence[Any]], delivered: Iterable[Sequence[Any]]
) -> dict[str, SessionCursor]:
    """The rows of `SELECT_SESSIONS` and `SELECT_DELIVERED` as cursors with their `seen`."""
    cursors = {
        r[0]: SessionCursor(
            session_id=r[0],
            room=r[1],
            start_floor_ms=int(r[2]),
            watermark_ns=opt_int(r[3]),
            drained_until_ms=opt_int(r[4]),
            ended_at_ms=opt_int(r[5]),
            retired=bool(r[6]),
        )
        for r in sessions
    }
    for session_id, floor_ns, uids, times in delivered:
        cursor = cursors.get(session_id)
        if cursor is not None:
            seen = cursor.seen
            for uid, time_ns in block_identities(int(floor_ns), uids, times):
                # The first time written wins, as the one-row-per-identity table kept it.
                seen.setdefault(uid, time_ns)
    return cursors


def session_rows_from(
    rows: Iterable[Sequence[Any]], blocks: Iterable[Sequence[Any]]
) -> list[SessionRow]:
    """The rows of `session_rows_query` with the number of identities each session keeps
    (not pruned, each once), counted from the rows of `seen_blocks_query`."""
    seen: dict[tuple[str, str, str], set[str]] = {}
    for domain, stream, session_id, floor_ns, uids, times in blocks:
        kept = seen.setdefault((domain, stream, session_id), set())
        kept.update(uid for uid, _ in block_identities(int(floor_ns), uids, times))
    return [
        SessionRow(
            r[0],
            r[1],
            r[2],
            r[3],
            opt_int(r[4]),
            opt_int(r[5]),
            opt_int(r[6]),
            bool(r[7]),
            len(seen.get((r[0], r[1], r[2]), ())),
            float(r[8]),
        )
        for r in rows
    ]


def dead_letter(r: Sequence[Any]) -> DeadLetter:
    return DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6]))


def inbox_event(r: Sequence[Any]) -> InboxEvent:
    return InboxEvent(r[0], bytes(r[1]), float(r[2]))


def inbox_stats(row: Sequence[Any] | None) -> tuple[int, float | None]:
    if row is None:
        return 0, None
    return int(row[0]), None if row[1] is None else float(row[1])


def importable(table: str, row: Sequence[object]) -> tuple[object, ...]:
    """A row of `export_rows` (SQLite) as PostgreSQL takes it: booleans as booleans, text
    made storable (a file written before text was escaped on SQLite too)."""
    return tuple(
        _importable(table, column, v) for column, v in zip(EXPORT_COLUMNS[table], row, strict=True)
    )


def _importable(table: str, column: str, value: object) -> object:
    if (table, column) in BOOL_COLUMNS:
        return bool(value)
    return storable(value) if isinstance(value, str) else value


def storable(text: str) -> str:
    """`text` as both backends can hold it, the same on both: a lone surrogate (JSON allows
    `\\ud800`, Python decodes it, UTF-8 cannot hold it) and NUL (PostgreSQL's text refuses
    it) become their `\\uXXXX` escapes, instead of an error that would fail every read at
    the same hostile record forever."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\u0000")
