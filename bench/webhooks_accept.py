"""Webhook accept latency and rate: the receiver on 127.0.0.1 storing into a durable inbox.

Two measurements, one process each side of the loopback:

1. latency at a steady 200 events/s (issue 16's target: p99 <= 50 ms), each event signed the
   way Daily signs it and answered only once stored;
2. the sustained accept rate: as many events as `--concurrency` senders get through in
   `--seconds` (target: >= 1,000 events/s).

The inbox is the daemon's own state store: SQLite (a file in a temporary directory, as
`state_path`) and/or PostgreSQL (a throwaway server on 127.0.0.1, `testing/pg_server.py`,
with the daemon's connection pool), the same `inbox_add` the daemon's receiver calls.

    .venv/bin/python bench/webhooks_accept.py [--store sqlite|postgresql|both] [--rate 200]
        [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from daily_otel_bridge.config.settings import parse_settings  # noqa: E402
from daily_otel_bridge.instruments import BridgeMetrics  # noqa: E402
from daily_otel_bridge.service.webhooks import start_webhook_server  # noqa: E402
from daily_otel_bridge.testing.pg_server import pg_server  # noqa: E402
from tests.webhook_inbox import (  # noqa: E402
    SECRET,
    Inbox,
    SqliteInbox,
    event_body,
    postgres_inbox,
    signed_headers,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@asynccontextmanager
async def opened_inbox(store: str) -> AsyncIterator[Inbox]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            inbox = SqliteInbox(Path(tmp) / "state.db")
            try:
                yield inbox
            finally:
                inbox.close()
        return
    with pg_server(max_seconds=600) as server:
        inbox = await postgres_inbox(server.create_database("bench"))
        try:
            yield inbox
        finally:
            await inbox.aclose()


async def pending(inbox: Inbox) -> int:
    count, _ = await inbox.store.inbox_stats("acme")
    return count


async def run(store: str, rate: float, seconds: float, concurrency: int) -> None:
    print(f"-- {store}")
    async with opened_inbox(store) as inbox:
        settings = parse_settings(
            {
                "domains": [{"name": "acme", "api_key": "k", "webhook_secret": SECRET}],
                "webhooks": {"listen": "127.0.0.1:0"},
            },
            environ={},
        )
        server = await start_webhook_server(settings, inbox, BridgeMetrics(CollectorRegistry()))
        url = server.url("acme")
        connector = aiohttp.TCPConnector(limit=concurrency)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:

                async def post(event_id: str) -> float:
                    body = event_body(event_id)
                    headers = signed_headers(body)
                    started = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"answered {resp.status}")
                    return time.perf_counter() - started

                # 1. latency at a steady rate
                count = int(rate * seconds)
                begin = time.perf_counter()
                tasks = []
                for i in range(count):
                    delay = begin + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(post(f"steady-{i}")))
                latencies = await asyncio.gather(*tasks)
                ms = [v * 1000 for v in latencies]
                print(
                    f"latency at {rate:g} events/s over {seconds:g}s ({count} events): "
                    f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
                    f"max {max(ms):.1f} ms"
                )

                # 2. sustained rate: `concurrency` senders back to back
                done = 0
                deadline = time.perf_counter() + seconds

                async def sender(worker: int) -> None:
                    nonlocal done
                    n = 0
                    while time.perf_counter() < deadline:
                        await post(f"burst-{worker}-{n}")
                        n += 1
                        done += 1

                begin = time.perf_counter()
                await asyncio.gather(*(sender(w) for w in range(concurrency)))
                elapsed = time.perf_counter() - begin
                print(
                    f"sustained: {done} events in {elapsed:.1f}s = {done / elapsed:,.0f} events/s "
                    f"({concurrency} senders)"
                )
            stored = await pending(inbox)
            print(f"stored: {stored} of {count + done} (each answered 200 only once stored)")
        finally:
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql", "both"), default="both", help="state store"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events/s of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--concurrency", type=int, default=32, help="senders of the rate run")
    args = parser.parse_args()
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    for store in stores:
        asyncio.run(run(store, args.rate, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
