"""In-process rig: the real pipeline, Daily client, exporter and SQLite store against the
independent hostile Daily and the test OTLP receiver (no simulator involved)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daily_otel_bridge.config.settings import DomainSettings, parse_settings
from daily_otel_bridge.daily.client import DailyClient
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.domain import DomainPipeline
from daily_otel_bridge.state.sqlite import SqliteCursorStore
from daily_otel_bridge.testing.otlp_receiver import OtlpReceiver
from tests.expectations import expected_uids
from tests.faults._support import received_uids
from tests.faults.hostile_daily import HostileDaily, Hostility
from tests.faults.hostile_data import populate_simple

KEY = "rig-key-0123456789abcdef"


@dataclass
class Rig:
    daily: HostileDaily
    receiver: OtlpReceiver
    store: SqliteCursorStore
    metrics: BridgeMetrics
    tmp: Path
    bodies: list[dict[str, Any]]

    def settings(
        self, *, protocol: str = "grpc", export: dict[str, Any] | None = None, **domain: Any
    ) -> DomainSettings:
        endpoint = (
            self.receiver.grpc_endpoint if protocol == "grpc" else self.receiver.http_endpoint
        )
        doc: dict[str, Any] = {
            "name": "acme",
            "api_key": KEY,
            "api_url": self.daily.url,
            "requests_per_second": 20,
            "page_size": 100,
            "lookback": "2m",
            "settle_lag": "1s",
            "session_grace": "10m",
            "initial_lookback": "2h",
            "request_timeout": "2s",
            # /logs alone, counted exactly (the summaries have their own tests).
            "meeting_summaries": False,
        }
        doc.update(domain)
        exp: dict[str, Any] = {
            "protocol": "grpc" if protocol == "grpc" else "http/protobuf",
            "endpoint": endpoint,
            "max_retry_time": "3s",
            "timeout": "3s",
            "batch_size": 100,
        }
        exp.update(export or {})
        full = {"state_path": str(self.tmp / "state.db"), "export": exp, "domains": [doc]}
        return parse_settings(full, environ={}).domains[0]

    def pipeline(
        self, settings: DomainSettings, clock: Callable[[], float] = time.time
    ) -> DomainPipeline:
        client = DailyClient(
            domain=settings.name,
            api_url=settings.api_url,
            api_key=settings.api_key.get_secret_value(),
            requests_per_second=settings.requests_per_second,
            timeout=settings.request_timeout,
            metrics=self.metrics,
            backoff_cap=0.5,
        )
        exporter = Exporter(
            build_transport(settings.export),
            max_retry_time=settings.export.max_retry_time,
            backoff_cap=0.3,
        )
        return DomainPipeline(
            settings,
            client=client,
            exporter=exporter,
            store=self.store,
            metrics=self.metrics,
            clock=clock,
        )

    def want(self) -> Counter[str]:
        return expected_uids(self.bodies)

    def got(self) -> Counter[str]:
        return received_uids(self.receiver.log_records())


async def close(pipeline: DomainPipeline) -> None:
    await pipeline.exporter.close()
    await pipeline.client.close()


@contextmanager
def rig(
    tmp_path: Path,
    *,
    hostility: Hostility | None = None,
    sessions: int = 2,
    records: int = 150,
    clock: Callable[[], float] = time.time,
    seed: int = 1,
) -> Iterator[Rig]:
    daily = HostileDaily(hostility or Hostility.tame(), clock=clock).start()
    receiver = OtlpReceiver(observe_grpc_compression=False).start()
    store = SqliteCursorStore(tmp_path / "state.db")
    try:
        bodies = populate_simple(
            daily, random.Random(seed), "acme", KEY, sessions=sessions, records=records
        )
        yield Rig(daily, receiver, store, BridgeMetrics(), tmp_path, bodies)
    finally:
        store.close()
        receiver.stop()
        daily.stop()
