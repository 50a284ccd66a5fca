"""sd_notify against a fake service manager: a bound AF_UNIX datagram socket we read from."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daily_otel_bridge.service.systemd import SystemdNotifier, notify, watchdog_interval

# sun_path holds 108 bytes on Linux; pytest's tmp_path can get close to that.
_MAX_SOCKET_PATH = 100


class FakeManager:
    """The receiving end of $NOTIFY_SOCKET."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": env_value}

    def receive(self, timeout: float = 1.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        self.sock.setblocking(False)
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages


@pytest.fixture
def path_manager(tmp_path: Path) -> Iterator[FakeManager]:
    path = tmp_path / "notify.sock"
    short_dir = None
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        short_dir = tempfile.TemporaryDirectory(prefix="sd")
        path = Path(short_dir.name) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.fspath(path))
    try:
        yield FakeManager(sock, os.fspath(path))
    finally:
        sock.close()
        if short_dir is not None:
            short_dir.cleanup()


@pytest.fixture
def abstract_manager() -> Iterator[FakeManager]:
    name = f"daily-otel-bridge-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    try:
        yield FakeManager(sock, "@" + name)
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def manager(
    request: pytest.FixtureRequest, path_manager: FakeManager, abstract_manager: FakeManager
) -> FakeManager:
    return path_manager if request.param == "path" else abstract_manager


def test_notify_sends_state(manager: FakeManager) -> None:
    assert notify("READY=1\nSTATUS=hello", manager.env) is True
    assert manager.receive() == "READY=1\nSTATUS=hello"


def test_ready_stopping_status(manager: FakeManager) -> None:
    notifier = SystemdNotifier(manager.env)
    assert notifier.enabled
    assert notifier.ready() is True
    assert manager.receive() == "READY=1"
    assert notifier.status("polling 3 domains\nsecond line") is True
    assert manager.receive() == "STATUS=polling 3 domains second line"
    assert notifier.stopping() is True
    assert manager.receive() == "STOPPING=1"


def test_unset_notify_socket_does_nothing(
    path_manager: FakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1", {}) is False
    assert notify("READY=1") is False  # falls back to os.environ, which has none either
    notifier = SystemdNotifier({"WATCHDOG_USEC": "200000"})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False
    assert path_manager.pending() == []


def test_reads_os_environ_by_default(
    path_manager: FakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_manager.env["NOTIFY_SOCKET"])
    assert SystemdNotifier().ready() is True
    assert path_manager.receive() == "READY=1"


@pytest.mark.parametrize(
    "value",
    [
        "relative/path.sock",  # neither a path nor "@abstract"
        "/nonexistent-dir-for-daily-otel-bridge-tests/notify.sock",  # ENOENT
        "@daily-otel-bridge-test-nobody-listens-" + uuid.uuid4().hex,  # ECONNREFUSED
        "/" + "x" * 200,  # longer than sun_path
        "/tmp/nul\0byte",
    ],
    # Ids that do not change between collections (several pytest workers must agree).
    ids=["relative", "enoent", "refused", "too-long", "nul"],
)
def test_socket_errors_return_false(value: str) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": value}) is False


def test_watchdog_interval() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000"}) == 0.1
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": mine}) == 0.1
    other = str(os.getpid() + 1)
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": other}) is None
    for bad in ("0", "-5", "abc", ""):
        assert watchdog_interval({"WATCHDOG_USEC": bad}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "x"}) is None


async def test_watchdog_pings_at_half_the_timeout(manager: FakeManager) -> None:
    env = {**manager.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(env)
    assert notifier.watchdog_interval == pytest.approx(0.1)
    loop = asyncio.get_running_loop()
    manager.sock.setblocking(False)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run_watchdog(stop))

    arrivals: list[float] = []
    started = time.monotonic()
    while len(arrivals) < 5:
        message = await asyncio.wait_for(loop.sock_recv(manager.sock, 4096), timeout=1.0)
        assert message == b"WATCHDOG=1"
        arrivals.append(time.monotonic())

    stop.set()
    await asyncio.wait_for(task, timeout=0.5)  # stops promptly, not after a full interval
    assert manager.pending() == []

    # The first ping goes out at once, then one every 0.1 s.
    assert arrivals[0] - started < 0.05
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(0.08 <= gap <= 0.25 for gap in gaps), gaps


async def test_watchdog_of_another_pid_is_disabled(manager: FakeManager) -> None:
    env = {**manager.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)}
    notifier = SystemdNotifier(env)
    assert notifier.watchdog_interval is None
    stop = asyncio.Event()
    # Returns at once without waiting for stop, and sends nothing.
    await asyncio.wait_for(notifier.run_watchdog(stop), timeout=0.5)
    await asyncio.sleep(0.25)
    assert manager.pending() == []


async def test_watchdog_without_notify_socket_returns() -> None:
    notifier = SystemdNotifier({"WATCHDOG_USEC": "200000"})
    # The interval is known, but there is nobody to ping.
    await asyncio.wait_for(notifier.run_watchdog(asyncio.Event()), timeout=0.5)
