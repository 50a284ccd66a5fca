"""Wiring: settings -> store, clients, exporters, pipelines, runners; signals; close order.

Close order matters for the delivery guarantee: stop fetching first, let the export in
flight finish (bounded by the exporter's timeout), commit what was acknowledged, and only
then close the exporters, the Daily clients and last the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from daily_otel_bridge.config.settings import Settings
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.domain import build_pipeline
from daily_otel_bridge.pipeline.runner import DomainRunner
from daily_otel_bridge.service.health import HealthServer
from daily_otel_bridge.service.logging import register_secrets
from daily_otel_bridge.service.self_metrics import BridgeMetrics
from daily_otel_bridge.service.startup import startup_fields
from daily_otel_bridge.service.systemd import SystemdNotifier
from daily_otel_bridge.state.sqlite import SqliteCursorStore

log = structlog.get_logger("daily_otel_bridge.service.app")

# After SIGTERM, how long the in-flight work may take on top of the export timeout.
SHUTDOWN_SLACK = 5.0


def secrets_of(settings: Settings) -> list[str]:
    values = [d.api_key.get_secret_value() for d in settings.domains]
    for export in [settings.export, *(d.export for d in settings.domains)]:
        values.extend(v for _, v in export.header_items())
    return values


class Bridge:
    def __init__(self, settings: Settings, *, metrics: BridgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        register_secrets(secrets_of(settings))
        self.store = SqliteCursorStore(settings.state_path)
        self.runners: list[DomainRunner] = []
        for domain in settings.domains:
            if not domain.enabled:
                continue
            pipeline = build_pipeline(domain, store=self.store, metrics=self.metrics)
            self.metrics.init_domain(
                domain.name,
                pipeline.streams,
                domain.export.protocol,
                requests_per_second=domain.requests_per_second,
            )
            self.runners.append(DomainRunner(pipeline))
        self.stop = asyncio.Event()
        self.health: HealthServer | None = None
        self.notifier = SystemdNotifier()

    async def run_once(self) -> bool:
        """One full sweep of every domain, concurrently; True when all succeeded."""
        self._install_signal_handlers()
        results = await asyncio.gather(*(r.sweep_once(full=True) for r in self.runners))
        return all(results)

    async def run_forever(self) -> None:
        self._install_signal_handlers()
        if self.settings.health.enabled:
            self.health = HealthServer(self.settings, self.runners, self.metrics)
            await self.health.start()
        self.notifier.ready()
        watchdog = asyncio.create_task(self.notifier.run_watchdog(self.stop))
        background = [watchdog]
        if self.settings.self_telemetry.otlp:
            background.append(asyncio.create_task(self._push_self_telemetry()))
        tasks = [asyncio.create_task(r.run(self.stop), name=r.pipeline.name) for r in self.runners]
        log.info(
            "bridge started",
            **startup_fields(
                self.settings,
                health_address=self.health.address if self.health is not None else None,
            ),
        )
        stop_waiter = asyncio.create_task(self.stop.wait())
        try:
            # A task that dies (only a StateError does) ends the process with an error.
            done, _ = await asyncio.wait([stop_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.notifier.stopping()
            self.request_stop()
            grace = (
                max(r.pipeline.settings.export.timeout for r in self.runners) if self.runners else 0
            )
            pending = [t for t in tasks if not t.done()]
            if pending:
                _, still = await asyncio.wait(pending, timeout=grace + SHUTDOWN_SLACK)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            for task in (*background, stop_waiter):
                task.cancel()
            await asyncio.gather(*background, stop_waiter, return_exceptions=True)
            if self.health is not None:
                await self.health.stop()
            log.info("bridge stopped")

    async def _push_self_telemetry(self) -> None:
        from opentelemetry.sdk.resources import Resource

        from daily_otel_bridge.core.encoding import resource_to_proto
        from daily_otel_bridge.service.self_telemetry import push_forever

        export = self.settings.export
        if export.protocol == "console":
            return
        exporter = Exporter(build_transport(export), max_retry_time=export.timeout)
        resource = resource_to_proto(Resource.create({"service.name": "daily-otel-bridge"}))
        try:
            await push_forever(
                self.metrics.registry,
                exporter,
                resource,
                self.settings.self_telemetry.interval,
                self.stop,
            )
        finally:
            await exporter.close()

    def request_stop(self) -> None:
        self.stop.set()
        for runner in self.runners:
            runner.pipeline.stop_requested = True

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Unix
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            return
        log.info("stopping", signal=sig.name)
        self.request_stop()

    async def close(self) -> None:
        for runner in self.runners:
            await runner.pipeline.exporter.close()
            await runner.pipeline.client.close()
        self.store.close()
