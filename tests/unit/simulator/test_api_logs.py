"""GET /v1/logs/api: entries for source=api and source=webhook, paged by id as documented
(newest first; the newest `limit` in range), with planted secrets in their bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daily_otel_bridge.testing.simulator import PLANTED_SECRETS
from daily_otel_bridge.testing.simulator.api_logs import ApiLogBook, ApiLogEntry, select

from ._helpers import ClientFactory, cfg, get_json, make_client

FIELDS = {
    "id",
    "userId",
    "domainId",
    "source",
    "ip",
    "method",
    "url",
    "status",
    "createdAt",
    "request",
    "response",
}


def book_of(n: int) -> tuple[ApiLogBook, list[ApiLogEntry]]:
    book = ApiLogBook(1, "demo", ["standup"])
    entries = [book.add(1000 * k, "api", "GET", f"/v1/r{k % 2}", 200, {}, {}) for k in range(n)]
    return book, entries


@pytest.mark.parametrize(
    ("after", "before", "limit", "url", "expected"),
    [
        (None, None, 3, None, [9, 8, 7]),  # newest first
        (None, None, 20, None, list(range(9, -1, -1))),
        (6, None, 20, None, [9, 8, 7]),  # starting_after: newer than the cursor
        (2, None, 3, None, [9, 8, 7]),  # more than a page newer: the newest, not 3, 4, 5
        (None, 4, 3, None, [3, 2, 1]),  # ending_before: older than the cursor
        (2, 7, 20, None, [6, 5, 4, 3]),  # both: bounded on both sides
        (2, 7, 2, None, [6, 5]),
        (None, None, 3, "/v1/r1", [9, 7, 5]),
        (None, None, 0, None, []),
        (9, None, 5, None, []),
    ],
)
def test_select_pages_like_daily_reads(
    after: int | None, before: int | None, limit: int, url: str | None, expected: list[int]
) -> None:
    _, entries = book_of(10)
    got = select(
        entries,
        10**9,
        "api",
        url,
        None if after is None else entries[after],
        None if before is None else entries[before],
        limit,
    )
    assert got == [entries[k] for k in expected]


def test_select_hides_the_future_and_other_sources() -> None:
    book, entries = book_of(4)
    hook = book.add(1500, "webhook", "POST", "http://127.0.0.1:9/h", 500, {}, "no")
    assert select(book._entries, 2500, "api", None, None, None, 10) == [
        entries[2],
        entries[1],
        entries[0],
    ]
    assert select(book._entries, 2500, "webhook", None, None, None, 10) == [hook]


async def test_api_logs_shape_sources_and_planted_secrets(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(api_log_history=30, webhook_log_history=12))
    api = await get_json(client, "/v1/logs/api", limit=100)
    assert len(api) == 30
    hooks = await get_json(client, "/v1/logs/api", source="webhook", limit=100)
    assert len(hooks) == 12
    for e in api + hooks:
        assert set(e) == FIELDS
        assert isinstance(e["status"], str)
        json.loads(e["request"]), json.loads(e["response"])  # JSON strings, as documented
    assert {e["source"] for e in api} == {"api"}
    assert {e["source"] for e in hooks} == {"webhook"}
    assert [e["createdAt"] for e in api] == sorted((e["createdAt"] for e in api), reverse=True)
    assert any(not e["status"].startswith("2") for e in hooks)
    text = json.dumps(api + hooks)
    found = {s for s in PLANTED_SECRETS if s in text}
    assert found, "the bodies carry planted secrets"
    assert any(e["response"].count("eyJ") for e in api)  # meeting tokens (JWTs)
    assert len(await get_json(client, "/v1/logs/api")) == 20  # Daily's default limit
    assert len(await get_json(client, "/v1/logs/api", limit=5000)) == 30  # capped at 100


async def test_api_logs_walk_back_and_forth(aiohttp_client: ClientFactory) -> None:
    client, _ = await make_client(aiohttp_client, cfg(api_log_history=25))
    everything = await get_json(client, "/v1/logs/api", limit=100)
    walked: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if before is not None:
            params["ending_before"] = before
        rows = await get_json(client, "/v1/logs/api", **params)
        if not rows:
            break
        walked.extend(rows)
        before = rows[-1]["id"]
    assert walked == everything
    newer = await get_json(client, "/v1/logs/api", starting_after=everything[3]["id"])
    assert newer == everything[:3]


@pytest.mark.parametrize(
    "params",
    [{"source": "other"}, {"limit": "-1"}, {"limit": "x"}, {"starting_after": "nope"}],
)
async def test_api_logs_bad_requests(aiohttp_client: ClientFactory, params: dict[str, str]) -> None:
    client, _ = await make_client(aiohttp_client, cfg())
    body = await get_json(client, "/v1/logs/api", expect=400, **params)
    assert body["error"] == "invalid-request-error"
