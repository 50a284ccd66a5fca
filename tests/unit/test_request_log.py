"""The simulator's request log and the client's User-Agent: what the replica tests use to
show that no two replicas ever read one domain at the same time."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from daily_otel_bridge import __version__
from daily_otel_bridge.daily.client import AuthError, DailyClient, user_agent_for
from daily_otel_bridge.testing.simulator import SimulatorConfig, start_simulator


async def get(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return await resp.json()


def test_user_agent_names_the_replica() -> None:
    assert user_agent_for(None) == f"daily-otel-bridge/{__version__}"
    assert user_agent_for("host-a-12") == f"daily-otel-bridge/{__version__} (replica host-a-12)"


async def test_requests_are_logged_with_times_and_user_agent() -> None:
    running = await start_simulator(
        SimulatorConfig(domains={"acme": "key-acme-123"}, meetings_per_domain=1)
    )
    try:
        before = time.time()
        for replica in ("r1", "r2"):
            async with DailyClient(
                domain="acme",
                api_url=running.url,
                api_key="key-acme-123",
                requests_per_second=20,
                user_agent=user_agent_for(replica),
            ) as client:
                await client.list_meetings()
        async with DailyClient(
            domain="acme", api_url=running.url, api_key="wrong-key-0", requests_per_second=20
        ) as client:
            with pytest.raises(AuthError):
                await client.list_meetings()
        log = await get(running.control_url + "/requests")
        entries = log["requests"]
        assert log["next"] == len(entries) >= 3
        agents = [e["user_agent"] for e in entries]
        assert agents[0].endswith("(replica r1)")
        assert agents[1].endswith("(replica r2)")
        assert "replica" not in agents[-1]
        assert [e["status"] for e in entries][-1] == 401
        for e in entries:
            assert e["endpoint"] == "meetings"
            assert before <= e["arrived"] <= e["finished"] <= time.time()
        later = await get(running.control_url + f"/requests?since={log['next'] - 1}")
        assert later["requests"] == entries[-1:]
    finally:
        await running.close()
