"""`state show | reset | dead-letters | migrate` on SQLite and PostgreSQL (in-process)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
import yaml

from daily_otel_bridge.cli.main import main
from daily_otel_bridge.core.cursor import SessionCursor
from daily_otel_bridge.state.base import CursorUpdate, DeadLetter
from daily_otel_bridge.state.postgres import PostgresStateStore
from daily_otel_bridge.state.sqlite import SqliteCursorStore
from daily_otel_bridge.testing.pg_server import PgServer


def write_config(tmp_path: Path, **top: Any) -> Path:
    doc = {
        "domains": [
            {"name": "acme", "api_key": "${DAILY_API_KEY}"},
            {"name": "beta", "api_key_file": "/nonexistent/key"},
        ],
        "export": {"headers": {"authorization": "${OTLP_TOKEN}"}},
        **top,
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def no_secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DAILY_API_KEY", "OTLP_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() configures logging onto this test's captured stderr, which is closed once the
    test ends: undo that, or later tests in this process log into a closed file."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    structlog.reset_defaults()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["state", *args])
    out, err = capsys.readouterr()
    return code, out, err


def fill_sqlite(path: Path) -> None:
    store = SqliteCursorStore(path)
    store.load_domain("acme", 1000)
    store.commit_streams(
        "acme",
        {
            "logs": [
                CursorUpdate(
                    SessionCursor("s1", "room-1", 1000, watermark_ns=5, drained_until_ms=6),
                    new_seen=[("u1", 5), ("u2", 5)],
                ),
                CursorUpdate(SessionCursor("s0", "room-0", 900, retired=True, ended_at_ms=3)),
            ],
            "metrics": [CursorUpdate(SessionCursor("s1", "room-1", 1000))],
        },
        discovered_until_ms=1234,
    )
    store.add_dead_letter(DeadLetter("acme", "logs", "s1", "bad1", "unmappable", "{}", 1.0))
    store.add_dead_letter(DeadLetter("acme", "logs", "s1", "bad0", "unmappable", "[]", 2.0))
    store.close()


def fill_inbox(path: Path, now: float) -> None:
    """One webhook event waiting, one exported (remembered), one source position."""
    store = SqliteCursorStore(path)
    store.load_domain("acme", 1000)
    store.inbox_add("acme", "e-waiting", b'{"n": 1}', now - 30, 600)
    store.inbox_add("acme", "e-done", b'{"n": 2}', now - 10, 600)
    store.commit_streams("acme", {}, positions={"api": "log-7"}, inbox_done=["e-done"])
    store.close()


# -- SQLite -------------------------------------------------------------------------------


def test_sqlite_commands_need_no_daily_api_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_sqlite(tmp_path / "state.db")
    config = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    code, out, err = run(capsys, "show", "--config", str(config))
    assert code == 0, err
    assert "3 session cursor(s)" in out
    assert "owner" not in out  # one process: no leases to show
    code, out, _ = run(capsys, "dead-letters", "--config", str(config), "--domain", "acme")
    assert code == 0
    assert [line.count('"uid"') for line in out.splitlines()] == [1, 1]
    code, out, _ = run(capsys, "reset", "--config", str(config), "--domain", "acme", "--yes")
    # 3 cursors and 1 block of the 2 delivered identities (the dead letters stay).
    assert (code, out) == (0, "reset domain 'acme': 4 row(s) removed\n")


def test_show_counts_waiting_webhook_events_and_reset_drops_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_sqlite(tmp_path / "state.db")
    fill_inbox(tmp_path / "state.db", time.time())
    config = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    code, out, err = run(capsys, "show", "--config", str(config))
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if x.startswith("inbox")]
    assert re.fullmatch(
        r"inbox acme: 1 webhook event\(s\) waiting, the oldest received 3\ds ago", line
    )
    # Cursors (1 block of 2 delivered identities, 3 sessions), the position and both
    # inbox rows.
    code, out, _ = run(capsys, "reset", "--config", str(config), "--domain", "acme", "--yes")
    assert (code, out) == (0, "reset domain 'acme': 7 row(s) removed\n")
    code, out, _ = run(capsys, "show", "--config", str(config))
    assert "inbox" not in out


@pytest.mark.parametrize(
    "args",
    [
        ("show", "--domain", "nope"),
        ("dead-letters", "--domain", "nope"),
        ("reset", "--domain", "nope", "--yes"),
    ],
)
def test_an_unknown_domain_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    fill_sqlite(tmp_path / "state.db")
    config = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    code, out, err = run(capsys, args[0], "--config", str(config), *args[1:])
    assert code == 2
    assert err == "unknown domain 'nope': not in the config (acme, beta) nor in the state store\n"
    assert out == ""


def test_a_configured_domain_without_state_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_sqlite(tmp_path / "state.db")
    config = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    code, out, _ = run(capsys, "show", "--config", str(config), "--domain", "beta")
    assert code == 0
    assert "0 session cursor(s)" in out


def test_a_missing_state_directory_is_exit_3_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, state_path=str(tmp_path / "missing" / "state.db"))
    for args in (("show",), ("reset", "--domain", "acme", "--yes"), ("dead-letters",)):
        code, _, err = run(capsys, args[0], "--config", str(config), *args[1:])
        assert code == 3
        assert "does not exist" in err
        assert err.count("\n") == 1
    assert not (tmp_path / "missing").exists()


def test_reset_refuses_a_state_in_use_and_show_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_sqlite(tmp_path / "state.db")
    config = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    daemon = SqliteCursorStore(tmp_path / "state.db")  # as a running daemon holds it
    try:
        code, _, err = run(capsys, "reset", "--config", str(config), "--domain", "acme", "--yes")
        assert code == 3
        assert err.startswith(f"state store in use by pid {os.getpid()}")
        assert err.count("\n") == 1
        code, out, _ = run(capsys, "show", "--config", str(config))
        assert code == 0
        assert "3 session cursor(s)" in out
    finally:
        daemon.close()


# -- PostgreSQL ---------------------------------------------------------------------------


def pg_config(tmp_path: Path, server: PgServer, dsn: str) -> Path:
    # The password through ${VAR}, as documented.
    os.environ["TEST_PG_PASSWORD"] = server.password
    url = dsn.replace(server.password, "${TEST_PG_PASSWORD}")
    return write_config(tmp_path, state_url=url)


def test_migrate_copies_sqlite_into_postgres_and_show_lists_owners(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg_server_session: PgServer,
    pg_dsn: str,
) -> None:
    sqlite_path = tmp_path / "state.db"
    fill_sqlite(sqlite_path)
    now = time.time()
    fill_inbox(sqlite_path, now)
    config = pg_config(tmp_path, pg_server_session, pg_dsn)
    code, out, err = run(capsys, "migrate", "--config", str(config), "--from", str(sqlite_path))
    assert code == 0, err
    assert out.startswith(
        "copied 1 domain(s), 3 session cursor(s), 1 block(s) of delivered identities and"
        " 2 dead letter(s)"
    )
    assert out.splitlines()[1].startswith("and 1 source position(s), 2 webhook event(s)")
    assert pg_server_session.password not in out + err

    async def compare() -> None:
        pg = await PostgresStateStore.open(pg_dsn)
        ref = SqliteCursorStore(sqlite_path, lock=False, create=False)
        try:
            assert await pg.session_rows() == ref.session_rows()
            assert await pg.dead_letters() == ref.dead_letters()
            for stream in ("logs", "metrics"):
                assert await pg.load_cursors("acme", stream) == ref.load_cursors("acme", stream)
            assert await pg.load_domain("acme", 0) == ref.load_domain("acme", 0)
            assert await pg.load_positions("acme") == ref.load_positions("acme")
            assert await pg.inbox_pending("acme", 10) == ref.inbox_pending("acme", 10)
            assert [e.event_id for e in await pg.inbox_pending("acme", 10)] == ["e-waiting"]
            # The exported event is remembered there too: Daily's retry of it is a repeat.
            assert await pg.inbox_add("acme", "e-done", b"{}", now, 600) is False
        finally:
            await pg.close()
            ref.close()

    asyncio.run(compare())

    # A second migration would merge two histories: refused, nothing written.
    code, out, err = run(capsys, "migrate", "--config", str(config), "--from", str(sqlite_path))
    assert code == 3
    assert "already holds state" in err

    # Owners: claim one domain as a replica would.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO leases (domain, owner, epoch, expires_at)"
            " VALUES ('acme', 'host-a-42', 3, clock_timestamp() + interval '20 seconds')"
        )
        conn.execute(
            "INSERT INTO replicas (replica_id, instance, started_at, heartbeat_at, expires_at,"
            " version) VALUES ('host-a-42', 'x', now(), now(), now() + interval '30 s', '0.1.0'),"
            " ('host-b-7', 'y', now(), now() - interval '1 h', now() - interval '59 min', '0.1.0')"
        )
    code, out, err = run(capsys, "show", "--config", str(config))
    assert code == 0, err
    replicas = out.split("\n\n")[0].splitlines()
    assert replicas[0].split() == ["replica", "version", "heartbeat"]
    assert replicas[1].split()[:3] == ["host-a-42", "0.1.0", "0s"]
    assert replicas[2].split()[:3] == ["host-b-7", "0.1.0", "gone"]
    owners = out.split("\n\n")[1].splitlines()
    assert owners[0].split() == ["domain", "owner", "epoch", "lease"]
    assert owners[1].split()[:5] == ["acme", "host-a-42", "3", "expires", "in"]
    assert owners[2].split() == ["beta", "-", "-", "never", "claimed"]
    assert "3 session cursor(s)" in out

    # Resetting a domain that a replica runs would be undone by its next commit: refused.
    code, _, err = run(capsys, "reset", "--config", str(config), "--domain", "acme", "--yes")
    assert code == 2
    assert "running on replica host-a-42" in err
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE leases SET owner=NULL, expires_at=NULL")
    code, out, _ = run(capsys, "reset", "--config", str(config), "--domain", "acme", "--yes")
    assert (code, out) == (0, "reset domain 'acme': 7 row(s) removed\n")  # as above
    code, out, _ = run(capsys, "dead-letters", "--config", str(config))
    assert code == 0
    assert len(out.splitlines()) == 2


def test_migrate_needs_state_url_and_an_idle_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg_server_session: PgServer, pg_dsn: str
) -> None:
    fill_sqlite(tmp_path / "state.db")
    plain = write_config(tmp_path, state_path=str(tmp_path / "state.db"))
    code, _, err = run(
        capsys, "migrate", "--config", str(plain), "--from", str(tmp_path / "state.db")
    )
    assert code == 2
    assert "set state_url" in err
    config = pg_config(tmp_path, pg_server_session, pg_dsn)
    daemon = SqliteCursorStore(tmp_path / "state.db")
    try:
        code, _, err = run(
            capsys, "migrate", "--config", str(config), "--from", str(tmp_path / "state.db")
        )
        assert code == 3
        assert "in use by pid" in err
    finally:
        daemon.close()


def test_unreachable_or_refused_postgres_is_exit_3_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg_server_session: PgServer
) -> None:
    os.environ["TEST_PG_PASSWORD"] = "Not-The-Right-0ne-Secret"
    url = pg_server_session.dsn("postgres").replace(
        pg_server_session.password, "${TEST_PG_PASSWORD}"
    )
    config = write_config(tmp_path, state_url=url)
    code, out, err = run(capsys, "show", "--config", str(config))
    assert code == 3
    assert "Not-The-Right-0ne-Secret" not in out + err
    assert f"127.0.0.1:{pg_server_session.port}/postgres" in err
    code, out, err = run(capsys, "show", "--config", str(config))
    assert code == 3
