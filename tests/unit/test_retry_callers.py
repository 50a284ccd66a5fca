"""What each caller of `core.retry.retry` keeps of its own: the Daily client (attempts,
Retry-After capped at MAX_RETRY_AFTER, a 429 pausing the domain's bucket, the backoff and
rate-limit counters, the auth / 404 / permanent answers) and the OTLP exporter (a deadline,
the server's hint, the attempt count), each with its observer calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daily_otel_bridge.daily.client import (
    MAX_RETRY_AFTER,
    AuthError,
    DailyClient,
    NotFoundError,
    PermanentError,
    TransientError,
)
from daily_otel_bridge.instruments import PREFIX, BridgeMetrics
from daily_otel_bridge.otlp.transport import Exporter, ExportError, ExportOutcome

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Answer = tuple[int, dict[str, str]]


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.failed = asyncio.Event()

    def attempt_failed(self, error_type: str, message: str, retry_in: float | None) -> None:
        self.events.append(("failed", error_type, message, retry_in))
        self.failed.set()

    def succeeded(self) -> None:
        self.events.append(("succeeded",))


async def _daily(
    aiohttp_server: ServerFactory, answers: list[Answer], **client: Any
) -> tuple[DailyClient, Observer, BridgeMetrics]:
    script: Iterator[Answer] = iter(answers)

    async def logs(_: web.Request) -> web.Response:
        status, headers = next(script)
        if status == 200:
            return web.json_response({"logs": [], "metrics": []})
        return web.json_response({"error": "some-error"}, status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/logs", logs)
    server = await aiohttp_server(app)
    metrics = BridgeMetrics()
    daily = DailyClient(
        domain="acme",
        api_url=str(server.make_url("/v1")),
        api_key="k" * 32,
        requests_per_second=1000.0,
        metrics=metrics,
        **client,
    )
    observer = Observer()
    daily.observer = observer
    return daily, observer, metrics


def _fetch(daily: DailyClient) -> Awaitable[Any]:
    return daily.fetch_logs_page(mtg_session_id="m", start_ms=0, end_ms=1, offset=0, limit=10)


def _value(metrics: BridgeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"{PREFIX}_{name}", labels) or 0.0


async def test_daily_hints_are_honoured_and_a_429_counted(aiohttp_server: ServerFactory) -> None:
    answers: list[Answer] = [(503, {"Retry-After": "0"}), (429, {"Retry-After": "0"}), (200, {})]
    daily, observer, metrics = await _daily(aiohttp_server, answers)
    async with daily:
        await _fetch(daily)
    assert observer.events == [
        ("failed", "daily_api", "GET /logs: HTTP 503 (some-error)", 0.0),
        ("failed", "daily_api", "GET /logs: HTTP 429 (some-error)", 0.0),
        ("succeeded",),
    ]
    assert daily.requests_made == 3
    assert _value(metrics, "daily_api_rate_limited_total", domain="acme") == 1
    assert _value(metrics, "daily_api_backoff_seconds_total", domain="acme") == 0


async def test_daily_gives_up_after_max_attempts_with_backoff(
    aiohttp_server: ServerFactory,
) -> None:
    daily, observer, metrics = await _daily(
        aiohttp_server, [(502, {})] * 3, max_attempts=3, backoff_cap=0.02
    )
    async with daily:
        with pytest.raises(TransientError, match="HTTP 502"):
            await _fetch(daily)
    waits = [e[3] for e in observer.events]
    assert [e[:2] for e in observer.events] == [("failed", "daily_api")] * 3
    assert waits[2] is None
    assert all(0 < w <= 0.02 for w in waits[:2])
    assert daily.requests_made == 3
    backoff = _value(metrics, "daily_api_backoff_seconds_total", domain="acme")
    assert backoff == pytest.approx(waits[0] + waits[1])


async def test_daily_retry_after_is_capped_and_a_429_pauses_the_domain(
    aiohttp_server: ServerFactory,
) -> None:
    daily, observer, _ = await _daily(aiohttp_server, [(429, {"Retry-After": "3600"})])
    async with daily:
        task = asyncio.ensure_future(_fetch(daily))
        await asyncio.wait_for(observer.failed.wait(), 10)
        assert observer.events == [
            ("failed", "daily_api", "GET /logs: HTTP 429 (some-error)", MAX_RETRY_AFTER)
        ]
        assert MAX_RETRY_AFTER - 5 < daily.bucket.paused_for <= MAX_RETRY_AFTER
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("status", "error", "events"),
    [
        (401, AuthError, [("failed", "daily_auth", "GET /logs: HTTP 401 (some-error)", None)]),
        (404, NotFoundError, [("succeeded",)]),
        (400, PermanentError, []),
    ],
)
async def test_daily_answers_that_are_not_retried(
    aiohttp_server: ServerFactory,
    status: int,
    error: type[Exception],
    events: list[tuple[Any, ...]],
) -> None:
    daily, observer, _ = await _daily(aiohttp_server, [(status, {})])
    async with daily:
        with pytest.raises(error):
            await _fetch(daily)
    assert observer.events == events
    assert daily.requests_made == 1


class ScriptedTransport:
    name = "scripted"

    def __init__(self, script: list[ExportError | ExportOutcome]) -> None:
        self._script = iter(script)

    async def send(self, signal: Any, request: Any) -> ExportOutcome:
        step = next(self._script)
        if isinstance(step, ExportError):
            raise step
        return step

    async def close(self) -> None:
        return None


async def test_exporter_retries_transient_and_counts_attempts() -> None:
    transport = ScriptedTransport(
        [
            ExportError("busy", transient=True, retry_after=0.0),
            ExportError("busy again", transient=True, retry_after=0.0),
            ExportOutcome(rejected=2, error_message="two refused"),
        ]
    )
    exporter = Exporter(transport, max_retry_time=5.0)
    observer = Observer()
    exporter.observer = observer
    outcome = await exporter.export("logs", object())  # type: ignore[arg-type]
    assert outcome == ExportOutcome(rejected=2, error_message="two refused", attempts=3)
    assert observer.events == [
        ("failed", "export_transient", "busy", 0.0),
        ("failed", "export_transient", "busy again", 0.0),
        ("succeeded",),
    ]


async def test_exporter_gives_up_when_the_hint_passes_the_deadline() -> None:
    now = [0.0]
    transport = ScriptedTransport([ExportError("later", transient=True, retry_after=10.0)])
    exporter = Exporter(transport, max_retry_time=5.0, clock=lambda: now[0])
    observer = Observer()
    exporter.observer = observer
    with pytest.raises(ExportError, match="later"):
        await exporter.export("metrics", object())  # type: ignore[arg-type]
    assert observer.events == [("failed", "export_transient", "later", None)]


async def test_exporter_permanent_is_observed_and_not_retried() -> None:
    transport = ScriptedTransport([ExportError("refused", transient=False), ExportOutcome()])
    exporter = Exporter(transport, max_retry_time=5.0)
    observer = Observer()
    exporter.observer = observer
    with pytest.raises(ExportError, match="refused"):
        await exporter.export("logs", object())  # type: ignore[arg-type]
    assert observer.events == [("failed", "export_permanent", "refused", None)]
