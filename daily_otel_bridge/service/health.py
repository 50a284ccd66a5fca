"""Probes and self-metrics over HTTP (read-only): /healthz, /readyz, /metrics.

The bodies carry states, times and error *types* only: an error's text can quote a URL or
a server's message, and nothing here may ever show a secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daily_otel_bridge.config.errors import listen_reason
from daily_otel_bridge.config.settings import ConfigError, Settings
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.pipeline.runner import DomainRunner

log = structlog.get_logger("daily_otel_bridge.service.health")


class HealthListenError(ConfigError):
    """`health.listen` cannot be bound (port in use, address not on this host, no permission).

    A ConfigError, so that every command reports it as the one line naming the key to change,
    and exits 2 like any other configuration problem.
    """

    def __init__(self, listen: str, error: OSError) -> None:
        reason = listen_reason(error)
        super().__init__([("health.listen", f"cannot listen on {listen}: {reason}")])


def format_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets, as `health.listen` spells it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def domain_report(runner: DomainRunner, staleness: float, now: float) -> dict[str, Any]:
    pipeline = runner.pipeline
    status = runner.status
    last = status.last_success
    fresh = last is not None and now - last <= staleness
    lag = pipeline.cursor_lag_seconds()
    return {
        "state": status.state,
        "ready": fresh,
        "last_success": last,
        "seconds_since_success": None if last is None else round(now - last, 3),
        "staleness_bound": staleness,
        "cursor_lag_seconds": None if lag is None else round(lag, 3),
        "sessions_tracked": len(pipeline.active_cursors()),
        "last_error_type": status.last_error_type,
    }


def readiness(
    settings: Settings,
    runners: Sequence[DomainRunner],
    now: float | None = None,
    ownership: tuple[bool, dict[str, Any]] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Ready when every domain this process runs is; with several replicas (`ownership`,
    the replica's part) also when PostgreSQL answers, and a replica that owns nothing is a
    ready standby."""
    now = time.time() if now is None else now
    domains: dict[str, Any] = {}
    for runner in runners:
        poll = runner.pipeline.settings.poll_interval
        bound = settings.health.staleness if settings.health.staleness is not None else 3 * poll
        domains[runner.pipeline.name] = domain_report(runner, bound, now)
    body: dict[str, Any] = {"domains": domains}
    if ownership is None:
        ready = bool(domains) and all(d["ready"] for d in domains.values())
    else:
        replica_ready, part = ownership
        ready = replica_ready and all(d["ready"] for d in domains.values())
        body["replica"] = part
    return ready, {"ready": ready, **body}


class HealthServer:
    def __init__(
        self,
        settings: Settings,
        runners: Sequence[DomainRunner],
        metrics: BridgeMetrics,
        ownership: Callable[[], tuple[bool, dict[str, Any]] | None] | None = None,
    ) -> None:
        self.ownership = ownership
        self.settings = settings
        self.runners = runners
        self.metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    @property
    def address(self) -> str | None:
        """`host:port` actually served (the real port when `health.listen` asks for `:0`);
        None before `start`."""
        if self.port is None:
            return None
        return format_address(self.settings.health.host, self.port)

    async def start(self) -> None:
        """Bind `health.listen`; raises HealthListenError (a ConfigError) when it cannot."""
        health = self.settings.health
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, health.host, health.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise HealthListenError(health.listen, exc) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.debug("health server listening", address=self.address)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        # Answering at all proves the event loop is turning.
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        part = self.ownership() if self.ownership is not None else None
        ready, body = readiness(self.settings, self.runners, ownership=part)
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        for runner in self.runners:
            lag = runner.pipeline.cursor_lag_seconds()
            if lag is not None:
                self.metrics.cursor_lag.labels(runner.pipeline.name).set(lag)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
