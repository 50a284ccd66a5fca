"""``GET /v1/logs/api`` (``api_logs.py``) and ``/v1/webhooks`` (``webhooks.py``,
``delivery.py``): create, list, get, update (re-activate), delete."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from .api_logs import SOURCES
from .core import Simulator
from .errors import ApiError, int_param


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


async def handle_api_logs(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    q = request.query
    book = sim.api_logs[domain]
    source = q.get("source") or "api"
    if source not in SOURCES:
        raise ApiError(400, "invalid-request-error", "source must be api or webhook")
    limit = int_param(q, "limit", 20)
    if limit < 0:
        raise ApiError(400, "invalid-request-error", "limit must be >= 0")
    limit = min(limit, sim.config.api_logs_max_limit)
    cursors = []
    for name in ("starting_after", "ending_before"):
        value = q.get(name) or None
        entry = None if value is None else book.lookup(value)
        if value is not None and entry is None:
            raise ApiError(400, "invalid-request-error", f"{name}: no log {value}")
        cursors.append(entry)
    now_ms = math.floor(sim.now() * 1000)
    rows = book.page(now_ms, source, q.get("url") or None, cursors[0], cursors[1], limit)
    return _json([e.as_json(book.user_id, book.domain_id) for e in rows])


async def _body(request: web.Request) -> Any:
    raw = await request.text()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "json-parsing-error", "the body is not valid JSON") from None


async def handle_create_webhook(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    body = await _body(request)
    try:
        hook = await sim.webhooks.create(domain, body)
    except ApiError as exc:
        sim.log_call(domain, request, exc.status, body, {"error": exc.error, "info": exc.info})
        raise
    answer = hook.as_json()
    sim.log_call(domain, request, 200, body, answer)
    return _json(answer)


async def handle_list_webhooks(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    return _json([h.as_json() for h in sim.webhooks.of_domain(domain)])


async def handle_get_webhook(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    return _json(sim.webhooks.get(domain, request.match_info["uuid"]).as_json())


async def handle_update_webhook(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    body = await _body(request)
    try:
        hook = await sim.webhooks.update(domain, request.match_info["uuid"], body)
    except ApiError as exc:
        sim.log_call(domain, request, exc.status, body, {"error": exc.error, "info": exc.info})
        raise
    answer = hook.as_json()
    sim.log_call(domain, request, 200, body, answer)
    return _json(answer)


async def handle_delete_webhook(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    sim.webhooks.delete(domain, request.match_info["uuid"])
    sim.log_call(domain, request, 200, {}, {})
    return _json({})
