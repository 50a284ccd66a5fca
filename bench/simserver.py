"""The Daily API simulator, plus a per-request log for the benchmarks.

Same simulator as `python -m daily_otel_bridge.testing.simulator` (built with the public
`SimulatorConfig` and `create_app`), with one addition: every `/v1/*` request is appended to an
in-memory log (arrival time, endpoint, mtgSessionId, offset, status, answer time), served as
JSON by `GET /_bench/requests?since=N`. The API-cost and rate benchmarks need it to split
requests per session and to time them; `/_sim/stats` gives the same totals. With `--latency`
the answer time is the arrival time plus the latency: rates are counted on arrival, as Daily
counts them.

    python bench/simserver.py --port 0 --domain acme=KEY --meetings 10 --records 100 \
        [--live --live-meetings N --live-rate R --live-silent-meetings M] [--rate-limit R] \
        [--history S] [--latency 150ms --latency-jitter 30ms] [--max-limit 37] \
        [--error-429-ratio 0.15 --error-5xx-ratio 0.1] [--live-silent-words K] \
        [--churn-meetings N --churn-over S ...] --max-seconds S

prints `listening on http://127.0.0.1:PORT/v1` once ready; stops on SIGTERM/SIGINT or after
--max-seconds. Binds to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daily_otel_bridge.config.settings import parse_duration
from daily_otel_bridge.testing.simulator import (
    SimulatorConfig,
    add_churn_arguments,
    churn_kwargs,
    create_app,
)

LogRow = tuple[float, str, str, int, int, float]
LOG_KEY: web.AppKey[list[LogRow]] = web.AppKey("bench_log", list)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/simserver.py")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--domain", action="append", default=[], metavar="NAME=KEY")
    p.add_argument("--meetings", type=int, default=5)
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--history", type=float, default=1800.0)
    p.add_argument("--live", action="store_true")
    p.add_argument("--live-meetings", type=int, default=1)
    p.add_argument("--live-rate", type=float, default=5.0)
    p.add_argument("--live-duration", type=float, default=None)
    p.add_argument("--rate-limit", type=float, default=None)
    p.add_argument("--rate-burst", type=float, default=None)
    p.add_argument("--live-silent-meetings", type=int, default=0)
    p.add_argument("--latency", type=parse_duration, default=0.0)
    p.add_argument("--latency-jitter", type=parse_duration, default=0.0)
    p.add_argument("--max-limit", type=int, default=1000)
    p.add_argument("--error-429-ratio", type=float, default=0.0)
    p.add_argument("--error-5xx-ratio", type=float, default=0.0)
    p.add_argument("--error-retry-after-ratio", type=float, default=0.5)
    p.add_argument("--max-seconds", type=float, default=600.0)
    add_churn_arguments(p)  # --churn-* and --live-silent-words*
    return p


def build_app(args: argparse.Namespace) -> web.Application:
    domains = dict(d.split("=", 1) for d in args.domain) or {"demo": "demo-key"}
    config = SimulatorConfig(
        seed=args.seed,
        domains=domains,
        meetings_per_domain=args.meetings,
        records_per_meeting=args.records,
        history=args.history,
        live=args.live,
        live_meetings=args.live_meetings,
        live_records_per_second=args.live_rate,
        live_duration=args.live_duration,
        include_metrics_samples=False,
        rate_limit_per_second=args.rate_limit,
        rate_burst=args.rate_burst,
        live_silent_meetings=args.live_silent_meetings,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        max_limit=args.max_limit,
        error_429_ratio=args.error_429_ratio,
        error_5xx_ratio=args.error_5xx_ratio,
        error_retry_after_ratio=args.error_retry_after_ratio,
        **churn_kwargs(args),
        # Large backlogs: keep every meeting's records generated once.
        cache_meetings=max(2048, args.meetings + args.live_meetings + 16),
    )
    log: list[LogRow] = []

    @web.middleware
    async def request_log(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # A middleware, not on_response_prepare: it sees the arrival, before the latency.
        arrived = time.time()
        response = await handler(request)
        path = request.path
        if path.startswith("/v1/"):
            q = request.query
            try:
                offset = int(q.get("offset", "0") or 0)
            except ValueError:
                offset = -1
            row = (arrived, path[4:], q.get("mtgSessionId", ""), offset, response.status)
            log.append((*row, time.time()))
        return response

    app = create_app(config)
    app.middlewares.append(request_log)
    app[LOG_KEY] = log

    async def requests_since(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        rows = log[since:]
        return web.json_response({"next": since + len(rows), "requests": rows})

    app.router.add_get("/_bench/requests", requests_since)
    return app


async def _serve(args: argparse.Namespace) -> int:
    app = build_app(args)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port: Any = args.port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    print(f"listening on http://{args.host}:{port}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_seconds)
    finally:
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
