"""The SQLite state file: one process at a time, an existing directory, private files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from daily_otel_bridge.state.base import StateError
from daily_otel_bridge.state.sqlite import SqliteCursorStore, StateInUse, lock_path


def test_a_second_store_on_the_same_file_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from daily_otel_bridge.state.sqlite import SqliteCursorStore\n"
            f"s = SqliteCursorStore({str(path)!r})\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateInUse) as info:
            SqliteCursorStore(path)
        assert str(info.value).startswith(f"state store in use by pid {holder.pid}")
        assert "\n" not in str(info.value)
        # Reading next to the running daemon stays possible.
        reader = SqliteCursorStore(path, lock=False, create=False)
        assert reader.session_rows() == []
        reader.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
    # The holder is gone (even a SIGKILL drops a flock): the next process gets the store.
    SqliteCursorStore(path).close()


def test_the_lock_is_released_on_close_and_a_stale_pid_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    lock_path(path).write_text("999999\n")  # left by a killed process
    first = SqliteCursorStore(path)
    assert lock_path(path).read_text().strip() == str(os.getpid())
    with pytest.raises(StateInUse):
        SqliteCursorStore(path)
    first.close()
    SqliteCursorStore(path).close()


def test_a_missing_state_directory_is_an_error_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "state.db"
    with pytest.raises(StateError, match=r"state directory .*nope does not exist"):
        SqliteCursorStore(path)
    assert not path.parent.exists()


def test_read_only_use_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no state store at"):
        SqliteCursorStore(tmp_path / "state.db", lock=False, create=False)
    assert not (tmp_path / "state.db").exists()


def test_files_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqliteCursorStore(tmp_path / "state.db")
        store.load_domain("acme", 0)  # a write: the WAL and shm files exist now
        files = sorted(tmp_path.iterdir())
        assert {p.name for p in files} >= {"state.db", "state.db.lock", "state.db-wal"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
        store.close()
    finally:
        os.umask(old)


def test_memory_store_needs_no_directory_or_lock() -> None:
    SqliteCursorStore(":memory:").close()
