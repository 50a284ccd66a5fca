"""Wiring: settings -> store, clients, exporters, pipelines, runners; signals; close order.

Close order matters for the delivery guarantee: stop fetching first, let the exports in
flight finish (bounded by the exporter's timeout), commit what was acknowledged, and only
then close the exporters, the Daily clients and last the store.

Domains start and stop one by one (`start_domain`, `stop_domain`), which SIGHUP uses to
apply a new configuration: it is validated first, and a bad file keeps the running one.

With `state_url` (PostgreSQL, several replicas) this process runs only the domains whose
lease it holds: the `LeaseManager` starts each one (`_own_domain`) when it acquires the
lease and drains or cancels it when the lease goes; every Daily request and every export
first checks the lease (fencing), and every commit is conditional on its epoch.

With `webhooks`, the receiver (`service.webhooks`) stores each event in the state store's
inbox before it answers 200, then wakes the inbox poller of the event's domain
(`sources.webhooks`) if this process runs that domain. With replicas, a replica that does
not own the domain only stores: the owner's poller finds the event at its next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable

import structlog

from daily_otel_bridge.config.settings import ConfigError, DomainSettings, Settings, load_settings
from daily_otel_bridge.core.webhook_events import WebhookEvent
from daily_otel_bridge.daily.client import user_agent_for
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.domain import build_pipeline
from daily_otel_bridge.pipeline.runner import DomainRunner
from daily_otel_bridge.service.health import HealthServer
from daily_otel_bridge.service.logging import register_secrets
from daily_otel_bridge.service.startup import startup_fields
from daily_otel_bridge.service.systemd import SystemdNotifier
from daily_otel_bridge.service.webhooks import (
    WebhookServer,
    start_webhook_server,
    webhook_secrets_of,
)
from daily_otel_bridge.sources import Registry
from daily_otel_bridge.sources import webhooks as webhook_source
from daily_otel_bridge.state.base import CursorStore, StateError
from daily_otel_bridge.state.factory import StateBackend, open_state, state_secrets

log = structlog.get_logger("daily_otel_bridge.service.app")

# After SIGTERM, how long the in-flight work may take on top of the export timeout.
SHUTDOWN_SLACK = 5.0
# Settings that a reload cannot apply to a running process.
RESTART_ONLY = ("state_path", "health", "self_telemetry", "webhooks")


def secrets_of(settings: Settings) -> list[str]:
    values = [d.api_key.get_secret_value() for d in settings.domains]
    values.extend(state_secrets(settings))
    for export in [settings.export, *(d.export for d in settings.domains)]:
        values.extend(v for _, v in export.header_items())
    values.extend(webhook_secrets_of(settings))
    return values


def discovery_stretch_of(settings: Settings) -> float:
    """How many times less often discovery may run while webhooks flow: the configured
    `webhooks.discovery_stretch` when the receiver runs, else 1 (never)."""
    hooks = settings.webhooks
    return hooks.discovery_stretch if hooks is not None and hooks.enabled else 1.0


class _Running:
    """One domain's runner, its task and its own stop event."""

    def __init__(self, runner: DomainRunner, task: asyncio.Task[None], stop: asyncio.Event):
        self.runner, self.task, self.stop = runner, task, stop


class Bridge:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics: BridgeMetrics | None = None,
        reload: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        register_secrets(secrets_of(settings))
        self.backend: StateBackend | None = None
        # The list health checks read: runners are added and removed in place.
        self.runners: list[DomainRunner] = []
        self._running: dict[str, _Running] = {}
        self.stop = asyncio.Event()
        self.health: HealthServer | None = None
        self.webhooks: WebhookServer | None = None
        self.notifier = SystemdNotifier()
        self._reload = reload or self._load_again
        self._reloading: asyncio.Task[None] | None = None

    @property
    def store(self) -> CursorStore:
        assert self.backend is not None, "open() first"
        return self.backend.store

    @property
    def replicated(self) -> bool:
        return self.backend is not None and self.backend.leases is not None

    async def open(self) -> None:
        """Open the state backend (SQLite: also build every enabled domain's runner)."""
        if self.backend is not None:
            return
        listener = None
        if self.settings.state_url is not None:
            # Only with replicas: the PostgreSQL driver stays unloaded otherwise.
            from daily_otel_bridge.state.leases import DomainTasks

            listener = DomainTasks(self._own_domain)
        self.backend = await open_state(self.settings, listener, registry=self.metrics.registry)
        if not self.replicated:
            self.runners.extend(
                self._runner(domain) for domain in self.settings.domains if domain.enabled
            )

    def _runner(self, domain: DomainSettings) -> DomainRunner:
        backend = self.backend
        assert backend is not None
        leases = backend.leases
        pipeline = build_pipeline(
            domain,
            store=backend.store,
            metrics=self.metrics,
            user_agent=user_agent_for(backend.replica_id),
            guard=(lambda: leases.check(domain.name)) if leases is not None else None,
            discovery_stretch=discovery_stretch_of(self.settings),
        )
        self.metrics.init_domain(
            domain.name,
            pipeline.streams,
            domain.export.protocol,
            requests_per_second=domain.requests_per_second,
            signals=Registry.signals_of((*pipeline.sources, *pipeline.domain_sources)),
            domain_sources=[s.name for s in pipeline.domain_sources],
        )
        # With SQLite a state error ends the process (shipping without a cursor would
        # duplicate without bound); with PostgreSQL it is that domain's trouble: it backs
        # off, and the lease manager takes the domain away if it cannot renew.
        return DomainRunner(pipeline, fatal_state_errors=leases is None)

    async def _own_domain(self, name: str, epoch: int, stop: asyncio.Event) -> None:
        """Run a domain this replica acquired the lease of, until told to stop."""
        domain = next((d for d in self.settings.domains if d.name == name), None)
        if domain is None or not domain.enabled:
            return
        runner = self._runner(domain)
        self.runners.append(runner)
        log.info("domain acquired", domain=name, epoch=epoch)
        try:
            await runner.run(stop)
        finally:
            await self._close_runner(runner)
            with contextlib.suppress(ValueError):
                self.runners.remove(runner)
            log.info("domain released", domain=name, epoch=epoch)

    def _load_again(self) -> Settings:
        if self.settings.config_path is None:
            raise ConfigError([("config", "the bridge was not started from a file")])
        return load_settings(self.settings.config_path)

    async def run_once(self) -> bool:
        """One full pass over every domain, concurrently; True when all succeeded."""
        await self.open()
        if self.replicated:
            raise StateError(
                "run --once reads every domain itself, which several replicas must not do: "
                "with state_url, run the daemon (it takes the domains whose lease is free)"
            )
        self._install_signal_handlers(reload=False)
        gc.freeze()  # as the daemon does (see run_forever): a backlog drain is long too
        results = await asyncio.gather(*(r.run_once() for r in self.runners))
        return all(results)

    # -- the daemon ------------------------------------------------------------------------

    async def run_forever(self) -> None:
        await self.open()
        self._install_signal_handlers(reload=True)
        if self.settings.webhooks_enabled:
            # Before anything else starts: a port that cannot be bound is a config error.
            self.webhooks = await start_webhook_server(
                self.settings, self.store, self.metrics, on_stored=self._webhook_stored
            )
        if self.settings.health.enabled:
            self.health = HealthServer(
                self.settings, self.runners, self.metrics, ownership=self._ownership
            )
            await self.health.start()
        leases = self.backend.leases if self.backend is not None else None
        if leases is not None:
            await leases.start()
        # What start-up built (modules, config, pipelines) lives as long as the process:
        # out of the cyclic collector's sight, each collection scans only what the reads
        # allocate since (a capped drain spends ~3 % of its CPU in the collector otherwise).
        gc.freeze()
        self.notifier.ready()
        background = [asyncio.create_task(self.notifier.run_watchdog(self.stop))]
        if self.settings.self_telemetry.otlp:
            background.append(asyncio.create_task(self._push_self_telemetry()))
        if not self.replicated:
            # With replicas the lease manager starts the domains it acquires (_own_domain).
            for runner in self.runners:
                self._start(runner)
        log.info(
            "bridge started",
            **startup_fields(
                self.settings,
                health_address=self.health.address if self.health is not None else None,
            ),
        )
        stop_waiter = asyncio.create_task(self.stop.wait())
        try:
            # A domain task that dies (only a StateError does) ends the process with an error.
            while not self.stop.is_set():
                tasks = [r.task for r in self._running.values()]
                done, _ = await asyncio.wait(
                    [stop_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is not stop_waiter and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                # A domain stopped by a reload ends normally: wait again on the others.
                for name in [n for n, r in self._running.items() if r.task.done()]:
                    del self._running[name]
        finally:
            self.notifier.stopping()
            self.request_stop()
            # Accept nothing more (Daily retries what gets no answer); what was accepted is
            # in the store, and exported by the next run if not by this one.
            await self._stop_webhooks()
            if leases is not None:
                # Drains every owned domain (their exports acknowledged and committed), then
                # releases the leases, so that a peer takes over at once.
                with contextlib.suppress(StateError):
                    await leases.shutdown()
            await asyncio.gather(
                *(self.stop_domain(name) for name in list(self._running)), return_exceptions=True
            )
            if self._reloading is not None:
                self._reloading.cancel()
            for task in (*background, stop_waiter):
                task.cancel()
            await asyncio.gather(*background, stop_waiter, return_exceptions=True)
            if self.health is not None:
                await self.health.stop()
            log.info("bridge stopped")

    async def _stop_webhooks(self) -> None:
        if self.webhooks is not None:
            server, self.webhooks = self.webhooks, None
            await server.stop()

    def _webhook_stored(self, domain: str, event: WebhookEvent) -> None:
        """An event was stored for `domain`: its inbox poller looks now, if it runs here
        (with replicas, the owner finds it at its next look)."""
        for runner in self.runners:
            if runner.pipeline.name == domain:
                runner.pipeline.wake_source(webhook_source.NAME)
                return

    def _start(self, runner: DomainRunner) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop), name=runner.pipeline.name)
        self._running[runner.pipeline.name] = _Running(runner, task, stop)

    async def start_domain(self, domain: DomainSettings) -> None:
        """Start reading one domain (a reload, or ownership won)."""
        runner = self._runner(domain)
        self.runners.append(runner)
        self._start(runner)

    async def stop_domain(self, name: str) -> None:
        """Stop one domain: its reads end after their page, what they read is exported and
        committed (bounded by the export timeout), then its clients close."""
        running = self._running.pop(name, None)
        if running is None:
            return
        runner = running.runner
        running.stop.set()
        runner.pipeline.request_stop()
        grace = runner.pipeline.settings.export.timeout + SHUTDOWN_SLACK
        done, _ = await asyncio.wait([running.task], timeout=grace)
        if not done:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            log.warning(
                "domain stop timed out; what was not acknowledged is read again", domain=name
            )
        await self._close_runner(runner)
        with contextlib.suppress(ValueError):
            self.runners.remove(runner)

    async def _close_runner(self, runner: DomainRunner) -> None:
        await runner.pipeline.close()

    # -- reload ----------------------------------------------------------------------------

    def _ownership(self) -> tuple[bool, dict[str, object]] | None:
        leases = self.backend.leases if self.backend is not None else None
        if leases is None:
            return None
        from daily_otel_bridge.state.leases import ownership_readiness

        return ownership_readiness(leases.status())

    async def reload(self) -> None:
        """Apply the configuration file again: validated first; domains added, removed or
        changed are started, stopped or restarted; acknowledged work is never lost (a
        stopped domain commits what was acknowledged, a started one resumes from it)."""
        if self.replicated:
            log.warning(
                "configuration reload is not applied with state_url (several replicas): "
                "restart the replicas one by one; each hands its domains over on SIGTERM"
            )
            return
        try:
            new = self._reload()
        except ConfigError as exc:
            log.error(
                "configuration reload refused; the running configuration stays",
                problems=str(exc),
            )
            return
        except Exception as exc:  # an unreadable file, say: the daemon must go on
            log.error(
                "configuration reload failed; the running configuration stays", error=str(exc)
            )
            return
        ignored = [k for k in RESTART_ONLY if getattr(new, k) != getattr(self.settings, k)]
        register_secrets(secrets_of(new))
        old_domains = {d.name: d for d in self.settings.domains if d.enabled}
        new_domains = {d.name: d for d in new.domains if d.enabled}
        removed = [n for n in old_domains if n not in new_domains]
        added = [n for n in new_domains if n not in old_domains]
        changed = [n for n in new_domains if n in old_domains and new_domains[n] != old_domains[n]]
        for name in removed + changed:
            await self.stop_domain(name)
        self.settings = new
        if self.health is not None:
            self.health.settings = new
        if self.webhooks is not None:
            # The domains served and their secrets follow the file; `webhooks` itself
            # (listen, TLS, ...) needs a restart.
            self.webhooks.receiver.update_domains([d for d in new.domains if d.enabled])
        for name in added + changed:
            await self.start_domain(new_domains[name])
        log.info(
            "configuration reloaded",
            added=added,
            removed=removed,
            restarted=changed,
            unchanged=len(new_domains) - len(added) - len(changed),
            needs_restart=ignored or None,
        )

    def _on_hup(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            log.info("reload already in progress; SIGHUP ignored")
            return
        log.info("reloading the configuration", signal="SIGHUP")
        self._reloading = asyncio.create_task(self.reload())

    # -- self-telemetry, signals, close ----------------------------------------------------

    async def _push_self_telemetry(self) -> None:
        from daily_otel_bridge.otlp.resource import bridge_resource
        from daily_otel_bridge.service.self_telemetry import push_forever

        export = self.settings.export
        if export.protocol == "console":
            return
        exporter = Exporter(build_transport(export), max_retry_time=export.timeout)
        resource = bridge_resource()
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
        for running in self._running.values():
            running.stop.set()
        for runner in self.runners:
            runner.pipeline.request_stop()

    def _install_signal_handlers(self, *, reload: bool) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Unix
                loop.add_signal_handler(sig, self._on_signal, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # A closed terminal or SSH session sends SIGHUP: never a reason to die.
            loop.add_signal_handler(signal.SIGHUP, self._on_hup if reload else self._ignore_hup)

    def _ignore_hup(self) -> None:
        log.info("SIGHUP ignored: --once reads its configuration once")

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            return
        log.info("stopping", signal=sig.name)
        self.request_stop()

    async def close(self) -> None:
        for runner in self.runners:
            await self._close_runner(runner)
        if self.backend is not None:
            await self.backend.close()
