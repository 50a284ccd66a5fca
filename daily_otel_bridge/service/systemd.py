"""A tiny sd_notify(3) client: readiness, stop and watchdog notifications for systemd.

No dependency on libsystemd or the `systemd` Python package: the protocol is one datagram of
newline-separated ``KEY=VALUE`` assignments sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``).

Every function here is a no-op that returns False when the bridge is not run by systemd
(``$NOTIFY_SOCKET`` unset), and none of them raises on a socket error: a lost notification must
never take the daemon down. With ``WatchdogSec=`` set, systemd itself kills and restarts a
daemon that stops pinging, which is the point of sending the pings from the event loop: a
blocked loop stops them.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier", "notify", "watchdog_interval"]


def _socket_address(value: str) -> bytes | None:
    """The `sendto` address for a ``$NOTIFY_SOCKET`` value, or None if it is not usable."""
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the "@".
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    # Anything else (e.g. the "vsock:" form of newer systemd versions) is not supported here.
    return None


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. ``"READY=1"``) to the service manager.

    Returns True when the datagram was sent, False when ``$NOTIFY_SOCKET`` is unset or unusable
    or the send failed. Never raises for socket errors.
    """
    env = os.environ if environ is None else environ
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None or not state:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Non-blocking: called from the event loop, and a full receive queue on the
            # manager's side must cost a lost ping, not a stalled loop.
            sock.setblocking(False)
            sock.sendto(state.encode("utf-8"), address)
    except (OSError, ValueError):
        # ValueError: an embedded NUL byte in the address.
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``, in seconds: half of ``$WATCHDOG_USEC``.

    None when the watchdog is not enabled for this process: ``$WATCHDOG_USEC`` unset or not a
    positive integer, or ``$WATCHDOG_PID`` set to something other than our own pid (the
    variables were inherited from a parent that is the one being watched).
    """
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            return None
        if pid != os.getpid():
            return None
    return usec / 2 / 1_000_000


class SystemdNotifier:
    """The notifications a daemon sends over its life, bound to one environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens (``$NOTIFY_SOCKET`` is set and usable)."""
        return _socket_address(self._environ.get("NOTIFY_SOCKET", "")) is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings, or None when the watchdog is off."""
        return watchdog_interval(self._environ)

    def notify(self, state: str) -> bool:
        return notify(state, self._environ)

    def ready(self) -> bool:
        """Start-up is complete: systemd moves a ``Type=notify`` unit to "active"."""
        return self.notify("READY=1")

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        # The protocol is newline-separated: a newline in the text would start a new assignment.
        one_line = " ".join(text.splitlines())
        return self.notify(f"STATUS={one_line}")

    def watchdog(self) -> bool:
        """One keep-alive ping."""
        return self.notify("WATCHDOG=1")

    async def run_watchdog(self, stop: asyncio.Event) -> None:
        """Send ``WATCHDOG=1`` every interval until `stop` is set.

        Returns at once when the watchdog is not enabled or nobody listens. The pings run on the
        event loop on purpose: a loop that is blocked stops pinging and systemd restarts the
        service.
        """
        interval = self.watchdog_interval
        if interval is None or not self.enabled:
            return
        while not stop.is_set():
            self.watchdog()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                continue
