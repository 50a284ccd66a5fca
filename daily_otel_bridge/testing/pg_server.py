"""A throwaway PostgreSQL server for tests and benches: `initdb` into a temporary directory,
listen on a free loopback port, stop at the end (and by itself after a deadline).

The server binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/N/bin`),
`$PG_BIN`, or `pg_config --bindir` on the PATH. When none is found `find_bin_dir` raises:
tests needing PostgreSQL fail loudly instead of being skipped, since CI installs it.

`initdb` and `postgres` refuse to run as root; as root they run as the `postgres` user
(`runuser`) on a directory it owns. The postmaster runs under `timeout(1)`, so a test run
that dies without cleaning up still leaves no server behind for longer than `max_seconds`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import psycopg

SUPERUSER = "bridge"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir(debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    env = os.environ.get("PG_BIN")
    candidates: list[Path] = [Path(env)] if env else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
    # Debian: /usr/lib/postgresql/<major>/bin, the newest major first.
    debian = sorted(
        debian_root.glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise PgUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found: install Debian's "
        "postgresql package (apt-get install postgresql) or set PG_BIN"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One server; `dsn()` gives a libpq URL with the superuser's password in it."""

    def __init__(self, bin_dir: Path, root: Path, max_seconds: float) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.datadir = root / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.max_seconds = max_seconds
        self.started_at = time.monotonic()
        self._as_postgres = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "postgres.log"

    # -- process control ------------------------------------------------------------------

    def _cmd(self, *argv: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                # Password authentication over TCP, so that DSN handling with a password is
                # what the tests exercise; the unix socket is only inside the data directory.
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        pwfile.unlink()

    def start(self, timeout: float = 60) -> None:
        remaining = self.max_seconds - (time.monotonic() - self.started_at)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
        self._proc = subprocess.Popen(
            self._cmd(
                "timeout",
                "-s",
                "INT",
                "-k",
                "10",
                str(max(int(remaining), 1)),
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.datadir}",
                # A test server: a crash of the machine is not a case to survive, speed is.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"PostgreSQL did not start; its log:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the postmaster itself (SIGSTOP/SIGCONT to freeze it, for example)."""
        pid = self._postmaster_pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, mode: int = signal.SIGINT, timeout: float = 30) -> None:
        """SIGINT: fast shutdown; SIGQUIT: immediate (a crash, recovery at the next start)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.send_signal(signal.SIGCONT)
        self.send_signal(mode)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.send_signal(signal.SIGKILL)
            proc.wait(10)

    def restart(self, mode: int = signal.SIGINT, down_for: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    # -- databases ------------------------------------------------------------------------

    def dsn(self, database: str = "postgres", *, password: bool = True) -> str:
        auth = SUPERUSER + (":" + quote(self.password, safe="") if password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its DSN."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


@contextmanager
def pg_server(max_seconds: float = 1800) -> Iterator[PgServer]:
    bin_dir = find_bin_dir()
    # Not under pytest's tmp_path: its parents are 0700 root, which the postgres user cannot
    # traverse.
    root = Path(tempfile.mkdtemp(prefix="dob-pg-"))
    root.chmod(0o700)
    server = PgServer(bin_dir, root, max_seconds)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
