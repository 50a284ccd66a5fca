"""One pass (`run_once`) of one domain, in process: the real pipeline, client and store against the
bundled simulator, exporting to our own OTLP receiver (gRPC)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daily_otel_bridge.config.settings import DomainSettings, parse_settings
from daily_otel_bridge.daily.client import AuthError, DailyClient, TransientError
from daily_otel_bridge.instruments import BridgeMetrics
from daily_otel_bridge.otlp.transport import Exporter, build_transport
from daily_otel_bridge.pipeline.domain import DomainPipeline
from daily_otel_bridge.sources import REGISTRY, Registry
from daily_otel_bridge.state.sqlite import SqliteCursorStore
from daily_otel_bridge.testing.otlp_receiver import Fault, OtlpReceiver
from daily_otel_bridge.testing.simulator import RunningSimulator, SimulatorConfig, start_simulator
from tests.expectations import expected_uids

KEY = "integration-key-0123456789"


def got_uids(receiver: OtlpReceiver) -> Counter[str]:
    return Counter(str(r.attributes["log.record.uid"]) for r in receiver.log_records())


@dataclass
class Rig:
    sim: RunningSimulator
    receiver: OtlpReceiver
    store: SqliteCursorStore
    metrics: BridgeMetrics
    tmp: Path

    def settings(self, **overrides: Any) -> DomainSettings:
        domain: dict[str, Any] = {
            "name": "acme",
            "api_key": KEY,
            "api_url": self.sim.url,
            "requests_per_second": 20,
            "page_size": 100,
            "lookback": "2m",
            "settle_lag": "1s",
            "session_grace": "1m",
            "initial_lookback": "2h",
            # /logs alone, counted exactly (the summaries have their own tests).
            "meeting_summaries": False,
        }
        domain.update(overrides)
        doc = {
            "state_path": str(self.tmp / "state.db"),
            "export": {
                "protocol": "grpc",
                "endpoint": self.receiver.grpc_endpoint,
                "max_retry_time": "2s",
            },
            "domains": [domain],
        }
        return parse_settings(doc, environ={}).domains[0]

    def pipeline(self, settings: DomainSettings, registry: Registry = REGISTRY) -> DomainPipeline:
        client = DailyClient(
            domain=settings.name,
            api_url=settings.api_url,
            api_key=settings.api_key.get_secret_value(),
            requests_per_second=settings.requests_per_second,
            metrics=self.metrics,
            backoff_cap=0.5,
        )
        exporter = Exporter(build_transport(settings.export), max_retry_time=2.0, backoff_cap=0.2)
        return DomainPipeline(
            settings,
            client=client,
            exporter=exporter,
            store=self.store,
            metrics=self.metrics,
            clock=self.sim.simulator.now,
            monotonic=self.sim.simulator.now,
            registry=registry,
        )

    def truth(self) -> list[dict[str, Any]]:
        return list(self.sim.simulator.ground_truth("acme"))


@asynccontextmanager
async def rig_for(config: SimulatorConfig, tmp_path: Path) -> AsyncIterator[Rig]:
    sim = await start_simulator(config)
    receiver = OtlpReceiver(http=False, observe_grpc_compression=False).start()
    store = SqliteCursorStore(tmp_path / "state.db")
    try:
        yield Rig(sim, receiver, store, BridgeMetrics(), tmp_path)
    finally:
        store.close()
        receiver.stop()
        await sim.close()


def sim_config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {
        "seed": 21,
        "domains": {"acme": KEY},
        "meetings_per_domain": 4,
        "records_per_meeting": 300,
        "tie_ratio": 0.6,
        "duplicate_ratio": 0.05,
    }
    base.update(overrides)
    return SimulatorConfig(**base)


async def close(pipeline: DomainPipeline) -> None:
    await pipeline.client.close()
    await pipeline.exporter.close()


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"short_pages": True},
        {"start_time_inclusive": False, "end_time_inclusive": False},
        {"max_limit": 37},
    ],
    ids=["plain", "short-pages", "exclusive-window", "capped-limit"],
)
async def test_one_sweep_delivers_everything_once(tmp_path: Path, variant: dict[str, Any]) -> None:
    async with rig_for(sim_config(**variant), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings())
        exported = (await pipeline.run_once()).exported
        if variant.get("short_pages"):
            # A page holding a lone record (the anchor) ends a read early: the next reads
            # go on from the watermark.
            # (A read may also end that way before it delivered anything: an empty pass
            # does not mean the end, so go on until everything is there.)
            for _ in range(20):
                if got_uids(rig.receiver) == expected_uids(rig.truth()):
                    break
                exported += (await pipeline.run_once()).exported
        truth = rig.truth()
        assert got_uids(rig.receiver) == expected_uids(truth)
        assert exported == len(truth)
        # A fresh pipeline on the same store (a restart) finds nothing new.
        again = rig.pipeline(rig.settings())
        stats2 = await again.run_once()
        assert stats2.exported == 0
        assert rig.receiver.count() == len(truth)
        await close(pipeline)
        await close(again)


async def test_late_records_inside_the_lookback_arrive_next_sweep(tmp_path: Path) -> None:
    # 10% of records become visible 45 s after their time: beyond settle_lag, inside lookback.
    config = sim_config(late_ratio=0.1, late_delay=45.0, history=60.0)
    async with rig_for(config, tmp_path) as rig:
        # Put "now" in the middle of the late window so that some are still hidden.
        pipeline = rig.pipeline(rig.settings())
        await pipeline.run_once()
        first = rig.receiver.count()
        rig.sim.simulator.advance(60)
        await pipeline.run_once()
        truth = rig.truth()
        assert got_uids(rig.receiver) == expected_uids(truth)
        assert first < rig.receiver.count(), "some records were hidden at the first sweep"
        await close(pipeline)


async def test_room_globs_select_sessions(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=9), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(rooms=["sales-*"]))
        await pipeline.run_once()
        rooms = {r.attributes["daily.room"] for r in rig.receiver.log_records()}
        assert rooms == {"sales-demo"}
        await close(pipeline)


async def test_rate_limited_server_loses_nothing(tmp_path: Path) -> None:
    config = sim_config(rate_limit_per_second=4.0, rate_burst=2.0)
    async with rig_for(config, tmp_path) as rig:
        # Asking for twice the server's limit: 429s are met, paced and retried.
        pipeline = rig.pipeline(rig.settings(requests_per_second=8, page_size=200))
        await pipeline.run_once()
        assert got_uids(rig.receiver) == expected_uids(rig.truth())
        limited = rig.metrics.api_rate_limited.labels("acme")._value.get()
        assert limited > 0
        await close(pipeline)


async def test_partial_success_is_counted_and_not_retried(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=1, records_per_meeting=50), tmp_path) as rig:
        rig.receiver.set_fault(Fault(reject_records=5, count=1))
        pipeline = rig.pipeline(rig.settings())
        stats = await pipeline.run_once()
        assert stats.rejected == 5
        assert rig.metrics.records_rejected.labels("acme", "logs")._value.get() == 5
        assert rig.receiver.count() == 45
        assert rig.receiver.request_count() == 1
        # The cursor moved past them: the backend refused them for good.
        assert (await pipeline.run_once()).exported == 0
        await close(pipeline)


async def test_export_failure_commits_nothing_and_the_next_sweep_delivers(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=2, records_per_meeting=100), tmp_path) as rig:
        rig.receiver.set_fault(Fault(grpc_status="UNAVAILABLE"))
        pipeline = rig.pipeline(rig.settings())
        with pytest.raises(Exception, match="UNAVAILABLE"):
            await pipeline.run_once()
        assert all(c.watermark_ns is None for c in rig.store.load_cursors("acme", "logs").values())
        rig.receiver.set_fault(None)
        await pipeline.run_once()
        assert got_uids(rig.receiver) == expected_uids(rig.truth())
        await close(pipeline)


async def test_revoked_key_raises_auth_error(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=1), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(api_key="wrong-key-0123456789"))
        with pytest.raises(AuthError) as info:
            await pipeline.run_once()
        assert "wrong-key" not in str(info.value)
        await close(pipeline)


async def test_sessions_retire_after_grace_and_are_not_rediscovered(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=3, records_per_meeting=20), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings(session_grace="1m"))
        await pipeline.run_once()
        # The simulator's meetings ended at least 30 s ago; two minutes on, all are retired.
        rig.sim.simulator.advance(120)
        await pipeline.run_once()
        assert pipeline.active_cursors() == []
        retired = rig.store.load_cursors("acme", "logs")
        assert retired
        assert all(c.retired and not c.seen for c in retired.values())
        assert rig.receiver.count() == len(rig.truth())
        # Once discovery can no longer list them, their rows go too; nothing is re-sent.
        for _ in range(2):  # discovery looks back from the previous discovery's time
            rig.sim.simulator.advance(600)
            await pipeline.run_once()
        assert rig.store.load_cursors("acme", "logs") == {}
        assert rig.receiver.count() == len(rig.truth())
        await close(pipeline)


async def test_one_failing_session_does_not_stall_the_others(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=5, records_per_meeting=80), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings())
        sick = sorted(m.id for m in await pipeline.client.list_meetings())[0]
        real_fetch = pipeline.client.fetch_logs_page

        async def flaky_fetch(**kwargs: Any) -> Any:
            if kwargs["mtg_session_id"] == sick:
                raise TransientError("GET /logs: HTTP 500 (server-error)", status=500)
            return await real_fetch(**kwargs)

        pipeline.client.fetch_logs_page = flaky_fetch  # type: ignore[method-assign]
        stats = await pipeline.run_once()
        assert [f.split(":")[0] for f in stats.session_failures] == [sick]
        healthy = [r for r in rig.truth() if r["mtgSessionId"] != sick]
        assert got_uids(rig.receiver) == expected_uids(healthy)

        pipeline.client.fetch_logs_page = real_fetch  # type: ignore[method-assign]
        await pipeline.run_once()
        assert got_uids(rig.receiver) == expected_uids(rig.truth())
        await close(pipeline)


async def test_many_failing_sessions_abort_the_sweep(tmp_path: Path) -> None:
    async with rig_for(sim_config(meetings_per_domain=5, records_per_meeting=20), tmp_path) as rig:
        pipeline = rig.pipeline(rig.settings())

        async def down(**kwargs: Any) -> Any:
            raise TransientError("GET /logs: HTTP 503 (server-error)", status=503)

        pipeline.client.fetch_logs_page = down  # type: ignore[method-assign]
        with pytest.raises(TransientError):
            await pipeline.run_once()
        await close(pipeline)


async def test_a_quiet_ongoing_session_costs_one_request_a_poll(tmp_path: Path) -> None:
    # Three ongoing meetings whose first record comes at their start and the next only
    # after 1,000 s: quiet. After a full read, each poll asks one question per session.
    config = sim_config(
        meetings_per_domain=0, live=True, live_meetings=3, live_records_per_second=0.001
    )
    async with rig_for(config, tmp_path) as rig:
        rig.sim.simulator.advance(5)
        pipeline = rig.pipeline(rig.settings())
        await pipeline.run_once()
        delivered = rig.receiver.count()
        assert delivered == 3

        def logs_requests() -> float:
            return float(rig.metrics.api_requests.labels("acme", "logs", "200")._value.get())

        # The first read started at the session's floor, the next from the watermark: that
        # read is a full one (two requests); from then on the window stays put.
        rig.sim.simulator.advance(5)
        await pipeline.run_once()
        for _ in range(3):
            before = logs_requests()
            rig.sim.simulator.advance(5)
            await pipeline.run_once()
            assert logs_requests() - before == 3
        assert rig.receiver.count() == delivered
        # When one speaks again, the question comes back non-empty and a full read follows.
        rig.sim.simulator.advance(1000)
        await pipeline.run_once()
        assert got_uids(rig.receiver) == expected_uids(rig.truth())
        assert rig.receiver.count() == 6
        await close(pipeline)
