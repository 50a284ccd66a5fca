"""Walking `/meetings` pages ends right whichever way Daily counts `total_count` (the whole
list, or what is left after `starting_after`): a server reading each way, the same answer."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.instruments import BridgeMetrics

REQUESTS = web.AppKey("requests", list[str])
MEETINGS = [
    {"id": f"m{i:02d}", "room": "r", "start_time": 1_700_000_000 - i, "duration": 5}
    for i in range(24)
]


def app(page: int, total_counts_rest: bool) -> web.Application:
    requests: list[str] = []

    async def meetings(request: web.Request) -> web.Response:
        rows = MEETINGS
        after = request.query.get("starting_after")
        requests.append(after or "")
        if after is not None:
            rows = rows[[m["id"] for m in rows].index(after) + 1 :]
        total = len(rows) if total_counts_rest else len(MEETINGS)
        return web.json_response({"total_count": total, "data": rows[:page]})

    application = web.Application()
    application.router.add_get("/v1/meetings", meetings)
    application[REQUESTS] = requests
    return application


@pytest.mark.parametrize("page", [3, 5, 24, 100])
@pytest.mark.parametrize("total_counts_rest", [False, True], ids=["whole-list", "what-is-left"])
async def test_every_meeting_is_listed_on_both_readings_of_total_count(
    page: int, total_counts_rest: bool
) -> None:
    application = app(page, total_counts_rest)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    client = DailyClient(
        domain="acme",
        api_url=str(server.make_url("/v1")),
        api_key="k" * 20,
        requests_per_second=1000,
        metrics=BridgeMetrics(),
    )
    try:
        listed: Any = await client.list_meetings(ongoing=True)
    finally:
        await client.close()
        await server.close()
    assert [m.id for m in listed] == [m["id"] for m in MEETINGS]
    pages = -(-len(MEETINGS) // page)
    # At most one request more than the pages: the empty page that ends the walk when
    # total_count counts the whole list and the last page is not the first.
    assert len(application[REQUESTS]) <= pages + 1
