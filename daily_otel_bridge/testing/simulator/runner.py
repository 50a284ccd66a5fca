"""Serving the simulator: in the current event loop (``start_simulator``) or on its own loop
in a daemon thread for synchronous tests (``SimulatorThread``)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from .app import SIM_KEY, create_app
from .config import Clock, SimulatorConfig
from .core import Simulator


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class RunningSimulator:
    """A simulator serving on a local port inside the current event loop."""

    def __init__(self, runner: web.AppRunner, app: web.Application, host: str, port: int):
        self._runner = runner
        self.app = app
        self.host = host
        self.port = port
        self.url = _base_url(host, port)
        self.control_url = self.url[: -len("/v1")] + "/_sim"

    @property
    def simulator(self) -> Simulator:
        return self.app[SIM_KEY]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_simulator(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
) -> RunningSimulator:
    """Serve ``create_app(config)`` on ``host:port`` (0 picks a free port)."""
    app = create_app(config, clock=clock)
    # A short shutdown timeout: hanging-fault requests must not hold up a test's teardown.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        # With port 0 the OS picked the port; the runner knows which.
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    return RunningSimulator(runner, app, host, bound)


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for synchronous tests."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self._host = host
        self._port = port
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: RunningSimulator | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._running = loop.run_until_complete(
                start_simulator(self.config, self._host, self._port, clock=self._clock)
            )
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._running.close())
            loop.close()

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name="daily-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    @property
    def running(self) -> RunningSimulator:
        if self._running is None:
            raise RuntimeError("simulator is not running")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def simulator(self) -> Simulator:
        return self.running.simulator

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
