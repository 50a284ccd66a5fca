"""``GET /v1/presence`` and ``GET /v1/meetings/{id}/participants`` (see ``presence.py``)."""

from __future__ import annotations

import json

from aiohttp import web

from .core import Simulator
from .errors import ApiError, int_param
from .presence import participants_page, presence


def _json(body: object) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")


async def handle_presence(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    return _json(presence(sim.world, domain, sim.now(), sim.config.presence_lag))


async def handle_participants(sim: Simulator, request: web.Request, domain: str) -> web.Response:
    meeting_id = request.match_info["meeting"]
    meeting = sim.world.by_id.get(meeting_id)
    now = sim.now()
    if meeting is None or meeting.domain != domain or meeting.begins > now:
        raise ApiError(404, "not-found", f"meeting {meeting_id} not found")
    q = request.query
    limit = int_param(q, "limit", 100)
    if limit < 0:
        raise ApiError(400, "invalid-request-error", "limit must be >= 0")
    limit = min(limit, sim.config.meetings_max_limit)
    after = q.get("joined_after") or None
    before = q.get("joined_before") or None
    rows = participants_page(meeting, now, limit, after, before)
    if rows is None:
        raise ApiError(400, "invalid-request-error", "no such participant_id in this meeting")
    return _json({"data": rows})
