"""The Daily client keeps no cookies: Daily's REST API authenticates by bearer token, so a
cookie that an answer sets (a proxy's, a load balancer's) is neither stored nor sent back."""

from __future__ import annotations

from aiohttp import web
from aiohttp.pytest_plugin import AiohttpServer

from daily_otel_bridge.daily.client import DailyClient


async def test_a_cookie_set_by_an_answer_is_not_sent_back(aiohttp_server: AiohttpServer) -> None:
    cookies_received: list[str | None] = []

    async def logs(request: web.Request) -> web.Response:
        cookies_received.append(request.headers.get("Cookie"))
        response = web.json_response({"logs": [], "metrics": []})
        response.set_cookie("affinity", "node-7", path="/")
        return response

    app = web.Application()
    app.router.add_get("/v1/logs", logs)
    server = await aiohttp_server(app)  # on 127.0.0.1
    # By name: aiohttp's default jar ignores cookies of hosts given as IP addresses.
    async with DailyClient(
        domain="acme",
        api_url=f"http://localhost:{server.port}/v1",
        api_key="key-acme-123",
        requests_per_second=20,
    ) as client:
        for _ in range(2):
            page = await client.fetch_logs_page(
                mtg_session_id="s1", start_ms=0, end_ms=1, offset=0, limit=10
            )
            assert page.logs == []
    assert cookies_received == [None, None]
