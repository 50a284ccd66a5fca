"""The simulator as an aiohttp app: one ``Simulator`` and the routes onto its handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from . import api, api_presence, api_webhooks, control
from .config import Clock, SimulatorConfig
from .core import Simulator

SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig, *, clock: Clock | None = None) -> web.Application:
    """The simulator as an aiohttp app; ``clock`` (Unix seconds) defaults to ``time.time``."""
    sim = Simulator(config, clock)
    app = web.Application()
    app[SIM_KEY] = sim

    async def on_shutdown(_: web.Application) -> None:
        sim.closing.set()

    def ctl(
        handler: Callable[[Simulator, web.Request], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return partial(handler, sim)

    async def on_cleanup(_: web.Application) -> None:
        await sim.webhooks.close()

    def route(endpoint: str, handler: Callable[..., Awaitable[web.Response]]) -> Any:
        return sim.api(endpoint, partial(handler, sim))

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/v1/logs", sim.api("logs", partial(api.handle_logs, sim)))
    app.router.add_get("/v1/meetings", sim.api("meetings", partial(api.handle_meetings, sim)))
    # Issues 16 and 17: presence, participants, API logs, webhooks (each an API request
    # like the two above: counted, rate limited, subject to faults and latency).
    app.router.add_get("/v1/presence", route("presence", api_presence.handle_presence))
    app.router.add_get(
        "/v1/meetings/{meeting}/participants",
        route("participants", api_presence.handle_participants),
    )
    app.router.add_get("/v1/logs/api", route("logs_api", api_webhooks.handle_api_logs))
    app.router.add_post("/v1/webhooks", route("webhooks", api_webhooks.handle_create_webhook))
    app.router.add_get("/v1/webhooks", route("webhooks", api_webhooks.handle_list_webhooks))
    hook = "/v1/webhooks/{uuid}"
    app.router.add_get(hook, route("webhooks", api_webhooks.handle_get_webhook))
    app.router.add_post(hook, route("webhooks", api_webhooks.handle_update_webhook))
    app.router.add_delete(hook, route("webhooks", api_webhooks.handle_delete_webhook))
    app.router.add_get("/_sim/webhooks", ctl(control.handle_webhooks))
    app.router.add_get("/_sim/stats", ctl(control.handle_stats))
    app.router.add_get("/_sim/requests", ctl(control.handle_request_log))
    app.router.add_get("/_sim/records", ctl(control.handle_records))
    app.router.add_get("/_sim/meetings", ctl(control.handle_meeting_list))
    app.router.add_post("/_sim/revoke", ctl(control.handle_revoke))
    app.router.add_post("/_sim/restore", ctl(control.handle_restore))
    app.router.add_get("/_sim/clock", ctl(control.handle_clock))
    app.router.add_post("/_sim/clock", ctl(control.handle_clock))
    app.router.add_get("/_sim/faults", ctl(control.handle_faults))
    app.router.add_post("/_sim/faults", ctl(control.handle_faults))
    return app
