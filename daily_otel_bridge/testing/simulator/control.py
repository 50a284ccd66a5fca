"""The ``/_sim`` control endpoints: no auth, never rate limited, never delayed.

Stats and the request log, the ground truth, the meeting list, key revocation, the clock and
the fault queue (see the package docstring for each).
"""

from __future__ import annotations

import itertools
import json
import math

from aiohttp import web

from .core import Simulator


def control_domain(sim: Simulator, request: web.Request) -> str:
    domain = request.query.get("domain") or next(iter(sim.config.domains))
    if domain not in sim.world.meetings:
        raise web.HTTPNotFound(text=json.dumps({"error": f"unknown domain {domain}"}))
    return domain


async def handle_request_log(sim: Simulator, request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="since must be an integer") from None
    return web.json_response(sim.request_log.since(since))


async def handle_stats(sim: Simulator, request: web.Request) -> web.Response:
    with_arrivals = request.query.get("arrivals", "") in ("1", "true")
    return web.json_response(
        {
            "requests": dict(sim.requests),
            "status_counts": dict(sim.status_counts),
            "requests_per_domain": dict(sim.requests_per_domain),
            "records_served": sim.records_served,
            "metrics_served": sim.metrics_served,
            "inflight": sim.inflight,
            "max_inflight": sim.max_inflight,
            "domains": {d: st.as_json(with_arrivals) for d, st in sim.domain_stats.items()},
        }
    )


async def handle_records(sim: Simulator, request: web.Request) -> web.StreamResponse:
    domain = control_domain(sim, request)
    kind = request.query.get("kind", "logs")
    if kind not in ("logs", "metrics"):
        raise web.HTTPBadRequest(text="kind must be logs or metrics")
    try:
        offset = int(request.query.get("offset", "0"))
        limit_raw = request.query.get("limit")
        limit = None if limit_raw is None else int(limit_raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text="offset and limit must be integers") from exc
    session = request.query.get("session") or None
    with_visible = request.query.get("visible", "") in ("1", "true")
    records = sim.ground_truth(domain, session, kind, max(0, offset), limit, with_visible)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(b'{"records":[')
    count = 0
    while True:
        # Chunks keep memory flat for 100k+ records and let other requests in between.
        chunk = [json.dumps(r) for r in itertools.islice(records, 2000)]
        if not chunk:
            break
        await resp.write(("," if count else "").encode() + ",".join(chunk).encode())
        count += len(chunk)
    await resp.write(f'],"count":{count}}}'.encode())
    await resp.write_eof()
    return resp


async def handle_meeting_list(sim: Simulator, request: web.Request) -> web.Response:
    domain = control_domain(sim, request)
    now = sim.now()
    now_ms = math.floor(now * 1000)
    out = []
    for m in sorted(sim.world.meetings[domain], key=lambda m: m.index):
        _, idx = sim.select_logs(m, now_ms)
        out.append(
            {
                "index": m.index,
                "id": m.id,
                "room": m.room,
                "start_time": m.start_time,
                "end_time": m.end_time,
                "live": m.live,
                "churn": m.churn,
                "begins": m.begins,
                "ends": m.ends,
                "late_visible_at": (
                    None if m.late_visible_ms is None else m.late_visible_ms / 1000
                ),
                "ongoing": m.ongoing(now),
                "participants": [p.participant_id for p in m.participants],
                "visible_records": len(idx),
            }
        )
    return web.json_response({"meetings": out})


async def handle_revoke(sim: Simulator, request: web.Request) -> web.Response:
    domain = control_domain(sim, request)
    sim.revoked.add(domain)
    return web.json_response({"revoked": sorted(sim.revoked)})


async def handle_restore(sim: Simulator, request: web.Request) -> web.Response:
    domain = control_domain(sim, request)
    sim.revoked.discard(domain)
    return web.json_response({"revoked": sorted(sim.revoked)})


async def handle_clock(sim: Simulator, request: web.Request) -> web.Response:
    if request.method == "POST":
        try:
            sim.advance(float(request.query.get("advance", "0")))
        except ValueError as exc:
            raise web.HTTPBadRequest(text="advance must be a number") from exc
    return web.json_response({"now": sim.now()})


async def handle_faults(sim: Simulator, request: web.Request) -> web.Response:
    if request.method == "GET":
        return web.json_response(sim.faults.as_json())
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="body must be a JSON object") from exc
    try:
        sim.faults.apply(body)
    except (ValueError, TypeError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return web.json_response(sim.faults.as_json())


async def handle_webhooks(sim: Simulator, request: web.Request) -> web.Response:
    """Every hook's counters and state, and the last deliveries (``?since=N`` from the N-th)."""
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="since must be an integer") from None
    deliveries = list(sim.webhooks.deliveries)[max(0, since) :]
    return web.json_response({**sim.webhooks.stats(), "deliveries": deliveries})
