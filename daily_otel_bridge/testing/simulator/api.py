"""Daily's endpoints: ``GET /v1/logs`` and ``GET /v1/meetings`` (see the package docstring
for what each accepts). Each handler is called by ``Simulator.api`` once the request has
passed faults, authentication and rate limits, with the domain its key selects."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from .core import Simulator
from .errors import ApiError, bool_param, int_param, num_param, opt_int_param
from .paging import cursor_page, page, page_size
from .render import render_log, render_meeting, render_metric
from .vocabulary import LEVEL_BY_NAME


async def handle_logs(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    q = request.query
    mtg = q.get("mtgSessionId") or None
    user = q.get("userSessionId") or None
    if mtg is None and user is None:
        raise ApiError(400, "invalid-request-error", "mtgSessionId or userSessionId is required")
    for sid in (mtg, user):
        if sid is not None and sid in sim.faults.not_found:
            raise ApiError(404, "not-found", f"session {sid} not found")
    order = q.get("order", "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise ApiError(400, "invalid-request-error", "order must be ASC or DESC")
    level_name = q.get("logLevel")
    level: int | None = None
    if level_name:
        if level_name.upper() not in LEVEL_BY_NAME:
            raise ApiError(400, "invalid-request-error", "logLevel must be ERROR, INFO or DEBUG")
        level = LEVEL_BY_NAME[level_name.upper()]
    now_ms = math.floor(sim.now() * 1000)
    start = opt_int_param(q, "startTime")
    end = int_param(q, "endTime", now_ms)
    limit = int_param(q, "limit", 20)
    offset = int_param(q, "offset", 0)
    if limit < 0 or offset < 0:
        raise ApiError(400, "invalid-request-error", "limit and offset must be >= 0")
    limit = min(limit, sim.config.max_limit)
    include_logs = bool_param(q, "includeLogs", True)
    include_metrics = bool_param(q, "includeMetrics", False)
    desc = order == "DESC"
    found = sim.world.resolve(domain, mtg, user)
    body: dict[str, Any] = {}
    request_key = f"{mtg}:{user}:{order}:{start}:{end}:{level}:{offset}:{limit}"
    if include_logs:
        logs: list[dict[str, Any]] = []
        if found is not None:
            meeting, participant = found
            recs, idx = sim.store.select_logs(meeting, now_ms, start, end, participant, level)
            n = page_size(
                sim.config.seed,
                sim.config.short_pages,
                f"logs:{request_key}",
                len(idx) - offset,
                limit,
            )
            rows = page(recs.t, idx, desc, offset, n, sim.config.desc_ties_reversed)
            logs = [render_log(meeting, recs, i) for i in rows]
        sim.records_served += len(logs)
        body["logs"] = logs
    if include_metrics:
        metrics: list[dict[str, Any]] = []
        if found is not None and sim.config.include_metrics_samples:
            meeting, participant = found
            samples, sidx = sim.store.select_metrics(meeting, now_ms, start, end, participant)
            n = page_size(
                sim.config.seed,
                sim.config.short_pages,
                f"metrics:{request_key}",
                len(sidx) - offset,
                limit,
            )
            rows = page(samples.t, sidx, desc, offset, n, sim.config.desc_ties_reversed)
            metrics = [render_metric(meeting, samples, i) for i in rows]
        sim.metrics_served += len(metrics)
        body["metrics"] = metrics
    return web.Response(text=json.dumps(body), content_type="application/json")


async def handle_meetings(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    q = request.query
    now = sim.now()
    room = q.get("room") or None
    tf_start = num_param(q, "timeframe_start")
    tf_end = num_param(q, "timeframe_end")
    limit = int_param(q, "limit", 100)
    if limit < 0:
        raise ApiError(400, "invalid-request-error", "limit must be >= 0")
    limit = min(limit, sim.config.meetings_max_limit)
    ongoing = bool_param(q, "ongoing", None)
    no_participants = bool_param(q, "no_participants", False)
    after = q.get("starting_after") or None
    before = q.get("ending_before") or None
    cursor: tuple[int, str] | None = None
    for cursor_id in (after, before):
        if cursor_id is not None:
            m = sim.world.by_id.get(cursor_id)
            if m is None or m.domain != domain:
                raise ApiError(400, "invalid-request-error", f"no meeting {cursor_id}")
            cursor = m.sort_key
            break
    matching = [
        m
        for m in sim.world.meetings[domain]
        if m.begins <= now
        and (room is None or m.room == room)
        and (tf_start is None or m.start_time >= tf_start)
        and (tf_end is None or m.start_time < tf_end)
        and (ongoing is None or m.ongoing(now) == ongoing)
    ]
    rows = cursor_page(matching, cursor, after is not None, limit)
    data = [render_meeting(m, now, not no_participants) for m in rows]
    body = {"total_count": len(matching), "data": data}
    return web.Response(text=json.dumps(body), content_type="application/json")
